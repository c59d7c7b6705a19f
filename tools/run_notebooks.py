"""Execute the notebook series headless into ``build/run/`` (``make run``).

``python tools/run_notebooks.py [--mode gpu|cpu|smoke|gpu-rehearsal]
[--edition en|zh] [--out DIR] [NOTEBOOK ...]`` runs each notebook top to
bottom in a fresh kernel (working directory ``notebooks/``), writes the
executed notebook and an HTML copy into ``--out`` (default
``build/run/MODE/EDITION/``), and prints where they are and how long
each took.

``--mode gpu-rehearsal`` rehearses GPU mode on the CPU (``make run
MODE=gpu-rehearsal``): each notebook's GPU branches run at smoke size
(``settings.choose``), and each must print the rehearsal's banner. The
folder standing in for Google Drive (``checkpoint_folders``) is
``OUT/drive/NOTEBOOK/``, emptied first; a notebook that wrote checkpoints
there runs a second time in a fresh kernel, which must resume from
every one of those folders (its output says "resuming from ...") and
write no checkpoint again; that run is kept in ``OUT/resumed/``. It
checks the GPU paths' logic, not their speed.

Each executed notebook keeps its outputs and says how it was made in its
metadata (``RUN_KEY``: mode, device, seconds, date, a digest of the
source cells). ``make site`` renders these files; ``ensure()`` reuses
one whose mode and source still match and executes the others. The
notebook tests (smoke mode) write their runs to the same place, so a CI
job that tests and then builds the site executes each notebook once.

Its own lines are in the reader's language: ``--lang en|zh``, else
``$D2L_DENSENET_LANG`` (``make run EDITION=zh`` sets it), else English
(``MESSAGES`` below).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import string
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from d2l_densenet import messages
from d2l_densenet.checkpoint_folders import DRIVE_ENV
from d2l_densenet.messages import LANG_ENV, LANGUAGES, language, text, using
from d2l_densenet.settings import (
    ENV,
    MODES,  # noqa: F401 (build_site's)
    REHEARSAL,
    RUN_MODES,
    run_mode,
)

#: Terminal colour codes (in a kernel's traceback).
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Lines a notebook prints with this prefix are its headline results;
#: ``make run`` repeats them at the end.
HEADLINE = "==> "
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: The editions of the series: English and the Chinese edition (中文版).
EDITIONS = {"en": NOTEBOOKS, "zh": NOTEBOOKS / "zh"}
#: Executed notebooks: ``RUNS / MODE / EDITION / NAME.ipynb``.
RUNS = ROOT / "build" / "run"
#: The notebook metadata key that says how a notebook was executed.
RUN_KEY = "d2l_densenet_run"

#: What this tool says, by code, in English and Chinese (the package's
#: ``messages.text`` formats them).
MESSAGES = {
    "reusing": {
        "en": "  {edition}/{name}: reusing {mode}-mode run ({date})",
        "zh": "  {edition}/{name}：沿用{mode}模式的运行结果（{date}）"},
    "executing": {"en": "  {edition}/{name}: executing in {mode} mode",
                  "zh": "  {edition}/{name}：以{mode}模式执行"},
    "failed_list": {"en": "notebooks failed: {names}",
                    "zh": "以下记事本运行失败：{names}"},
    "cell": {"en": "    {name} cell {index}/{total} ({seconds:.1f} s) "
                   "{first}",
             "zh": "    {name} 第{index}/{total}个单元格（{seconds:.1f}秒）"
                   "{first}"},
    "error": {"en": "error: {message}", "zh": "错误：{message}"},
    "none_found": {"en": "no notebooks found in {folder}",
                   "zh": "{folder}中没有找到记事本"},
    "start": {"en": "Executing {n} notebook(s) in {mode} mode into {out}/",
              "zh": "以{mode}模式执行{n}个记事本，结果写入{out}/"},
    "one": {"en": "  {name} ...", "zh": "  {name} ……"},
    "failed": {"en": "FAILED {name}: {kind}: {message}",
               "zh": "FAILED（失败）{name}：{kind}：{message}"},
    "took": {"en": "  {name}: {seconds:.0f} s -> {target} (+ .html)",
             "zh": "  {name}：{seconds:.0f}秒 -> {target}（另有.html）"},
    "headlines": {"en": "\nHeadline results ({mode} mode):",
                  "zh": "\n主要结果（{mode}模式）："},
    "headline_of": {"en": "{name} ({seconds:.0f} s)",
                    "zh": "{name}（{seconds:.0f}秒）"},
    "n_failed": {"en": "{n} notebook(s) failed: {names}",
                 "zh": "{n}个记事本运行失败：{names}"},
    "done": {"en": "Done: executed notebooks and HTML are in {out}/",
             "zh": "完成：执行过的记事本及其HTML在{out}/中"},
    "rehearsal": {
        "en": "A REHEARSAL of GPU mode on the CPU, not a GPU run: each "
              "notebook takes its GPU branches at smoke size, which checks "
              "their logic, not their speed or memory figures. A notebook "
              "that saves checkpoints runs twice: the second run must "
              "resume from them.",
        "zh": "这是在CPU上对GPU模式的预演，不是在GPU上运行：每个记事本都按"
              "smoke模式的规模走GPU分支，只检验其逻辑，不检验速度和内存读数。"
              "保存检查点的记事本运行两次，第二次必须从检查点继续训练。"},
    "no_banner": {
        "en": "{name} did not run as a rehearsal (its output lacks the "
              "rehearsal's banner: does its parameters cell call choose() "
              "without forcing a mode?)",
        "zh": "{name}没有以预演方式运行（输出中没有预演的提示：它的设置单元格"
              "是否调用了choose()，且没有强制指定模式？）"},
    "second_run": {
        "en": "  {name}: second run in a fresh kernel, resuming from "
              "{folder}",
        "zh": "  {name}：在新内核中第二次运行，从{folder}继续训练"},
    "resumed": {
        "en": "  {name}: resumed from {n} checkpoint folder(s) and wrote "
              "no checkpoint again ({seconds:.0f} s) -> {target}",
        "zh": "  {name}：从{n}个检查点文件夹继续训练，没有重新写入检查点"
              "（{seconds:.0f}秒）-> {target}"},
    "not_resumed": {
        "en": "{name}: the second run did not resume from {folders} (no "
              "\"resuming from\" line names them)",
        "zh": "{name}：第二次运行没有从{folders}继续训练（没有一行“从……继续"
              "训练”提到它们）"},
    "rewrote": {
        "en": "{name}: the second run wrote checkpoints again ({files}): it "
              "trained instead of resuming",
        "zh": "{name}：第二次运行重新写入了检查点（{files}）：它重新训练了，"
              "没有继续训练"},
}


def _(code: str, **fields) -> str:
    """``MESSAGES[code]`` in the reader's language."""
    return text(code, table=MESSAGES, **fields)


def series(edition: str = "en") -> list[Path]:
    """The notebooks of one edition, in order."""
    return sorted(EDITIONS[edition].glob("[0-9][0-9]_*.ipynb"))


def edition_of(path: Path) -> str:
    """``"zh"`` for a notebook in ``notebooks/zh/``, else ``"en"``."""
    return "zh" if Path(path).resolve().parent.name == "zh" else "en"


def run_dir(mode: str, edition: str = "en") -> Path:
    """Where ``make run`` keeps one mode's executed notebooks."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {sorted(EDITIONS)}, got "
                         f"{edition!r}")
    return RUNS / mode / edition


def source_digest(nb) -> str:
    """sha256 of the cells' types and sources (not their outputs): an
    executed notebook is stale once its source notebook changes."""
    cells = [[c["cell_type"], "".join(c["source"])] for c in nb["cells"]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def device_name() -> str:
    """The device the notebooks ran on, in words: the GPU's name, else
    the CPU's model and core count."""
    import torch

    if torch.cuda.is_available():
        return "GPU " + torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"CPU {model} ({os.cpu_count()} cores)"


def record(nb, source, mode: str, seconds: float, repeat: int = 1):
    """Write how ``nb`` was executed into its metadata (``RUN_KEY``)."""
    import torch

    nb.metadata[RUN_KEY] = {
        "mode": mode, "device": device_name(),
        "seconds": round(seconds, 1), "repeat": repeat,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "torch": torch.__version__,
        "source": Path(source).name,
        "source_digest": source_digest(source_nb(source)),
    }
    return nb


def source_nb(path: Path):
    """The notebook at ``path`` (nbformat 4)."""
    import nbformat

    return nbformat.read(path, as_version=4)


def run_info(path: Path) -> dict | None:
    """The ``RUN_KEY`` metadata of an executed notebook, or None."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return nb.get("metadata", {}).get(RUN_KEY)


def is_fresh(executed: Path, source: Path, mode: str) -> bool:
    """True when ``executed`` was run in ``mode`` from the current
    ``source`` (same cells)."""
    info = run_info(executed)
    return bool(info and info.get("mode") == mode and
                info.get("source_digest") == source_digest(
                    source_nb(source)))


@contextlib.contextmanager
def locked(target: Path):
    """One process at a time writes or reads ``target`` half-written
    (pytest-xdist workers, a parallel ``make site``)."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        yield


def save(nb, target: Path, html: bool = True) -> Path:
    """Write an executed notebook (and an HTML copy) atomically."""
    import nbformat

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    if html:
        from nbconvert import HTMLExporter

        page, _ = HTMLExporter().from_notebook_node(nb)
        target.with_suffix(".html").write_text(page, encoding="utf-8")
    return target


def last_pass(nb, repeat: int):
    """The last of ``repeat`` passes of an ``execute(..., repeat=)`` run,
    numbered from 1 as a single run would be."""
    n = len(nb.cells) // repeat
    cells = nb.cells[len(nb.cells) - n:]
    counts = [c.get("execution_count") for c in cells
              if c.get("execution_count")]
    shift = min(counts) - 1 if counts else 0
    for c in cells:
        if c.get("execution_count"):
            c["execution_count"] -= shift
            for out in c.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = c["execution_count"]
    nb.cells = cells
    return nb


def run_one(path: Path, mode: str, out: Path, progress: bool = True):
    """Execute ``path`` in ``mode``, record how and save it in ``out``;
    returns ``(target, seconds, nb)``. The rehearsal: :func:`rehearse`."""
    if mode == REHEARSAL:
        return rehearse(path, out, progress=progress)
    start = time.perf_counter()
    nb = execute(path.resolve(), mode, progress=progress)
    seconds = time.perf_counter() - start
    record(nb, path, mode, seconds)
    return save(nb, out / path.name), seconds, nb


def printed(nb) -> str:
    """Everything the notebook's cells printed (stream outputs)."""
    return "".join(out.get("text", "") for cell in nb.cells
                   for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream")


def _pattern(template: str) -> str:
    """A regular expression for a message template: ``{path}`` becomes
    a group ``path``, other fields anything (on one line)."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(
            template):
        parts.append(re.escape(literal))
        if field == "path":
            parts.append(r"(?P<path>[^\n]+?)")
        elif field is not None:
            parts.append(r"[^\n]*?")
    return "".join(parts)


def _message_res(code: str, first_line: bool = False) -> list[re.Pattern]:
    """The package's message ``code`` as printed, one pattern per
    language."""
    templates = messages.MESSAGES[code].values()
    if first_line:
        templates = [t.split("\n")[0] for t in templates]
    return [re.compile(_pattern(t)) for t in templates]


def resumed_from(nb, base: Path = Path()) -> set[Path]:
    """The checkpoint folders a run said it resumed from
    (``checkpoint.resuming`` lines, in either language); a relative path
    is taken from ``base`` (the notebook's folder)."""
    out = printed(nb)
    return {(Path(base) / m.group("path")).resolve().parent
            for pattern in _message_res("checkpoint.resuming")
            for m in pattern.finditer(out)}


def rehearsed(nb) -> bool:
    """Whether the run printed the rehearsal's banner (``choose``)."""
    out = printed(nb)
    return any(pattern.search(out) for pattern in
               _message_res("settings.rehearsal", first_line=True))


def checkpoints_in(folder: Path) -> dict[Path, tuple[int, int]]:
    """The checkpoint files under ``folder`` (``epoch-*.pt``, any depth)
    with their size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(folder).rglob("epoch-*.pt"))}


class RehearsalError(RuntimeError):
    """A notebook's rehearsal ran but did not do what it must."""


def rehearse(path: Path, out: Path, progress: bool = True):
    """The GPU-mode rehearsal of one notebook: run it with a fresh
    stand-in for Google Drive (``OUT/drive/NAME/``); it must print the
    rehearsal's banner. Where it wrote checkpoints there, run it again in
    a fresh kernel: the second run must resume from every checkpoint
    folder and write none again (it is kept in ``OUT/resumed/``).
    Returns ``(target, seconds, nb)`` of the first run (seconds: both)."""
    drive = (out / "drive" / path.stem).resolve()
    shutil.rmtree(drive, ignore_errors=True)
    drive.mkdir(parents=True)
    env = {DRIVE_ENV: str(drive)}
    start = time.perf_counter()
    nb = execute(path.resolve(), REHEARSAL, progress=progress, env=env)
    seconds = time.perf_counter() - start
    record(nb, path, REHEARSAL, seconds)
    target = save(nb, out / path.name)
    if not rehearsed(nb):
        raise RehearsalError(_("no_banner", name=path.name))
    before = checkpoints_in(drive)
    if not before:
        return target, seconds, nb
    folders = {p.parent.resolve() for p in before}
    print(_("second_run", name=path.name, folder=drive), flush=True)
    start = time.perf_counter()
    again = execute(path.resolve(), REHEARSAL, progress=progress, env=env)
    more = time.perf_counter() - start
    record(again, path, REHEARSAL, more)
    resumed = save(again, out / "resumed" / path.name)
    after = checkpoints_in(drive)
    changed = sorted(str(p.relative_to(drive)) for p in
                     set(before) | set(after)
                     if before.get(p) != after.get(p))
    if changed:
        raise RehearsalError(_("rewrote", name=path.name,
                               files=", ".join(changed)))
    missing = sorted(str(f.relative_to(drive)) for f in
                     folders - resumed_from(again, path.resolve().parent))
    if missing:
        raise RehearsalError(_("not_resumed", name=path.name,
                               folders=", ".join(missing)))
    print(_("resumed", name=path.name, n=len(folders), seconds=more,
            target=resumed), flush=True)
    return target, seconds + more, nb


def ensure(edition: str, mode: str, out: Path | None = None) -> list[Path]:
    """The edition's executed notebooks in ``mode``: reused from
    ``run_dir(mode, edition)`` where fresh, executed where missing or
    stale. Raises RuntimeError naming the notebooks that failed."""
    out = out or run_dir(mode, edition)
    done, failed = [], []
    for path in series(edition):
        target = out / path.name
        with locked(target):
            if is_fresh(target, path, mode):
                print(_("reusing", edition=edition, name=path.name,
                        mode=mode, date=run_info(target)["date"]),
                      flush=True)
            else:
                print(_("executing", edition=edition, name=path.name,
                        mode=mode), flush=True)
                try:
                    run_one(path, mode, out, progress=False)
                except Exception as e:
                    failed.append(f"{edition}/{path.name}: "
                                  f"{type(e).__name__}")
                    continue
        done.append(target)
    if failed:
        raise RuntimeError(_("failed_list", names=", ".join(failed)))
    return done


def _cell_progress(name: str, total: int):
    """An nbclient hook that prints one line per finished code cell."""
    done = []
    clock = [time.perf_counter()]

    def hook(cell, cell_index, **kwargs):
        if cell.get("cell_type") != "code":
            return
        done.append(cell_index)
        now = time.perf_counter()
        first = "".join(cell.get("source", "")).strip().splitlines()[:1]
        print(_("cell", name=name, index=cell_index + 1, total=total,
                seconds=now - clock[0],
                first=first[0][:40] if first else ""), flush=True)
        clock[0] = now
    return hook


def execute(path: Path, mode: str, timeout: int = 3600, repeat: int = 1,
            progress: bool = False, env: dict[str, str] | None = None):
    """Execute ``path`` in a fresh kernel with ``D2L_DENSENET_MODE=mode``
    (and the variables of ``env``) and return the executed notebook.
    ``repeat=2`` runs every cell twice in a row in the same kernel (a
    notebook must survive being re-run). ``progress=True`` prints a line
    as each code cell finishes."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    nb.cells = [nbformat.from_dict(c) for _ in range(repeat) for c in cells]
    hooks = {}
    if progress:
        hooks["on_cell_executed"] = _cell_progress(path.stem,
                                                   len(nb.cells))
    env = {**(env or {}), ENV: mode}
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        # Kernel logs below ERROR (e.g. "Kernel is running over TCP
        # without encryption") are noise on the terminal.
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       extra_arguments=["--IPKernelApp.log_level=ERROR"],
                       resources={"metadata": {"path": str(path.parent)}},
                       **hooks).execute()
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return nb


def headlines(nb) -> list[str]:
    """The headline lines (``HEADLINE`` prefix) a notebook printed."""
    lines = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                lines += [line for line in out.get("text", "").splitlines()
                          if line.startswith(HEADLINE)]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/run_notebooks.py")
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="default: the edition's NN_*.ipynb")
    p.add_argument("--mode", choices=RUN_MODES,
                   help=f"default: ${ENV}, else gpu if CUDA else cpu; "
                        f"{REHEARSAL}: GPU mode's code on the CPU at smoke "
                        f"size")
    p.add_argument("--edition", choices=sorted(EDITIONS), default="en",
                   help="en: notebooks/, zh: notebooks/zh/ (中文版)")
    p.add_argument("--out", type=Path,
                   help="default: build/run/MODE/EDITION/")
    p.add_argument("--lang", choices=LANGUAGES,
                   help=f"language of what this tool prints (default: "
                        f"${LANG_ENV}, else en)")
    args = p.parse_args(argv)
    try:
        lang = language(args.lang)
    except ValueError as e:
        print(text("error", "en", table=MESSAGES, message=e),
              file=sys.stderr)
        return 2
    with using(lang):
        return _main(args)


def _main(args) -> int:
    try:
        mode = run_mode(args.mode)
    except ValueError as e:
        print(_("error", message=e), file=sys.stderr)
        return 2
    paths = args.notebooks or series(args.edition)
    if not paths:
        print(_("none_found", folder=EDITIONS[args.edition]),
              file=sys.stderr)
        return 1
    if args.out is None:
        args.out = run_dir(mode, args.edition)
    args.out.mkdir(parents=True, exist_ok=True)
    print(_("start", n=len(paths), mode=mode, out=args.out), flush=True)
    if mode == REHEARSAL:
        print(_("rehearsal"), flush=True)
    failed, summary = [], []
    for path in paths:
        print(_("one", name=path.name), flush=True)
        try:
            with locked(args.out / path.name):
                target, seconds, nb = run_one(path, mode, args.out)
        except Exception as e:   # keep going; report at the end
            failed.append(path.name)
            last = (str(e).strip().splitlines() or [""])[-1]
            print(_("failed", name=path.name, kind=type(e).__name__,
                    message=ANSI.sub("", last)), flush=True)
            continue
        print(_("took", name=path.name, seconds=seconds, target=target),
              flush=True)
        summary.append((path.name, seconds, headlines(nb)))
    print(_("headlines", mode=mode))
    for name, seconds, lines in summary:
        print(_("headline_of", name=name, seconds=seconds))
        for line in lines:
            print("  " + line[len(HEADLINE):])
    if failed:
        print(_("n_failed", n=len(failed), names=", ".join(failed)),
              file=sys.stderr)
        return 1
    print(_("done", out=args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
