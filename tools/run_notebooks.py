"""Execute the notebook series headless into ``build/`` (``make run``).

``python tools/run_notebooks.py [--mode gpu|cpu|smoke] [--edition en|zh]
[--out build] [NOTEBOOK ...]`` runs each notebook top to bottom in a fresh
kernel (working directory ``notebooks/``), writes the executed notebook
and an HTML copy into ``--out``, and prints where they are and how long
each took.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from d2l_densenet.settings import ENV, MODES, run_mode

#: Lines a notebook prints with this prefix are its headline results;
#: ``make run`` repeats them at the end.
HEADLINE = "==> "
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: The editions of the series: English and the Chinese edition (中文版).
EDITIONS = {"en": NOTEBOOKS, "zh": NOTEBOOKS / "zh"}


def series(edition: str = "en") -> list[Path]:
    """The notebooks of one edition, in order."""
    return sorted(EDITIONS[edition].glob("[0-9][0-9]_*.ipynb"))


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
        print(f"    {name} cell {cell_index + 1}/{total} "
              f"({now - clock[0]:.1f} s) {first[0][:40] if first else ''}",
              flush=True)
        clock[0] = now
    return hook


def execute(path: Path, mode: str, timeout: int = 3600, repeat: int = 1,
            progress: bool = False):
    """Execute ``path`` in a fresh kernel with ``D2L_DENSENET_MODE=mode``
    and return the executed notebook. ``repeat=2`` runs every cell twice
    in a row in the same kernel (a notebook must survive being re-run).
    ``progress=True`` prints a line as each code cell finishes."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    nb.cells = [nbformat.from_dict(c) for _ in range(repeat) for c in cells]
    hooks = {}
    if progress:
        hooks["on_cell_executed"] = _cell_progress(path.stem,
                                                   len(nb.cells))
    old = os.environ.get(ENV)
    os.environ[ENV] = mode
    try:
        # Kernel logs below ERROR (e.g. "Kernel is running over TCP
        # without encryption") are noise on the terminal.
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       extra_arguments=["--IPKernelApp.log_level=ERROR"],
                       resources={"metadata": {"path": str(path.parent)}},
                       **hooks).execute()
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
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
    p.add_argument("--mode", choices=MODES,
                   help=f"default: ${ENV}, else gpu if CUDA else cpu")
    p.add_argument("--edition", choices=sorted(EDITIONS), default="en",
                   help="en: notebooks/, zh: notebooks/zh/ (中文版)")
    p.add_argument("--out", type=Path,
                   help="default: build/ (en) or build/zh/ (zh)")
    args = p.parse_args(argv)
    import nbformat
    from nbconvert import HTMLExporter

    try:
        mode = run_mode(args.mode)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    paths = args.notebooks or series(args.edition)
    if not paths:
        print(f"no notebooks found in {EDITIONS[args.edition]}",
              file=sys.stderr)
        return 1
    if args.out is None:
        args.out = ROOT / "build" / ("" if args.edition == "en"
                                     else args.edition)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"Executing {len(paths)} notebook(s) in {mode} mode into "
          f"{args.out}/", flush=True)
    failed, summary = [], []
    for path in paths:
        start = time.perf_counter()
        print(f"  {path.name} ...", flush=True)
        try:
            nb = execute(path.resolve(), mode, progress=True)
        except Exception as e:   # keep going; report at the end
            failed.append(path.name)
            print(f"FAILED {path.name}: {type(e).__name__}: "
                  f"{str(e).strip().splitlines()[-1:]}", flush=True)
            continue
        target = args.out / path.name
        nbformat.write(nb, target)
        html, _ = HTMLExporter().from_notebook_node(nb)
        target.with_suffix(".html").write_text(html, encoding="utf-8")
        seconds = time.perf_counter() - start
        print(f"  {path.name}: {seconds:.0f} s -> {target} (+ .html)",
              flush=True)
        summary.append((path.name, seconds, headlines(nb)))
    print(f"\nHeadline results ({mode} mode):")
    for name, seconds, lines in summary:
        print(f"{name} ({seconds:.0f} s)")
        for line in lines:
            print("  " + line[len(HEADLINE):])
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"Done: executed notebooks and HTML are in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
