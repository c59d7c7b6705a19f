"""The classroom edition (tools/classroom.py on otter-grader).

The edition is built once per test session (``otter assign``, without
running the checks: the grading below runs them). One folder holding every
solution notebook and every blank student notebook is then graded once
with ``otter run``'s Python API; the tests read its results: every
solution passes every check (public and hidden), every blank notebook
fails every check, the folder's grades are full and zero marks. A planted
wrong answer is executed as a student runs it, and its ``grader.check``
output must carry the check's message.

The Chinese student notebooks (student/zh/) must have the English ones'
code cells and checks, Chinese text in every markdown cell, and grade
alike: the graded folder holds, for assignment ``ZH_GRADED``, the Chinese
blank notebook (in place of the English one: their code cells and
metadata are equal, see test_zh_student_notebooks) and a Chinese notebook
answered with the solution's code, both under names that do not say the
assignment.
"""
import csv
import json
import re
import shutil
import zipfile

import nbformat
import pytest
from classroom import (
    _BADGE,
    MASTERS,
    ZH_ANSWER,
    ClassroomError,
    _print_row,
    _print_total,
    build,
    en_hash,
    grade,
    masters,
    student_markdown,
    unused_common,
    zh_texts,
)

NAMES = [p.stem for p in sorted(MASTERS.glob("*.ipynb"))]
# Under pytest-xdist: every test here on one worker, so the edition is
# built and graded once.
pytestmark = pytest.mark.xdist_group("classroom")
#: The assignment whose Chinese notebooks are graded (the cheapest).
ZH_GRADED = "c_parameters"
ZH_BLANK, ZH_ANSWERED = "zh/blank.ipynb", "zh/answered.ipynb"
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SPAN = re.compile(r"`([^`]+)`")


def _blank(name):
    """The graded folder's blank notebook of ``name``."""
    return ZH_BLANK if name == ZH_GRADED else f"{name}-blank.ipynb"


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# Session scope: under pytest-xdist a worker may run other tests between
# these, which would tear a module-scoped edition down and build it again.
@pytest.fixture(scope="session")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("classroom")
    return out, build(out, run_tests=False)


def _answered(student, solution):
    """``student`` with its answer cells holding the solution's code."""
    answers = [c for c in _code(solution)
               if "otter_assign_solution_cell" in c.metadata.get("tags", [])]
    blanks = [c for c in _code(student)
              if "otter_answer_cell" in c.metadata.get("tags", [])]
    assert len(answers) == len(blanks) >= 4
    for blank, answer in zip(blanks, answers):
        blank.source = answer.source
    return blanks


@pytest.fixture(scope="session")
def graded(edition, tmp_path_factory):
    """Grade one folder: each assignment's solution and blank notebook
    (Chinese for ZH_GRADED), a Chinese notebook answered with the
    solution's code, plus a file that is not a notebook."""
    out, built = edition
    folder = tmp_path_factory.mktemp("submissions")
    (folder / "zh").mkdir()
    for name, paths in built.items():
        shutil.copyfile(paths["solution"], folder / f"{name}-solution.ipynb")
        blank = paths["student_zh" if name == ZH_GRADED else "student"]
        shutil.copyfile(blank, folder / _blank(name))
    zh = nbformat.read(built[ZH_GRADED]["student_zh"], as_version=4)
    _answered(zh, nbformat.read(built[ZH_GRADED]["solution"],
                                as_version=4))
    nbformat.write(zh, folder / ZH_ANSWERED)
    (folder / "broken.ipynb").write_text("{not json", encoding="utf-8")
    rows = grade(folder, out / "autograder", folder / "grades.csv")
    return folder, {r["submission"]: r for r in rows}


def test_one_worker_under_xdist(request):
    """make test's ``--dist loadgroup`` keeps these tests on one worker;
    a pytest / pytest-xdist pair that drops the group would build and
    grade the edition once per worker."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run with pytest-xdist --dist loadgroup")
    assert request.node.nodeid.endswith("@classroom"), request.node.nodeid


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
    assert index.count("colab-badge.svg") == 2 * len(NAMES)
    assert index.count("/blob/main/classroom/zh/") == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_zh_student_notebooks(edition, name):
    """The Chinese student notebook: the English one's code cells, checks
    and metadata; every markdown cell Chinese (the master's English
    gone), otter's additions kept; the badge at its own published path."""
    _, built = edition
    en = nbformat.read(built[name]["student"], as_version=4)
    zh = nbformat.read(built[name]["student_zh"], as_version=4)
    assert zh.metadata == en.metadata
    assert zh.metadata["otter"]["assignment_name"] == name
    assert [(c.id, c.cell_type) for c in zh.cells] == [
        (c.id, c.cell_type) for c in en.cells]
    assert _code(zh) == _code(en)
    english = student_markdown(nbformat.read(MASTERS / f"{name}.ipynb",
                                             as_version=4))
    for a, b in zip(en.cells, zh.cells):
        if a.cell_type != "markdown":
            continue
        assert b.metadata == a.metadata and _CJK.search(b.source), b.id
        if a.id in english:
            assert english[a.id].strip() in a.source
            assert english[a.id].strip() not in b.source, a.id
        else:  # otter's answer cell of a written question
            assert b.source == ZH_ANSWER
        for mark in ("<!-- BEGIN QUESTION -->", "<!-- END QUESTION -->"):
            assert (mark in a.source) == (mark in b.source), a.id
    badges = _BADGE.findall("".join(c.source for c in zh.cells))
    assert badges == [name]
    assert (f"https://colab.research.google.com/github/d2l-densenet/"
            f"d2l-densenet/blob/main/classroom/zh/{name}.ipynb"
            ) in zh.cells[0].source


@pytest.mark.parametrize("name", NAMES)
def test_every_master_markdown_cell_has_chinese(name):
    """Each markdown cell students read has a Chinese text, translated
    from the current English, that keeps the English's code (names,
    signatures, values in backticks)."""
    master = MASTERS / f"{name}.ipynb"
    english = student_markdown(nbformat.read(master, as_version=4))
    texts = zh_texts(master)
    assert texts.keys() == english.keys() and len(texts) >= 10
    for cid, en in english.items():
        spans = {" ".join(x.split()) for x in _SPAN.findall(texts[cid])}
        lost = {" ".join(x.split()) for x in _SPAN.findall(en)} - spans
        assert not lost, f"{name} cell {cid}: Chinese lacks {lost}"
    assert unused_common({m.stem: zh_texts(m) for m in masters()}) == []


def test_missing_or_stale_chinese_stops_the_build(tmp_path, monkeypatch):
    import classroom
    name = "a_building_blocks"
    zh = tmp_path / "zh"
    shutil.copytree(classroom.ZH_TEXTS, zh)
    monkeypatch.setattr(classroom, "ZH_TEXTS", zh)
    monkeypatch.setattr(classroom, "ZH_COMMON", zh / "common.md")
    master = MASTERS / f"{name}.ipynb"
    english = student_markdown(nbformat.read(master, as_version=4))
    assert zh_texts(master)
    text = (zh / f"{name}.md").read_text(encoding="utf-8")
    head, rest = text.split("<!-- cell 24c0771c ", 1)
    first_section = "<!-- cell 24c0771c " + rest.split("<!-- cell ")[0]
    h = en_hash(english["24c0771c"])
    assert f"en={h} -->" in first_section

    def fails(new_text, *wanted):
        (zh / f"{name}.md").write_text(new_text, encoding="utf-8")
        with pytest.raises(ClassroomError) as e:
            zh_texts(master)
        for w in wanted:
            assert w in str(e.value), str(e.value)

    fails(text.replace(first_section, ""), "24c0771c",
          "has no Chinese text", f"<!-- cell 24c0771c en={h} -->",
          f"zh/{name}.md")
    fails(text.replace(f"en={h}", "en=12345678"), "24c0771c",
          "changed since it was translated", f"write en={h}")
    fails(text + "\n<!-- cell 0000abcd en=12345678 -->\n多余\n",
          "0000abcd", "remove it")
    fails(text + "\n" + first_section, "two sections for cell 24c0771c")
    fails(re.sub(r"\[!\[Open In Colab\].*\n", "", text), "5ff9aac4",
          "badge")
    # a changed English needs a new Chinese text
    (zh / f"{name}.md").write_text(text, encoding="utf-8")
    nb = nbformat.read(master, as_version=4)
    cell = next(c for c in nb.cells if c.id == "24c0771c")
    cell.source = cell.source.replace("then ReLU", "then a ReLU")
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    with pytest.raises(ClassroomError, match="24c0771c.*changed since"):
        zh_texts(tmp_path / f"{name}.ipynb")
    # and the build stops before otter runs
    (zh / "common.md").write_text("", encoding="utf-8")
    with pytest.raises(ClassroomError, match="d506fe9c.*no Chinese text"):
        build(tmp_path / "out", [name], run_tests=False)
    assert not (tmp_path / "out" / "student" / f"{name}.ipynb").exists()


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
    zh = nbformat.read(built["d_memory"]["student_zh"], as_version=4)
    assert ("colab.research.google.com/github/someone/course/blob/fall/hw/"
            "zh/d_memory.ipynb") in zh.cells[0].source
    assert _code(zh) == _code(nb)  # the same checks URL


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
    row, cases = _cases(graded, _blank(name))
    passed = [(q, h) for q, h, ok in cases if ok]
    assert len(cases) >= 5 and not passed, f"blank passes {passed}"
    assert row["score"] == 0


@pytest.mark.slow
def test_folder_grades_full_and_zero(graded, capsys):
    folder, rows = graded
    with open(folder / "grades.csv", encoding="utf-8") as f:
        table = {r["submission"]: r for r in csv.DictReader(f)}
    assert len(table) == 2 * len(NAMES) + 2
    for name in NAMES:
        full, blank = table[f"{name}-solution.ipynb"], table[_blank(name)]
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
def test_zh_submissions_grade_like_english(graded):
    """A Chinese notebook, named without its assignment, is graded by its
    assignment's autograder: answered, the English solution's score per
    question; blank, zero of the same points."""
    english, _ = _cases(graded, f"{ZH_GRADED}-solution.ipynb")
    answered, cases = _cases(graded, ZH_ANSWERED)
    blank, _ = _cases(graded, ZH_BLANK)
    assert answered["assignment"] == blank["assignment"] == ZH_GRADED
    assert answered["questions"] == english["questions"]
    assert answered["score"] == english["score"] == len(cases) > 5
    assert blank["questions"] == {q: (0, p) for q, (_, p) in
                                  english["questions"].items()}


@pytest.mark.slow
def test_planted_wrong_answer_shows_helpful_message(edition, tmp_path):
    """A student's notebook whose answers are right except a transition
    that does not halve the channels: grader.check says what was expected,
    what was found, and hints at the fix."""
    from nbclient import NotebookClient

    _, built = edition
    name = "a_building_blocks"
    student = nbformat.read(built[name]["student"], as_version=4)
    blanks = _answered(student, nbformat.read(built[name]["solution"],
                                              as_version=4))
    assert len(blanks) == 5
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
