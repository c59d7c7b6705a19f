"""Folders of submissions, class lists and grade imports of the LMSs
(tools/classroom_grade.py).

Layouts of a folder of submissions (``--layout``, detected by default):

* ``folders``: one sub-folder per student, named by the student's id;
  or, flat, one file per student named by the id (``alice.ipynb``;
  ``alice (1).ipynb``, ``alice-Copy1.ipynb`` and ``alice-1.ipynb`` are
  alice's too);
* ``canvas``: Canvas's *Download Submissions*, one flat folder of
  ``doejane_12345_67890_NAME.ipynb`` (sortable name, Canvas user id,
  attachment id, the file name as uploaded; ``doejane_LATE_12345_...``
  when late; a re-uploaded file ends in ``-1``, ``-2``): the student is
  the user id, the newest upload the one with the highest attachment id;
* ``moodle``: Moodle's *Download all submissions*, one folder per
  participant, ``Jane Doe_12345_assignsubmission_file_`` (12345: the
  participant number of the assignment's grading worksheet).

Class lists (``--roster``), detected by their header:

* Canvas's gradebook export (*Grades → Export*): ``Student``, ``ID``,
  ``SIS User ID``, ``SIS Login ID``, ``Section``, a "Points Possible"
  row; matched by ``ID`` to a Canvas folder, else by whichever column
  the folder names are;
* Moodle's grading worksheet (assignment → *Download grading
  worksheet*): ``Identifier`` ("Participant 12345"), ``Full name``,
  ``Email address``, ``Grade``, ``Maximum Grade``, ...; matched by the
  participant number to a Moodle folder;
* any CSV with a ``student`` (or ``id``, ``username``, ``login``,
  ``email``) column and an optional ``name``.

Exports (``--export canvas|moodle``): Canvas's import format (the five
identity columns, a "Points Possible" row and one column for the
assignment) and Moodle's grading worksheet with ``Grade`` filled in,
each with the total (checks plus written answers).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path


class LmsError(ValueError):
    """A folder, class list or grades file that cannot be read."""


_SUFFIXES = (".ipynb", ".zip")
_IGNORE_DIRS = {"feedback", "__MACOSX"}
#: Copy suffixes of Jupyter, browsers, file managers, Canvas.
_COPY = re.compile(r"(?:-Copy\d+| ?\(\d+\)| copy(?: \d+)?|-\d{1,3})+$",
                   re.I)
_CANVAS = re.compile(r"^(?P<login>[^_]+?)(?P<late>_late)?_(?P<uid>\d+)_"
                     r"(?P<att>\d+)_(?P<file>.+)$", re.I)
_MOODLE = re.compile(r"^(?P<name>.+)_(?P<pid>\d+)_assign(?:submission|"
                     r"feedback)_(?P<plugin>[a-z]+)_?$", re.I)
LAYOUTS = ("auto", "folders", "canvas", "moodle")
CANVAS_ID_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID",
                     "Section"]


def canonical_stem(path: Path | str) -> str:
    """A file name without its extension and copy suffixes:
    ``a-Copy1.ipynb``, ``a (1).ipynb``, ``a-1.ipynb`` -> ``a``."""
    stem = Path(path).stem
    return _COPY.sub("", stem) or stem


def is_copy(path: Path | str) -> bool:
    """Whether a file name carries a copy suffix."""
    return canonical_stem(path) != Path(path).stem


@dataclass
class Student:
    """One student's files in a folder of submissions."""
    sid: str
    files: list[Path] = field(default_factory=list)
    name: str = ""
    late: bool = False
    #: sort key per file: higher is newer (Canvas: attachment id)
    order: dict = field(default_factory=dict)
    folder: bool = False  # a sub-folder of its own (empty: no files)


def _visible(p: Path, top: Path) -> bool:
    return not any(part.startswith(".") or part in _IGNORE_DIRS
                   for part in p.relative_to(top).parts)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in _SUFFIXES and _visible(p, folder))


def detect(folder: Path) -> str:
    """The layout of a folder of submissions."""
    dirs = [p for p in folder.iterdir() if p.is_dir()
            and _visible(p, folder)]
    files = [p for p in folder.iterdir() if p.is_file()
             and p.suffix.lower() in _SUFFIXES]
    if dirs and sum(bool(_MOODLE.match(d.name)) for d in dirs) \
            >= max(1, len(dirs) // 2 + 1):
        return "moodle"
    if files and sum(bool(_CANVAS.match(f.name)) for f in files) \
            >= max(1, len(files) // 2 + 1) and not dirs:
        return "canvas"
    return "folders"


def students(folder: Path, layout: str = "auto") -> tuple[str, dict]:
    """(layout, ``{student id: Student}``) of a folder of submissions."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LmsError(f"{folder} is not a folder of submissions")
    if layout not in LAYOUTS:
        raise LmsError(f"--layout must be one of {', '.join(LAYOUTS)}, "
                       f"got {layout!r}")
    if layout == "auto":
        layout = detect(folder)
    out: dict[str, Student] = {}
    if layout == "canvas":
        for f in sorted(folder.iterdir()):
            if not (f.is_file() and f.suffix.lower() in _SUFFIXES):
                continue
            m = _CANVAS.match(f.name)
            if not m:
                raise LmsError(
                    f"{f.name}: not a file name of Canvas's download "
                    f"(login_userid_attachmentid_file, e.g. "
                    f"doejane_12345_67890_a_building_blocks.ipynb); grade "
                    f"this folder with --layout folders")
            s = out.setdefault(m["uid"], Student(m["uid"],
                                                 name=m["login"]))
            s.files.append(f)
            s.order[f] = (int(m["att"]), not is_copy(m["file"]))
            s.late = s.late or bool(m["late"])
        return layout, out
    if layout == "moodle":
        for d in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not _visible(d, folder):
                continue
            m = _MOODLE.match(d.name)
            if not m:
                raise LmsError(
                    f"{d.name}: not a folder name of Moodle's download "
                    f"(Full Name_12345_assignsubmission_file_); grade "
                    f"this folder with --layout folders")
            s = out.setdefault(m["pid"], Student(m["pid"],
                                                 name=m["name"]))
            s.folder = True
            s.files += _files_under(d)
        return layout, out
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if _visible(sub, folder):
            out[sub.name] = Student(sub.name, _files_under(sub),
                                    folder=True)
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() in _SUFFIXES:
            sid = canonical_stem(f)
            s = out.setdefault(sid, Student(sid))
            s.files.append(f)
    return layout, out


# --- CSV files: Excel's variants ----------------------------------------

@dataclass
class Table:
    """A CSV file as read: its columns, rows and how it was written (so
    that it can be written back the same way)."""
    columns: list[str]
    rows: list[dict]
    delimiter: str = ","
    bom: bool = False


def read_table(path: Path, what: str) -> Table:
    """A CSV file with a header row, as Excel and the LMSs save it: UTF-8
    with or without a byte-order mark, ``,``, ``;`` or tab between
    fields, any line ends."""
    path = Path(path)
    if not path.is_file():
        raise LmsError(f"{what} {path}: no such file")
    raw = path.read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    bom = raw.startswith(b"\xef\xbb\xbf")
    first = next((line for line in text.splitlines() if line.strip()), "")

    def fields(d):
        return [f.strip().lower() for f in next(csv.reader([first],
                                                           delimiter=d))]
    # the delimiter that gives a known first column, else the most fields
    known = ("student", "identifier", "id")
    delimiter = max((",", ";", "\t"), key=lambda d: (
        any(f in known for f in fields(d)), len(fields(d))))
    reader = csv.DictReader(io.StringIO(text, newline=""),
                            delimiter=delimiter)
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = columns
        rows = [{k: (v or "").strip() if isinstance(v, str) else ""
                 for k, v in r.items() if k is not None} for r in reader]
    except csv.Error as e:
        raise LmsError(f"{what} {path}: not a CSV file ({e})") from e
    return Table(columns, rows, delimiter, bom)


def write_table(path: Path, table: Table) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="",
              encoding="utf-8-sig" if table.bom else "utf-8") as f:
        w = csv.DictWriter(f, fieldnames=table.columns,
                           delimiter=table.delimiter,
                           extrasaction="ignore")
        w.writeheader()
        for r in table.rows:
            w.writerow({c: r.get(c, "") for c in table.columns})


# --- class lists --------------------------------------------------------

@dataclass
class Roster:
    kind: str  # "canvas", "moodle" or "plain"
    table: Table
    key: str = ""  # the column matched to the folder's student ids
    entries: dict = field(default_factory=dict)  # id -> row

    def name(self, sid: str) -> str:
        row = self.entries.get(sid, {})
        for c in ("Student", "Full name", "name", "Name"):
            if row.get(c):
                return row[c]
        return ""


def _participant(value: str) -> str:
    m = re.search(r"(\d+)\s*$", value or "")
    return m.group(1) if m else (value or "").strip()


def read_roster(path: Path) -> Roster:
    """A class list (see the module docstring for the formats)."""
    table = read_table(path, "--roster")
    cols = {c.lower(): c for c in table.columns}
    if {"id", "sis login id"} <= cols.keys() and "student" in cols:
        rows = [r for r in table.rows
                if r.get("ID") and "points possible" not in
                r.get("Student", "").lower()
                and r.get("Student") != "Student, Test"]
        kind = "canvas"
    elif {"identifier", "full name"} <= cols.keys():
        rows = [r for r in table.rows if r.get(cols["identifier"])]
        kind = "moodle"
    else:
        rows = table.rows
        kind = "plain"
    if not rows or not table.columns:
        raise LmsError(f"--roster {path}: no students (a CSV with a "
                       f"header row, e.g. 'student,name', or an LMS's "
                       f"class list is expected)")
    table.rows = rows
    return Roster(kind, table)


def match_roster(roster: Roster, layout: str, ids) -> None:
    """Choose the roster's column that holds the folder's student ids
    and index its rows by it."""
    t, ids = roster.table, set(ids)
    cols = {c.lower(): c for c in t.columns}
    if roster.kind == "canvas":
        candidates = ["ID"] if layout == "canvas" else [
            "SIS Login ID", "ID", "SIS User ID"] + [
            c for c in t.columns if "mail" in c.lower()]
    elif roster.kind == "moodle":
        candidates = [cols["identifier"]] if layout == "moodle" else [
            c for c in (cols.get("email address"), cols.get("id number"),
                        cols.get("username"), cols["identifier"]) if c]
    else:
        candidates = [cols[c] for c in ("student", "id", "username",
                                        "login", "email") if c in cols]
        candidates = candidates or [t.columns[0]]

    def value(row, col):
        v = row.get(col, "")
        return _participant(v) if roster.kind == "moodle" and \
            col == cols.get("identifier") else v

    best = max(candidates, key=lambda c: sum(
        value(r, c) in ids for r in t.rows))
    roster.key = best
    roster.entries = {}
    for r in t.rows:
        v = value(r, best)
        if v:
            roster.entries[v] = r


# --- exports ------------------------------------------------------------

def _number(x: float) -> str:
    return f"{round(x, 2):g}"


def export(kind: str, rows: list[dict], path: Path, assignment: str,
           possible: float, roster: Roster | None = None,
           column: str | None = None) -> tuple[Path, list[str]]:
    """Write the import file of ``kind`` ("canvas" or "moodle"):
    ``rows`` are the grades file's rows (``student``, ``name``,
    ``status``, ``total``); a student without a total gets an empty
    grade (the LMS leaves it as it is). Returns the path and notes."""
    notes = []
    totals = {r["student"]: r.get("total", "") for r in rows}
    if kind == "canvas":
        if roster is not None and roster.kind != "canvas":
            notes.append("the class list is not Canvas's export: the "
                         "file has the student ids in 'ID' only")
        col = column
        if not col and roster is not None:
            col = next((c for c in roster.table.columns if assignment
                        .lower() in c.lower()), None)
        col = col or assignment
        out = Table(CANVAS_ID_COLUMNS + [col], [])
        out.rows.append(dict(zip(out.columns, ["Points Possible", "", "",
                                               "", "", _number(possible)],
                                 strict=True)))
        if roster is not None and roster.kind == "canvas":
            for sid, r in roster.entries.items():
                row = {c: r.get(c, "") for c in CANVAS_ID_COLUMNS}
                row[col] = totals.get(sid, "")
                out.rows.append(row)
            missing = sorted(set(totals) - set(roster.entries))
            if missing:
                notes.append(f"not in the class list, left out: "
                             f"{', '.join(missing)}")
        else:
            for r in rows:
                out.rows.append({"Student": r.get("name", ""),
                                 "ID": r["student"], col: r.get("total")})
        write_table(path, out)
        return Path(path), notes
    if kind != "moodle":
        raise LmsError(f"--export must be canvas or moodle, got {kind!r}")
    if roster is not None and roster.kind == "moodle":
        t = roster.table
        cols = {c.lower(): c for c in t.columns}
        grade, top = cols.get("grade", "Grade"), cols.get("maximum grade")
        if grade not in t.columns:
            t.columns.append(grade)
        out = Table(list(t.columns), [], t.delimiter, t.bom)
        scaled = False
        for r in t.rows:
            sid = _participant(r.get(cols["identifier"], ""))
            row = dict(r)
            total = totals.get(sid, "")
            if total != "" and top and r.get(top):
                try:
                    most = float(r[top].replace(",", "."))
                except ValueError:
                    most = possible
                if abs(most - possible) > 1e-9 and possible:
                    total = _number(float(total) * most / possible)
                    scaled = True
            row[grade] = total
            out.rows.append(row)
        if scaled:
            notes.append(f"grades scaled from {_number(possible)} points "
                         f"to the worksheet's Maximum Grade")
        write_table(path, out)
        return Path(path), notes
    out = Table(["Identifier", "Full name", "Grade", "Maximum Grade"], [])
    for r in rows:
        sid = r["student"]
        ident = f"Participant {sid}" if sid.isdigit() else sid
        out.rows.append({"Identifier": ident, "Full name": r.get("name"),
                         "Grade": r.get("total", ""),
                         "Maximum Grade": _number(possible)})
    if roster is None:
        notes.append("no grading worksheet given (--roster): Moodle "
                     "matches 'Identifier' to its participants")
    write_table(path, out)
    return Path(path), notes
