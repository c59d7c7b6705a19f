"""Grading a class's submissions to one assignment (tools/classroom.py
grade), collecting its written answers (answers) and writing the LMS's
import file (export).

Each submission is graded in a process of its own
(tools/classroom_check.py), inside a sandbox where there is one
(tools/classroom_sandbox.py): the student's code cells run first, then
every check, public and hidden, outside the student's namespace; the
checks reach that process through a pipe and never lie on a disk the
student's code can see. The student's code is also read before it runs
(tools/classroom_guard.py). What either finds suspicious (a route to the
package other than a plain import, the grader's internals, files,
sockets, introspection, changed modules) goes to the row's ``flag``
column for the teacher to look at.

The folder may be laid out by student (sub-folders or files named by
id) or be Canvas's or Moodle's bulk download (tools/classroom_lms.py).
``grade`` writes one row per student: graded, an error (wrong
assignment, unreadable file, time limit, no submission) or missing (on
the class list, nothing handed in); it merges the rows into the grades
file, keeping the columns teachers fill in, and writes a feedback file
per student (in Chinese for the Chinese notebooks).
"""
from __future__ import annotations

import ast
import concurrent.futures
import copy
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import classroom_guard as guard  # noqa: E402
import classroom_lms as lms  # noqa: E402
import classroom_sandbox as sandbox  # noqa: E402


class GradeError(RuntimeError):
    """Bad input to grade, answers or export (a folder, a class list, a
    grades file, a name)."""


#: The grades file's columns written by ``grade``: these, one per
#: question with checks, one per written answer, then TOTALS, then any
#: column the teacher added, then TAIL.
HEAD = ["student", "name", "assignment", "submission", "status", "late",
        "score", "possible", "percent"]
TOTALS = ["total", "total_possible"]
TAIL = ["flag", "notes", "error"]
#: Columns of earlier versions, dropped on merging.
_OLD = {"flags"}
_IGNORE_DIRS = {"feedback", "__MACOSX"}


# --- reading submissions --------------------------------------------------

def read_notebook(path: Path):
    """The notebook of a submission (``.ipynb``, or a ``.zip`` holding
    one, as ``grader.export`` writes); GradeError naming the file and
    what is wrong with it."""
    import nbformat
    try:
        if path.suffix.lower() == ".zip":
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


canonical_stem = lms.canonical_stem


def language_of(nb) -> str:
    """"zh" for the Chinese notebooks (the build marks them; else most of
    the markdown is Chinese), else "en"."""
    mark = nb.metadata.get("d2l_densenet", {}).get("edition")
    if mark in ("en", "zh"):
        return mark
    text = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    cjk = len(re.findall(r"[\u4e00-\u9fff]", text))
    return "zh" if text and cjk > 0.1 * len(text) else "en"


def _pick(student: lms.Student, name: str, known) -> tuple:
    """(the file to grade or None, its notebook, notes, error) for one
    student."""
    files = student.files
    if not files:
        return None, None, [], "no submission (empty folder)"
    mine, other, broken = [], [], []
    for f in files:
        try:
            nb = read_notebook(f)
        except GradeError as e:
            broken.append((f, str(e)))
            continue
        which = assignment_of(nb, f, known)
        if which in (None, name):
            mine.append((f, nb))
        else:
            other.append((f, which))
    notes = [f"ignored {f.name}: assignment {w}" for f, w in other]
    notes += [f"ignored {e}" for _, e in broken]
    if not mine:
        if broken and not other:
            return None, None, [], broken[0][1]
        wrong = "; ".join(f"{f.name} is assignment {w}" for f, w in other)
        return None, None, [e for _, e in broken], (
            f"wrong assignment: {wrong}, not {name}; nothing of {name} "
            f"to grade")

    def key(item):
        f = item[0]
        if f in student.order:  # Canvas: the latest upload
            return (student.order[f], f.name)
        return (f.stat().st_mtime, not lms.is_copy(f), f.name)
    mine.sort(key=key)
    path, nb = mine[-1]
    if len(mine) > 1:
        names = ", ".join(f.name for f, _ in mine)
        if path in student.order:
            why = "graded the latest upload"
        elif key(mine[-1])[0] == key(mine[-2])[0]:
            why = ("same timestamp: graded the one that is not a copy"
                   if not lms.is_copy(path) else
                   "same timestamp: graded the last by name")
        else:
            why = "graded the newest"
        notes.insert(0, f"duplicate: {names}; {why}, {path.name}")
    return path, nb, notes, ""


# --- the autograder's checks ---------------------------------------------

def _zip_of(autograders: Path, name: str) -> Path:
    return Path(autograders) / f"{name}-autograder.zip"


def checks_of(autograders: Path, name: str, lang: str = "en") -> dict:
    """``{"tests": [{"name", "source"}], "titles": {function: title},
    "own_work": source}`` of an assignment: the autograder zip's test
    files (in English) or their Chinese (``NAME-zh.json``, written by the
    build), and the own-work helper."""
    from classroom import OWN_WORK
    with zipfile.ZipFile(_zip_of(autograders, name)) as z:
        tests = [dict(name=Path(n).stem, source=z.read(n).decode("utf-8"))
                 for n in sorted(z.namelist())
                 if n.startswith("tests/") and n.endswith(".py")]
    out = dict(tests=tests, titles={}, own_work=OWN_WORK)
    zh = Path(autograders) / f"{name}-zh.json"
    if lang == "zh" and zh.exists():
        data = json.loads(zh.read_text(encoding="utf-8"))
        by_name = data.get("tests", {})
        out["tests"] = [dict(t, source=by_name.get(t["name"], t["source"]))
                        for t in tests]
        out["titles"] = data.get("titles", {})
        out["own_work"] = data.get("own_work", OWN_WORK)
    return out


def _imports_of(sources) -> list[str]:
    """The modules the checks import (loaded before student code)."""
    mods = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and \
                    not node.module.startswith("otter"):
                mods.add(node.module)
    return sorted(mods)


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


def check_title(function: str, titles: dict | None = None) -> str:
    """What a check tests, from its function's name
    (``test_q1_same_as_reference`` -> "same as reference") or its
    Chinese title."""
    if titles and function in titles:
        return titles[function]
    return re.sub(r"^test_q\d+_", "", function).replace("_", " ")


#: Messages of the checks' process, in Chinese (tools/classroom_check.py
#: has the English).
ZH_CHECK_TEXTS = {
    "where": "（出错位置：你的代码，第{cell}个单元格，第{line}行{inside}）",
    "inside": "，在{fn}中",
    "not_yours": ("{name}不是你自己的代码：它调用了{target}{via}。请在本"
                  "记事本中它的单元格里自己编写；导入的代码不得分"),
    "via": "（经由{inner}）",
    "changed": "本项检查运行时，你的代码改动了{what}：本项检查不计分",
}


def _package_parent() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("d2l_densenet")
    if spec is None or not spec.origin:
        raise GradeError("the package d2l_densenet is not installed in "
                         "this Python (make install)")
    return Path(spec.origin).resolve().parent.parent


def run_checks(nb, checks: dict, timeout: float, use_sandbox: bool,
               threads: int = 1, lang: str = "en") -> dict:
    """Run one notebook's code and every check in the checks' process.
    Returns ``{"cells": [{index, error}], "checks": [...], "flags":
    [...], "output", "timed_out", "finished", "exit", "stderr",
    "seconds"}``."""
    cells = [(i, c.source) for i, c in enumerate(nb.cells, 1)
             if c.cell_type == "code"
             and "otter_ignore" not in c.metadata.get("tags", [])]
    flags = guard.inspect_code(cells)
    nonce = secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="classroom-grade-"))
    try:
        sandbox.prepare(work)
        argv, env, settings = sandbox.command(
            work, _package_parent(), use_sandbox, threads)
        request = dict(
            settings, nonce=nonce, threads=threads,
            allowed=list(guard.ALLOWED_MODULES), watch=list(guard.WATCHED),
            preload=_imports_of(t["source"] for t in checks["tests"]),
            own_work=checks["own_work"], tests=checks["tests"],
            cells=[dict(index=i, source=s) for i, s in cells],
            texts=ZH_CHECK_TEXTS if lang == "zh" else {})
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(json.dumps(request).encode(),
                                        timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            out, err = proc.communicate()
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = dict(cells=[], checks=[], flags=list(flags), output="",
                  cpu=0.0, timed_out=timed_out, finished=False,
                  exit=proc.returncode, seconds=seconds,
                  stderr=err.decode("utf-8", "replace")[-3000:])
    for line in out.decode("utf-8", "replace").splitlines():
        tag, _, data = line.partition(" ")
        if tag != nonce:
            continue
        event = json.loads(data)
        kind = event.pop("kind")
        if kind == "cell":
            result["cells"].append(event)
        elif kind == "check":
            result["checks"].append(event)
        elif kind == "done":
            result["finished"] = True
            result["output"] = event["output"]
            result["cpu"] = event.get("cpu", 0.0)
            for f in event["flags"]:  # unless read in the code already
                if not any(g == f or g.startswith(f + " (cell")
                           for g in result["flags"]):
                    result["flags"].append(f)
    return result


# --- the grade command ----------------------------------------------------

def written_questions(autograders: Path, name: str) -> list[dict]:
    """The written answers of assignment ``name`` (``NAME-written.json``
    next to its autograder zip, written by the build)."""
    path = Path(autograders) / f"{name}-written.json"
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def _written_col(q: dict) -> str:
    return f"{q['name']} (written, /{q['points']:g})"


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


#: Memory one checks' process needs (PyTorch, torchvision, pandas, the
#: package and a submission: about 0.8-1.1 GB measured).
GB_PER_JOB = 1.5


def default_jobs() -> int:
    """Submissions graded at once by default: one per core, as many as
    the memory holds."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        by_memory = int(memory / 2**30 / GB_PER_JOB)
    except (ValueError, OSError, AttributeError):  # not POSIX
        by_memory = cores()
    return max(1, min(cores(), by_memory))


def grade_one(path: Path, nb, checks_by_lang, name: str, timeout: float,
              use_sandbox: bool, threads: int, possible: float) -> dict:
    """Grade one notebook: ``{"status", "score", "possible",
    "questions", "checks", "cells", "flag", "error", "student_error",
    "lang", "seconds"}``."""
    lang = language_of(nb)
    checks = checks_by_lang(lang)
    res = run_checks(nb, checks, timeout, use_sandbox, threads, lang)
    out = dict(lang=lang, cells=[c for c in res["cells"] if c["error"]],
               flag=res["flags"], seconds=res["seconds"], cpu=res["cpu"],
               output=res["output"], error="", student_error="")
    ran = res["checks"]
    if not ran:
        if res["timed_out"]:
            where = _slow_cell(res)
            out.update(status="error", error=(
                f"{path.name}: stopped after the time limit of "
                f"{timeout:g} s{where} (an endless loop or a very slow "
                f"cell?); grade it again with a larger --timeout if it "
                f"needs longer"), student_error=("timeout", where,
                                                  timeout))
        else:
            out.update(status="error", error=(
                f"{path.name}: the checks' process ended before the "
                f"checks (exit code {res['exit']}): "
                f"{res['stderr'].strip().splitlines()[-1:] or ''}"),
                student_error=("crash", ""))
        return out
    names = [t["name"] for t in checks["tests"]]
    questions = {q: [0.0, 0.0] for q in names}
    done = {(c["question"], c["name"]) for c in ran}
    if not res["finished"]:  # the checks not reached fail
        out["flag"].append("stopped before every check had run" + (
            f" (time limit of {timeout:g} s)" if res["timed_out"] else
            f" (exit code {res['exit']})"))
        for q, fn, hidden, pts in _all_cases(checks):
            if (q, fn) not in done:
                ran.append(dict(question=q, name=fn, hidden=hidden,
                                points=pts, passed=False,
                                message="timeout" if res["timed_out"]
                                else "crash", flags=[], seconds=0))
    for c in ran:
        c["title"] = check_title(c["name"], checks["titles"])
        s = questions.setdefault(c["question"], [0.0, 0.0])
        s[1] += c["points"]
        if c["passed"]:
            s[0] += c["points"]
    score = sum(s for s, _ in questions.values())
    out.update(status="graded", score=score, possible=possible,
               questions={q: tuple(v) for q, v in questions.items()},
               checks=ran)
    return out


def _all_cases(checks) -> list:
    """(question, function, hidden, points) of every check, read from
    the test files without running them."""
    out = []
    for t in checks["tests"]:
        tree = ast.parse(t["source"])
        total = next((n.value.value for n in tree.body
                      if isinstance(n, ast.Assign) and
                      getattr(n.targets[0], "id", "") == "points"
                      and isinstance(n.value, ast.Constant)), None)
        cases = []
        for n in tree.body:
            if isinstance(n, ast.FunctionDef) and n.decorator_list:
                kw = {k.arg: getattr(k.value, "value", None)
                      for d in n.decorator_list if isinstance(d, ast.Call)
                      for k in d.keywords}
                cases.append([t["name"], n.name, bool(kw.get("hidden")),
                              kw.get("points")])
        free = [c for c in cases if c[3] is None]
        left = (total or len(free)) - sum(c[3] for c in cases
                                          if c[3] is not None)
        for c in free:
            c[3] = left / len(free) if total is not None else 1.0
        out += [tuple(c) for c in cases]
    return out


def _slow_cell(res) -> str:
    ran = [c["index"] for c in res["cells"]]
    return f" in cell {max(ran) + 1} or later" if ran and not \
        res["checks"] else ""


def _merge_target(csv_path: Path, name: str, written) -> None:
    """Read the grades file before grading: stop now if it cannot be
    merged into (GradeError), not after every notebook was graded."""
    if not csv_path.exists():
        return
    try:
        table = lms.read_table(csv_path, "--csv")
    except lms.LmsError as e:
        raise GradeError(str(e)) from e
    if table.columns and "student" not in table.columns:
        raise GradeError(
            f"{csv_path}: not a grades file of this tool (no 'student' "
            f"column; its columns: {', '.join(table.columns[:6])}); pass "
            f"another --csv or move it away")
    assignments = {r.get("assignment") for r in table.rows} - {"", None}
    if assignments - {name}:
        raise GradeError(
            f"{csv_path} holds grades of {sorted(assignments)}, not "
            f"{name}: use one CSV per assignment (--csv)")


def grade(folder: Path, name: str, autograders: Path,
          csv_path: Path | None = None, roster: Path | None = None,
          timeout: float = 600, feedback: Path | None = None,
          jobs: int | None = None, use_sandbox: bool | None = None,
          layout: str = "auto", export: str | None = None,
          export_path: Path | None = None,
          lms_column: str | None = None) -> list[dict]:
    """Grade the submissions to assignment ``name`` under ``folder``;
    print one row per student and a total; merge the rows into
    ``csv_path`` (default ``folder/grades.csv``); write a feedback file
    per student into ``feedback`` (default ``folder/feedback``); with
    ``export`` ("canvas", "moodle") write the LMS's import file too.
    ``jobs``: submissions graded at once (default: the number of cores);
    ``use_sandbox``: None = where bwrap works, False = not (said on
    every run). Returns the rows: ``student``, ``name``, ``submission``,
    ``status`` ("graded", "error", "missing"), ``score`` and ``percent``
    (None unless graded), ``possible`` (the checks' points),
    ``questions`` ({q: (score, possible)}), ``checks`` (every check's
    question, name, title, hidden, passed, message), ``flag`` (reasons
    to look at it), ``notes``, ``error``, ``late``."""
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
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise GradeError(f"--jobs must be 1 or more, got {jobs}")
    if export not in (None, "canvas", "moodle"):
        raise GradeError(f"--export must be canvas or moodle, got "
                         f"{export!r}")
    written = written_questions(autograders, name)
    csv_path = Path(csv_path) if csv_path else folder / "grades.csv"
    _merge_target(csv_path, name, written)
    try:
        layout, found = lms.students(folder, layout)
        class_list = lms.read_roster(roster) if roster else None
    except lms.LmsError as e:
        raise GradeError(str(e)) from e
    if class_list is not None:
        lms.match_roster(class_list, layout, found)
        for sid in class_list.entries:
            found.setdefault(sid, None)
    if not found:
        raise GradeError(f"no submissions in {folder} (one sub-folder "
                         f"per student, one .ipynb/.zip per student, or "
                         f"an LMS's download)")
    ok, why = sandbox.status()
    if use_sandbox is None:
        use_sandbox = ok
    if not use_sandbox:
        reason = why if not ok else "--no-sandbox"
        print(f"WARNING: submissions run NOT SANDBOXED ({reason}): "
              f"student code runs with your rights and can read your "
              f"files; see TEACHERS.md, 'Grading in a sandbox'",
              file=sys.stderr, flush=True)
    elif not ok:
        raise GradeError(f"no sandbox here: {why}")
    points = possible_points(zips[name])
    # one thread each: the checks are small, several threads per process
    # only contend (badly, on a busy machine), and one thread gives the
    # same numbers whatever --jobs is
    threads = 1
    cache, lock = {}, threading.Lock()

    def checks_by_lang(lang):
        with lock:
            if lang not in cache:
                cache[lang] = checks_of(autograders, name, lang)
            return cache[lang]
    feedback = Path(feedback) if feedback else folder / "feedback"
    order = sorted(found)
    rows = {}
    todo = []
    for sid in order:
        student = found[sid]
        row = dict(student=sid, name="", assignment=name, submission="",
                   status="error", score=None, possible=points,
                   percent=None, questions={}, checks=[], cells=[],
                   flag=[], notes=[], error="", student_error="",
                   late=bool(student and student.late), lang="en")
        if class_list is not None:
            row["name"] = class_list.name(sid)
            if sid not in class_list.entries:
                row["notes"].append("not on the class list")
        if student is not None and not row["name"]:
            row["name"] = student.name if layout == "moodle" else ""
        if student is not None and student.late:
            row["notes"].append("late (the LMS says so)")
        rows[sid] = row
        if student is None:
            row.update(status="missing", error="no submission (on the "
                       "class list, nothing handed in)")
            continue
        path, nb, notes, error = _pick(student, name, sorted(zips))
        row["notes"] += notes
        row["error"] = error
        if path is not None:
            row["submission"] = str(path.relative_to(folder))
            todo.append((sid, path, nb))
    total, done = len(order), [0]
    print(f"grading {len(todo)} submission(s) to {name} ({layout} "
          f"layout), {jobs} at a time"
          + (", sandboxed" if use_sandbox else ""), flush=True)
    for sid in order:
        if rows[sid]["status"] == "missing" or not rows[sid]["submission"]:
            done[0] += 1
            _print_row(rows[sid], 0, done[0], total)

    # identical files are graded once (a class's untouched handouts,
    # copies); the rows say whose file they share
    firsts, same = {}, {}
    for sid, path, _ in todo:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in firsts:
            same[sid] = firsts[digest]
            rows[sid]["notes"].append(
                f"the same file as {firsts[digest]}'s")
        else:
            firsts[digest] = sid
    results = {}

    def work(item):
        sid, path, nb = item
        res = grade_one(path, nb, checks_by_lang, name, timeout,
                        use_sandbox, threads, points)
        results[sid] = res
        return sid, res

    started = time.perf_counter()
    def report(sid, res):
        row = rows[sid]
        row.update({k: v for k, v in res.items() if k in row or k in
                    ("seconds", "output", "cpu")})
        if res["status"] == "graded":
            row["percent"] = 100 * row["score"] / (row["possible"]
                                                   or 1)
        done[0] += 1
        _print_row(row, res["seconds"], done[0], total)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for sid, res in pool.map(work, [t for t in todo
                                        if t[0] not in same]):
            report(sid, res)
    for sid, first in same.items():
        report(sid, copy.deepcopy(results[first]))
    elapsed = time.perf_counter() - started
    out_rows = [rows[sid] for sid in order]
    for row in out_rows:
        write_feedback(row, written, feedback)
    print_total(out_rows, elapsed, jobs, sum(
        results[sid].get("cpu", 0.0) for sid in results))
    table = merge_csv(out_rows, written, csv_path)
    print(f"wrote {table} and {len(out_rows)} feedback file(s) in "
          f"{feedback}")
    if export:
        path, notes = write_export(export, table, name, points, written,
                                   class_list, export_path, lms_column)
        print(f"wrote {path} ({export}'s import format)"
              + "".join(f"\n    note: {n}" for n in notes))
    return out_rows


def _fmt(x: float) -> str:
    return f"{x:g}"


def _print_row(row: dict, seconds: float, i: int, n: int) -> None:
    flag = f"  FLAG: {'; '.join(row['flag'])}" if row["flag"] else ""
    notes = f"  [{'; '.join(row['notes'])}]" if row["notes"] else ""
    head = f"[{i}/{n}] {row['student']:<20}"
    if row["status"] != "graded":
        print(f"{head} {row['status'].upper()} {row['error']}{notes}",
              flush=True)
        return
    qs = ", ".join(f"{q.split('_')[0]} {_fmt(s)}/{_fmt(p)}"
                   for q, (s, p) in row["questions"].items())
    print(f"{head} {_fmt(row['score']):>5}/{_fmt(row['possible']):<4} "
          f"{row['percent']:5.1f}%  ({qs}; {seconds:.0f} s){notes}{flag}",
          flush=True)


def print_total(rows: list[dict], seconds: float = 0.0,
                jobs: int = 1, cpu: float = 0.0) -> None:
    ok = [r for r in rows if r["status"] == "graded"]
    bad = [r for r in rows if r["status"] == "error"]
    missing = [r for r in rows if r["status"] == "missing"]
    flagged = [r for r in rows if r["flag"]]
    mean = sum(r["percent"] for r in ok) / len(ok) if ok else 0.0
    print(f"total: {len(rows)} student(s): {len(ok)} graded (mean "
          f"{mean:.1f}% of the checks' points), {len(bad)} error(s), "
          f"{len(missing)} missing, {len(flagged)} flagged; "
          f"{seconds:.0f} s with {jobs} job(s), {cpu:.0f} CPU-s in the "
          f"checks' processes", flush=True)
    for r in bad + missing:
        print(f"    check {r['student']}: {r['error']}", flush=True)
    for r in flagged:
        print(f"    look at {r['student']}: {'; '.join(r['flag'])}",
              flush=True)


def _number(text) -> float:
    try:
        return float(str(text).strip().replace(",", "."))
    except ValueError:
        return 0.0


def merge_csv(rows: list[dict], written: list[dict], path: Path) -> Path:
    """Write the rows into ``path``, one per student; rows and columns
    already there (the written answers' points a teacher typed in, extra
    columns) are kept; the graded columns of the students graded now are
    replaced; ``total`` (checks plus written answers) is recomputed for
    every row. The file is read as Excel may have saved it (BOM, ``;``,
    CRLF) and written back the same way. If it cannot be written, the
    rows go to a new file next to it, whose path is returned."""
    path = Path(path)
    questions = sorted({q for r in rows for q in r["questions"]})
    wcols = [_written_col(q) for q in written]
    old = lms.Table([], [])
    if path.exists():
        try:
            old = lms.read_table(path, "--csv")
        except lms.LmsError as e:
            raise GradeError(str(e)) from e
        if old.columns and "student" not in old.columns:
            raise GradeError(
                f"{path}: not a grades file of this tool (no 'student' "
                f"column); pass another --csv or move it away")
        assignments = {r.get("assignment") for r in old.rows} - {"",
                                                                 None}
        if rows and assignments - {rows[0]["assignment"]}:
            raise GradeError(
                f"{path} holds grades of {sorted(assignments)}, not "
                f"{rows[0]['assignment']}: use one CSV per assignment "
                f"(--csv)")
        questions = sorted(set(questions) | {
            c for c in old.columns if re.match(r"q\d", c)
            and c not in wcols})
    mine = HEAD + questions + wcols + TOTALS + TAIL
    extra = [c for c in old.columns if c not in mine and c not in _OLD]
    cols = HEAD + questions + wcols + TOTALS + extra + TAIL
    table = {r["student"]: dict(r) for r in old.rows if r.get("student")}
    written_max = sum(q["points"] for q in written)
    for r in rows:
        graded = r["status"] == "graded"
        new = dict(student=r["student"], name=r["name"],
                   assignment=r["assignment"], submission=r["submission"],
                   status=r["status"], late="yes" if r.get("late") else "",
                   score=_fmt(r["score"]) if graded else "",
                   possible=_fmt(r["possible"]),
                   percent=f"{r['percent']:.1f}" if graded else "",
                   flag="; ".join(r.get("flag", [])),
                   notes="; ".join(r.get("notes", [])), error=r["error"])
        for q in questions:
            new[q] = _fmt(r["questions"][q][0]) if q in r["questions"] \
                else ""
        prev = table.get(r["student"], {})
        if not new["name"]:
            new["name"] = prev.get("name", "")
        for c in wcols + extra:  # the teacher's columns stay
            new[c] = prev.get(c, "")
        table[r["student"]] = new
    for r in table.values():
        r["total_possible"] = _fmt(_number(r.get("possible", 0))
                                   + written_max)
        if r.get("score", "") == "":
            r["total"] = ""
        else:
            r["total"] = _fmt(round(_number(r["score"]) + sum(
                _number(r.get(c, "")) for c in wcols), 4))
    out = lms.Table(cols, [table[s] for s in sorted(table)],
                    old.delimiter, old.bom)
    try:
        lms.write_table(path, out)
        return path
    except OSError as e:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        other = path.with_name(f"{path.stem}-new-{stamp}{path.suffix}")
        lms.write_table(other, out)
        print(f"could not write {path} ({e}); the grades are in {other}",
              file=sys.stderr)
        return other


def write_export(kind: str, csv_path: Path, name: str, points: float,
                 written: list[dict], roster, out: Path | None = None,
                 column: str | None = None) -> tuple[Path, list[str]]:
    """The LMS's import file from the grades file (its totals)."""
    table = lms.read_table(csv_path, "--csv")
    possible = points + sum(q["points"] for q in written)
    out = Path(out) if out else Path(csv_path).with_name(
        f"{kind}-import-{name}.csv")
    return lms.export(kind, table.rows, out, name, possible, roster,
                      column)


def export_grades(csv_path: Path, name: str, autograders: Path, kind: str,
                  roster: Path | None = None, out: Path | None = None,
                  column: str | None = None, folder: Path | None = None
                  ) -> Path:
    """``tools/classroom.py export``: recompute the totals of a grades
    file (after the written answers' points were typed in) and write the
    LMS's import file, without grading again."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise GradeError(f"--csv {csv_path}: no such file (grade first)")
    written = written_questions(autograders, name)
    zip_path = _zip_of(autograders, name)
    if not zip_path.exists():
        raise GradeError(f"--assignment {name!r}: no {zip_path.name} in "
                         f"{autograders}")
    points = possible_points(zip_path)
    try:
        table = lms.read_table(csv_path, "--csv")
        if "student" not in table.columns:
            raise GradeError(f"{csv_path}: no 'student' column")
        # recompute the totals (merge with no new rows)
        merge_csv([], written, csv_path)
        class_list = lms.read_roster(roster) if roster else None
        if class_list is not None:
            ids = [r["student"] for r in table.rows]
            layout = lms.detect(Path(folder)) if folder else (
                class_list.kind if class_list.kind != "plain" else
                "folders")
            lms.match_roster(class_list, layout, ids)
        path, notes = write_export(kind, csv_path, name, points, written,
                                   class_list, out, column)
    except lms.LmsError as e:
        raise GradeError(str(e)) from e
    print(f"wrote {path} ({kind}'s import format)"
          + "".join(f"\n    note: {n}" for n in notes))
    return path


# --- feedback for the student ------------------------------------------

FEEDBACK = {
    "en": dict(
        title="{assignment}: feedback for {student}",
        checks="Checks: {score} of {possible} points ({percent:.1f}%), "
               "file {file}",
        question="{question}: {score}/{possible}",
        public="public", hidden="hidden", passed="passed",
        failed="FAILED",
        not_graded="Not graded: {reason}",
        cells="Cells of your notebook that raised an error while it ran "
              "from the top (the checks that need them fail):",
        cell="  cell {index}: {error}",
        written="Written answers (graded by your teacher): {items}",
        written_item="{name} ({points:g} points)",
        review="Your teacher will look at this submission before the "
               "grade is final.",
        timeout="your notebook did not finish within the time allowed "
                "for grading ({timeout:g} s){where}; look for an endless "
                "loop or a very slow cell, and check that it runs from "
                "the top in reasonable time",
        crash="your notebook stopped the grading process (a crash, or "
              "too much memory); check that it runs from the top",
        check_timeout="not run: the time allowed for grading ran out",
        check_crash="not run: the grading process stopped",
        missing="nothing was handed in",
        unreadable="the file handed in could not be read (it is "
                   "truncated or corrupted); hand it in again",
        wrong="the notebook handed in is not assignment {assignment}",
    ),
    "zh": dict(
        title="{assignment}：{student}的反馈",
        checks="检查：{possible}分中得{score}分（{percent:.1f}%），文件{file}",
        question="{question}：{score}/{possible}",
        public="公开", hidden="隐藏", passed="通过", failed="未通过",
        not_graded="未评分：{reason}",
        cells="从头运行你的记事本时，下面的单元格出错了（依赖它们的检查"
              "不会通过）：",
        cell="  第{index}个单元格：{error}",
        written="书面回答（由老师评分）：{items}",
        written_item="{name}（{points:g}分）",
        review="成绩确定之前，老师会查看这份作业。",
        timeout="你的记事本没有在评分允许的时间（{timeout:g}秒）内运行"
                "完{where}；请检查是否有死循环或特别慢的单元格，并确认它"
                "能在合理的时间内从头运行完",
        crash="你的记事本使评分进程停止了（崩溃或内存用得太多）；请确认它"
              "能从头运行",
        check_timeout="未运行：评分允许的时间已用完",
        check_crash="未运行：评分进程停止了",
        missing="没有提交",
        unreadable="提交的文件无法读取（不完整或已损坏），请重新提交",
        wrong="提交的记事本不是作业{assignment}",
    ),
}


def _student_reason(row: dict, texts: dict) -> str:
    """Why a row was not graded, said to the student (the teacher's
    error says what to do about it)."""
    se = row.get("student_error")
    error = row["error"]
    if isinstance(se, (list, tuple)) and se and se[0] == "timeout":
        return texts["timeout"].format(timeout=se[2], where=se[1])
    if isinstance(se, (list, tuple)) and se and se[0] == "crash":
        return texts["crash"]
    if row["status"] == "missing" or error.startswith("no submission"):
        return texts["missing"]
    if "not a readable notebook" in error or "must hold one" in error:
        return texts["unreadable"]
    if error.startswith("wrong assignment"):
        return texts["wrong"].format(assignment=row["assignment"])
    return error


def write_feedback(row: dict, written: list[dict], folder: Path) -> Path:
    """``folder/STUDENT.txt``: the score, every check (public and hidden)
    passed or failed with its whole message, the cells that raised
    errors, the written answers to come; in the notebook's language. It
    holds nothing meant for the teacher (no command-line advice)."""
    t = FEEDBACK.get(row.get("lang", "en"), FEEDBACK["en"])
    folder.mkdir(parents=True, exist_ok=True)
    who = row["student"] + (f" ({row['name']})" if row["name"] else "")
    lines = [t["title"].format(assignment=row["assignment"], student=who),
             ""]
    if row["status"] != "graded":
        lines.append(t["not_graded"].format(
            reason=_student_reason(row, t)))
    else:
        lines.append(t["checks"].format(
            score=_fmt(row["score"]), possible=_fmt(row["possible"]),
            percent=row["percent"], file=row["submission"]))
        question = None
        for c in row["checks"]:
            if c["question"] != question:
                question = c["question"]
                s, p = row["questions"].get(question, (0, 0))
                lines += ["", t["question"].format(
                    question=question, score=_fmt(s), possible=_fmt(p))]
            kind = t["hidden"] if c["hidden"] else t["public"]
            mark = t["passed"] if c["passed"] else t["failed"]
            title = c.get("title") or check_title(c["name"])
            lines.append(f"  [{kind}] {title}: {mark}")
            msg = c["message"]
            if msg in ("timeout", "crash"):
                msg = t[f"check_{msg}"]
            if not c["passed"] and msg:
                lines += [f"      {m}" for m in msg.splitlines()]
        if row.get("cells"):
            lines += ["", t["cells"]]
            lines += [t["cell"].format(index=c["index"], error=c["error"])
                      for c in row["cells"]]
    if row.get("flag"):
        lines += ["", t["review"]]
    if written:
        items = ", ".join(t["written_item"].format(name=q["name"],
                                                   points=q["points"])
                          for q in written)
        lines += ["", t["written"].format(items=items)]
    path = folder / f"{_safe(row['student'])}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^\w.@+-]", "_", name)


# --- the answers command --------------------------------------------------

def answers_of(nb) -> list[str]:
    """The texts of a notebook's written-answer cells, in order."""
    return [c.source for c in nb.cells if c.cell_type == "markdown"
            and "otter_answer_cell" in c.metadata.get("tags", [])]


def export_answers(folder: Path, name: str, autograders: Path,
                   out: Path | None = None, layout: str = "auto") -> Path:
    """One HTML page with every student's answer to each written question
    of ``name``, question by question, with its rubric, to grade them side
    by side. Returns the page's path (default
    ``folder/answers-NAME.html``)."""
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
    try:
        _, found = lms.students(folder, layout)
    except lms.LmsError as e:
        raise GradeError(str(e)) from e
    for sid, student in found.items():
        path, nb, _, error = _pick(student, name, known)
        if path is None:
            got[sid] = error
            continue
        texts = answers_of(nb)
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


def _to_html(text: str) -> str:
    try:  # nbconvert's markdown renderer (otter needs nbconvert)
        import mistune
        return mistune.create_markdown(escape=True)(text)
    except ImportError:  # the text as it is, escaped
        return f"<pre>{html.escape(text)}</pre>"
