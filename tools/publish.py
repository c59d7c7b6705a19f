"""Point every Colab badge, install cell and release link at publish.toml
(``make publish``).

``python tools/publish.py [--repo OWNER/NAME] [--branch B]
[--version V] [--tag T] [--check]``

With --repo/--branch/--version/--tag it first writes them into
publish.toml (its comments kept; --version also sets pyproject.toml's
version and, without --tag, the tag ``vVERSION``). Then it rewrites, in
every notebook of the series (both editions), the classroom masters and
their Chinese texts, the teacher's guide and both READMEs:

- each Colab badge or link
  ``https://colab.research.google.com/github/{repo}/blob/{branch}/PATH``
  (PATH kept);
- each notebook's install cell, written whole from this file's templates
  (English, Chinese, classroom): it installs
  ``d2l-densenet=={version}`` from PyPI (or a mirror: ``MIRROR``), names
  the git tag to install from before the release is on PyPI, and stops
  the notebook with a plain message when pip fails;
- every other link to the project's repository (``github.com/{repo}``,
  ``git+https://github.com/{repo}@{tag}``) and every
  ``d2l-densenet==VERSION`` pin.

``--check`` changes nothing and lists each place that disagrees with
publish.toml (exit status 1 if any).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import publishing

ROOT = publishing.ROOT
NAME = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
COLAB = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repo>" + NAME +
    r")/blob/(?P<branch>[A-Za-z0-9_./-]+?)/(?P<path>notebooks/|classroom/)")
# an old install cell's REPO line, in a notebook's JSON (\") or as text (")
REPO_LINE = re.compile(
    r'REPO = (?P<q>\\?")https://github\.com/(?P<repo>' + NAME +
    r')(?P=q)')
PIP_URL = re.compile(r"git\+https://github\.com/(?P<repo>[A-Za-z0-9_.-]+/"
                     r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*?)(?:\.git)?"
                     r"(?:@(?P<tag>[A-Za-z0-9_./-]*[A-Za-z0-9_]))?")
#: ``d2l-densenet==0.3.0`` wherever it is written (install cells,
#: READMEs, the teacher's guide)
PIN = re.compile(r"(?<![\w.-])d2l-densenet==(?P<version>[0-9][A-Za-z0-9.]*"
                 r"[A-Za-z0-9])")
KEYS = publishing.KEYS
#: The first code cell that holds this is a notebook's install cell.
COLAB_TEST = '"google.colab" in sys.modules'
PACKAGE_LINE = re.compile(r'^PACKAGE = "[^"\n]*"', re.M)

# The install cells. Each is written whole by make publish; {package},
# {git} and (classroom) {checks}, {questions}, {otter} are filled in.
# The Chinese cell's code is the English one's but for strings and
# comments, line for line (tests/test_zh.py).
_CELL_CODE = """\
import subprocess
import sys

PACKAGE = "{package}"
MIRROR = ""
INSTALL = "google.colab" in sys.modules


class InstallError(Exception):
    def _render_traceback_(self):  # {ipython}
        return [f"InstallError: {{self}}"]


if INSTALL:
    index = ["--index-url", MIRROR] if MIRROR else []
    for args in (["--no-deps", "d2l==1.0.3"], ["torchinfo", PACKAGE]):
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", *index, *args],
            capture_output=True, text=True)
        if pip.returncode != 0:
            print(pip.stdout[-2000:], pip.stderr[-2000:], file=sys.stderr)
            raise InstallError(
{message})
    # {font}
    subprocess.run(["apt-get", "-qq", "install", "-y",
                    "fonts-wqy-microhei"], check=False)
"""
_SERIES = {
    "en": dict(
        head="""\
# Colab only: install d2l (without its outdated pins) and this package;
# elsewhere, set INSTALL = True to install them here. MIRROR: a PyPI
# mirror's index URL ("" for PyPI). A release not on PyPI yet installs
# from its git tag: set
# PACKAGE = "{git}"
# Other platforms, mirrors, CPU-only PyTorch: the README, "Installing
# the package".
""",
        ipython="IPython shows the message only",
        message="""\
                f"pip could not install {args[-1]} (its output is above). "
                "Check the network; for a release not on PyPI yet, "
                "install from its git tag (see the top of this cell).\"""",
        font="Chinese labels in figures (the Chinese edition): a CJK font"),
    "zh": dict(
        head="""\
# 仅在Colab上运行：安装d2l（不带它过时的版本锁定）和本包；在其他平台上，
# 把INSTALL设为True也可以在那里安装。在中国大陆可以把MIRROR设为PyPI镜像，
# 例如清华大学的镜像：MIRROR = "https://pypi.tuna.tsinghua.edu.cn/simple"
# 尚未发布到PyPI的版本可以从它的git标签安装，把PACKAGE改为：
# PACKAGE = "{git}"
# 只用CPU的PyTorch、手动放置数据等在中国大陆的做法：见README.zh.md的
# “在中国大陆使用”一节。
""",
        ipython="IPython只显示这条消息",
        message="""\
                f"pip未能安装{args[-1]}（输出见上）。请检查网络；"
                "尚未发布到PyPI的版本请从它的git标签安装"
                "（见本单元格开头）。\"""",
        font="图中的中文标签（中文版）：安装中文字体"),
}
_CLASSROOM = """\
# Colab only: install otter-grader and this package, and fetch the
# public checks of this assignment into tests/ (Colab cannot read
# them from the notebook file).
import subprocess
import sys

PACKAGE = "{package}"  # the release the class uses
MIRROR = ""  # a PyPI mirror's index URL ("" for PyPI)
{checks}
{questions}


class InstallError(Exception):
    def _render_traceback_(self):  # IPython shows the message only
        return [f"InstallError: {{self}}"]


if "google.colab" in sys.modules:
    index = ["--index-url", MIRROR] if MIRROR else []
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", *index,
         "{otter}", "torchinfo", PACKAGE],
        capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-2000:], pip.stderr[-2000:], file=sys.stderr)
        raise InstallError(
            f"pip could not install {{PACKAGE}} (its output is above). "
            "Check the network and run this cell again; tell your "
            "teacher if it keeps failing.")
    import os
    import urllib.request

    os.makedirs("tests", exist_ok=True)
    for q in QUESTIONS:
        urllib.request.urlretrieve(f"{{CHECKS}}{{q}}.py", f"tests/{{q}}.py")
"""
_CHECKS = re.compile(r"^CHECKS = \(.*?\)$", re.S | re.M)
_QUESTIONS = re.compile(r"^QUESTIONS = \[.*?\]$", re.S | re.M)
_OTTER = re.compile(r"otter-grader==[\w.]+")


def edition(path: Path) -> str:
    """``"classroom"``, ``"zh"`` or ``"en"``: which install cell."""
    parent = path.parent.name
    return parent if parent in ("classroom", "zh") else "en"


def install_cell(kind: str, s: dict[str, str], old: str = "") -> str:
    """The install cell of a notebook of ``kind`` (edition()) for the
    settings ``s``; a classroom master's ``old`` cell gives its CHECKS,
    QUESTIONS and otter-grader pin."""
    package = publishing.pip_requirement(s)
    if kind == "classroom":
        parts = {}
        for key, pattern in (("checks", _CHECKS), ("questions", _QUESTIONS),
                             ("otter", _OTTER)):
            m = pattern.search(old)
            if m is None:
                raise ValueError(f"the classroom install cell has no "
                                 f"{pattern.pattern!r} to keep")
            parts[key] = m[0]
        return _CLASSROOM.format(package=package, **parts)
    t = _SERIES[kind]
    code = _CELL_CODE.replace("{package}", package).replace(
        "{ipython}", t["ipython"]).replace("{message}", t["message"])
    code = code.replace("{font}", t["font"]).replace("{{", "{").replace(
        "}}", "}")
    return t["head"].replace("{git}", publishing.git_requirement(s)) + code


def _install_index(cells: list[dict]) -> int | None:
    for i, cell in enumerate(cells):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and COLAB_TEST in text and (
                "PACKAGE = " in text or "REPO = " in text):
            return i
    return None


def files(root: Path = ROOT) -> list[Path]:
    """Every file that names where the series is published."""
    nb = root / "notebooks"
    found = (sorted(nb.glob("[0-9][0-9]_*.ipynb"))
             + sorted((nb / "zh").glob("[0-9][0-9]_*.ipynb"))
             + sorted((nb / "classroom").glob("*.ipynb"))
             + sorted((nb / "classroom" / "zh").glob("*.md"))
             + [nb / "classroom" / "TEACHERS.md", root / "README.md",
                root / "README.zh.md"])
    return [p for p in found if p.is_file()]


def notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks that must each have a badge and an install cell."""
    return [p for p in files(root) if p.suffix == ".ipynb"]


def write_settings(path: Path, **values: str | None) -> dict[str, str]:
    """Set ``[publish]`` values in publish.toml (other lines kept) and
    return the new settings; a bad value is refused before writing."""
    text = Path(path).read_text(encoding="utf-8")
    for key, value in values.items():
        if value is None:
            continue
        if key not in KEYS:
            raise ValueError(f"unknown setting {key!r}; known: {KEYS}")
        if not value.strip() or '"' in value or "\\" in value:
            raise ValueError(f"{key} must be a non-empty string without "
                             f"quotes or backslashes, got {value!r}")
        text, n = re.subn(rf'(?m)^{key}[ \t]*=[ \t]*".*"[ \t]*$',
                          f'{key} = "{value.strip()}"', text)
        if n != 1:
            raise ValueError(f"{path}: no '{key} = \"...\"' line to set")
    tmp = Path(path).with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        new = publishing.settings(tmp)
    except ValueError as e:
        raise ValueError(str(e).replace(str(tmp), str(path))) from None
    finally:
        tmp.unlink()
    Path(path).write_text(text, encoding="utf-8")
    return new


_PYPROJECT_VERSION = re.compile(r'(?m)^version = "(?P<version>[^"]*)"$')


def pyproject_version(root: Path = ROOT) -> str | None:
    m = _PYPROJECT_VERSION.search(
        (root / "pyproject.toml").read_text(encoding="utf-8"))
    return m["version"] if m else None


_URLS = re.compile(r"(?ms)^\[project\.urls\]\n.*?(?=^\s*$|\Z)")


def project_urls(s: dict[str, str]) -> str:
    """pyproject.toml's ``[project.urls]`` table (the PyPI page's links)
    for the settings ``s``."""
    home = f"https://github.com/{s['repo']}"
    blob = f"{home}/blob/{s['branch']}"
    return (f'[project.urls]\nHomepage = "{home}"\nSource = "{home}"\n'
            f'Issues = "{home}/issues"\n'
            f'Changelog = "{blob}/CHANGELOG.md"\n'
            f'Chinese = "{blob}/README.zh.md"\n')


def _pyproject(root: Path, s: dict[str, str]) -> list[str]:
    """What disagrees with ``s`` in pyproject.toml."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    out = []
    version = pyproject_version(root)
    if version != s["version"]:
        out.append(f"pyproject.toml: version {version}, publish.toml's is "
                   f"{s['version']}")
    m = _URLS.search(text)
    if m is None or m[0] != project_urls(s):
        out.append("pyproject.toml: [project.urls] does not point at "
                   f"{s['repo']} (branch {s['branch']})")
    return out


def _set_pyproject(root: Path, s: dict[str, str]) -> bool:
    """Point pyproject.toml's version and URLs at ``s``; True if it
    changed."""
    path = root / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    new, n = _PYPROJECT_VERSION.subn(f'version = "{s["version"]}"', text)
    new, m = _URLS.subn(project_urls(s).replace("\\", "\\\\"), new)
    if n != 1 or m != 1:
        raise ValueError(f"{path}: needs one 'version = \"...\"' line and "
                         f"a [project.urls] table to set")
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def project_repos(text: str) -> set[str]:
    """The repositories this text names as the project's own (in a badge
    or an install cell)."""
    return ({m["repo"] for m in COLAB.finditer(text)}
            | {m["repo"] for m in REPO_LINE.finditer(text)}
            | {m["repo"] for m in PIP_URL.finditer(text)
               if "d2l-densenet" in m["repo"]})


def rewrite(text: str, s: dict[str, str], known: set[str]) -> str:
    """``text`` with every link and pin pointed at the settings ``s``;
    ``known``: the names the project's repository has had (other links
    to them are rewritten too)."""
    repo, branch, tag = s["repo"], s["branch"], s["tag"]
    text = COLAB.sub(
        lambda m: (f"https://colab.research.google.com/github/{repo}/blob/"
                   f"{branch}/{m['path']}"), text)
    text = PIP_URL.sub(
        lambda m: (f"git+https://github.com/{repo}@{tag}"
                   if m["repo"] in known | {repo} else m[0]), text)
    text = PIN.sub(f"d2l-densenet=={s['version']}", text)
    for old in sorted(known - {repo}):
        text = re.sub(r"(?<![A-Za-z0-9_.-])github\.com/" + re.escape(old)
                      + r"(?![A-Za-z0-9_-])", f"github.com/{repo}", text)
    return text


def rewrite_notebook(path: Path, text: str, s: dict[str, str]) -> str:
    """A notebook's JSON ``text`` with its install cell written anew."""
    nb = json.loads(text)
    i = _install_index(nb["cells"])
    if i is None:
        return text
    old = "".join(nb["cells"][i]["source"])
    new = install_cell(edition(path), s, old)
    if new == old:
        return text
    nb["cells"][i]["source"] = new.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def disagreements(root: Path = ROOT,
                  s: dict[str, str] | None = None) -> list[str]:
    """Each place that disagrees with publish.toml, as ``file:line: ...``
    (and each notebook without a badge or with an install cell that is
    not the one make publish writes)."""
    s = s or publishing.settings(root / "publish.toml")
    texts = {p: p.read_text(encoding="utf-8") for p in files(root)}
    known = {s["repo"]}.union(*map(project_repos, texts.values()))
    out = _pyproject(root, s)
    for path, text in texts.items():
        rel = path.relative_to(root).as_posix()
        for m in COLAB.finditer(text):
            if (m["repo"], m["branch"]) != (s["repo"], s["branch"]):
                out.append(f"{rel}:{_line(text, m.start())}: Colab link to "
                           f"{m['repo']}@{m['branch']}, publish.toml says "
                           f"{s['repo']}@{s['branch']}")
        for m in PIP_URL.finditer(text):
            if (m["repo"] in known and
                    (m["repo"], m["tag"]) != (s["repo"], s["tag"])):
                out.append(f"{rel}:{_line(text, m.start())}: pip installs "
                           f"{m[0]}, publish.toml says "
                           f"{s['repo']}@{s['tag']}")
        for m in PIN.finditer(text):
            if m["version"] != s["version"]:
                out.append(f"{rel}:{_line(text, m.start())}: {m[0]}, "
                           f"publish.toml's version is {s['version']}")
        if path.suffix != ".ipynb":
            continue
        if not COLAB.search(text):
            out.append(f"{rel}: no Open in Colab badge")
        cells = json.loads(text)["cells"]
        i = _install_index(cells)
        if i is None:
            out.append(f"{rel}: no install cell (a code cell with "
                       f"`if {COLAB_TEST}` and PACKAGE = ...)")
            continue
        old = "".join(cells[i]["source"])
        try:
            new = install_cell(edition(path), s, old)
        except ValueError as e:
            out.append(f"{rel}: cell {i}: {e}")
            continue
        if old != new:
            out.append(f"{rel}: cell {i}, the install cell, is not the one "
                       f"make publish writes for {s['version']}")
    return out


def publish(root: Path = ROOT, **values: str | None) -> list[Path]:
    """Write ``values`` into publish.toml (if any; a version into
    pyproject.toml too), then rewrite every file; returns the files that
    changed."""
    toml = root / "publish.toml"
    before = publishing.settings(toml)
    if values.get("version") and not values.get("tag"):
        values["tag"] = f"v{values['version']}"
    s = (write_settings(toml, **values) if any(values.values())
         else before)
    changed = [root / "pyproject.toml"] if _set_pyproject(root, s) else []
    texts = {p: p.read_text(encoding="utf-8") for p in files(root)}
    known = {before["repo"]}.union(*map(project_repos, texts.values()))
    for path, text in texts.items():
        new = rewrite(text, s, known)
        if path.suffix == ".ipynb":
            new = rewrite_notebook(path, new, s)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/publish.py")
    p.add_argument("--repo", help="GitHub owner/name")
    p.add_argument("--branch", help="the branch the Colab badges open")
    p.add_argument("--version", help="the release on PyPI the install "
                   "cells pin (also pyproject.toml's version)")
    p.add_argument("--tag", help="its git tag (default: vVERSION)")
    p.add_argument("--check", action="store_true",
                   help="change nothing; list what disagrees")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    values = {k: getattr(args, k) or None for k in KEYS}
    try:
        if args.check:
            if any(values.values()):
                raise ValueError("--check takes no --repo/--branch/"
                                 "--version/--tag")
            bad = disagreements(args.root)
            for line in bad:
                print(line)
            s = publishing.settings(args.root / "publish.toml")
            print(f"{len(bad)} place(s) disagree with publish.toml "
                  f"({s['repo']}, branch {s['branch']}, version "
                  f"{s['version']}, tag {s['tag']})"
                  + ("; run `make publish`" if bad else ""))
            return 1 if bad else 0
        changed = publish(args.root, **values)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = publishing.settings(args.root / "publish.toml")
    print(f"publish.toml: {s['repo']}, branch {s['branch']}, version "
          f"{s['version']}, tag {s['tag']}; rewrote {len(changed)} file(s)")
    for path in changed:
        print("  " + path.relative_to(args.root).as_posix())
    return 0


if __name__ == "__main__":
    sys.exit(main())
