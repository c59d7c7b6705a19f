"""The classroom edition: build the assignments, grade submissions.

Built with otter-grader (``otter assign`` on the master notebooks in
``notebooks/classroom/``); graded by tools/classroom_grade.py, which runs
otter's checks in a sandboxed process of its own, out of the student's
reach (tools/classroom_check.py, tools/classroom_sandbox.py)::

    python tools/classroom.py build [--out build/classroom]
        [--no-run-tests] [--repo OWNER/NAME] [--branch BRANCH]
        [--tag TAG] [--package-repo OWNER/NAME] [--folder classroom]
        [NAME ...]
    python tools/classroom.py grade FOLDER --assignment NAME
        [--roster CSV] [--layout auto|folders|canvas|moodle]
        [--timeout S] [--jobs N] [--no-sandbox] [--csv FILE]
        [--feedback DIR] [--export canvas|moodle] [--export-to FILE]
        [--lms-column NAME] [--autograders build/classroom/autograder]
    python tools/classroom.py answers FOLDER --assignment NAME [--out F]
    python tools/classroom.py export GRADES.csv --assignment NAME
        --to canvas|moodle [--roster CSV] [--out FILE]

REPO and BRANCH default to publish.toml's (tools/publishing.py);
students and the autograder install publish.toml's release from PyPI
(``d2l-densenet==VERSION``), or, given ``--tag`` or ``--package-repo``,
``git+https://github.com/PACKAGE_REPO@TAG`` (each publish.toml's unless
given). ``build`` writes, for
every master ``NAME.ipynb``:

* ``student/NAME.ipynb``: the notebook to hand out (no solutions, public
  checks only, in its metadata), with an "Open in Colab" badge pointing at
  ``https://github.com/REPO/blob/BRANCH/FOLDER/NAME.ipynb``;
* ``student/zh/NAME.ipynb``: the same notebook in Chinese (中文版): each
  markdown cell replaced by its Chinese text from
  ``notebooks/classroom/zh/NAME.md`` (or ``common.md`` for cells that
  several masters share), code comments and public check messages from
  ``zh/code.md``; the code is the English notebook's but for comments
  and string literals; its badge points at ``.../FOLDER/zh/NAME.ipynb``.
  The build fails, naming what to add, when a text students read has no
  Chinese or its English changed since it was translated;
* ``student/checks/NAME/*.py`` (``checks/zh/NAME/``): the public checks
  as files, which the notebook's Colab cell downloads (Colab cannot read
  a notebook's own metadata);
* ``autograder/NAME-autograder.zip``: every check, public and hidden,
  and the pinned grading environment (``environment.yml``);
  ``autograder/NAME-written.json``: the written questions, their rubrics
  and model answers; ``autograder/NAME-zh.json``: every check's messages
  and name in Chinese (the feedback of Chinese submissions);
* ``solutions/NAME.ipynb``: the solutions (otter's markers show the
  parts students write), every check in its metadata;
* ``samples/``: the solution and the blank student notebook of the first
  assignment, as two submissions to try ``grade`` on.

Publish ``student/`` as ``FOLDER`` of ``REPO`` (branch ``BRANCH``) for the
badges and the Colab cell to work; keep ``autograder/`` and
``solutions/`` private.

``grade`` grades one assignment's submissions, one row per student (see
tools/classroom_grade.py; Canvas's and Moodle's downloads and class
lists: tools/classroom_lms.py); ``answers`` writes all written answers
to an HTML page, question by question; ``export`` writes the LMS's
import file from a grades file.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from publishing import pip_requirement, settings, without_published_links

ROOT = Path(__file__).resolve().parent.parent
MASTERS = ROOT / "notebooks" / "classroom"
DEFAULT_OUT = ROOT / "build" / "classroom"
DEFAULT_FOLDER = "classroom"
_PACKAGE_LINE = re.compile(r'^PACKAGE = "[^"\n]*"', re.M)
# the install cell's "otter-grader==X" (a string, not the comment's name)
_OTTER_PIN = re.compile(r'(?<=")otter-grader(==[\w.]+)?(?=")')


def publish_settings() -> dict[str, str]:
    """repo, branch and tag from publish.toml (tools/publishing.py)."""
    return settings()


def versions() -> dict[str, str]:
    """The versions of the grading environment (this Python's), which the
    autograder zips and the students' install cell pin."""
    from importlib.metadata import version
    out = {}
    for dist in ("otter-grader", "torch", "torchvision", "torchinfo"):
        out[dist] = version(dist).split("+")[0]
    return out
_BADGE = re.compile(r"https://colab\.research\.google\.com/github/"
                    r"[^)\s]*?/([A-Za-z0-9_]+)\.ipynb")
_CHECKS = re.compile(r"^CHECKS = \(.*?\)$", re.S | re.M)
_QUESTIONS = re.compile(r"^QUESTIONS = (\[.*?\])$", re.S | re.M)
#: The Chinese texts of the masters' markdown cells (see zh_texts).
ZH_TEXTS = MASTERS / "zh"
ZH_COMMON = ZH_TEXTS / "common.md"
#: The Chinese of the code comments and the public checks' messages.
ZH_CODE = ZH_TEXTS / "code.md"
#: What otter's empty answer cell of a written question says, in Chinese.
ZH_ANSWER = "_在此输入你的答案，替换这段文字。_"
_ZH_MARK = re.compile(r"^<!-- cell (\S+) en=(\w+) -->[ \t]*$", re.M)


class ClassroomError(RuntimeError):
    """A master notebook, a build or a submission is not as expected."""


def masters(names=None) -> list[Path]:
    """The master notebooks, all or those named (``a_building_blocks``
    or its path)."""
    found = sorted(MASTERS.glob("*.ipynb"))
    if not names:
        if not found:
            raise ClassroomError(f"no master notebooks in {MASTERS}")
        return found
    by_name = {p.stem: p for p in found}
    picked = []
    for n in names:
        stem = Path(n).stem
        if stem not in by_name:
            raise ClassroomError(
                f"no master notebook {stem!r}; the masters are "
                f"{', '.join(sorted(by_name)) or 'none'} (in {MASTERS})")
        picked.append(by_name[stem])
    return picked


def _urls(repo: str, branch: str, folder: str, name: str,
          edition: str = "en"):
    """The badge's URL of a student notebook (of ``edition``, "en" or
    "zh": ``FOLDER/zh/NAME.ipynb``) and the URL of its public checks
    (``FOLDER/checks/NAME/``, ``FOLDER/checks/zh/NAME/``)."""
    sub = "" if edition == "en" else edition
    where = "/".join(p for p in (folder, sub) if p)
    base = f"{repo}/blob/{branch}/{where}".rstrip("/")
    badge = (f"https://colab.research.google.com/github/{base}/"
             f"{name}.ipynb")
    checks = "/".join(p for p in (folder, "checks", sub, name) if p)
    raw = f"https://raw.githubusercontent.com/{repo}/{branch}/{checks}/"
    return badge, raw


def _publish(nb, name: str, repo: str, branch: str, folder: str,
             edition: str = "en") -> None:
    """Point the badge and the Colab cell's CHECKS at where the student
    folder is published."""
    badge, raw = _urls(repo, branch, folder, name, edition)
    for cell in nb.cells:
        src = cell.source
        src = _BADGE.sub(badge, src)
        if _CHECKS.search(src):
            cut = raw.rfind("/", 0, len(raw) // 2 + 8) + 1
            head, tail = raw[:cut], raw[cut:]
            src = _CHECKS.sub(
                f'CHECKS = ("{head}"\n          "{tail}")', src)
        cell.source = src


def _colab_questions(nb) -> list[str] | None:
    for cell in nb.cells:
        m = _QUESTIONS.search(cell.source) if cell.cell_type == "code" \
            else None
        if m:
            return list(ast.literal_eval(m.group(1)))
    return None


def _check_student(nb, name: str) -> dict[str, str]:
    """The public test files of a student notebook, after checking that
    it holds no hidden test and no solution."""
    meta = nb.metadata.get("otter", {})
    if meta.get("assignment_name") != name:
        raise ClassroomError(
            f"{name}: the assignment config must say name: {name} (the "
            f"file name), got {meta.get('assignment_name')!r}")
    tests = meta.get("tests") or {}
    for q, text in tests.items():
        if "hidden=True" in text:
            raise ClassroomError(f"{name}: hidden test in student {q}")
    for cell in nb.cells:
        if "BEGIN SOLUTION" in cell.source or "# SOLUTION" in cell.source:
            raise ClassroomError(f"{name}: solution marker left in the "
                                 f"student notebook: {cell.source[:60]!r}")
    colab = _colab_questions(nb)
    if colab is None or sorted(colab) != sorted(tests):
        raise ClassroomError(
            f"{name}: the Colab cell's QUESTIONS must list the questions "
            f"with checks, {sorted(tests)}; it lists {colab}")
    return tests


# --- the Chinese edition of the student notebooks -------------------------
#
# A file of Chinese texts (notebooks/classroom/zh/NAME.md, common.md) holds
# one section per markdown cell: a marker line
#     <!-- cell CELL_ID en=HASH -->
# and then the cell's Chinese markdown, up to the next marker. HASH is
# en_hash() of the master cell's English: when the English changes, the
# build says so, and the Chinese is updated with it.

def en_hash(text: str) -> str:
    """Eight hex digits identifying the English text of a cell, the
    published repository's links left out."""
    text = without_published_links(text.strip())
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def read_zh(path: Path) -> dict[str, tuple[str, str]]:
    """``{cell id: (en hash, Chinese markdown)}`` of a file of Chinese
    texts; ``{}`` if there is no such file."""
    if not path.exists():
        return {}
    parts = _ZH_MARK.split(path.read_text(encoding="utf-8"))
    out = {}
    for cid, h, body in zip(parts[1::3], parts[2::3], parts[3::3],
                            strict=False):
        if cid in out:
            raise ClassroomError(f"{_rel(path)}: two sections for cell "
                                 f"{cid}; keep one")
        if not body.strip():
            raise ClassroomError(f"{_rel(path)}: the section of cell {cid} "
                                 f"is empty; write its Chinese text")
        out[cid] = (h, body.strip())
    return out


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def student_markdown(nb) -> dict[str, str]:
    """``{cell id: English}`` of a master's markdown cells that students
    read: all but the model answers (between ``# BEGIN SOLUTION`` and
    ``# END SOLUTION`` raw cells; ``NO PROMPT`` may follow BEGIN)."""
    out, in_solution = {}, False
    for cell in nb.cells:
        first = (cell.source.strip().splitlines() or [""])[0].strip()
        if cell.cell_type == "raw" and first.startswith((
                "# BEGIN SOLUTION", "# END SOLUTION")):
            in_solution = first.startswith("# BEGIN SOLUTION")
        elif cell.cell_type == "markdown" and not in_solution:
            out[cell.id] = cell.source
    return out


def zh_texts(master: Path) -> dict[str, str]:
    """``{cell id: Chinese markdown}`` for every markdown cell of
    ``master`` that students read, from ``zh/NAME.md``, else from
    ``zh/common.md``. Raises ClassroomError listing every cell without a
    Chinese text, translated from an older English, or that lost its
    Colab badge, and every section of ``zh/NAME.md`` for no such cell."""
    import nbformat

    name = master.stem
    own_path = ZH_TEXTS / f"{name}.md"
    own, common = read_zh(own_path), read_zh(ZH_COMMON)
    english = student_markdown(nbformat.read(master, as_version=4))
    out, problems = {}, []
    for cid, en in english.items():
        h, line = en_hash(en), en.strip().splitlines()[0][:50]
        where = own_path if cid in own else ZH_COMMON
        old, zh = own.get(cid) or common.get(cid) or (None, None)
        if zh is None:
            problems.append(
                f"markdown cell {cid} ({line!r}) has no Chinese text: add "
                f"a line `<!-- cell {cid} en={h} -->` and the Chinese "
                f"below it to {_rel(own_path)}")
        elif old != h:
            problems.append(
                f"the English of markdown cell {cid} ({line!r}) changed "
                f"since it was translated (en={old} in {_rel(where)}, now "
                f"{h}): update the Chinese there and write en={h}"
                + (f" (or give this master's cell its own section in "
                   f"{_rel(own_path)})" if where == ZH_COMMON else ""))
        elif _BADGE.search(en) and not _BADGE.search(zh):
            problems.append(
                f"the Chinese of markdown cell {cid} ({_rel(where)}) lost "
                f"the Open in Colab badge of the English")
        else:
            out[cid] = zh
    for cid in sorted(own.keys() - english.keys()):
        problems.append(
            f"{_rel(own_path)} has a section for cell {cid}, which is not "
            f"a markdown cell students read in {master.name}: remove it")
    if problems:
        raise ClassroomError(
            f"{name}: the Chinese student notebook is out of step with the "
            f"master:\n  " + "\n  ".join(problems))
    return out


def unused_common(texts: dict[str, dict[str, str]]) -> list[str]:
    """The cell ids of ``zh/common.md`` that no master uses; ``texts``:
    ``{name: zh_texts(master)}`` (which covers every cell students
    read)."""
    used = set().union(*(t.keys() for t in texts.values()))
    return sorted(read_zh(ZH_COMMON).keys() - used)


def _zh_student(student, master_english: dict[str, str],
                texts: dict[str, str], name: str, badge: str):
    """The Chinese student notebook: ``student`` (the built English one)
    with each markdown cell's master text replaced by its Chinese (otter's
    additions, e.g. ``<!-- BEGIN QUESTION -->``, kept) and the badge
    pointing at ``badge``."""
    nb = copy.deepcopy(student)
    seen = set()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        if "otter_answer_cell" in cell.metadata.get("tags", []):
            cell.source = ZH_ANSWER
            continue
        en = master_english.get(cell.id)
        at = cell.source.find(en) if en is not None else -1
        if at < 0:
            raise ClassroomError(
                f"{name}: markdown cell {cell.id} of the student notebook "
                f"({cell.source[:50]!r}) is not a master cell the Chinese "
                f"texts cover; tools/classroom.py must learn this cell")
        zh = _BADGE.sub(badge, texts[cell.id])
        cell.source = cell.source[:at] + zh + cell.source[at + len(en):]
        seen.add(cell.id)
    if seen != texts.keys():
        raise ClassroomError(
            f"{name}: markdown cells {sorted(texts.keys() - seen)} of the "
            f"master are not in the student notebook")
    return nb


def _zh_code(nb, missing: list) -> None:
    """Chinese comments in ``nb``'s code cells and Chinese messages in its
    public checks (zh/code.md); what has no Chinese goes to
    ``missing``."""
    import classroom_zh_code as zc
    try:
        table = zc.read(ZH_CODE)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = zc.translate_code(cell.source, table,
                                                missing)
        tests = nb.metadata["otter"]["tests"]
        for q in tests:
            tests[q] = zc.translate_test(tests[q], table, missing)
    except zc.ZhCodeError as e:
        raise ClassroomError(f"{_rel(ZH_CODE)}: {e}") from e


def zh_checks(zip_path: Path, missing: list) -> dict:
    """The Chinese of every check of an autograder zip, hidden ones
    included, for grading Chinese submissions: ``{"tests": {question:
    source with Chinese messages}, "titles": {test function: Chinese
    title}, "own_work": the own-work helper in Chinese}``; what has no
    Chinese in zh/code.md goes to ``missing``."""
    import zipfile

    import classroom_grade as cg
    import classroom_zh_code as zc
    try:
        table = zc.read(ZH_CODE)
        out = dict(tests={}, titles={},
                   own_work=zc.translate_test(
                       ast.unparse(ast.parse(OWN_WORK)), table, missing))
        with zipfile.ZipFile(zip_path) as z:
            for n in sorted(z.namelist()):
                if not (n.startswith("tests/") and n.endswith(".py")):
                    continue
                src = z.read(n).decode("utf-8")
                out["tests"][Path(n).stem] = zc.translate_test(
                    src, table, missing)
                for fn in re.findall(r"^def (test_\w+)\(", src, re.M):
                    out["titles"][fn] = zc.translate_title(
                        cg.check_title(fn), table, missing)
    except zc.ZhCodeError as e:
        raise ClassroomError(f"{_rel(ZH_CODE)}: {e}") from e
    return out


def _quiet_otter_logging() -> None:
    import logging
    logging.getLogger("otter").setLevel(logging.WARNING)


#: The checks' helper that says whether a graded function or class was
#: written in the notebook; a master's test calls ``_own_work(name, obj)``
#: and the build puts this definition at the top of that test.
OWN_WORK = '''\
def _own_work(name, obj, allow=(), pure=False):
    import types
    assert obj is not None and obj is not ..., (
        f"{name} is not defined: run the cell that defines it")
    mod = getattr(obj, "__module__", None) or type(obj).__module__
    assert mod == "__main__", (
        f"{name} is not your code: it comes from {mod}. Write it in its "
        f"cell of this notebook; imported code earns no points")
    for b in getattr(obj, "__mro__", ())[1:]:
        base = f"{b.__module__}.{b.__name__}"
        assert not (b.__module__.startswith("d2l_densenet")
                    and b.__name__ not in allow), (
            f"{name} only inherits {base}: write the code yourself")
    funcs = ([f for f in vars(obj).values()
              if isinstance(f, types.FunctionType)]
             if isinstance(obj, type) else
             [obj] if isinstance(obj, types.FunctionType) else [])
    used = set()
    for f in funcs:
        todo = [f.__code__]
        while todo:
            code = todo.pop()
            todo += [c for c in code.co_consts
                     if isinstance(c, types.CodeType)]
            for n in code.co_names:
                v = f.__globals__.get(n)
                m = (v.__name__ if isinstance(v, types.ModuleType)
                     else getattr(v, "__module__", None)) or ""
                if n in allow:
                    continue
                if m.startswith("d2l_densenet") or (
                        pure and m.split(".")[0] == "torch"):
                    used.add(n)
    names = ", ".join(sorted(used))
    assert not (used and pure), (
        f"{name} uses {names} from PyTorch or the package "
        f"d2l_densenet: compute it from the numbers only")
    assert not used, (
        f"{name} uses {names} from the package d2l_densenet: write "
        f"the code yourself")
'''


def inject_own_work(source: str) -> str:
    """A test cell's source with OWN_WORK defined at the top of its test
    function, if the test calls ``_own_work``."""
    if "_own_work(" not in source:
        return source
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    first = fn.body[0]
    lines = source.splitlines()
    indent = " " * first.col_offset
    helper = [indent + line if line else line
              for line in OWN_WORK.splitlines()]
    at = first.lineno - 1
    return "\n".join(lines[:at] + helper + lines[at:])


def requirements(package: str, vers: dict[str, str]) -> list[str]:
    """The pip requirements of the grading environment: PyTorch's CPU
    wheels, the package (``package``: the release), otter-grader; all
    pinned."""
    return ["--extra-index-url https://download.pytorch.org/whl/cpu",
            f"torch=={vers['torch']}",
            f"torchvision=={vers['torchvision']}",
            f"torchinfo=={vers['torchinfo']}",
            f"otter-grader[grading,plugins]=={vers['otter-grader']}",
            package]


def written_of(master: Path) -> list[dict]:
    """The written (manual) questions of a master: name, points, prompt,
    rubric (the solution's markdown cell that starts with
    ``**Rubric``) and model answer."""
    import nbformat

    nb = nbformat.read(master, as_version=4)
    out, current, in_solution = [], None, False
    for cell in nb.cells:
        first = (cell.source.strip().splitlines() or [""])[0].strip()
        if cell.cell_type == "raw" and first == "# BEGIN QUESTION":
            conf = {}
            for line in cell.source.splitlines()[1:]:
                k, _, v = line.partition(":")
                conf[k.strip()] = v.strip()
            current = None
            if conf.get("manual") == "true":
                current = dict(name=conf["name"],
                               points=float(conf.get("points", 0)),
                               prompt="", rubric="", answer="")
                out.append(current)
        elif cell.cell_type == "raw" and first == "# END QUESTION":
            current = None
        elif cell.cell_type == "raw" and first.startswith(
                ("# BEGIN SOLUTION", "# END SOLUTION")):
            in_solution = first.startswith("# BEGIN SOLUTION")
        elif current is not None and cell.cell_type == "markdown":
            if not in_solution:
                current["prompt"] += cell.source
            elif cell.source.lstrip().startswith("**Rubric"):
                current["rubric"] += cell.source
            else:
                current["answer"] += cell.source
    for q in out:
        if not q["rubric"]:
            raise ClassroomError(
                f"{master.stem}: written question {q['name']} has no "
                f"rubric: add a markdown cell starting with **Rubric** to "
                f"its solution")
    return out


def prepare_master(master: Path, tmp: Path, package: str,
                   vers: dict[str, str]) -> Path:
    """A copy of ``master`` in ``tmp`` to run otter assign on: its
    grading environment pinned (``environment.yml`` next to it: git, for
    the package's git URL, and requirements()), the own-work helper in
    the tests that call it, the install cell pinned to ``package`` (a
    pip requirement)."""
    import nbformat

    nb = nbformat.read(master, as_version=4)
    env = ["name: otter-env", "channels:", "  - conda-forge",
           "dependencies:", "  - git", "  - pip", "  - pip:"]
    env += [f"      - {r}" for r in requirements(package, vers)]
    (tmp / "environment.yml").write_text("\n".join(env) + "\n",
                                         encoding="utf-8")
    config = nb.cells[0]
    if not config.source.startswith("# ASSIGNMENT CONFIG"):
        raise ClassroomError(f"{master.stem}: the first cell must be the "
                             f"# ASSIGNMENT CONFIG raw cell")
    config.source = config.source.rstrip() + (
        "\nenvironment: environment.yml\n"
        "overwrite_requirements: false")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = inject_own_work(cell.source)
            if _PACKAGE_LINE.search(cell.source):
                cell.source = _PACKAGE_LINE.sub(f'PACKAGE = "{package}"',
                                                cell.source)
                cell.source = _OTTER_PIN.sub(
                    f"otter-grader=={vers['otter-grader']}", cell.source)
    path = tmp / master.name
    nbformat.write(nb, path)
    return path


def build(out: Path = DEFAULT_OUT, names=None, run_tests: bool = True,
          repo: str | None = None, branch: str | None = None,
          folder: str = DEFAULT_FOLDER, tag: str | None = None,
          package_repo: str | None = None) -> dict[str, dict[str, Path]]:
    """Build the edition into ``out``; returns ``{name: {"student",
    "student_zh", "checks", "checks_zh", "autograder", "written",
    "solution"}}`` paths. ``repo``, ``branch``: where student/ is
    published; ``package_repo``, ``tag``: given either, students and the
    autograder install ``git+https://github.com/PACKAGE_REPO@TAG``
    (publish.toml's unless given) instead of publish.toml's release on
    PyPI."""
    pub = publish_settings()
    repo, branch = repo or pub["repo"], branch or pub["branch"]
    package = (f"d2l-densenet @ git+https://github.com/"
               f"{package_repo or pub['repo']}@{tag or pub['tag']}"
               if tag or package_repo else pip_requirement(pub))
    vers = versions()
    todo = masters(names)
    # Before the slow part: every master's Chinese texts are complete,
    # every written question has a rubric.
    zh = {m.stem: zh_texts(m) for m in todo}
    written = {m.stem: written_of(m) for m in todo}
    unused = [] if names else unused_common(zh)
    if unused:
        raise ClassroomError(
            f"{_rel(ZH_COMMON)} has sections for cells {unused}, which no "
            f"master has: remove them")
    import nbformat
    from otter.assign import main as otter_assign

    _quiet_otter_logging()
    out = Path(out)
    for sub in ("student/zh", "autograder", "solutions", "samples"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    built, missing = {}, []
    for i, master in enumerate(todo, 1):
        name = master.stem
        start = time.perf_counter()
        note = " (running the checks on the solution)" if run_tests else ""
        print(f"[{i}/{len(todo)}] {name}: otter assign{note}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / name
            prepared = prepare_master(master, Path(tmp), package, vers)
            try:
                otter_assign(str(prepared), str(result), no_pdfs=True,
                             no_run_tests=not run_tests)
            except Exception as e:  # otter reports failing checks so
                raise ClassroomError(f"{name}: otter assign failed: "
                                     f"{type(e).__name__}: {e}") from e
            student = nbformat.read(result / "student" / f"{name}.ipynb",
                                    as_version=4)
            solution = nbformat.read(
                result / "autograder" / f"{name}.ipynb", as_version=4)
            zips = sorted((result / "autograder").glob(
                f"{name}-autograder_*.zip"))
            if len(zips) != 1:
                raise ClassroomError(f"{name}: expected one autograder "
                                     f"zip, found {zips}")
            tests = _check_student(student, name)
            paths = dict(
                student=out / "student" / f"{name}.ipynb",
                student_zh=out / "student" / "zh" / f"{name}.ipynb",
                checks=out / "student" / "checks" / name,
                autograder=out / "autograder" / f"{name}-autograder.zip",
                written=out / "autograder" / f"{name}-written.json",
                solution=out / "solutions" / f"{name}.ipynb")
            shutil.copyfile(zips[0], paths["autograder"])
        paths["zh_checks"] = paths["autograder"].with_name(
            f"{name}-zh.json")
        paths["zh_checks"].write_text(json.dumps(
            zh_checks(paths["autograder"], missing), indent=1,
            ensure_ascii=False), encoding="utf-8")
        student.metadata["d2l_densenet"] = {"edition": "en"}
        paths["written"].write_text(json.dumps(written[name], indent=1,
                                               ensure_ascii=False),
                                    encoding="utf-8")
        for nb in (student, solution):
            _publish(nb, name, repo, branch, folder)
        nbformat.write(student, paths["student"])
        # the master's English as _publish left it in the student notebook
        badge, _ = _urls(repo, branch, folder, name)
        english = {cid: _BADGE.sub(badge, en) for cid, en in
                   student_markdown(nbformat.read(master, as_version=4))
                   .items()}
        badge_zh, _ = _urls(repo, branch, folder, name, "zh")
        student_zh = _zh_student(student, english, zh[name], name,
                                 badge_zh)
        _zh_code(student_zh, missing)
        student_zh.metadata["d2l_densenet"] = {"edition": "zh"}
        _publish(student_zh, name, repo, branch, folder, "zh")
        nbformat.write(student_zh, paths["student_zh"])
        nbformat.write(solution, paths["solution"])
        paths["checks_zh"] = paths["checks"].parent / "zh" / name
        for where, nb in ((paths["checks"], student),
                          (paths["checks_zh"], student_zh)):
            if where.exists():
                shutil.rmtree(where)
            where.mkdir(parents=True)
            for q, text in nb.metadata["otter"]["tests"].items():
                (where / f"{q}.py").write_text(text, encoding="utf-8")
        built[name] = paths
        print(f"    {len(tests)} questions with checks; "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    if missing:
        import classroom_zh_code as zc
        raise ClassroomError(zc.missing_report(_rel(ZH_CODE), missing))
    _write_index(out, built, repo, branch, folder)
    first = next(iter(built))
    shutil.copyfile(built[first]["solution"],
                    out / "samples" / f"{first}-solution.ipynb")
    shutil.copyfile(built[first]["student"],
                    out / "samples" / f"{first}-blank.ipynb")
    print(f"built {len(built)} assignment(s) into {out}: student/ (with "
          f"zh/, the Chinese notebooks; publish it as {repo}/{folder} on "
          f"{branch}), autograder/ and "
          f"solutions/ (keep private), samples/")
    return built


def _write_index(out: Path, built, repo, branch, folder) -> None:
    lines = ["# DenseNet assignments (classroom edition)", "",
             "Open an assignment in Colab, or download the notebook and "
             "run it in Jupyter. Each notebook says how to check your "
             "work and how to hand it in.", ""]
    for name in built:
        badge, _ = _urls(repo, branch, folder, name)
        lines.append(
            f"* `{name}.ipynb` [![Open In Colab](https://colab.research."
            f"google.com/assets/colab-badge.svg)]({badge})")
    lines += ["", "## 中文版", "",
              "中文版的作业在 `zh/` 中：代码和检查与英文版相同，说明为"
              "中文。在 Colab 中打开，或下载后在 Jupyter 中运行。", ""]
    for name in built:
        badge, _ = _urls(repo, branch, folder, name, "zh")
        lines.append(
            f"* `zh/{name}.ipynb` [![Open In Colab](https://colab."
            f"research.google.com/assets/colab-badge.svg)]({badge})")
    (out / "student" / "README.md").write_text("\n".join(lines) + "\n",
                                               encoding="utf-8")


# --- grading: tools/classroom_grade.py -----------------------------------

def grade(folder, name, autograders=DEFAULT_OUT / "autograder",
          csv_path=None, roster=None, timeout=600, feedback=None,
          jobs=None, sandbox=None, layout="auto", export=None,
          export_path=None, lms_column=None):
    """Grade ``folder``'s submissions to assignment ``name``
    (classroom_grade.grade); ClassroomError on bad input."""
    import classroom_grade as cg
    try:
        return cg.grade(folder, name, autograders, csv_path, roster,
                        timeout, feedback, jobs, sandbox, layout, export,
                        export_path, lms_column)
    except cg.GradeError as e:
        raise ClassroomError(str(e)) from e


def answers(folder, name, autograders=DEFAULT_OUT / "autograder",
            out=None, layout="auto"):
    """One HTML page of every student's written answers to ``name``
    (classroom_grade.export_answers)."""
    import classroom_grade as cg
    try:
        return cg.export_answers(folder, name, autograders, out, layout)
    except cg.GradeError as e:
        raise ClassroomError(str(e)) from e


def export(csv_path, name, kind, autograders=DEFAULT_OUT / "autograder",
           roster=None, out=None, column=None):
    """The LMS's import file from a grades file
    (classroom_grade.export_grades)."""
    import classroom_grade as cg
    try:
        return cg.export_grades(csv_path, name, autograders, kind, roster,
                                out, column)
    except cg.GradeError as e:
        raise ClassroomError(str(e)) from e


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of 1 or more, got {text!r}")
    return n


def main(argv=None) -> int:
    import classroom_grade as cg
    import classroom_lms as lms
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the edition with otter assign")
    b.add_argument("names", nargs="*", help="masters to build (all)")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--no-run-tests", action="store_true",
                   help="do not run the checks on the solutions")
    b.add_argument("--repo", default=None,
                   help="GitHub OWNER/NAME where student/ is published "
                   "(default: publish.toml's)")
    b.add_argument("--branch", default=None,
                   help="its branch (default: publish.toml's)")
    b.add_argument("--tag", default=None,
                   help="a git tag students and the autograder install "
                   "the package at (default: publish.toml's release on "
                   "PyPI)")
    b.add_argument("--package-repo", default=None,
                   help="GitHub OWNER/NAME of the package (default: "
                   "publish.toml's repo)")
    b.add_argument("--folder", default=DEFAULT_FOLDER,
                   help="folder of the repository that holds student/")
    g = sub.add_parser("grade", help="grade a folder of submissions to "
                       "one assignment")
    g.add_argument("folder", type=Path)
    g.add_argument("--assignment", required=True,
                   help="the assignment to grade, e.g. a_building_blocks")
    g.add_argument("--autograders", type=Path,
                   default=DEFAULT_OUT / "autograder")
    g.add_argument("--roster", type=Path, default=None,
                   help="the class list: Canvas's gradebook export, "
                   "Moodle's grading worksheet, or a CSV with a column "
                   "student (optional name); students without a "
                   "submission get a row")
    g.add_argument("--layout", choices=lms.LAYOUTS, default="auto",
                   help="how the folder is laid out (detected)")
    g.add_argument("--timeout", type=float, default=600,
                   help="seconds one submission may run (600)")
    g.add_argument("--jobs", type=_positive_int, default=None,
                   help="submissions graded at once (default: one per "
                   f"core as memory allows, {cg.default_jobs()} here)")
    g.add_argument("--no-sandbox", action="store_true",
                   help="run submissions without the sandbox (student "
                   "code gets your rights; said on every run)")
    g.add_argument("--csv", type=Path, default=None,
                   help="grades file to merge into (FOLDER/grades.csv)")
    g.add_argument("--feedback", type=Path, default=None,
                   help="folder of the feedback files (FOLDER/feedback)")
    g.add_argument("--export", choices=("canvas", "moodle"), default=None,
                   help="also write the LMS's import file "
                   "(FOLDER/KIND-import-NAME.csv)")
    g.add_argument("--export-to", type=Path, default=None,
                   help="where to write the import file")
    g.add_argument("--lms-column", default=None,
                   help="Canvas: the assignment's column in the import "
                   "file (default: the class list's column naming the "
                   "assignment, else its name)")
    w = sub.add_parser("answers", help="every student's written answers "
                       "to one assignment, side by side, as HTML")
    w.add_argument("folder", type=Path)
    w.add_argument("--assignment", required=True)
    w.add_argument("--autograders", type=Path,
                   default=DEFAULT_OUT / "autograder")
    w.add_argument("--layout", choices=lms.LAYOUTS, default="auto")
    w.add_argument("--out", type=Path, default=None)
    e = sub.add_parser("export", help="the LMS's import file from a "
                       "grades file (totals recomputed after typing in "
                       "the written answers' points)")
    e.add_argument("csv", type=Path, help="the grades file")
    e.add_argument("--assignment", required=True)
    e.add_argument("--to", dest="kind", choices=("canvas", "moodle"),
                   required=True)
    e.add_argument("--roster", type=Path, default=None,
                   help="Canvas's gradebook export or Moodle's grading "
                   "worksheet")
    e.add_argument("--autograders", type=Path,
                   default=DEFAULT_OUT / "autograder")
    e.add_argument("--out", type=Path, default=None)
    e.add_argument("--lms-column", default=None)
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            if args.repo and not re.fullmatch(r"[\w.-]+/[\w.-]+",
                                              args.repo):
                raise ClassroomError(
                    f"--repo must be OWNER/NAME, got {args.repo!r}")
            build(args.out, args.names, not args.no_run_tests, args.repo,
                  args.branch, args.folder.strip("/"), args.tag,
                  args.package_repo)
        elif args.command == "grade":
            rows = grade(args.folder, args.assignment, args.autograders,
                         args.csv, args.roster, args.timeout,
                         args.feedback, args.jobs,
                         False if args.no_sandbox else None, args.layout,
                         args.export, args.export_to, args.lms_column)
            if any(r["status"] != "graded" for r in rows):
                return 1
        elif args.command == "export":
            export(args.csv, args.assignment, args.kind, args.autograders,
                   args.roster, args.out, args.lms_column)
        else:
            answers(args.folder, args.assignment, args.autograders,
                    args.out, args.layout)
    except ClassroomError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
