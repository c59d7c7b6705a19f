"""A notebook's install cell (written by make publish) stops the notebook
where pip fails, with one plain message saying what failed and what to
try, instead of letting "Run all" go on to a ModuleNotFoundError cells
later; where pip succeeds, the notebook goes on.

The cells run in a real kernel that looks like Colab's (the
``google.colab`` stand-in of .ci/colab, as make test-colab uses), with
pip cut off from every index (PIP_NO_INDEX, an empty find-links folder,
no pip configuration): a release that is not on PyPI yet, or a network
that is down, look the same to the cell.
"""
import json
import os
import sys
from pathlib import Path

import nbformat
import publish
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / ".ci" / "colab"
UNREACHABLE = "d2l-densenet==0.0.0.dev999"
NOTEBOOK = "01_densenet_from_scratch.ipynb"


@pytest.fixture
def offline_colab(tmp_path, monkeypatch):
    """The kernel's environment: Colab's module, pip without an index."""
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(STUB), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PATH", f"{STUB / 'bin'}{os.pathsep}"
                               f"{os.environ['PATH']}")
    return tmp_path


def _first_cells(edition: str, package: str, tmp_path: Path) -> Path:
    """The notebook's first four cells (title, install, settings text,
    settings code), its install cell asking for ``package``."""
    src = ROOT / "notebooks" / ("zh" if edition == "zh" else "") / NOTEBOOK
    nb = nbformat.read(src, as_version=4)
    nb.cells = nb.cells[:4]
    (cell,) = [c for c in nb.cells if c.cell_type == "code"
               and publish.COLAB_TEST in c.source
               and publish.PACKAGE_LINE.search(c.source)]
    cell.source = publish.PACKAGE_LINE.sub(f'PACKAGE = "{package}"',
                                           cell.source)
    # a marker cell after the install cell: it must not run after a
    # failed install
    nb.cells.insert(2, nbformat.v4.new_code_cell("print('went on')"))
    path = tmp_path / f"{edition}.ipynb"
    nbformat.write(nb, path)
    return path


def _run(path: Path) -> tuple[nbformat.NotebookNode, Exception | None]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3",
        extra_arguments=["--IPKernelApp.exec_lines=import google.colab"],
        resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        return nb, e
    return nb, None


@pytest.mark.notebook
@pytest.mark.parametrize("edition, says", [
    ("en", f"pip could not install {UNREACHABLE} (its output is above)"),
    ("zh", f"pip未能安装{UNREACHABLE}（输出见上）"),
])
def test_failed_install_stops_the_notebook_with_a_plain_message(
        offline_colab, edition, says):
    nb, error = _run(_first_cells(edition, UNREACHABLE, offline_colab))
    assert error is not None, "the notebook went on after pip failed"
    install = nb.cells[1]
    (err,) = [o for o in install.outputs if o.output_type == "error"]
    assert err.ename == "InstallError"
    # the message alone: no traceback frames, no "To exit: use 'exit'"
    assert err.traceback == [f"InstallError: {err.evalue}"]
    assert err.evalue.startswith(says)
    assert "git" in err.evalue   # what to try
    # pip's own reason is shown above it
    shown = "".join(o.get("text", "") for o in install.outputs
                    if o.output_type == "stream")
    assert "No matching distribution found" in shown
    # nothing after it ran
    for cell in nb.cells[2:]:
        if cell.cell_type == "code":
            assert cell.execution_count is None and not cell.outputs


@pytest.mark.notebook
def test_install_cell_goes_on_when_pip_succeeds(offline_colab):
    """The same cell and kernel, asking for what is installed here
    already: pip succeeds offline and the next cells run."""
    nb, error = _run(_first_cells("en", "d2l-densenet", offline_colab))
    assert error is None, error
    assert "went on" in json.dumps(nb.cells[2].outputs)


def test_install_cell_is_plain_python_off_colab():
    """Off Colab (INSTALL false) the cell installs nothing and needs no
    IPython: it runs in plain Python."""
    s = publish.publishing.settings()
    for kind in ("en", "zh"):
        namespace = {}
        exec(publish.install_cell(kind, s), namespace)   # noqa: S102
        assert namespace["INSTALL"] is ("google.colab" in sys.modules)
        assert namespace["PACKAGE"] == f"d2l-densenet=={s['version']}"
