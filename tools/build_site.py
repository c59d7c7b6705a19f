"""Build the series' static site into ``build/site/`` (``make site``).

``python tools/build_site.py [--mode gpu|cpu|smoke] [--out build/site]``

1. The executed notebooks of both editions in that mode (default: the
   device's) from ``build/run/MODE/EDITION/``; those missing, or made from
   an older source, are executed first (tools/run_notebooks.py).
2. The classroom edition's student notebooks, unexecuted: from
   ``build/classroom/student/`` when ``make classroom`` built it, else
   built by ``tools/classroom.py build --out build/site-classroom``.
3. A Sphinx project in ``build/site-src/`` (the configuration in
   ``site/``): the README as the landing page, every notebook with its
   outputs and a line saying how it was executed (mode, device, run
   time), a link to its twin in the other edition, the student
   notebooks; then ``sphinx-build`` renders it with myst-nb (stored
   outputs, nothing executed), with navigation and search; math is
   MathML written at build time (site/mathml.py): no CDN, no network.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import run_notebooks as rn

ROOT = rn.ROOT
SITE_CONF = ROOT / "site"
OUT = ROOT / "build" / "site"
SRC = ROOT / "build" / "site-src"
CLASSROOM = ROOT / "build" / "classroom"
CLASSROOM_FOR_SITE = ROOT / "build" / "site-classroom"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
#: The language of each edition's pages (the <html lang> attribute).
LANG = {"en": "en", "zh": "zh-CN"}
#: Folders of pages in Chinese.
ZH_FOLDERS = ("zh", "classroom/zh")


def _depth_prefix(rel: str) -> str:
    """``"../"`` per folder level of a page's path below the site root."""
    return "../" * rel.count("/")


def _local_badge(text: str, rel: str) -> str:
    """The Colab badge image from the site itself (the page still links
    to Colab): the site must load with no network."""
    return text.replace(COLAB_BADGE,
                        _depth_prefix(rel) + "_static/colab-badge.svg")


def _seconds(info: dict) -> str:
    s = info["seconds"]
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def run_line(info: dict, edition: str, twin: str) -> str:
    """The line under a page's title: how the notebook was executed, and
    the link to its twin in the other edition."""
    if edition == "zh":
        how = (f"在{info['mode']}模式下执行，设备：{info['device']}，用时"
               f"{_seconds(info)}")
        if info.get("repeat", 1) > 1:
            how += (f"（测试在同一内核中连续运行{info['repeat']}遍的总时间；"
                    f"本页显示最后一遍）")
        return (f"*{how}；{info['date']}，Python {info['python']}，torch "
                f"{info['torch']}。* English: {{doc}}`{twin}`\n")
    how = (f"Executed in {info['mode']} mode on {info['device']} in "
           f"{_seconds(info)}")
    if info.get("repeat", 1) > 1:
        how += (f" (the test suite runs it {info['repeat']} times in a row "
                f"in one kernel: the time is for all passes, this page "
                f"shows the last)")
    return (f"*{how}; {info['date']}, Python {info['python']}, torch "
            f"{info['torch']}.* 中文版: {{doc}}`{twin}`\n")


def _insert_after_title(nb, line: str) -> None:
    """Put ``line`` right under the notebook's ``# title``."""
    cell = nb.cells[0]
    lines = cell.source.splitlines()
    at = next((i + 1 for i, x in enumerate(lines) if x.startswith("# ")),
              0)
    lines[at:at] = ["", line]
    cell.source = "\n".join(lines)


def notebook_pages(mode: str, src: Path) -> list[dict]:
    """Copy both editions' executed notebooks into ``src`` with the run
    line under their titles; returns one row per notebook."""
    import nbformat

    rows = []
    for edition in ("en", "zh"):
        executed = rn.ensure(edition, mode)
        for path in executed:
            nb = nbformat.read(path, as_version=4)
            info = nb.metadata[rn.RUN_KEY]
            other = "zh" if edition == "en" else "en"
            twin = f"/{other}/{path.stem}"
            if not (rn.EDITIONS[other] / path.name).is_file():
                twin = f"/{other}/index"
            _insert_after_title(nb, run_line(info, edition, twin))
            rel = f"{edition}/{path.name}"
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = _local_badge(cell.source, rel)
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
            rows.append(dict(edition=edition, name=path.stem, **info))
    return rows


def _up_to_date(student: Path) -> bool:
    """A classroom build with student notebooks newer than every master
    and than tools/classroom.py."""
    built = [p.stat().st_mtime for p in student.glob("*.ipynb")]
    masters = (ROOT / "notebooks" / "classroom").rglob("*")
    sources = [p.stat().st_mtime for p in masters if p.is_file()]
    sources.append((ROOT / "tools" / "classroom.py").stat().st_mtime)
    return bool(built) and min(built) >= max(sources)


def student_notebooks(src: Path) -> Path:
    """Copy the classroom edition's student notebooks (unexecuted) into
    ``src/classroom``; returns the folder they came from."""
    student = CLASSROOM / "student"
    if not _up_to_date(student):
        out = CLASSROOM_FOR_SITE
        student = out / "student"
        if not _up_to_date(student):
            cmd = [sys.executable, str(ROOT / "tools" / "classroom.py"),
                   "build", "--out", str(out)]
            print("  building the classroom edition: " + " ".join(cmd[1:]),
                  flush=True)
            # the solutions' checks are the classroom tests' business:
            # skip them when this classroom.py can
            fast = subprocess.run(cmd + ["--no-run-tests"], cwd=ROOT,
                                  capture_output=True, text=True)
            if fast.returncode == 2 and "--no-run-tests" in fast.stderr:
                subprocess.run(cmd, check=True, cwd=ROOT)
            elif fast.returncode != 0:
                raise RuntimeError("tools/classroom.py build failed:\n"
                                   + fast.stdout[-2000:] + fast.stderr[-2000:])
    for nb_path in sorted(student.glob("*.ipynb")) + sorted(
            student.glob("zh/*.ipynb")):
        rel = nb_path.relative_to(student).as_posix()
        target = src / "classroom" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = nb_path.read_text(encoding="utf-8")
        target.write_text(_local_badge(text, "classroom/" + rel),
                          encoding="utf-8")
    return student


def _toctree(caption: str, entries: list[str], hidden: bool = False) -> str:
    opts = f":caption: {caption}\n:maxdepth: 1\n" + (
        ":hidden:\n" if hidden else "")
    return "```{toctree}\n" + opts + "\n" + "\n".join(entries) + "\n```\n"


def _readme(text: str, edition: str) -> str:
    """A README as a site page: links to files that are pages here."""
    up = "../" if edition == "zh" else ""
    for old, new in (("(README.zh.md)", "(zh/index.md)"),
                     ("(README.md)", f"({up}index.md)"),
                     ("(notebooks/zh/GLOSSARY.md)", f"({up}zh/GLOSSARY.md)"),
                     ("(notebooks/classroom/TEACHERS.md)",
                      f"({up}classroom/TEACHERS.md)")):
        text = text.replace(old, new)
    return _local_badge(text, "zh/x" if edition == "zh" else "x")


def _run_table(rows: list[dict], edition: str) -> str:
    """How each notebook of an edition was executed, linking its page and
    its twin's."""
    twins = {(r["edition"], r["name"]) for r in rows}
    other = "zh" if edition == "en" else "en"
    up = "" if edition == "en" else "../"
    head = ("| 记事本 | English | 模式 | 设备 | 用时 | 日期 |\n"
            if edition == "zh" else
            "| notebook | 中文版 | mode | device | run time | date |\n")
    lines = [head + "|---|---|---|---|---|---|\n"]
    for r in rows:
        if r["edition"] != edition:
            continue
        twin = (f"{{doc}}`{r['name'][:2]} <{up}{other}/{r['name']}>`"
                if (other, r["name"]) in twins else "")
        runs = f" (x{r['repeat']})" if r.get("repeat", 1) > 1 else ""
        lines.append(
            f"| {{doc}}`{r['name']} <{up}{edition}/{r['name']}>` | {twin} "
            f"| {r['mode']} | {r['device']} | {_seconds(r)}{runs} "
            f"| {r['date']} |\n")
    return "".join(lines)


def pages(mode: str, src: Path) -> dict:
    """Lay out every page of the site in ``src``."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(SITE_CONF, src)
    rows = notebook_pages(mode, src)
    student = student_notebooks(src)
    en = [f"en/{r['name']}" for r in rows if r["edition"] == "en"]
    zh = [r["name"] for r in rows if r["edition"] == "zh"]
    cls = sorted(p.relative_to(src).with_suffix("").as_posix()
                 for p in (src / "classroom").glob("*.ipynb"))
    cls_zh = sorted(p.relative_to(src / "classroom").with_suffix("")
                    .as_posix()
                    for p in (src / "classroom").glob("zh/*.ipynb"))
    shutil.copy(ROOT / "notebooks" / "classroom" / "TEACHERS.md",
                src / "classroom" / "TEACHERS.md")
    (src / "classroom" / "index.md").write_text(
        "# The classroom edition (student notebooks)\n\nThe assignments as "
        "students get them (no outputs, no solutions), built by "
        "`tools/classroom.py build`. Teachers: {doc}`TEACHERS`.\n\n"
        + _toctree("Assignments", [c.split("/", 1)[1] for c in cls]
                   + ["TEACHERS"])
        + "\n" + _toctree("作业（中文版）", cls_zh), encoding="utf-8")
    readme = _readme((ROOT / "README.md").read_text(encoding="utf-8"), "en")
    (src / "index.md").write_text(
        readme + "\n\n## The notebooks on this site\n\nEach page shows a "
        "notebook as `make run` executed it, with its figures and printed "
        "answers; how it was run:\n\n" + _run_table(rows, "en") + "\n"
        + _toctree("Notebooks", en) + "\n"
        + _toctree("中文版", ["zh/index"]) + "\n"
        + _toctree("Classroom edition", ["classroom/index"]),
        encoding="utf-8")
    zh_readme = _readme((ROOT / "README.zh.md").read_text(encoding="utf-8"),
                        "zh")
    (src / "zh").mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "zh" / "GLOSSARY.md",
                src / "zh" / "GLOSSARY.md")
    (src / "zh" / "index.md").write_text(
        zh_readme + "\n\n## 本站的记事本\n\n每页显示`make run`执行后的记事本，"
        "含图和输出；执行方式：\n\n" + _run_table(rows, "zh") + "\n"
        + _toctree("记事本", zh + ["GLOSSARY"]), encoding="utf-8")
    return {"rows": rows, "student": student, "classroom": cls + [
        "classroom/" + c for c in cls_zh]}


def _set_lang(out: Path) -> None:
    """Chinese pages say so (<html lang="zh-CN">): the browser then picks
    a font with Chinese glyphs and the right forms."""
    for folder in ZH_FOLDERS:
        for page in (out / folder).glob("*.html"):
            text = page.read_text(encoding="utf-8")
            page.write_text(re.sub(r'<html lang="[^"]*"',
                                   f'<html lang="{LANG["zh"]}"', text,
                                   count=1), encoding="utf-8")


def build(mode: str | None = None, out: Path = OUT, src: Path = SRC,
          jobs: str = "1") -> dict:
    """Build the site; returns what went in (rows: one per notebook)."""
    mode = rn.run_mode(mode)
    print(f"Building the site from {mode}-mode runs into {out}/",
          flush=True)
    laid = pages(mode, src)
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", jobs,
           "-d", str(src.parent / "site-doctrees"), str(src), str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    _set_lang(out)
    (out / ".nojekyll").touch()   # GitHub Pages: serve _static/ as is
    laid["mode"] = mode
    return laid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/build_site.py")
    p.add_argument("--mode", choices=rn.MODES,
                   help=f"default: ${rn.ENV}, else gpu if CUDA else cpu")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    try:
        laid = build(args.mode, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Done: {len(laid['rows'])} notebook pages and "
          f"{len(laid['classroom'])} student notebooks; open "
          f"{args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
