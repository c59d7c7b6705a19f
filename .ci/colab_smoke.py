"""Run notebooks in smoke mode the way Colab runs them (make test-colab).

``python .ci/colab_smoke.py [--out build/colab] [NOTEBOOK ...]``, with
the Python of the Colab venv (Colab's Python and pinned versions, and
no d2l_densenet installed): each notebook is copied into ``--out``, its
Colab cell (the one that installs the package when ``google.colab`` is
in ``sys.modules``) is pointed at this checkout's committed HEAD instead
of GitHub, and the copy runs top to bottom in a fresh kernel that
imports the ``google.colab`` stand-in in ``.ci/colab`` first. The
package therefore comes from the notebook's own install cell, as on
Colab. The notebook files themselves are never changed.

What the Colab cell must look like for this to work (make publish writes
it: tools/publish.py): one code cell holds ``"google.colab" in
sys.modules`` and names what it installs on one line,
``PACKAGE = "d2l-densenet==VERSION"`` (publish.toml's release on PyPI);
the copy installs ``d2l-densenet @ git+file://CHECKOUT@HEAD`` instead.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
STUB = Path(__file__).resolve().parent / "colab"
#: The English series' notebooks, in order (all of them by default).
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE_LINE = re.compile(r'^PACKAGE = "[^"\n]*"$', re.M)
COLAB_TEST = '"google.colab" in sys.modules'


def head_url() -> str:
    """``git+file://`` URL of this checkout at its committed HEAD, the
    form pip's ``d2l-densenet @ git+URL@REV`` takes."""
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--",
                            "d2l_densenet", "pyproject.toml"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("colab_smoke: note: uncommitted changes in d2l_densenet/ or "
              "pyproject.toml are not tested (the notebooks install the "
              f"committed HEAD {rev[:12]})", flush=True)
    return f"git+file://{ROOT}@{rev}"


def colab_copy(path: Path, url: str, out: Path) -> Path:
    """A copy of ``path`` in ``out`` whose Colab cell installs ``url``
    (a pip requirement or URL) instead of publish.toml's release."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"
             and COLAB_TEST in c.source and PACKAGE_LINE.search(c.source)]
    if len(cells) != 1 or len(PACKAGE_LINE.findall(cells[0].source)) != 1:
        sys.exit(f"colab_smoke: {path.name} needs exactly one Colab "
                 f"install cell (code with `{COLAB_TEST}` and one line "
                 f'`PACKAGE = "..."`: run make publish); found '
                 f"{len(cells)} such cell(s)")
    requirement = url if url.startswith("d2l-densenet") else (
        f"d2l-densenet @ {url}")
    cells[0].source = PACKAGE_LINE.sub(f'PACKAGE = "{requirement}"',
                                       cells[0].source)
    target = out / path.name
    nbformat.write(nb, target)
    return target


def installed(names: list[str]) -> dict[str, str]:
    """Installed version of each of ``names`` (None if missing)."""
    found = {}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def colab_pins() -> list[str]:
    """The package names .ci/colab-versions.txt pins with ``==``."""
    text = (STUB.parent / "colab-versions.txt").read_text()
    return re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        extra_arguments=["--IPKernelApp.exec_lines=import google.colab",
                         "--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python .ci/colab_smoke.py")
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="default: every notebook of the English series")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "colab")
    p.add_argument("--timeout", type=int, default=1200,
                   help="seconds per cell")
    args = p.parse_args(argv)
    if sys.version_info[:2] != (3, 13):
        print(f"colab_smoke: warning: Colab runs Python 3.13, this is "
              f"{sys.version.split()[0]}", flush=True)
    try:
        import d2l_densenet
    except ImportError:
        pass
    else:
        sys.exit(f"colab_smoke: d2l_densenet is already importable here "
                 f"({d2l_densenet.__file__}); the Colab env must get it "
                 f"from the notebooks' install cell")
    args.out.mkdir(parents=True, exist_ok=True)
    url = head_url()
    os.environ["D2L_DENSENET_MODE"] = "smoke"
    os.environ["PYTHONPATH"] = str(STUB)
    os.environ["PATH"] = f"{STUB / 'bin'}{os.pathsep}{os.environ['PATH']}"
    # The kernel's pip installs from PyPI and from the checkout; it must
    # not find the package through the checkout's folder.
    os.environ.pop("PYTHONSAFEPATH", None)
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    failed = []
    before = installed(colab_pins())
    print("colab_smoke: Python " + sys.version.split()[0] + ", " + ", ".join(
        f"{k}=={v}" for k, v in before.items()), flush=True)
    paths = args.notebooks or NOTEBOOKS
    for path in paths:
        copy = colab_copy(path.resolve(), url, args.out)
        print(f"  {path.name} ...", flush=True)
        try:
            seconds = run(copy, args.timeout)
        except Exception as e:   # keep going; report at the end
            failed.append(path.name)
            print(f"FAILED {path.name}: {type(e).__name__}: "
                  f"{str(e).strip()[-2000:]}", flush=True)
            continue
        print(f"  {path.name}: {seconds:.0f} s (Colab cell installed "
              f"{url})", flush=True)
    after = installed(list(before))
    changed = {k: (before[k], after[k]) for k in before
               if before[k] != after[k]}
    if changed:
        # A floor above Colab's version makes the install cell upgrade
        # Colab's own packages: learners would wait for it every time.
        failed.append("the Colab cell changed Colab's packages: " + ", ".join(
            f"{k} {v} -> {w}" for k, (v, w) in changed.items()))
    if failed:
        print(f"{len(failed)} notebook(s) failed in the Colab "
              f"environment: {', '.join(failed)}", file=sys.stderr)
    else:
        print(f"Colab smoke run passed: executed copies in {args.out}/")
    print(f"colab: {len(paths) - len(failed)} passed, {len(failed)} "
          f"failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
