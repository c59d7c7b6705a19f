"""Every notebook runs in smoke mode on the real data, twice in a row in
one kernel, and is committed without outputs."""
import json
from pathlib import Path

import pytest
from run_notebooks import execute, series

PATHS = series("en") + series("zh")
IDS = [f"{p.parent.name}/{p.name}" for p in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_committed_without_outputs(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code cells"
    for c in code:
        assert not c.get("outputs"), f"outputs in cell {c['source'][:60]}"
        assert c.get("execution_count") is None


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_conventions(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"]]
    text = "\n".join(cells)
    assert "colab.research.google.com" in cells[0], "Open in Colab badge"
    assert "google.colab" in text, "Colab install cell"
    assert "choose(" in text or "run_mode(" in text, \
        "parameters cell"
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code":
            for line in "".join(c["source"]).splitlines():
                assert len(line) <= 79, f"cell {i}: line > 79: {line}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_runs_twice_in_smoke_mode(path: Path):
    execute(path, "smoke", timeout=600, repeat=2)


def test_headlines_are_collected():
    import nbformat
    from run_notebooks import HEADLINE, headlines
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output(
        "stream", name="stdout",
        text=f"noise\n{HEADLINE}test acc 0.9\n")]
    nb.cells = [cell, nbformat.v4.new_markdown_cell(f"{HEADLINE}no")]
    assert headlines(nb) == [f"{HEADLINE}test acc 0.9"]
