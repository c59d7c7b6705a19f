"""The classroom grader's parts that need no build and run no student
code: the folders of Canvas's and Moodle's downloads and their class
lists (tools/classroom_lms.py), grades files as Excel saves them, which
of several files is graded (tools/classroom_grade.py), and what reading
a submission's code flags (tools/classroom_guard.py). The grading itself
is tested in tests/test_classroom.py."""
import csv
import io
import os

import classroom_grade as cg
import classroom_lms as lms
import nbformat
import pytest
from classroom import MASTERS
from classroom_guard import inspect_code

A = "a_building_blocks"


def _nb(path, assignment=A, text="x = 1"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["otter"] = {"assignment_name": assignment}
    nb.cells = [nbformat.v4.new_code_cell(text)]
    nbformat.write(nb, path)
    return path


def test_canvas_download(tmp_path):
    """Canvas's flat folder: one student per user id, late files marked,
    a re-upload (``-1``) is the same student, the newest upload the one
    with the highest attachment id."""
    for name in (f"doejane_101_9001_{A}.ipynb",
                 f"doejane_101_9005_{A}-1.ipynb",
                 f"smithann_LATE_103_9003_{A}.ipynb",
                 f"o-brien_104_9004_{A} (1).zip"):
        _nb(tmp_path / name)
    layout, found = lms.students(tmp_path)
    assert layout == "canvas" and sorted(found) == ["101", "103", "104"]
    jane = found["101"]
    assert len(jane.files) == 2 and not jane.late
    newest = max(jane.files, key=lambda f: jane.order[f])
    assert newest.name.endswith("-1.ipynb")
    assert found["103"].late and found["103"].name == "smithann"
    path, _, notes, _ = cg._pick(jane, A, [A])
    assert path == newest and "graded the latest upload" in notes[0]
    (tmp_path / "notes.txt.ipynb").write_text("{}", encoding="utf-8")
    with pytest.raises(lms.LmsError, match="--layout folders"):
        lms.students(tmp_path, "canvas")


def test_moodle_download(tmp_path):
    """Moodle's folders: one student per participant number, the file
    and online-text folders of one participant merged."""
    for sub in ("Jane Doe_201_assignsubmission_file_",
                "Jane Doe_201_assignsubmission_onlinetext_",
                "Li Wu_204_assignsubmission_file_"):
        (tmp_path / sub).mkdir()
    _nb(tmp_path / "Jane Doe_201_assignsubmission_file_" / f"{A}.ipynb")
    layout, found = lms.students(tmp_path)
    assert layout == "moodle" and sorted(found) == ["201", "204"]
    assert found["201"].name == "Jane Doe" and len(found["201"].files) == 1
    assert found["204"].files == []
    _, _, _, error = cg._pick(found["204"], A, [A])
    assert error == "no submission (empty folder)"


def test_flat_folder_copies(tmp_path):
    """In a flat folder, copies made by Jupyter, browsers and Canvas
    belong to the student whose id the file is named by."""
    for name in ("alice.ipynb", "alice (1).ipynb", "bob-Copy1.ipynb",
                 "carol-1.ipynb", "dan copy.zip", "eve-Copy2 (3).ipynb"):
        _nb(tmp_path / name)
    (tmp_path / "frank").mkdir()
    _nb(tmp_path / "frank" / f"{A}.ipynb")
    layout, found = lms.students(tmp_path)
    assert layout == "folders"
    assert sorted(found) == ["alice", "bob", "carol", "dan", "eve",
                             "frank"]
    assert len(found["alice"].files) == 2
    assert lms.canonical_stem("a_building_blocks-blank.ipynb") == \
        "a_building_blocks-blank"


def test_same_timestamp_prefers_the_original(tmp_path):
    """Two files of one student with the same time (as after unzipping):
    the one that is not a copy is graded, and the note says "same
    timestamp", not "newest"; with different times the newest."""
    (tmp_path / "s").mkdir()
    blank = _nb(tmp_path / "s" / f"{A}.ipynb")
    done = _nb(tmp_path / "s" / f"{A} (1).ipynb", text="y = 2")
    for f in (blank, done):
        os.utime(f, (1e9, 1e9))
    student = lms.students(tmp_path)[1]["s"]
    path, _, notes, _ = cg._pick(student, A, [A])
    assert path == blank
    assert "same timestamp" in notes[0] and "newest" not in notes[0]
    os.utime(done, (2e9, 2e9))
    path, _, notes, _ = cg._pick(student, A, [A])
    assert path == done and "graded the newest" in notes[0]


def test_class_lists(tmp_path):
    """Canvas's gradebook export (its "Points Possible" row and test
    student left out) and Moodle's grading worksheet are read as class
    lists and matched by the column the folder's ids are in."""
    canvas = tmp_path / "canvas.csv"
    canvas.write_text(
        "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section\r\n"
        "    Points Possible,,,,\r\n\"Doe, Jane\",101,S1,jdoe,A\r\n"
        "\"Student, Test\",999,,,A\r\n", encoding="utf-8")
    roster = lms.read_roster(canvas)
    assert roster.kind == "canvas" and len(roster.table.rows) == 1
    lms.match_roster(roster, "canvas", ["101"])
    assert roster.key == "ID" and roster.name("101") == "Doe, Jane"
    lms.match_roster(roster, "folders", ["jdoe"])
    assert roster.key == "SIS Login ID" and "jdoe" in roster.entries
    moodle = tmp_path / "moodle.csv"
    moodle.write_text("Identifier;Full name;Email address;Grade\n"
                      "Participant 201;Jane Doe;j@x.org;\n",
                      encoding="utf-8")
    roster = lms.read_roster(moodle)
    assert roster.kind == "moodle"
    lms.match_roster(roster, "moodle", ["201"])
    assert roster.name("201") == "Jane Doe"
    plain = tmp_path / "plain.csv"
    plain.write_text("email,name\nann@x.org,Ann\n", encoding="utf-8")
    roster = lms.read_roster(plain)
    lms.match_roster(roster, "folders", ["ann@x.org"])
    assert roster.entries.keys() == {"ann@x.org"}
    empty = tmp_path / "empty.csv"
    empty.write_text("student,name\n", encoding="utf-8")
    with pytest.raises(lms.LmsError, match="no students"):
        lms.read_roster(empty)


@pytest.mark.parametrize("variant", ["excel", "plain", "tabs"])
def test_grades_file_variants(tmp_path, variant):
    """Grades files as Excel saves them (BOM, ';', CRLF), plain and with
    tabs: read alike, written back the same way, totals recomputed."""
    delim, bom, end = {"excel": (";", True, "\r\n"),
                       "plain": (",", False, "\n"),
                       "tabs": ("\t", False, "\n")}[variant]
    col = "q5_why (written, /2)"
    lines = [["student", "assignment", "score", "possible", col, "extra"],
             ["ann", "b", "3", "3", "1,5" if delim == ";" else "1.5", "k"]]
    buf = io.StringIO()
    csv.writer(buf, delimiter=delim, lineterminator=end).writerows(lines)
    text = buf.getvalue()
    path = tmp_path / "grades.csv"
    path.write_bytes((("\ufeff" if bom else "") + text).encode("utf-8"))
    table = lms.read_table(path, "--csv")
    assert table.delimiter == delim and table.bom == bom
    assert table.rows[0]["extra"] == "k"
    cg.merge_csv([], [dict(name="q5_why", points=2.0)], path)
    again = lms.read_table(path, "--csv")
    assert again.delimiter == delim and again.bom == bom
    row = again.rows[0]
    assert row["total"] == "4.5" and row["total_possible"] == "5"
    assert row["extra"] == "k" and row[col] in ("1,5", "1.5")


def test_exports_without_class_list(tmp_path):
    """Without a class list the import files still carry the LMS's
    columns (Canvas's five identity columns; Moodle's Identifier)."""
    rows = [dict(student="101", name="Doe, Jane", total="12"),
            dict(student="102", name="Roe, Eric", total="")]
    path, _ = lms.export("canvas", rows, tmp_path / "c.csv", A, 15)
    with open(path, encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == lms.CANVAS_ID_COLUMNS + [A]
    assert table[2][:2] == ["Doe, Jane", "101"] and table[2][5] == "12"
    path, notes = lms.export("moodle", rows, tmp_path / "m.csv", A, 15)
    with open(path, encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert table[0]["Identifier"] == "Participant 101"
    assert table[0]["Grade"] == "12" and table[1]["Grade"] == ""
    assert notes


#: Snippets and what reading them must flag.
ROUTES = [
    ("import importlib\nimportlib.import_module('x')", "imports importlib"),
    ("m = __import__('math')", "calls __import__"),
    ("import d2l_densenet as dd\nf = getattr(dd, 'conv_block')",
     "calls getattr on the module dd"),
    ("import sys\nm = sys.modules['d2l_densenet']",
     "takes a module out of sys.modules"),
    ("import torch\nm = torch.sys.modules.get('x')",
     "reaches .sys through another module"),
    ("name = 'd2l_' + 'densenet'\nx = 'd2l_densenet'",
     "names d2l_densenet in a string"),
    ("import otter.test_files.exception_test as et",
     "imports otter.test_files.exception_test"),
    ("import otter\nr = otter.test_files", "uses otter.test_files"),
    ("import torch\ntorch.allclose = lambda *a: True",
     "changes torch.allclose"),
    ("from torch import nn\nnn.Module.__call__ = None",
     "changes nn.Module.__call__"),
    ("x = ().__class__.__base__.__subclasses__()", "uses .__subclasses__"),
    ("def f():\n    return f.__globals__", "uses .__globals__"),
    ("exec('1')", "runs code from a string (exec)"),
    ("import gc", "imports gc, which grading does not allow"),
    ("import subprocess", "imports subprocess"),
    ("from torch import sys as s", "imports torch.sys"),
    ("x = open('/etc/passwd').read()", "opens files"),
    ("f = getattr(object, name)", "calls getattr with a computed name"),
    ("class Yes(int):\n    def __eq__(self, other):\n        return True",
     "defines Yes.__eq__"),
    ("Yes = type('Yes', (), {})", "creates a class with type("),
]


@pytest.mark.parametrize("code, reason", ROUTES,
                         ids=[r for _, r in ROUTES])
def test_reading_the_code_flags(code, reason):
    flags = inspect_code([(3, code)])
    assert any(f.startswith(reason) and "(cell 3, line" in f
               for f in flags), flags


def _student_code(master):
    """The code a student of ``master`` runs: the handout's cells with
    the model solution, without the checks and the Colab cell."""
    nb = nbformat.read(master, as_version=4)
    out, in_tests = [], False
    for i, c in enumerate(nb.cells, 1):
        first = c.source.strip().splitlines()[0] if c.source.strip() else ""
        if c.cell_type == "raw":
            if first in ("# BEGIN TESTS", "# END TESTS"):
                in_tests = first == "# BEGIN TESTS"
            continue
        if c.cell_type == "code" and not in_tests and "otter_ignore" not \
                in c.metadata.get("tags", []):
            out.append((i, c.source))
    return out


@pytest.mark.parametrize("master", sorted(MASTERS.glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_honest_code_is_not_flagged(master):
    """The handouts' own cells and the model solutions (which import the
    package plainly, inherit from it where allowed and use its measuring
    tools) give no flag."""
    cells = _student_code(master)
    assert len(cells) >= 5
    assert inspect_code(cells) == []


def test_grades_go_to_a_new_file_when_the_old_cannot_be_written(
        tmp_path, monkeypatch, capsys):
    """If the grades file cannot be written (open in Excel on Windows,
    a full disk), the new rows are written next to it, not lost."""
    path = tmp_path / "grades.csv"
    path.write_text("student,comment\nann,ok\n", encoding="utf-8")
    real = lms.write_table

    def locked(p, table):
        if p == path:
            raise PermissionError(f"{p} is locked")
        real(p, table)
    monkeypatch.setattr(lms, "write_table", locked)
    row = dict(student="ann", name="", assignment=A, submission="x",
               status="graded", score=2.0, possible=3.0, percent=66.7,
               questions={"q1": (2.0, 3.0)}, flag=[], notes=[], error="")
    out = cg.merge_csv([row], [], path)
    assert out != path and out.name.startswith("grades-new-")
    table = {r["student"]: r for r in lms.read_table(out, "x").rows}
    assert table["ann"]["score"] == "2" and table["ann"]["comment"] == "ok"
    assert str(out) in capsys.readouterr().err
