"""The classroom edition (tools/classroom.py on otter-grader).

The edition is built once per module (``otter assign``, without running
the checks: the grading below runs them). One folder holding every
solution notebook and every blank student notebook is then graded once
with ``otter run``'s Python API; the tests read its results: every
solution passes every check (public and hidden), every blank notebook
fails every check, the folder's grades are full and zero marks. A planted
wrong answer is executed as a student runs it, and its ``grader.check``
output must carry the check's message.
"""
import csv
import json
import re
import shutil
import zipfile

import nbformat
import pytest
from classroom import (
    MASTERS,
    ClassroomError,
    _print_row,
    _print_total,
    build,
    grade,
    masters,
)

NAMES = [p.stem for p in sorted(MASTERS.glob("*.ipynb"))]


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("classroom")
    return out, build(out, run_tests=False)


@pytest.fixture(scope="module")
def graded(edition, tmp_path_factory):
    """Grade one folder: each assignment's solution and blank notebook,
    plus a file that is not a notebook."""
    out, built = edition
    folder = tmp_path_factory.mktemp("submissions")
    for name, paths in built.items():
        shutil.copyfile(paths["solution"], folder / f"{name}-solution.ipynb")
        shutil.copyfile(paths["student"], folder / f"{name}-blank.ipynb")
    (folder / "broken.ipynb").write_text("{not json", encoding="utf-8")
    rows = grade(folder, out / "autograder", folder / "grades.csv")
    return folder, {r["submission"]: r for r in rows}


def test_six_assignments():
    assert NAMES == ["a_building_blocks", "b_avg_vs_max_pooling",
                     "c_parameters", "d_memory", "e_densenet121",
                     "f_dense_mlp"]
    with pytest.raises(ClassroomError, match="a_building_blocks"):
        masters(["no_such_assignment"])


@pytest.mark.parametrize("name", NAMES)
def test_masters_committed_clean(name):
    nb = nbformat.read(MASTERS / f"{name}.ipynb", as_version=4)
    assert "colab.research.google.com" in nb.cells[1].source
    for i, c in enumerate(_code(nb)):
        assert not c.outputs and c.execution_count is None, f"cell {i}"
        for line in c.source.splitlines():
            assert len(line) <= 79, f"{name}: line > 79: {line}"


def test_build_layout(edition):
    out, built = edition
    assert sorted(built) == NAMES
    for name, paths in built.items():
        student = nbformat.read(paths["student"], as_version=4)
        text = json.dumps(student)
        assert "BEGIN SOLUTION" not in text and "hidden=True" not in text
        public = student.metadata["otter"]["tests"]
        # the Colab copies of the public checks are the metadata's
        files = {p.stem: p.read_text(encoding="utf-8")
                 for p in paths["checks"].glob("*.py")}
        assert files == public and len(public) >= 3
        badge = (f"https://colab.research.google.com/github/d2l-densenet/"
                 f"d2l-densenet/blob/main/classroom/{name}.ipynb")
        assert badge in student.cells[0].source
        with zipfile.ZipFile(paths["autograder"]) as z:
            tests = [n for n in z.namelist() if n.startswith("tests/")]
            assert sorted(t[6:-3] for t in tests) == sorted(public)
            assert any("hidden=True" in z.read(t).decode() for t in tests)
        solution = nbformat.read(paths["solution"], as_version=4)
        assert not [c for c in solution.cells if c.cell_type == "raw"]
        assert "..." not in "".join(c.source for c in
                                    _code(solution)[2:])
    index = (out / "student" / "README.md").read_text(encoding="utf-8")
    assert index.count("colab-badge.svg") == len(NAMES)


def test_publish_elsewhere(tmp_path):
    built = build(tmp_path, ["d_memory"], run_tests=False,
                  repo="someone/course", branch="fall", folder="hw")
    nb = nbformat.read(built["d_memory"]["student"], as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert ("colab.research.google.com/github/someone/course/blob/fall/hw/"
            "d_memory.ipynb") in text
    url = text.split("CHECKS = (")[1].split(")")[0]
    assert "".join(url.replace('"', "").split()) == (
        "https://raw.githubusercontent.com/someone/course/fall/hw/checks/"
        "d_memory/")


def _cases(graded, submission):
    """The graded row of ``submission`` and (question, hidden, passed) for
    each of its checks."""
    row = graded[1][submission]
    assert not row["error"], row["error"]
    res = row["results"]
    return row, [(q, tcr.test_case.hidden, tcr.passed)
                 for q in res.test_files
                 for tcr in res.get_result(q).test_case_results]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_every_check(graded, name):
    row, cases = _cases(graded, f"{name}-solution.ipynb")
    assert all(ok for _, _, ok in cases), row["results"].summary()
    assert any(h for _, h, _ in cases) and any(not h for _, h, _ in cases)
    assert row["score"] == row["possible"] == len(cases)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_blank_notebook_fails_every_check(graded, name):
    row, cases = _cases(graded, f"{name}-blank.ipynb")
    passed = [(q, h) for q, h, ok in cases if ok]
    assert len(cases) >= 5 and not passed, f"blank passes {passed}"
    assert row["score"] == 0


@pytest.mark.slow
def test_folder_grades_full_and_zero(graded, capsys):
    folder, rows = graded
    with open(folder / "grades.csv", encoding="utf-8") as f:
        table = {r["submission"]: r for r in csv.DictReader(f)}
    assert len(table) == 2 * len(NAMES) + 1
    for name in NAMES:
        full, blank = (table[f"{name}-{k}.ipynb"] for k in ("solution",
                                                          "blank"))
        assert full["assignment"] == blank["assignment"] == name
        assert float(full["percent"]) == 100.0
        assert float(blank["percent"]) == 0.0
        assert full["possible"] == blank["possible"] != "0"
    assert "not a readable notebook" in table["broken.ipynb"]["error"]
    _print_row(rows["a_building_blocks-solution.ipynb"], 1.0)
    _print_row(rows["broken.ipynb"], 1.0)
    _print_total(list(rows.values()))
    shown = capsys.readouterr().out
    possible = rows["a_building_blocks-solution.ipynb"]["possible"]
    assert f"{possible:g}/{possible:g}" in shown and "100.0%" in shown
    assert "broken.ipynb: ERROR" in shown
    assert f"total: {len(rows)} submission(s), 1 error(s)" in shown


@pytest.mark.slow
def test_planted_wrong_answer_shows_helpful_message(edition, tmp_path):
    """A student's notebook whose answers are right except a transition
    that does not halve the channels: grader.check says what was expected,
    what was found, and hints at the fix."""
    from nbclient import NotebookClient

    _, built = edition
    name = "a_building_blocks"
    student = nbformat.read(built[name]["student"], as_version=4)
    solution = nbformat.read(built[name]["solution"], as_version=4)
    answers = [c for c in _code(solution)
               if "otter_assign_solution_cell" in c.metadata.get("tags", [])]
    blanks = [c for c in _code(student)
              if "otter_answer_cell" in c.metadata.get("tags", [])]
    assert len(answers) == len(blanks) == 5
    for blank, answer in zip(blanks, answers):
        blank.source = answer.source
    halve = re.compile(r"transition_block\(num_channels,\s*"
                       r"num_channels // 2\)")
    src, n = halve.subn("transition_block(num_channels, num_channels)",
                        blanks[-1].source)
    assert n == 1 and "num_channels = num_channels // 2" in src
    blanks[-1].source = src.replace("num_channels = num_channels // 2", "")
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(student, path)
    NotebookClient(student, timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = {}
    for c in _code(student):
        if c.source.startswith("grader.check("):
            q = c.source.split('"')[1]
            shown[q] = "".join(o.get("data", {}).get("text/plain", "")
                               for o in c.outputs)
    assert sorted(shown) == sorted(student.metadata["otter"]["tests"])
    for q in ("q1_conv_block", "q2_dense_block", "q3_transition_block",
              "q4_channels"):
        assert "All test cases passed" in shown[q], shown[q]
    msg = shown["q5_densenet"]
    assert "after net[2] (transition 1) expected 96 channels, got 192" in msg
    assert ("hint: a transition layer halves the channels: "
            "transition_block(num_channels, num_channels // 2)") in msg
    assert "expected 758,226 parameters" in msg
