"""The classroom edition (tools/classroom.py on otter-grader).

The edition is built once per test session (``otter assign``, without
running the checks: the grading below runs them). Each assignment's
folder of submissions is then graded once (``grade``, otter's API in a
child process): for A, a class of students with three attempts (right,
wrong, imported reference code), a blank notebook renamed by Jupyter, a
duplicate, a wrong assignment, a truncated file, an empty folder and a
student on the roster without a folder; for B-F, the solution and the
blank notebook. The tests read those results.

The Chinese student notebooks (student/zh/) must have the English ones'
code and checks but for comments and string literals, Chinese text in
every markdown cell, comment and public check message, and grade alike:
the graded folder of ``ZH_GRADED`` holds the Chinese blank notebook and a
Chinese notebook answered with the solution's code.
"""
import csv
import json
import os
import re
import shutil
import time
import zipfile

import nbformat
import pytest
from classroom import (
    _BADGE,
    MASTERS,
    ZH_ANSWER,
    ClassroomError,
    answers,
    build,
    en_hash,
    grade,
    main,
    masters,
    publish_settings,
    student_markdown,
    unused_common,
    zh_texts,
)
from classroom_zh_code import messages

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


def _skeleton(source):
    """The AST of code with every string literal emptied (comments are
    not in the AST; IPython's %magic lines are dropped)."""
    import ast
    src = "\n".join(line for line in source.splitlines()
                    if not line.lstrip().startswith("%"))
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
        elif isinstance(node, ast.JoinedStr):
            node.values = []
    return ast.dump(tree)


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
    for blank, answer in zip(blanks, answers, strict=True):
        blank.source = answer.source
    return blanks


#: The students of assignment A's graded folder (see ``graded``).
A = "a_building_blocks"


def _attempt(built, kind):
    """Assignment A's student notebook solved by a student: "right" (the
    solution's code), "wrong" (typical mistakes: max pooling in the
    transition, a transition after the last block too, no halving in
    the model) or "gamed" (imports the package's reference code and
    types in the expected channel list)."""
    nb = nbformat.read(built[A]["student"], as_version=4)
    blanks = _answered(nb, nbformat.read(built[A]["solution"],
                                         as_version=4))
    assert len(blanks) == 5
    if kind == "wrong":
        blanks[2].source = blanks[2].source.replace(
            "nn.AvgPool2d", "nn.MaxPool2d")
        blanks[3].source = blanks[3].source.replace(
            "        if i != len(arch) - 1:\n", "        if True:\n")
        src = blanks[4].source.replace(
            "transition_block(num_channels,\n"
            "                                     num_channels // 2)",
            "transition_block(num_channels, num_channels)")
        blanks[4].source = src.replace(
            "num_channels = num_channels // 2", "")
        assert blanks[4].source != src
    elif kind == "gamed":
        blanks[0].source = "from d2l_densenet import conv_block"
        blanks[1].source = ("from d2l_densenet import DenseBlock\n"
                            "Y = DenseBlock(2, 3, 10)(torch.randn(4, 3, "
                            "8, 8))")
        blanks[2].source = "from d2l_densenet import transition_block"
        blanks[3].source = ("def densenet_channels(num_channels, "
                            "growth_rate, arch):\n"
                            "    return [192, 96, 224, 112, 240, 120, "
                            "248]")
        blanks[4].source = ("from d2l_densenet import densenet\n"
                            "net = densenet()")
    return nb


@pytest.fixture(scope="session")
def graded(edition, tmp_path_factory):
    """Grade one folder per assignment. A: alice (right), bob (an old
    blank and, newer, the wrong attempt as "a_building_blocks (1)"),
    carol (gamed), dave (a blank renamed "-Copy1"), erin (B's notebook
    under A's name), frank (truncated JSON), grace (an empty folder),
    heidi (on the roster, no folder). B-F: the solution and the blank
    notebook (for ZH_GRADED: the Chinese blank one and a Chinese one
    answered with the solution's code). Returns ``{assignment: (folder,
    {student: row})}``."""
    out, built = edition
    base = tmp_path_factory.mktemp("submissions")
    folders = {}
    for name, paths in built.items():
        folder = base / name
        folder.mkdir()
        if name == A:
            continue
        if name != ZH_GRADED:  # there: the Chinese answered notebook
            shutil.copyfile(paths["solution"], folder / "solution.ipynb")
        blank = paths["student_zh" if name == ZH_GRADED else "student"]
        shutil.copyfile(blank, folder / "blank.ipynb")
        folders[name] = folder
    zh = nbformat.read(built[ZH_GRADED]["student_zh"], as_version=4)
    _answered(zh, nbformat.read(built[ZH_GRADED]["solution"],
                                as_version=4))
    nbformat.write(zh, base / ZH_GRADED / "answered.ipynb")
    folder = folders[A] = base / A
    for sid in ("alice", "bob", "carol", "dave", "erin", "frank", "grace"):
        (folder / sid).mkdir()
    for sid, kind in (("alice", "right"), ("carol", "gamed")):
        nbformat.write(_attempt(built, kind), folder / sid / f"{A}.ipynb")
    shutil.copyfile(built[A]["student"], folder / "bob" / f"{A}.ipynb")
    os.utime(folder / "bob" / f"{A}.ipynb", (1e9, 1e9))
    nbformat.write(_attempt(built, "wrong"),
                   folder / "bob" / f"{A} (1).ipynb")
    shutil.copyfile(built[A]["student"],
                    folder / "dave" / f"{A}-Copy1.ipynb")
    shutil.copyfile(built["b_avg_vs_max_pooling"]["student"],
                    folder / "erin" / f"{A}.ipynb")
    text = built[A]["student"].read_text(encoding="utf-8")
    (folder / "frank" / f"{A}.ipynb").write_text(text[:len(text) // 2],
                                                 encoding="utf-8")
    roster = base / "roster.csv"
    roster.write_text("student,name\n" + "".join(
        f"{s},{s.title()} Doe\n" for s in (
            "alice", "bob", "carol", "dave", "erin", "frank", "grace",
            "heidi")), encoding="utf-8")
    result = {}
    for name in NAMES:
        rows = grade(folders[name], name, out / "autograder",
                     roster=roster if name == A else None, timeout=300)
        result[name] = (folders[name], {r["student"]: r for r in rows})
    return result


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
            env = z.read("environment.yml").decode()
        # the grading environment is pinned: PyTorch's CPU wheels, the
        # package at publish.toml's release on PyPI
        pub = publish_settings()
        assert "download.pytorch.org/whl/cpu" in env
        assert re.search(r"- torch==\d+\.\d+", env), env
        assert f"      - d2l-densenet=={pub['version']}\n" in env
        colab = next(c.source for c in student.cells
                     if "Colab only" in c.source)
        assert f'PACKAGE = "d2l-densenet=={pub["version"]}"' in colab
        assert "otter-grader==" in colab
        written = json.loads(paths["written"].read_text(encoding="utf-8"))
        assert all(q["rubric"].startswith("**Rubric") for q in written)
        assert len(written) == (0 if name == A else 1)
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
    assert zh.metadata["otter"]["assignment_name"] == name
    assert [(c.id, c.cell_type) for c in zh.cells] == [
        (c.id, c.cell_type) for c in en.cells]
    # the same code and checks, but for comments and string literals,
    # and every comment and public check message in Chinese
    assert [_skeleton(c.source) for c in _code(zh)] == [
        _skeleton(c.source) for c in _code(en)]
    for c in _code(zh):
        for line in c.source.splitlines():
            if line.lstrip().startswith("#"):
                assert _CJK.search(line), line
    tests_en = en.metadata["otter"].pop("tests")
    tests_zh = zh.metadata["otter"].pop("tests")
    assert zh.metadata == en.metadata
    assert tests_zh.keys() == tests_en.keys()
    for q in tests_en:
        assert _skeleton(tests_zh[q]) == _skeleton(tests_en[q])
        msgs = messages(tests_zh[q])
        assert msgs and all(_CJK.search(m) for m in msgs), q
        saved = built[name]["checks"].parent / "zh" / name / f"{q}.py"
        assert saved.read_text(encoding="utf-8") == tests_zh[q]
    english = student_markdown(nbformat.read(MASTERS / f"{name}.ipynb",
                                             as_version=4))
    for a, b in zip(en.cells, zh.cells, strict=True):
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
                  repo="someone/course", branch="fall", folder="hw",
                  tag="v9.9")
    with zipfile.ZipFile(built["d_memory"]["autograder"]) as z:
        env = z.read("environment.yml").decode()
    # the package still comes from publish.toml's repository, at the
    # tag given, from git
    pub = publish_settings()
    assert f"d2l-densenet @ git+https://github.com/{pub['repo']}@v9.9" in env
    assert (f'PACKAGE = "d2l-densenet @ git+https://github.com/{pub["repo"]}'
            f'@v9.9"') in "".join(c.source for c in nbformat.read(
                built["d_memory"]["student"], as_version=4).cells)
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
    zh_text = "".join(c.source for c in zh.cells)
    url = zh_text.split("CHECKS = (")[1].split(")")[0]
    assert "".join(url.replace('"', "").split()) == (
        "https://raw.githubusercontent.com/someone/course/fall/hw/checks/"
        "zh/d_memory/")


def _cases(graded, name, student):
    """The graded row of ``student`` in assignment ``name``'s folder and
    (question, hidden, passed) for each of its checks."""
    row = graded[name][1][student]
    assert row["status"] == "graded", row["error"]
    return row, [(c["question"], c["hidden"], c["passed"])
                 for c in row["checks"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_every_check(graded, name):
    row, cases = _cases(graded, name, {A: "alice", ZH_GRADED: "answered"}
                        .get(name, "solution"))
    failed = [c for c in row["checks"] if not c["passed"]]
    assert not failed, failed
    assert any(h for _, h, _ in cases) and any(not h for _, h, _ in cases)
    assert row["score"] == row["possible"] == len(cases)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_blank_notebook_fails_every_check(graded, name):
    row, cases = _cases(graded, name, "dave" if name == A else "blank")
    passed = [(q, h) for q, h, ok in cases if ok]
    assert len(cases) >= 5 and not passed, f"blank passes {passed}"
    assert row["score"] == 0


@pytest.mark.slow
def test_three_attempts_at_assignment_a(graded):
    """Right: full marks. Wrong (max pooling, an extra transition, no
    halving): fewer, and the public check of average pooling already
    fails. Imported reference code with typed-in numbers: at most 30%,
    each imported piece failing with a message that says so."""
    rows = graded[A][1]
    right, wrong, gamed = rows["alice"], rows["bob"], rows["carol"]
    assert right["score"] == right["possible"] == 15
    assert 0 < wrong["score"] < right["score"]
    assert gamed["score"] <= 0.3 * gamed["possible"]
    print(f"\nA: right {right['score']:g}, wrong {wrong['score']:g}, "
          f"gamed {gamed['score']:g} of {right['possible']:g}")
    failed = [c["message"] for c in wrong["checks"] if not c["passed"]
              and c["question"] == "q3_transition_block"
              and not c["hidden"]]
    assert len(failed) == 1 and "mean of a 2x2 window" in failed[0]
    msgs = [c["message"] for c in gamed["checks"] if not c["passed"]]
    assert any("comes from d2l_densenet" in m for m in msgs), msgs
    assert sum(c["passed"] for c in gamed["checks"]
               if c["question"] != "q4_channels") == 0


@pytest.mark.slow
def test_careless_folder(graded, capsys):
    """Renamed, duplicated, wrong assignment, truncated, empty, missing:
    each gets its row and its reason; the CSV has one row per student,
    every row a feedback file."""
    folder, rows = graded[A]
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin",
                            "frank", "grace", "heidi"]
    assert rows["dave"]["status"] == "graded"  # -Copy1: graded
    assert rows["dave"]["submission"] == f"dave/{A}-Copy1.ipynb"
    assert len(rows["dave"]["checks"]) == 15
    bob = rows["bob"]
    assert bob["submission"] == f"bob/{A} (1).ipynb"
    assert bob["flags"][0].startswith("duplicate:")
    erin = rows["erin"]
    assert erin["status"] == "error" and (
        "b_avg_vs_max_pooling, not a_building_blocks" in erin["error"])
    assert rows["frank"]["status"] == "error"
    assert "not a readable notebook" in rows["frank"]["error"]
    assert "empty folder" in rows["grace"]["error"]
    assert rows["heidi"]["status"] == "missing"
    assert rows["heidi"]["name"] == "Heidi Doe"
    with open(folder / "grades.csv", encoding="utf-8") as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    assert sorted(table) == sorted(rows)
    assert {table[s]["assignment"] for s in table} == {A}
    assert table["heidi"]["status"] == "missing"
    # not graded: no score (not 0/0), the assignment's points possible
    assert table["erin"]["score"] == "" and table["erin"]["possible"] == "15"
    for sid in rows:
        assert (folder / "feedback" / f"{sid}.txt").exists(), sid
    fb = (folder / "feedback" / "alice.txt").read_text(encoding="utf-8")
    assert fb.count("[hidden]") == 5 and fb.count("passed") == 15
    fb = (folder / "feedback" / "bob.txt").read_text(encoding="utf-8")
    assert "mean of a 2x2 window" in fb and "[hidden]" in fb


def test_exit_code_and_bad_input(edition, tmp_path):
    """Error rows make the exit code 1 (no kernel is started for
    them); a bad assignment name or roster stops with code 2."""
    out, _ = edition
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.ipynb").write_text("{", encoding="utf-8")
    ag = str(out / "autograder")
    assert main(["grade", str(tmp_path), "--assignment", A,
                 "--autograders", ag]) == 1
    assert main(["grade", str(tmp_path), "--assignment", "nope",
                 "--autograders", ag]) == 2
    assert main(["grade", str(tmp_path), "--assignment", A,
                 "--autograders", ag, "--roster",
                 str(tmp_path / "none.csv")]) == 2


def test_time_limit(edition, tmp_path):
    """A submission that never ends is stopped at --timeout; the batch
    goes on."""
    out, built = edition
    nb = nbformat.read(built[A]["student"], as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import time\ntime.sleep(3600)"))
    (tmp_path / "s" / "zed").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "s" / "zed" / f"{A}.ipynb")
    start = time.perf_counter()
    rows = grade(tmp_path / "s", A, out / "autograder", timeout=15)
    assert time.perf_counter() - start < 120
    assert rows[0]["status"] == "error"
    assert "time limit of 15 s" in rows[0]["error"]


def test_merge_keeps_teacher_columns(tmp_path):
    """Regrading replaces the checks' columns and keeps the written
    answers' points and any column the teacher added."""
    from classroom_grade import merge_csv
    written = [dict(name="q5_why_avg", points=2.0)]
    col = "q5_why_avg (written, /2)"

    def row(sid, score):
        return dict(student=sid, name="", assignment="b", submission="x",
                    status="graded", score=score, possible=3.0,
                    percent=100 * score / 3, questions={"q1": (score, 3)},
                    flags=[], error="")
    path = tmp_path / "grades.csv"
    merge_csv([row("ann", 1.0), row("ben", 2.0)], written, path)
    with open(path, encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    table[0][col], table[0]["comment"] = "2", "good"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    merge_csv([row("ann", 3.0)], written, path)
    with open(path, encoding="utf-8") as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    assert table["ann"]["score"] == "3" and table["ann"]["q1"] == "3"
    assert table["ann"][col] == "2" and table["ann"]["comment"] == "good"
    assert table["ben"]["score"] == "2"
    with pytest.raises(Exception, match="one CSV per assignment"):
        merge_csv([dict(row("ann", 1.0), assignment="c")], written, path)


def test_answers_page(edition, tmp_path):
    """``answers`` puts every student's answer to a written question on
    one HTML page, with the question's rubric; no kernel runs."""
    out, built = edition
    name = "b_avg_vs_max_pooling"
    for sid, text in (("ann", "Average pooling <b>keeps</b> all."),
                      ("ben", None)):
        (tmp_path / sid).mkdir()
        nb = nbformat.read(built[name]["student"], as_version=4)
        if text:
            cell = next(c for c in nb.cells if "otter_answer_cell" in
                        c.metadata.get("tags", []) and
                        c.cell_type == "markdown")
            cell.source = text
        nbformat.write(nb, tmp_path / sid / f"{name}.ipynb")
    page = answers(tmp_path, name, out / "autograder")
    text = page.read_text(encoding="utf-8")
    assert "Rubric (2 points)" in text and "q5_why_avg" in text
    assert "keeps" in text and "<b>keeps" not in text  # escaped
    assert text.index("<h3>ann</h3>") < text.index("<h3>ben</h3>")


@pytest.mark.slow
def test_zh_submissions_grade_like_english(graded):
    """Chinese notebooks are graded by their assignment's autograder:
    answered with the solution's code, full marks on every question;
    blank, zero of the same points."""
    answered, cases = _cases(graded, ZH_GRADED, "answered")
    blank, _ = _cases(graded, ZH_GRADED, "blank")
    assert answered["score"] == answered["possible"] == len(cases) > 5
    assert all(s == p for s, p in answered["questions"].values())
    assert blank["questions"] == {q: (0, p) for q, (_, p) in
                                  answered["questions"].items()}


@pytest.mark.slow
def test_renamed_student_notebook_runs_its_checks(edition, tmp_path):
    """The wrong attempt at A, saved as Jupyter's "Make a copy" names it
    (next to another notebook), run as a student runs it: its first cells
    find the renamed file, and ``grader.check`` shows each question's
    public checks: passed where the code is right, the diagnosing message
    (not the code) where it is wrong."""
    from nbclient import NotebookClient

    _, built = edition
    nb = _attempt(built, "wrong")
    nbformat.write(nb, tmp_path / f"{A}-Copy1.ipynb")
    shutil.copyfile(built["c_parameters"]["student"],
                    tmp_path / "c_parameters.ipynb")
    os.utime(tmp_path / "c_parameters.ipynb", (1e9, 1e9))
    NotebookClient(nb, timeout=300, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in _code(nb) for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors[0]
    shown = {}
    for c in _code(nb):
        if c.source.startswith("grader.check("):
            q = c.source.split('"')[1]
            shown[q] = "".join(o.get("data", {}).get("text/plain", "")
                               for o in c.outputs)
    assert sorted(shown) == sorted(nb.metadata["otter"]["tests"])
    for q in ("q1_conv_block", "q2_dense_block"):
        assert "All test cases passed" in shown[q], shown[q]
    assert "mean of a 2x2 window" in shown["q3_transition_block"]
    msg = shown["q5_densenet"]
    assert "after net[2] (transition 1) expected 96 channels, got 192" in msg
    assert "transition_block(num_channels" not in msg  # no code given


def test_package_students_install_has_no_masters():
    """The wheel students pip install is the package d2l_densenet only:
    no master, solution or hidden check is inside it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    root = MASTERS.parent.parent
    conf = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    assert conf["tool"]["setuptools"]["packages"] == ["d2l_densenet"]
    assert not conf["tool"]["setuptools"].get("package-data")
    inside = [p for p in (root / "d2l_densenet").rglob("*")
              if p.suffix in (".ipynb", ".zip")
              or "BEGIN SOLUTION" in (p.read_text("utf-8", "ignore")
                                      if p.suffix == ".py" else "")]
    assert not inside, inside
