"""Grading a class's submissions to one assignment (tools/classroom.py
grade) and collecting its written answers (tools/classroom.py answers).

A folder of submissions holds one sub-folder per student (the folder's
name is the student's id) or, flat, one file per student (the file name
without ``.ipynb``/``.zip`` is the id). ``grade`` writes one row per
student: graded, an error (wrong assignment, unreadable file, time limit,
no submission) or missing (on the roster, no folder); it merges the rows
into an existing CSV, keeping the columns teachers fill in (the written
answers' points, comments), and writes a feedback file per student with
every check's message, public and hidden.
"""
from __future__ import annotations

import csv
import html
import json
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
import zipfile
from pathlib import Path


class GradeError(RuntimeError):
    """Bad input to grade or answers (a folder, a roster, a name)."""


#: CSV columns written by ``grade`` (then one per question with checks,
#: then one per written answer, then these two).
HEAD = ["student", "name", "assignment", "submission", "status",
        "score", "possible", "percent"]
TAIL = ["flags", "error"]
#: Name variants that Jupyter, Colab and browsers give to a copy.
_COPY = re.compile(r"^(?P<stem>.*?)(?:-Copy\d+| ?\(\d+\)| copy(?: \d+)?)*$")
_IGNORE_DIRS = {"feedback", "__MACOSX"}


# --- reading submissions --------------------------------------------------

def read_notebook(path: Path):
    """The notebook of a submission (``.ipynb``, or a ``.zip`` holding
    one, as ``grader.export`` writes); GradeError naming the file and
    what is wrong with it."""
    import nbformat
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".ipynb")
                         and not n.startswith("__MACOSX")]
                if len(names) != 1:
                    raise GradeError(
                        f"{path.name}: a zip submission must hold one "
                        f".ipynb, found {names or 'none'}")
                text = z.read(names[0]).decode("utf-8")
            return nbformat.reads(text, as_version=4)
        return nbformat.read(path, as_version=4)
    except GradeError:
        raise
    except Exception as e:  # truncated JSON, not UTF-8, bad zip, ...
        raise GradeError(
            f"{path.name}: not a readable notebook (truncated or "
            f"corrupted: {type(e).__name__}); ask the student for the "
            f"file again") from e


def assignment_of(nb, path: Path, known) -> str | None:
    """The assignment a notebook belongs to: its otter metadata, else a
    known name in its file name; None if neither says."""
    name = nb.metadata.get("otter", {}).get("assignment_name")
    if name:
        return name
    hits = sorted((n for n in known if n in path.name), key=len)
    return hits[-1] if hits else None


def canonical_stem(path: Path) -> str:
    """The file name without a copy suffix: ``a-Copy1.ipynb``,
    ``a (1).ipynb`` -> ``a``."""
    return _COPY.match(path.stem).group("stem")


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".ipynb", ".zip")
        and not any(part.startswith(".") or part in _IGNORE_DIRS
                    for part in p.relative_to(folder).parts))


def by_student(folder: Path) -> dict[str, list[Path]]:
    """``{student id: submission files}``: a sub-folder per student (its
    files at any depth; an empty sub-folder gives an empty list), or a
    file per student at the top."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradeError(f"{folder} is not a folder of submissions")
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name.startswith(".") or sub.name in _IGNORE_DIRS:
            continue
        out[sub.name] = _files(sub)
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in (".ipynb", ".zip"):
            out.setdefault(f.stem, []).append(f)
    return out


def read_roster(path: Path) -> dict[str, str]:
    """``{student id: name}`` from a CSV with a header row: the id in a
    column ``student`` (or ``id``, ``username``, ``login``, ``email``;
    else the first column), the name in ``name`` if there is one."""
    path = Path(path)
    if not path.is_file():
        raise GradeError(f"--roster {path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise GradeError(f"--roster {path}: no students (a CSV with a "
                         f"header row, e.g. 'student,name', is expected)")
    cols = {c.strip().lower(): c for c in rows[0] if c}
    key = next((cols[c] for c in ("student", "id", "username", "login",
                                  "email") if c in cols),
               next(iter(rows[0])))
    name = cols.get("name")
    roster = {}
    for r in rows:
        sid = (r.get(key) or "").strip()
        if sid:
            roster[sid] = (r.get(name) or "").strip() if name else ""
    return roster


# --- grading one submission, in a child process with a time limit ---------

def _grade_child(sub: str, zip_path: str, out: str) -> None:
    os.setsid()  # the kernel joins this group: one kill stops both
    import logging
    logging.getLogger("otter").setLevel(logging.WARNING)
    from otter.api import grade_submission
    res = grade_submission(sub, zip_path, quiet=True)
    checks = []
    for q in res.test_files:
        for tcr in res.get_result(q).test_case_results:
            checks.append(dict(
                question=q, name=tcr.test_case.name,
                hidden=bool(tcr.test_case.hidden), passed=bool(tcr.passed),
                points=float(tcr.test_case.points or 0),
                message=(tcr.message or "").strip()))
    questions = {q: [float(res.get_result(q).score),
                     float(res.get_result(q).possible)]
                 for q in res.test_files}
    Path(out).write_text(json.dumps(dict(
        questions=questions, checks=checks, score=float(res.total),
        possible=float(res.possible))), encoding="utf-8")


def grade_one(path: Path, zip_path: Path, name: str,
              timeout: float) -> dict:
    """Grade one submission with otter (no Docker), as ``NAME.ipynb``
    (the file name the notebook expects), in a child process that is
    stopped after ``timeout`` seconds. Returns ``{"questions", "checks",
    "score", "possible"}``; GradeError if it cannot be graded."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    if fork:  # imported once here, not once per child
        import otter.api  # noqa: F401
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / f"{name}{path.suffix}"
        shutil.copyfile(path, sub)
        out = Path(tmp) / "result.json"
        proc = ctx.Process(target=_grade_child,
                           args=(str(sub), str(zip_path), str(out)))
        proc.start()
        proc.join(timeout)
        if proc.is_alive():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                proc.kill()
            proc.join()
            raise GradeError(
                f"{path.name}: stopped after the time limit of "
                f"{timeout:g} s (an endless loop or a very slow cell?); "
                f"rerun with a larger --timeout if it needs longer")
        if not out.exists():
            raise GradeError(f"{path.name}: otter could not grade it "
                             f"(exit code {proc.exitcode})")
        return json.loads(out.read_text(encoding="utf-8"))


# --- the grade command ----------------------------------------------------

def written_questions(autograders: Path, name: str) -> list[dict]:
    """The written answers of assignment ``name`` (``NAME-written.json``
    next to its autograder zip, written by the build)."""
    path = Path(autograders) / f"{name}-written.json"
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def possible_points(zip_path: Path) -> float:
    """The points of an autograder zip's checks (its tests' ``points =``
    lines)."""
    total = 0.0
    with zipfile.ZipFile(zip_path) as z:
        for n in z.namelist():
            if n.startswith("tests/") and n.endswith(".py"):
                m = re.search(r"^points = ([\d.]+)$",
                              z.read(n).decode("utf-8"), re.M)
                total += float(m.group(1)) if m else 0.0
    return total


def _written_col(q: dict) -> str:
    return f"{q['name']} (written, /{q['points']:g})"


def _pick(sid: str, files: list[Path], name: str, known) -> tuple:
    """(the file to grade or None, flags, error) for one student."""
    if not files:
        return None, [], "no submission (empty folder)"
    mine, other, broken = [], [], []
    for f in files:
        try:
            nb = read_notebook(f)
        except GradeError as e:
            broken.append((f, str(e)))
            continue
        which = assignment_of(nb, f, known)
        if which in (None, name):
            mine.append(f)
        else:
            other.append((f, which))
    flags = [f"ignored {f.name}: assignment {w}" for f, w in other]
    flags += [f"ignored {e}" for _, e in broken]
    if not mine:
        if broken and not other:
            return None, [], broken[0][1]
        wrong = "; ".join(f"{f.name} is assignment {w}" for f, w in other)
        return None, [e for _, e in broken], (
            f"wrong assignment: {wrong}, not {name}; nothing of {name} "
            f"to grade")
    mine.sort(key=lambda p: (p.stat().st_mtime, p.name))
    if len(mine) > 1:
        flags.insert(0, "duplicate: " + ", ".join(p.name for p in mine)
                     + f"; graded the newest, {mine[-1].name}")
    return mine[-1], flags, ""


def grade(folder: Path, name: str, autograders: Path,
          csv_path: Path | None = None, roster: Path | None = None,
          timeout: float = 600, feedback: Path | None = None) -> list[dict]:
    """Grade the submissions to assignment ``name`` under ``folder``;
    print one row per student and a total; merge the rows into
    ``csv_path`` (default ``folder/grades.csv``); write a feedback file
    per student into ``feedback`` (default ``folder/feedback``). Returns
    the rows: ``student``, ``name``, ``submission``, ``status`` ("graded",
    "error", "missing"), ``score`` and ``percent`` (None unless graded),
    ``possible`` (the checks' points),
    ``questions`` ({q: (score, possible)}), ``checks`` (every check's
    question, name, hidden, passed, message), ``flags``, ``error``."""
    folder, autograders = Path(folder), Path(autograders)
    zips = {p.name[:-len("-autograder.zip")]: p
            for p in autograders.glob("*-autograder.zip")}
    if not zips:
        raise GradeError(
            f"no autograder zips (*-autograder.zip) in {autograders}; run "
            f"`make classroom` (or tools/classroom.py build) first")
    if name not in zips:
        raise GradeError(f"--assignment {name!r}: no {name}-autograder.zip"
                         f" in {autograders}; the assignments there are "
                         f"{', '.join(sorted(zips))}")
    if timeout <= 0:
        raise GradeError(f"--timeout must be a positive number of seconds,"
                         f" got {timeout:g}")
    names = read_roster(roster) if roster else {}
    students = by_student(folder)
    for sid in names:
        students.setdefault(sid, None)
    if not students:
        raise GradeError(f"no submissions in {folder} (one sub-folder "
                         f"per student, or one .ipynb/.zip per student)")
    written = written_questions(autograders, name)
    points = possible_points(zips[name])
    feedback = Path(feedback) if feedback else folder / "feedback"
    rows = []
    for i, (sid, files) in enumerate(sorted(students.items()), 1):
        row = dict(student=sid, name=names.get(sid, ""), assignment=name,
                   submission="", status="error", score=None,
                   possible=points, percent=None, questions={}, checks=[],
                   flags=[], error="")
        if roster and sid not in names:
            row["flags"].append("not on the roster")
        start = time.perf_counter()
        if files is None:
            row.update(status="missing", error="no submission (on the "
                       "roster, no folder or file)")
        else:
            path, flags, error = _pick(sid, files, name, sorted(zips))
            row["flags"] += flags
            row["error"] = error
            if path is not None:
                row["submission"] = str(path.relative_to(folder))
                print(f"[{i}/{len(students)}] grading {sid}: "
                      f"{row['submission']} ...", flush=True)
                try:
                    res = grade_one(path, zips[name], name, timeout)
                    row.update(status="graded", score=res["score"],
                               possible=res["possible"],
                               questions={q: tuple(v) for q, v in
                                          res["questions"].items()},
                               checks=res["checks"])
                    row["percent"] = (100 * row["score"]
                                      / (row["possible"] or 1))
                except GradeError as e:
                    row["error"] = str(e)
        rows.append(row)
        _print_row(row, time.perf_counter() - start)
        write_feedback(row, written, feedback)
    print_total(rows)
    csv_path = Path(csv_path) if csv_path else folder / "grades.csv"
    merge_csv(rows, written, csv_path)
    print(f"wrote {csv_path} and {len(rows)} feedback file(s) in "
          f"{feedback}")
    return rows


def _fmt(x: float) -> str:
    return f"{x:g}"


def _print_row(row: dict, seconds: float) -> None:
    flags = f"  [{'; '.join(row['flags'])}]" if row["flags"] else ""
    if row["status"] != "graded":
        print(f"    {row['student']}: {row['status'].upper()} "
              f"{row['error']}{flags}", flush=True)
        return
    qs = ", ".join(f"{q.split('_')[0]} {_fmt(s)}/{_fmt(p)}"
                   for q, (s, p) in row["questions"].items())
    print(f"    {row['student']:<24} {_fmt(row['score']):>5}/"
          f"{_fmt(row['possible']):<5} {row['percent']:5.1f}%  ({qs}; "
          f"{seconds:.0f} s){flags}", flush=True)


def print_total(rows: list[dict]) -> None:
    ok = [r for r in rows if r["status"] == "graded"]
    bad = [r for r in rows if r["status"] == "error"]
    missing = [r for r in rows if r["status"] == "missing"]
    mean = sum(r["percent"] for r in ok) / len(ok) if ok else 0.0
    print(f"total: {len(rows)} student(s): {len(ok)} graded (mean "
          f"{mean:.1f}% of the checks' points), {len(bad)} error(s), "
          f"{len(missing)} missing", flush=True)
    for r in bad + missing:
        print(f"    check {r['student']}: {r['error']}", flush=True)


def merge_csv(rows: list[dict], written: list[dict], path: Path) -> None:
    """Write the rows into ``path``, one per student; rows and columns
    already there (the written answers' points a teacher typed in, extra
    columns) are kept; the graded columns of the students graded now are
    replaced."""
    questions = sorted({q for r in rows for q in r["questions"]})
    wcols = [_written_col(q) for q in written]
    old_rows, old_cols = [], []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            old_cols = list(reader.fieldnames or [])
            old_rows = list(reader)
        if old_cols and "student" not in old_cols:
            raise GradeError(
                f"{path}: not a grades file of this tool (no 'student' "
                f"column); pass another --csv or move it away")
        assignments = {r.get("assignment") for r in old_rows} - {"", None}
        if rows and assignments - {rows[0]["assignment"]}:
            raise GradeError(
                f"{path} holds grades of {sorted(assignments)}, not "
                f"{rows[0]['assignment']}: use one CSV per assignment "
                f"(--csv)")
        questions = sorted(set(questions) | {
            c for c in old_cols if re.match(r"q\d", c) and c not in wcols})
    mine = HEAD + questions + wcols + TAIL
    extra = [c for c in old_cols if c not in mine]
    cols = HEAD + questions + wcols + extra + TAIL
    table = {r["student"]: dict(r) for r in old_rows}
    for r in rows:
        graded = r["status"] == "graded"
        new = dict(student=r["student"], name=r["name"],
                   assignment=r["assignment"], submission=r["submission"],
                   status=r["status"],
                   score=_fmt(r["score"]) if graded else "",
                   possible=_fmt(r["possible"]),
                   percent=f"{r['percent']:.1f}" if graded else "",
                   flags="; ".join(r["flags"]), error=r["error"])
        for q in questions:
            new[q] = _fmt(r["questions"][q][0]) if q in r["questions"] \
                else ""
        old = table.get(r["student"], {})
        if not new["name"]:
            new["name"] = old.get("name", "")
        for c in wcols + extra:  # the teacher's columns stay
            new[c] = old.get(c, "")
        table[r["student"]] = new
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for sid in sorted(table):
            w.writerow({c: table[sid].get(c, "") for c in cols})


def write_feedback(row: dict, written: list[dict], folder: Path) -> Path:
    """``folder/STUDENT.txt``: the score, every check (public and hidden)
    passed or failed with its message, the written answers to come."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{row['assignment']}: feedback for {row['student']}"
             + (f" ({row['name']})" if row["name"] else ""), ""]
    if row["status"] != "graded":
        lines.append(f"Not graded: {row['error']}")
    else:
        lines.append(f"Checks: {_fmt(row['score'])} of "
                     f"{_fmt(row['possible'])} points "
                     f"({row['percent']:.1f}%), file {row['submission']}")
        question = None
        for c in row["checks"]:
            if c["question"] != question:
                question = c["question"]
                s, p = row["questions"].get(question, (0, 0))
                lines += ["", f"{question}: {_fmt(s)}/{_fmt(p)}"]
            kind = "hidden" if c["hidden"] else "public"
            mark = "passed" if c["passed"] else "FAILED"
            lines.append(f"  [{kind}] {c['name'] or 'check'}: {mark}")
            if not c["passed"] and c["message"]:
                msg = _short(c["message"])
                lines += [f"      {m}" for m in msg.splitlines()]
    if row["flags"]:
        lines += ["", "Notes: " + "; ".join(row["flags"])]
    if written:
        lines += ["", "Written answers (graded by your teacher): "
                  + ", ".join(f"{q['name']} ({q['points']:g} points)"
                              for q in written)]
    path = folder / f"{row['student']}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _short(message: str) -> str:
    """The assertion's own message out of otter's report of a failed
    check (which also shows the test's source line)."""
    m = re.findall(r"^\s*(?:AssertionError|\w+Error): (.*)$", message,
                   re.M)
    return m[-1] if m else message[-600:]


# --- the answers command --------------------------------------------------

def answers_of(nb) -> list[str]:
    """The texts of a notebook's written-answer cells, in order."""
    return [c.source for c in nb.cells if c.cell_type == "markdown"
            and "otter_answer_cell" in c.metadata.get("tags", [])]


def export_answers(folder: Path, name: str, autograders: Path,
                   out: Path | None = None) -> Path:
    """One HTML page with every student's answer to each written question
    of ``name``, question by question, with its rubric, to grade them side
    by side. Returns the page's path (default
    ``folder/answers-NAME.html``)."""
    return _export(folder, name, autograders, out)


def _to_html(text: str) -> str:
    try:  # nbconvert's markdown renderer (otter needs nbconvert)
        import mistune
        return mistune.create_markdown(escape=True)(text)
    except ImportError:  # the text as it is, escaped
        return f"<pre>{html.escape(text)}</pre>"


def _export(folder: Path, name: str, autograders: Path,
            out: Path | None) -> Path:
    folder = Path(folder)
    written = written_questions(autograders, name)
    if not written:
        raise GradeError(
            f"assignment {name!r} has no written answers listed in "
            f"{autograders}/{name}-written.json (build it first; the "
            f"assignments with written answers: see TEACHERS.md)")
    known = [p.name[:-len("-autograder.zip")]
             for p in Path(autograders).glob("*-autograder.zip")]
    got: dict[str, list[str] | str] = {}
    for sid, files in by_student(folder).items():
        path, _, error = _pick(sid, files, name, known)
        if path is None:
            got[sid] = error
            continue
        texts = answers_of(read_notebook(path))
        got[sid] = texts if len(texts) == len(written) else (
            f"{path.name}: {len(texts)} answer cells, expected "
            f"{len(written)}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
             f"{html.escape(name)}: written answers</title><style>"
             f"body{{font-family:sans-serif;max-width:60em;margin:auto}}"
             f".a{{border:1px solid #ccc;padding:.5em;margin:.5em 0}}"
             f".rubric{{background:#f4f4f4;padding:.5em}}</style></head>"
             f"<body><h1>{html.escape(name)}: written answers</h1>"]
    for k, q in enumerate(written):
        parts.append(f"<h2 id='{q['name']}'>{html.escape(q['name'])} "
                     f"({q['points']:g} points)</h2>")
        parts.append(f"<div class='prompt'>{_to_html(q['prompt'])}</div>")
        if q.get("rubric"):
            parts.append(f"<div class='rubric'>{_to_html(q['rubric'])}"
                         f"</div>")
        for sid in sorted(got):
            a = got[sid]
            body = (_to_html(a[k]) if isinstance(a, list)
                    else f"<p><em>{html.escape(a)}</em></p>")
            parts.append(f"<div class='a'><h3>{html.escape(sid)}</h3>"
                         f"{body}<p>points: ____ / {q['points']:g}</p>"
                         f"</div>")
    parts.append("</body></html>")
    out = Path(out) if out else folder / f"answers-{name}.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {out}: {len(written)} question(s), {len(got)} "
          f"student(s)")
    return out
