"""Every notebook runs in smoke mode on the real data, twice in a row in
one kernel, and is committed without outputs. The second pass is kept in
build/run/smoke/ (as `make run MODE=smoke` would write it), so the site
tests and `make site MODE=smoke` render it instead of executing the
notebook again."""
import json
import re
import time
from pathlib import Path

import _site
import pytest
from run_notebooks import (
    execute,
    is_fresh,
    last_pass,
    locked,
    record,
    run_info,
    save,
    series,
)

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


#: The heading that ends a notebook's core path (issue: a core path a
#: student follows in one sitting, the forensics collapsed below it).
DEEPER = re.compile(r"^#+\s*(Going deeper|深入)", re.M)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_core_path_then_going_deeper_collapsed(path: Path):
    """At most 35 cells before the "Going deeper" heading, whose section
    opens collapsed in JupyterLab (jp-MarkdownHeadingCollapsed) and in
    Colab (colab.collapsed_sections names its metadata.id)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    heads = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "markdown"
             and DEEPER.search("".join(c["source"]))]
    assert heads, "no 'Going deeper' heading"
    cell = nb["cells"][heads[0]]
    assert heads[0] <= 35, f"{heads[0]} cells before 'Going deeper'"
    assert cell["metadata"].get("jp-MarkdownHeadingCollapsed") is True
    sections = nb["metadata"].get("colab", {}).get("collapsed_sections")
    assert cell["metadata"].get("id") in (sections or []), sections


@pytest.mark.notebook
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_runs_twice_in_smoke_mode(path: Path):
    target = _site.smoke_run(path)
    try:
        with locked(target):
            start = time.perf_counter()
            nb = execute(path, "smoke", timeout=600, repeat=2)
            seconds = time.perf_counter() - start
            n = len(json.loads(path.read_text(encoding="utf-8"))["cells"])
            assert len(nb.cells) == 2 * n
            nb = last_pass(nb, 2)
            record(nb, path, "smoke", seconds, repeat=2)
            save(nb, target)
        assert is_fresh(target, path, "smoke")
    finally:
        _site.mark_ended(target)  # the site build waits for this (_site.py)


def test_kept_run_says_how_it_was_made(tmp_path):
    """last_pass keeps the second pass numbered as a single run; the
    metadata names the mode and the source; a changed source is stale."""
    import nbformat
    src = tmp_path / "01_x.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(nb, src)
    run = execute(src, "smoke", timeout=120, repeat=2)
    assert [c.get("execution_count") for c in run.cells] == [None, 1,
                                                             None, 2]
    run = last_pass(run, 2)
    assert run.cells[1].execution_count == 1
    assert run.cells[1].outputs[0]["text"] == "1\n"
    record(run, src, "smoke", 3.0, repeat=2)
    target = save(run, tmp_path / "out" / src.name, html=False)
    info = run_info(target)
    assert info["mode"] == "smoke" and info["repeat"] == 2
    assert info["device"].startswith(("CPU ", "GPU "))
    assert is_fresh(target, src, "smoke")
    assert not is_fresh(target, src, "cpu")
    nb.cells[1].source = "print(2)"
    nbformat.write(nb, src)
    assert not is_fresh(target, src, "smoke")


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


def test_the_notebook_runs_are_handed_out_first(request):
    """conftest.py: pytest-xdist hands out the notebooks' smoke runs
    first (07 first), then the classroom and site groups, so the site's
    build finds their runs instead of executing the notebooks again."""
    items = request.session.items
    runs = [i for i, item in enumerate(items)
            if item.originalname == "test_notebook_runs_twice_in_smoke_mode"]
    if not runs:
        pytest.skip("no notebook run in this session (-m 'not notebook')")
    assert runs == list(range(len(runs))), "notebook runs are not first"
    numbers = [int(items[i].callspec.params["path"].name[:2])
               for i in runs]
    assert numbers == sorted(numbers, reverse=True), "07 is not first"
    site = [i for i, item in enumerate(items)
            if "site" in [m.args[0]
                          for m in item.iter_markers("xdist_group")]]
    assert not site or min(site) > max(runs)
    if hasattr(request.config.option, "loadscopereorder"):
        assert request.config.option.loadscopereorder is False


def test_the_site_build_waits_for_this_sessions_notebook_tests(
        tmp_path, monkeypatch):
    """It waits until each run's test has ended in this session (a mark
    left by an earlier session does not count), and no longer."""
    import threading

    runs = [tmp_path / "a.ipynb", tmp_path / "b.ipynb"]
    monkeypatch.setitem(_site.SESSION, "runs", runs)
    monkeypatch.setitem(_site.SESSION, "token", "earlier")
    _site.mark_ended(runs[0])
    monkeypatch.setitem(_site.SESSION, "token", "now")
    _site.mark_ended(runs[1])
    threading.Timer(1.5, _site.mark_ended, [runs[0]]).start()
    start = time.monotonic()
    _site.wait_for_notebook_tests()
    assert 1.4 < time.monotonic() - start < 10
    monkeypatch.setattr(_site, "WAIT_S", 0.5)  # a test that never ends
    monkeypatch.setitem(_site.SESSION, "runs", [tmp_path / "c.ipynb"])
    start = time.monotonic()
    _site.wait_for_notebook_tests()
    assert time.monotonic() - start < 3
