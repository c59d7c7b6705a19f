"""The classroom edition (tools/classroom.py on otter-grader; grading in
tools/classroom_grade.py and the checks' process
tools/classroom_check.py).

The edition is built once per test session (``otter assign``, without
running the checks: the grading below runs them). Each assignment's
folder of submissions is then graded once (``grade``, two at a time, in
the sandbox where bwrap works): for A, a class of students with three
attempts (right, wrong, imported reference code), three attacks on the
grader (a blank notebook that replaces otter's test runner, thin
wrappers that reach the package by importlib, ``__import__``,
``getattr`` and ``sys.modules``, and a notebook that snoops on the
teacher's files, the network and /proc), a blank notebook renamed by
Jupyter, a duplicate, a wrong assignment, a truncated file, an empty
folder and a student on the roster without a folder; for B-F, the
solution and the blank notebook. The tests read those results.

The Chinese student notebooks (student/zh/) must have the English ones'
code and checks but for comments and string literals, Chinese text in
every markdown cell, comment and public check message, and grade alike:
the graded folder of ``ZH_GRADED`` holds the Chinese blank notebook and a
Chinese notebook answered with the solution's code; their feedback is in
Chinese. tests/test_classroom_lms.py has the tests that need no build
(folders of the LMSs, class lists, grades files, reading the code).
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import classroom_grade as cg
import classroom_sandbox as sandbox
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
#: Whether submissions run in the sandbox here (bwrap).
SANDBOXED = sandbox.status()[0]


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
    # marked, so that grading answers a Chinese notebook in Chinese
    assert en.metadata.pop("d2l_densenet") == {"edition": "en"}
    assert zh.metadata.pop("d2l_densenet") == {"edition": "zh"}
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
#: A blank notebook's cell that replaces otter's test runner by one that
#: marks every test case passed (what scored 15/15 in otter's kernel).
PATCH_GRADER = '''\
import otter.test_files.exception_test as et
from otter.test_files.abstract_test import TestCaseResult


def run(self, global_environment):
    self.test_case_results = [
        TestCaseResult(test_case=tc, message="ok", passed=True)
        for tc in self.test_cases]


et.ExceptionTestFile.run = run'''
#: Thin wrappers around the package, each reaching it by another route.
WRAPPERS = [
    '''\
import importlib


def conv_block(input_channels, num_channels):
    return importlib.import_module("d2l_densenet").conv_block(
        input_channels, num_channels)''',
    '''\
class DenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super().__init__()
        self.inner = __import__("d2l_densenet").DenseBlock(
            num_convs, input_channels, num_channels)

    def forward(self, X):
        return self.inner(X)


blk = DenseBlock(2, 3, 10)
X = torch.randn(4, 3, 8, 8)
Y = blk(X)''',
    '''\
def transition_block(input_channels, num_channels,
                     _pkg=__import__("d2l_" + "densenet")):
    return getattr(_pkg, "transition_" + "block")(input_channels,
                                                  num_channels)''',
    '''\
def densenet_channels(num_channels, growth_rate, arch):
    dd = torch.sys.modules["d2l_densenet"]
    net = dd.densenet(num_channels=num_channels,
                      growth_rate=growth_rate, arch=arch)
    X, out = torch.zeros(1, 1, 64, 64), []
    for name, layer in net.named_children():
        X = layer(X)
        if name.startswith(("dense", "tran")):
            out.append(X.shape[1])
    return out''',
]


def _snoop(solutions, teacher):
    """A cell that tries to read the checks, the solutions and
    /etc/passwd, list /proc, write into the teacher's folder and open a
    connection, and prints what it got."""
    return f'''\
import glob
import os

import torch

SOLUTIONS = {str(solutions)!r}
TEACHER = {str(teacher)!r}
found = {{}}


def attempt(label, fn):
    try:
        found[label] = repr(fn())[:300]
    except Exception as e:
        found[label] = f"{{type(e).__name__}}: {{e}}"


attempt("checks", lambda: glob.glob("**/*.py", recursive=True))
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("solutions", lambda: os.listdir(SOLUTIONS))
attempt("solutions_exist", lambda: os.path.exists(SOLUTIONS))
attempt("proc", lambda: os.listdir("/proc"))
attempt("write", lambda: open(os.path.join(TEACHER, "pwned.txt"),
                              "w").write("x"))
attempt("network", lambda: torch.hub.load_state_dict_from_url(
    "http://127.0.0.1:9/x.pt"))
print("SNOOP", found)'''


def _attempt(built, kind, folder=None):
    """Assignment A's student notebook solved by a student: "right" (the
    solution's code), "wrong" (typical mistakes: max pooling in the
    transition, a transition after the last block too, no halving in
    the model), "gamed" (imports the package's reference code and types
    in the expected channel list), "patch" (blank, plus PATCH_GRADER),
    "wrapper" (WRAPPERS for questions 1-4) or "snoop" (right, plus
    _snoop aimed at the solutions and ``folder``)."""
    nb = nbformat.read(built[A]["student"], as_version=4)
    if kind == "patch":
        nb.cells.insert(5, nbformat.v4.new_code_cell(PATCH_GRADER))
        return nb
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
    elif kind == "wrapper":
        for blank, src in zip(blanks, WRAPPERS, strict=False):
            blank.source = src
    elif kind == "snoop":
        solutions = Path(built[A]["solution"]).parent
        nb.cells.insert(5, nbformat.v4.new_code_cell(
            _snoop(solutions, folder)))
    return nb


@pytest.fixture(scope="session")
def graded(edition, tmp_path_factory):
    """Grade one folder per assignment, two submissions at a time. A:
    alice (right), bob (an old blank and, newer, the wrong attempt as
    "a_building_blocks (1)"), carol (gamed), dave (a blank renamed
    "-Copy1"), erin (B's notebook under A's name), frank (truncated
    JSON), grace (an empty folder), heidi (on the roster, no folder),
    mallory (patches the grader), trudy (wrappers around the package),
    eve (snoops). B-F: the solution and the blank notebook (for
    ZH_GRADED: the Chinese blank one and a Chinese one answered with the
    solution's code). Returns
    ``{assignment: (folder, {student: row})}``."""
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
    class_ = ("alice", "bob", "carol", "dave", "erin", "frank", "grace",
              "mallory", "trudy", "eve")
    for sid in class_:
        (folder / sid).mkdir()
    for sid, kind in (("alice", "right"), ("carol", "gamed"),
                      ("mallory", "patch"), ("trudy", "wrapper"),
                      ("eve", "snoop")):
        nbformat.write(_attempt(built, kind, folder),
                       folder / sid / f"{A}.ipynb")
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
        f"{s},{s.title()} Doe\n" for s in (*class_, "heidi")),
        encoding="utf-8")
    result = {}
    for name in NAMES:
        rows = grade(folders[name], name, out / "autograder",
                     roster=roster if name == A else None, timeout=300,
                     jobs=2)
        result[name] = (folders[name], {r["student"]: r for r in rows})
    return result


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
    # nothing the solutions do looks like tampering, no cell fails
    assert row["flag"] == [] and row["cells"] == [], (row["flag"],
                                                       row["cells"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_blank_notebook_fails_every_check(graded, name):
    row, cases = _cases(graded, name, "dave" if name == A else "blank")
    passed = [(q, h) for q, h, ok in cases if ok]
    assert len(cases) >= 5 and not passed, f"blank passes {passed}"
    assert row["score"] == 0 and row["flag"] == []


@pytest.mark.slow
def test_three_attempts_at_assignment_a(graded):
    """Right: full marks. Wrong (max pooling, an extra transition, no
    halving): 7 of 15, and the public check of average pooling already
    fails. Imported reference code with typed-in numbers: 1 of 15 (the
    public check of the typed-in example), each imported piece failing
    with a message that says so."""
    rows = graded[A][1]
    right, wrong, gamed = rows["alice"], rows["bob"], rows["carol"]
    assert right["score"] == right["possible"] == 15
    assert wrong["score"] == 7 and gamed["score"] == 1
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
    # a plain import is not tampering: the checks say "not your code"
    assert gamed["flag"] == [] and right["flag"] == wrong["flag"] == []


@pytest.mark.slow
def test_patching_the_grader_is_flagged(graded):
    """The blank notebook that replaces otter's test runner scored 15/15
    when the checks ran in the student's kernel; the checks now run
    outside the student's namespace (and otter's internals cannot be
    imported there): 0 points and a flag naming what it did."""
    row = graded[A][1]["mallory"]
    assert row["status"] == "graded"
    assert row["score"] <= 0.3 * row["possible"] and row["score"] == 0
    flag = "; ".join(row["flag"])
    assert "imports otter.test_files.exception_test (the grader's " \
           "internals)" in flag, flag
    assert "changes et.ExceptionTestFile.run" in flag, flag
    cell = next(c for c in row["cells"] if c["index"] == 6)
    assert cell["error"].startswith("ImportError: otter.test_files"), cell


@pytest.mark.slow
def test_wrappers_around_the_package_are_flagged(graded):
    """Thin wrappers reaching the package by importlib, ``__import__``
    (in a default argument, names pieced together), ``getattr`` on the
    module and ``sys.modules`` earn nothing on those
    questions (at most 30% of the points in all), each with a "not your
    code" message, and the submission is flagged with every route."""
    row = graded[A][1]["trudy"]
    assert row["score"] <= 0.3 * row["possible"], row["questions"]
    for q in ("q1_conv_block", "q2_dense_block", "q3_transition_block",
              "q4_channels", "q5_densenet"):
        assert row["questions"][q][0] == 0, (q, row["questions"])
    flag = "; ".join(row["flag"])
    for route in ("imports importlib", "calls __import__",
                  "calls getattr with a computed name",
                  "takes a module out of sys.modules",
                  "DenseBlock reached d2l_densenet.blocks.DenseBlock",
                  "transition_block reached d2l_densenet.blocks."
                  "transition_block",
                  "densenet_channels reached d2l_densenet.models."
                  "densenet"):
        assert route in flag, (route, flag)
    by_check = {(c["question"], c["name"]): c for c in row["checks"]}
    msg = by_check[("q3_transition_block", "test_q3_shape")]["message"]
    assert msg.startswith("transition_block is not your code: it calls "
                          "d2l_densenet.blocks.transition_block"), msg
    msg = by_check[("q4_channels", "test_q4_other_model")]["message"]
    assert "densenet_channels is not your code" in msg, msg


@pytest.mark.slow
def test_snooping_gets_nothing_and_is_flagged(graded):
    """A submission that looks for the checks and the solutions, reads
    /etc/passwd, lists /proc, writes into the teacher's folder and opens
    a connection gets nothing (it still earns the points of its correct
    code) and is flagged; the teacher's folder is untouched."""
    folder, rows = graded[A]
    row = rows["eve"]
    assert row["score"] == 15
    line = next(x for x in row["output"].splitlines()
                if x.startswith("SNOOP"))
    found = eval(line[len("SNOOP "):])  # the dict the notebook printed
    print("\nwhat the snooping notebook got:", found)
    assert found["checks"] == "[]"  # the checks are not on its disk
    for what in ("passwd", "proc", "network"):
        assert found[what].startswith("PermissionError"), found[what]
    assert found["solutions"].startswith(("PermissionError",
                                          "FileNotFoundError"))
    assert found["write"].startswith(("PermissionError",
                                      "FileNotFoundError"))
    assert not (folder / "pwned.txt").exists()
    if SANDBOXED:  # the solutions are not even there
        assert found["solutions_exist"] == "False"
    flag = "; ".join(row["flag"])
    for what in ("tried to read /etc/passwd", "tried to read /proc",
                 "opened a network connection", "opens files"):
        assert what in flag, (what, flag)


def test_sandbox_is_a_wall(edition, tmp_path):
    """Inside the sandbox (no Python guard), a process finds none of the
    teacher's files, sees only its own processes, cannot write outside
    its home and has no network; the home it gets is thrown away."""
    if not SANDBOXED:
        pytest.skip(f"no sandbox here: {sandbox.status()[1]}")
    out, _ = edition
    secret = tmp_path / "teacher" / "grades.csv"
    secret.parent.mkdir()
    secret.write_text("alice,15\n", encoding="utf-8")
    probe = f'''
import json, os, socket
got = {{}}
def attempt(label, fn):
    try:
        got[label] = repr(fn())[:200]
    except Exception as e:
        got[label] = type(e).__name__
attempt("grades", lambda: open({str(secret)!r}).read())
attempt("autograder", lambda: os.listdir({str(out / "autograder")!r}))
attempt("passwd", lambda: open("/etc/passwd").read())
attempt("procs", lambda: sorted(p for p in os.listdir("/proc")
                                if p.isdigit()))
attempt("write", lambda: open({str(secret.parent / "x")!r}, "w"))
attempt("home", lambda: open(os.path.expanduser("~/x"), "w").write("x"))
attempt("socket", lambda: socket.create_connection(
    ("127.0.0.1", {{port}}), 3))
attempt("uid", os.getuid)
print(json.dumps(got))
'''
    work = tmp_path / "run"
    sandbox.prepare(work)
    import socket
    argv, _, _ = sandbox.command(work, cg._package_parent(), True, 1)
    assert argv[-3:] == [sys.executable, "-s", sandbox.CHECKER]
    argv = argv[:-3] + [sys.executable, "-c", probe]
    with socket.socket() as server:  # the host's loopback, listening
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        argv[-1] = argv[-1].replace("{port}", str(port))
        got = json.loads(subprocess.run(
            argv, capture_output=True, text=True, timeout=60,
            check=True).stdout)
    print("\ninside the sandbox:", got)
    assert got["grades"] == got["autograder"] == "FileNotFoundError"
    assert "student:x:1000" in got["passwd"] and "root" not in \
        got["passwd"]
    assert len(eval(got["procs"])) <= 3  # bwrap, python (and its init)
    assert got["write"] in ("FileNotFoundError", "PermissionError",
                            "OSError")
    # the host's loopback is not its loopback
    assert got["socket"] in ("ConnectionRefusedError", "OSError",
                             "TimeoutError")
    assert got["uid"] == "1000"
    assert (work / "home" / "x").read_text() == "x"  # its own home


def test_without_sandbox_says_so(edition, tmp_path, capsys):
    """Grading without the sandbox says so on the run (here with
    --no-sandbox; where bwrap cannot run, always)."""
    out, _ = edition
    (tmp_path / "s" / "x").mkdir(parents=True)
    (tmp_path / "s" / "x" / f"{A}.ipynb").write_text("{", encoding="utf-8")
    assert main(["grade", str(tmp_path / "s"), "--assignment", A,
                 "--autograders", str(out / "autograder"),
                 "--no-sandbox"]) == 1
    assert "NOT SANDBOXED (--no-sandbox)" in capsys.readouterr().err


@pytest.mark.slow
def test_careless_folder(graded, capsys):
    """Renamed, duplicated, wrong assignment, truncated, empty, missing:
    each gets its row and its reason; the CSV has one row per student,
    every row a feedback file."""
    folder, rows = graded[A]
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin",
                            "eve", "frank", "grace", "heidi", "mallory",
                            "trudy"]
    assert rows["dave"]["status"] == "graded"  # -Copy1: graded
    assert rows["dave"]["submission"] == f"dave/{A}-Copy1.ipynb"
    assert len(rows["dave"]["checks"]) == 15
    bob = rows["bob"]
    assert bob["submission"] == f"bob/{A} (1).ipynb"
    assert bob["notes"][0].startswith("duplicate:")
    assert "graded the newest" in bob["notes"][0]
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
    assert table["alice"]["total"] == "15" and table["erin"]["total"] == ""
    assert table["trudy"]["flag"] and not table["alice"]["flag"]
    for sid in rows:
        assert (folder / "feedback" / f"{sid}.txt").exists(), sid
    fb = (folder / "feedback" / "alice.txt").read_text(encoding="utf-8")
    assert fb.count("[hidden]") == 5 and fb.count("passed") == 15
    fb = (folder / "feedback" / "bob.txt").read_text(encoding="utf-8")
    assert "mean of a 2x2 window" in fb and "[hidden]" in fb


@pytest.mark.slow
def test_feedback_is_written_for_the_student(graded):
    """Feedback names what each check tested, gives whole messages (an
    error with its type and where in the student's code it happened),
    holds no instruction meant for the teacher, and asks nothing of a
    flagged student but says the teacher will look."""
    folder, rows = graded[A]
    fb = (folder / "feedback" / "dave.txt").read_text(encoding="utf-8")
    assert "[hidden] same as reference: FAILED" in fb
    assert "[public] channels after each stage: FAILED" in fb
    assert ("AttributeError: 'NoneType' object has no attribute "
            "'parameters'") in fb
    assert " - 3" not in fb and "--" not in fb
    fb = (folder / "feedback" / "frank.txt").read_text(encoding="utf-8")
    assert "hand it in again" in fb and "ask the student" not in fb
    fb = (folder / "feedback" / "trudy.txt").read_text(encoding="utf-8")
    assert "teacher will look at this submission" in fb
    assert "transition_block is not your code" in fb


@pytest.mark.slow
def test_zh_submissions_grade_like_english(graded):
    """Chinese notebooks are graded by their assignment's checks:
    answered with the solution's code, full marks on every question;
    blank, zero of the same points; their feedback is in Chinese, hidden
    checks' messages and check names included."""
    answered, cases = _cases(graded, ZH_GRADED, "answered")
    blank, _ = _cases(graded, ZH_GRADED, "blank")
    assert answered["score"] == answered["possible"] == len(cases) > 5
    assert all(s == p for s, p in answered["questions"].values())
    assert blank["questions"] == {q: (0, p) for q, (_, p) in
                                  answered["questions"].items()}
    assert blank["lang"] == answered["lang"] == "zh"
    folder = graded[ZH_GRADED][0]
    fb = (folder / "feedback" / "blank.txt").read_text(encoding="utf-8")
    assert fb.startswith(f"{ZH_GRADED}：blank的反馈")
    assert "[隐藏] 其他尺寸：未通过" in fb or "[隐藏] 其他尺寸: 未通过" in fb
    hidden = [c["message"] for c in blank["checks"] if c["hidden"]]
    assert hidden and all(_CJK.search(m) for m in hidden), hidden
    english = (graded["d_memory"][0] / "feedback" / "blank.txt").read_text(
        encoding="utf-8")
    assert not _CJK.search(english)


def test_exit_code_and_bad_input(edition, tmp_path):
    """Error rows make the exit code 1 (no process is started for
    them); a bad assignment name, class list or --jobs stops with code
    2."""
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
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path), "--assignment", A, "--jobs", "0"])


def test_grades_file_checked_before_grading(edition, tmp_path, capsys):
    """A grades file that cannot be merged into stops the run before any
    notebook is graded; one saved by Excel (BOM, ';', CRLF) is read,
    merged into and written back the same way."""
    out, built = edition
    folder = tmp_path / "s"
    (folder / "zed").mkdir(parents=True)
    shutil.copyfile(built[A]["student"], folder / "zed" / f"{A}.ipynb")
    bad = tmp_path / "bad.csv"
    bad.write_text("Name;Score\r\nzed;3\r\n", encoding="utf-8-sig")
    start = time.perf_counter()
    assert main(["grade", str(folder), "--assignment", A, "--autograders",
                 str(out / "autograder"), "--csv", str(bad)]) == 2
    assert time.perf_counter() - start < 10  # nothing was graded
    assert "no 'student' column" in capsys.readouterr().err
    excel = tmp_path / "grades.csv"
    excel.write_bytes("\ufeffstudent;name;late penalty;comment\r\n"
                      "zed;Zed Doe;-1,5;ok\r\nyan;;;\r\n"
                      .encode("utf-8"))
    from classroom_grade import merge_csv
    row = dict(student="zed", name="", assignment=A, submission="x",
               status="graded", score=5.0, possible=15.0, percent=33.3,
               questions={"q1_conv_block": (3.0, 3.0)}, flag=[],
               notes=[], error="")
    merge_csv([row], [], excel)
    raw = excel.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b";" in raw.split(b"\n")[0]
    table = {r["student"]: r for r in csv.DictReader(
        raw.decode("utf-8-sig").splitlines(), delimiter=";")}
    assert table["zed"]["score"] == "5" and table["zed"]["total"] == "5"
    assert table["zed"]["late penalty"] == "-1,5"
    assert table["zed"]["comment"] == "ok" and "yan" in table


def test_time_limit(edition, tmp_path):
    """A submission that never ends is stopped at --timeout; the batch
    goes on; its feedback says so without the teacher's option."""
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
    assert "--timeout" in rows[0]["error"]
    fb = (tmp_path / "s" / "feedback" / "zed.txt").read_text("utf-8")
    assert "within the time allowed for grading (15 s)" in fb
    assert "--timeout" not in fb


def test_merge_keeps_teacher_columns(tmp_path):
    """Regrading replaces the checks' columns and keeps the written
    answers' points and any column the teacher added; the total adds
    the written answers' points."""
    from classroom_grade import merge_csv
    written = [dict(name="q5_why_avg", points=2.0)]
    col = "q5_why_avg (written, /2)"

    def row(sid, score):
        return dict(student=sid, name="", assignment="b", submission="x",
                    status="graded", score=score, possible=3.0,
                    percent=100 * score / 3, questions={"q1": (score, 3)},
                    flag=[], notes=[], error="")
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
    assert table["ann"]["total"] == "5"
    assert table["ann"]["total_possible"] == "5"
    assert table["ben"]["score"] == "2" and table["ben"]["total"] == "2"
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


GUARD_TEST = '''\
from otter.test_files import test_case

OK_FORMAT = False

name = "q1_guard"
points = 3

@test_case(points=None, hidden=False)
def test_q1_stored_reference(conv_block):
    _own_work("conv_block", conv_block)
    conv_block(3, 4)

@test_case(points=None, hidden=True)
def test_q1_patched_before(honest):
    import torch
    _own_work("honest", honest)
    assert honest(2, 3) is not None
    assert not torch.allclose(torch.zeros(1), torch.ones(1)), (
        "torch.allclose says 0 == 1")

@test_case(points=None, hidden=False)
def test_q1_patched_during(sneaky):
    _own_work("sneaky", sneaky)
    assert sneaky() == 1
'''
GUARD_CELLS = [
    "import torch\nfrom torch import nn\n\nimport d2l_densenet as dd\n\n"
    "keep = [dd.conv_block]  # a reference kept for later\n"
    "torch.allclose = lambda *a, **k: True",
    "def conv_block(i, o):\n    return keep[0](i, o)",
    "def honest(i, o):\n    return nn.Sequential(nn.Conv2d(i, o, 3))",
    "def sneaky():\n    torch.equal = lambda *a, **k: True\n    return 1",
    "import sys\n\nseen = len(sys.modules)\nprint('modules', seen)",
]


def test_check_process_guard():
    """In the checks' process: graded code that reaches the package
    through a reference it kept fails with "not your code"; a module
    attribute changed by a cell is put back before the checks (and
    flagged); one changed while a check runs fails that check; ``sys``
    is a stand-in without modules."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in GUARD_CELLS]
    from classroom import OWN_WORK
    checks = dict(tests=[dict(name="q1_guard", source=GUARD_TEST)],
                  titles={}, own_work=OWN_WORK)
    res = cg.run_checks(nb, checks, 300, SANDBOXED)
    assert res["finished"], res["stderr"]
    by_name = {c["name"]: c for c in res["checks"]}
    stored = by_name["test_q1_stored_reference"]
    assert not stored["passed"] and stored["message"].startswith(
        "conv_block is not your code: it calls "
        "d2l_densenet.blocks.conv_block"), stored
    assert by_name["test_q1_patched_before"]["passed"], by_name
    during = by_name["test_q1_patched_during"]
    assert not during["passed"] and "torch.equal" in during["message"]
    flags = "; ".join(res["flags"])
    for what in ("changes torch.allclose", "changed torch.allclose",
                 "changed torch.equal while a check ran",
                 "conv_block reached d2l_densenet.blocks.conv_block"):
        assert what in flags, (what, flags)
    assert "modules 0" in res["output"]
    assert [c["points"] for c in res["checks"]] == [1.0, 1.0, 1.0]


def _canvas(built, folder):
    """Canvas's download of A: 101 right, 102 blank then the right file
    re-uploaded (-1, a higher attachment id), 103 blank and late."""
    right = nbformat.writes(_attempt(built, "right"))
    blank = built[A]["student"].read_text(encoding="utf-8")
    folder.mkdir()
    for name, text in ((f"doejane_101_9001_{A}.ipynb", right),
                       (f"roeric_102_9002_{A}.ipynb", blank),
                       (f"roeric_102_9010_{A}-1.ipynb", right),
                       (f"smithann_LATE_103_9003_{A}.ipynb", blank)):
        (folder / name).write_text(text, encoding="utf-8")
    roster = folder.parent / "canvas-export.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,"
        f"{A} (555),Current Score\r\n"
        "    Points Possible,,,,,15,(read only)\r\n"
        "\"Doe, Jane\",101,S101,jdoe,Sec 1,,\r\n"
        "\"Roe, Eric\",102,S102,eroe,Sec 1,,\r\n"
        "\"Smith, Ann\",103,S103,asmith,Sec 2,,\r\n"
        "\"Wu, Li\",104,S104,lwu,Sec 2,,\r\n"
        "\"Student, Test\",999,,,Sec 1,,\r\n", encoding="utf-8")
    return roster


def _moodle(built, folder):
    """Moodle's download of A: 201 right, 202 a zip holding the blank
    notebook, 203 an online text and the blank notebook; the grading
    worksheet lists 204 too (Maximum Grade 30)."""
    blank = built[A]["student"]
    for sub in ("Jane Doe_201_assignsubmission_file_",
                "Eric Roe_202_assignsubmission_file_",
                "Ann Smith_203_assignsubmission_file_",
                "Ann Smith_203_assignsubmission_onlinetext_"):
        (folder / sub).mkdir(parents=True)
    nbformat.write(_attempt(built, "right"),
                   folder / "Jane Doe_201_assignsubmission_file_" /
                   f"{A}.ipynb")
    with zipfile.ZipFile(folder / "Eric Roe_202_assignsubmission_file_"
                         / "submission.zip", "w") as z:
        z.write(blank, f"{A}.ipynb")
    shutil.copyfile(blank, folder / "Ann Smith_203_assignsubmission_file_"
                    / f"{A}.ipynb")
    (folder / "Ann Smith_203_assignsubmission_onlinetext_" /
     "onlinetext.html").write_text("<p>see file</p>", encoding="utf-8")
    roster = folder.parent / "moodle-worksheet.csv"
    head = ("Identifier,Full name,Email address,Status,Grade,"
            "Maximum Grade,Grade can be changed,Last modified (submission),"
            "Last modified (grade),Feedback comments\n")
    rows = "".join(f"Participant {p},{n},{e}@uni.edu,Submitted,,30.00,Yes,"
                   f"\"Monday, 1 June 2026, 9:00 AM\",-,\n"
                   for p, n, e in ((201, "Jane Doe", "jdoe"),
                                   (202, "Eric Roe", "eroe"),
                                   (203, "Ann Smith", "asmith"),
                                   (204, "Li Wu", "lwu")))
    roster.write_text(head + rows, encoding="utf-8")
    return roster


@pytest.mark.slow
def test_canvas_and_moodle_downloads(edition, tmp_path):
    """Canvas's flat download and Moodle's participant folders, with each
    LMS's class list: every student graded once (a resubmission is the
    same student, the latest upload graded; a late one says so), the
    class list's absent student missing, and the import files with the
    LMS's columns and the totals."""
    out, built = edition
    ag = out / "autograder"
    folder = tmp_path / "canvas"
    roster = _canvas(built, folder)
    rows = {r["student"]: r for r in grade(
        folder, A, ag, roster=roster, jobs=2, export="canvas")}
    assert sorted(rows) == ["101", "102", "103", "104"]
    assert rows["101"]["name"] == "Doe, Jane"
    assert rows["101"]["score"] == rows["102"]["score"] == 15
    assert rows["102"]["submission"] == f"roeric_102_9010_{A}-1.ipynb"
    assert "graded the latest upload" in rows["102"]["notes"][0]
    assert rows["103"]["score"] == 0 and rows["103"]["late"]
    assert rows["104"]["status"] == "missing"
    with open(folder / f"canvas-import-{A}.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID",
                        "Section", f"{A} (555)"]
    assert table[1][0] == "Points Possible" and table[1][5] == "15"
    got = {r[1]: r for r in table[2:]}
    assert got["101"] == ["Doe, Jane", "101", "S101", "jdoe", "Sec 1",
                          "15"]
    assert got["103"][5] == "0" and got["104"][5] == ""
    assert "999" not in got
    # and again from the grades file alone (after typing in points)
    again = tmp_path / "again.csv"
    assert main(["export", str(folder / "grades.csv"), "--assignment", A,
                 "--to", "canvas", "--roster", str(roster),
                 "--autograders", str(ag), "--out", str(again)]) == 0
    with open(again, encoding="utf-8") as f:
        assert list(csv.reader(f)) == table

    folder = tmp_path / "moodle"
    roster = _moodle(built, folder)
    rows = {r["student"]: r for r in grade(
        folder, A, ag, roster=roster, jobs=2, export="moodle")}
    assert sorted(rows) == ["201", "202", "203", "204"]
    assert rows["201"]["name"] == "Jane Doe"
    assert rows["201"]["score"] == 15 and rows["202"]["score"] == 0
    assert rows["202"]["submission"].endswith("submission.zip")
    assert rows["203"]["status"] == "graded"
    assert rows["204"]["status"] == "missing"
    with open(folder / f"moodle-import-{A}.csv", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:6] == ["Identifier", "Full name",
                                         "Email address", "Status",
                                         "Grade", "Maximum Grade"]
        got = {r["Identifier"]: r for r in reader}
    # 15 of 15 points is 30 of the worksheet's Maximum Grade
    assert got["Participant 201"]["Grade"] == "30"
    assert got["Participant 202"]["Grade"] == "0"
    assert got["Participant 204"]["Grade"] == ""
    assert got["Participant 201"]["Last modified (submission)"] == \
        "Monday, 1 June 2026, 9:00 AM"


@pytest.mark.slow
def test_jobs_give_the_same_results(edition, graded, tmp_path):
    """One at a time gives the rows that two at a time gave."""
    out, _ = edition
    folder = tmp_path / "again"
    shutil.copytree(graded[ZH_GRADED][0], folder,
                    ignore=shutil.ignore_patterns("feedback", "*.csv"))
    rows = {r["student"]: r for r in grade(
        folder, ZH_GRADED, out / "autograder", jobs=1)}
    assert rows.keys() == graded[ZH_GRADED][1].keys()
    for sid, row in graded[ZH_GRADED][1].items():
        keys = ("status", "score", "questions", "flag")
        assert {k: rows[sid][k] for k in keys} == {k: row[k] for k in keys}
        assert [(c["name"], c["passed"], c["message"])
                for c in rows[sid]["checks"]] == [
            (c["name"], c["passed"], c["message"]) for c in row["checks"]]


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
