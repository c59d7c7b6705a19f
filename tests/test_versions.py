"""The versions we claim are the versions we test: pyproject's runtime
dependencies are what the package imports, their floors are what
`make test-floor` installs and at most Colab's, the lock satisfies them,
the version has one source and the console script exists."""
import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import d2l_densenet

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = {Requirement(d).name.lower(): Requirement(d)
           for d in PROJECT["dependencies"]}
#: Imported by the package only inside a notebook: d2l (the Animator),
#: installed with --no-deps by the Makefile and the Colab cell, and
#: google (``google.colab``'s Drive, only when running in Colab, which
#: provides it; ``checkpoint_folders``).
NOTEBOOK_ONLY = {"d2l", "google"}


def pins(path: Path) -> dict[str, Version]:
    found = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
        if m:
            found[m[1].lower().replace("_", "-")] = Version(m[2])
    return found


def third_party_imports() -> set[str]:
    """Top-level names of every module the package imports that is
    neither its own nor the standard library's."""
    names = set()
    for path in (ROOT / "d2l_densenet").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names
            and n != "d2l_densenet"}


def test_runtime_dependencies_are_what_the_package_imports():
    dists = md.packages_distributions()
    needed = set()
    for name in third_party_imports() - NOTEBOOK_ONLY:
        assert name in dists, f"{name} is imported but not installed"
        needed |= {d.lower() for d in dists[name]}
    assert needed == set(RUNTIME), (
        f"imported but not a dependency: {sorted(needed - set(RUNTIME))}; "
        f"a dependency never imported: {sorted(set(RUNTIME) - needed)}")


def test_every_runtime_dependency_has_one_floor_to_test():
    out = subprocess.run([sys.executable, str(ROOT / ".ci/floor_pins.py")],
                         capture_output=True, text=True, check=True).stdout
    floors = {Requirement(line).name.lower(): line
              for line in out.splitlines()}
    assert set(floors) == set(RUNTIME)
    for name, req in RUNTIME.items():
        (spec,) = req.specifier
        assert spec.operator == ">=" and floors[name] == \
            f"{req.name}=={spec.version}"


def test_floors_are_at_most_colabs_versions():
    """Colab's pinned versions (make test-colab) lie inside the range we
    claim, so the notebooks' learners run supported versions."""
    colab = pins(ROOT / ".ci" / "colab-versions.txt")
    for name, req in RUNTIME.items():
        assert name in colab, f"{name} has no Colab version to test"
        assert req.specifier.contains(colab[name]), (name, colab[name])


def test_lock_pins_every_runtime_dependency_within_its_range():
    locked = pins(ROOT / "constraints.txt")
    for name, req in RUNTIME.items():
        assert name in locked, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(locked[name]), (name, locked[name])


def test_requirements_files_point_at_pyproject_and_the_lock():
    """No package list is written twice: the requirements files are the
    package with extras plus the lock."""
    for name in ("requirements.txt", "requirements-dev.txt"):
        lines = [line.strip() for line in
                 (ROOT / name).read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert "-c constraints.txt" in lines, name
        assert all(line.startswith(("-c ", "-e .")) for line in lines), (
            name, lines)


def test_version_comes_from_the_installed_metadata():
    assert d2l_densenet.__version__ == md.version("d2l-densenet")


def test_version_without_metadata(monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "version", missing)
    assert d2l_densenet._version() == "0+unknown"


def test_installed_version_is_pyprojects():
    """The installed metadata was made from this checkout's pyproject
    (make install reinstalls when pyproject.toml changes)."""
    dist = md.distribution("d2l-densenet")
    url = dist.read_text("direct_url.json") or ""
    here = Path(dist.locate_file("")).resolve() == ROOT   # an egg-info
    if f"file://{ROOT}" not in url and not here:
        pytest.skip(f"d2l-densenet is installed from elsewhere ({url})")
    assert dist.version == PROJECT["version"]


def test_console_script_is_the_cli(capsys):
    """`d2l-densenet --help` prints the CLI's usage and exits 0."""
    target = PROJECT["scripts"]["d2l-densenet"]
    module, _, func = target.partition(":")
    main = getattr(__import__(module, fromlist=[func]), func)
    try:
        status = main(["--help"])
    except SystemExit as e:   # argparse's own exit
        status = e.code
    assert status == 0
    assert "usage:" in capsys.readouterr().out


def test_python_floor_is_the_floor_run():
    """requires-python's floor is the Python `make test-floor` uses."""
    makefile = (ROOT / "Makefile").read_text()
    (floor_python,) = re.findall(r"^FLOOR_PYTHON \?= python(\S+)$",
                                 makefile, re.M)
    assert PROJECT["requires-python"] == f">={floor_python}"


def test_release_version_and_tag_are_pyprojects_version():
    """publish.toml's release (what every install cell pins) is the
    version being built, and its tag is vVERSION."""
    publish = tomllib.loads((ROOT / "publish.toml").read_text())["publish"]
    assert publish["version"] == PROJECT["version"]
    assert publish["tag"] == f"v{PROJECT['version']}"


def _colab_smoke():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "colab_smoke", ROOT / ".ci" / "colab_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(
    (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_colab_cell_can_be_pointed_at_the_checkout(path, tmp_path):
    """make test-colab rewrites each notebook's install cell to install
    this checkout instead of the release on PyPI; a cell of another
    shape fails here first."""
    import nbformat
    colab = _colab_smoke()
    url = f"git+file://{ROOT}@{'0' * 40}"
    copy = colab.colab_copy(path, url, tmp_path)
    cells = [c.source for c in nbformat.read(copy, as_version=4).cells
             if colab.COLAB_TEST in c.source and "PACKAGE = " in c.source]
    assert len(cells) == 1
    assert f'\nPACKAGE = "d2l-densenet @ {url}"\n' in cells[0]
    assert "d2l-densenet==" not in cells[0].split("PACKAGE = ")[1]
    # the original pins publish.toml's release
    original = nbformat.read(path, as_version=4).cells
    version = PROJECT["version"]
    assert any(f'\nPACKAGE = "d2l-densenet=={version}"\n' in c.source
               for c in original)
