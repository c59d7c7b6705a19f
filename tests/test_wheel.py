"""The built wheel works where a learner installs it: a clean virtual
environment with nothing but the wheel and the locked versions
(constraints.txt), outside the checkout. `d2l-densenet --help` runs,
and the chapter's DenseNet does one forward pass on the installed torch.

`make test-wheel` builds the wheel (`make dist`) and runs this file with
D2L_DENSENET_WHEEL_DIR=dist; it takes minutes (the locked torch is a few
GB), so `make test` skips it and `.ci/run` runs `make test-wheel` as a
step of its own.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "version"]
WHEEL_DIR = os.environ.get("D2L_DENSENET_WHEEL_DIR")
FORWARD = """\
import sys
import torch
import torchvision
import d2l_densenet as dd

net = dd.densenet()
net.eval()
with torch.no_grad():
    Y = net(torch.zeros(2, 1, 96, 96))
assert Y.shape == (2, 10), Y.shape
assert torch.isfinite(Y).all()
print(dd.__version__, dd.__file__, torch.__version__, torchvision.__version__)
"""


def _wheel() -> Path:
    if not WHEEL_DIR:
        message = ("make test-wheel runs this (it builds the wheel and "
                   "sets D2L_DENSENET_WHEEL_DIR)")
        pytest.skip(message)
    wheels = sorted(Path(WHEEL_DIR).resolve().glob(
        f"d2l_densenet-{VERSION}-py3-none-any.whl"))
    assert len(wheels) == 1, (
        f"expected one wheel of version {VERSION} in {WHEEL_DIR}, found "
        f"{[w.name for w in Path(WHEEL_DIR).glob('*.whl')]}: run make dist")
    return wheels[0]


def _clean_env() -> dict[str, str]:
    """The environment without what would let the checkout or the
    shared venv leak into the clean one."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME",
                        "PYTHONSAFEPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args, cwd, **kw):
    r = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True,
                       text=True, **kw)
    assert r.returncode == 0, (
        f"{' '.join(map(str, args))} exited {r.returncode}:\n"
        f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A clean venv (from this Python's base interpreter) with the wheel
    installed at the lock's versions; removed afterwards (it holds a few
    GB)."""
    wheel = _wheel()
    home = tmp_path_factory.mktemp("wheel")
    env_dir = home / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "-c",
          ROOT / "constraints.txt", wheel], cwd=home)
    yield python, home
    shutil.rmtree(env_dir, ignore_errors=True)


def test_wheel_installs_with_the_lock_and_pip_check_passes(installed):
    python, home = installed
    r = _run([python, "-m", "pip", "check"], cwd=home)
    assert "No broken requirements" in r.stdout
    r = _run([python, "-m", "pip", "show", "d2l-densenet"], cwd=home)
    assert f"Version: {VERSION}" in r.stdout
    r = _run([python, "-c", "import importlib.metadata as m; "
              "print(m.metadata('d2l-densenet')['License-Expression'])"],
             cwd=home)
    assert r.stdout.strip() == "MIT AND CC-BY-SA-4.0"


def test_console_script_runs(installed):
    python, home = installed
    script = python.parent / "d2l-densenet"
    r = _run([script, "--help"], cwd=home)
    assert r.stdout.startswith("usage:"), r.stdout[:300]
    assert "--model {densenet,resnet18}" in r.stdout


def test_one_forward_pass_from_the_installed_package(installed):
    python, home = installed
    r = _run([python, "-c", FORWARD], cwd=home, timeout=600)
    version, path, *_ = r.stdout.split()
    assert version == VERSION
    # the venv's copy, not the checkout's
    assert Path(path).is_relative_to(python.parent.parent), path


def _setup_py():
    spec = importlib.util.spec_from_file_location("setup_py",
                                                  ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # setup() runs only as __main__
    return module


#: a markdown link whose target is neither absolute nor an anchor
RELATIVE_LINK = re.compile(r"\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#)[^)]*\)")


def test_pypi_readme_has_only_absolute_links(tmp_path):
    """PyPI resolves no relative link: setup.py points each one at the
    file in publish.toml's repository and branch."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert RELATIVE_LINK.search(readme), "README.md has no relative link"
    text = _setup_py().pypi_readme(ROOT)
    assert not RELATIVE_LINK.findall(text)
    pub = tomllib.loads((ROOT / "publish.toml").read_text())["publish"]
    assert (f"](https://github.com/{pub['repo']}/blob/{pub['branch']}/"
            f"README.zh.md)") in text
    # and it follows publish.toml
    (tmp_path / "README.md").write_text("[a](docs/x.md) [b](#top) "
                                        "[c](https://d2l.ai)")
    (tmp_path / "publish.toml").write_text(
        '[publish]\nrepo = "bob/fork"\nbranch = "dev"\n')
    assert _setup_py().pypi_readme(tmp_path) == (
        "[a](https://github.com/bob/fork/blob/dev/docs/x.md) [b](#top) "
        "[c](https://d2l.ai)")


def test_dist_holds_the_notebooks_not_the_classroom_masters():
    """The sdist carries both editions' notebooks (a PyPI mirror serves
    them); neither it nor the wheel holds a classroom master (they have
    the solutions); the wheel's page is the absolute-link README."""
    wheel = _wheel()
    (sdist,) = Path(WHEEL_DIR).resolve().glob(
        f"d2l_densenet-{VERSION}.tar.gz")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    notebooks = [n for n in names if n.endswith(".ipynb")]
    assert len([n for n in notebooks if re.match(r"notebooks/\d\d_", n)]) \
        == len([n for n in notebooks if re.match(r"notebooks/zh/\d\d_", n)]) \
        == 7
    assert not [n for n in names if "classroom/" in n and "notebooks" in n]
    assert {"LICENSE", "LICENSES/CC-BY-SA-4.0.txt", "CHANGELOG.md",
            "README.zh.md"} <= set(names)
    with zipfile.ZipFile(wheel) as z:
        assert not [n for n in z.namelist() if n.endswith(".ipynb")]
        meta_name = f"d2l_densenet-{VERSION}.dist-info/METADATA"
        meta = Parser().parsestr(z.read(meta_name).decode())
    assert meta["License-Expression"] == "MIT AND CC-BY-SA-4.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    body = meta.get_payload()
    assert body.startswith("# d2l-densenet")
    assert not RELATIVE_LINK.findall(body)


def test_the_check_can_fail(tmp_path):
    """_run reports a failing command (the checks above are not
    vacuous)."""
    with pytest.raises(AssertionError, match="exited 3"):
        _run([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path)
