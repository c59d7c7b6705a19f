"""Point every Colab badge and install cell at publish.toml (``make
publish``).

``python tools/publish.py [--repo OWNER/NAME] [--branch B] [--tag T]
[--check]``

With --repo/--branch/--tag it first writes them into publish.toml (its
comments kept). Then it rewrites, in every notebook of the series (both
editions), the classroom masters and their Chinese texts, the teacher's
guide and both READMEs:

- each Colab badge or link
  ``https://colab.research.google.com/github/{repo}/blob/{branch}/PATH``
  (PATH kept);
- each Colab install cell's ``REPO = "https://github.com/{repo}"`` and its
  pip line ``git+{REPO}@{tag}`` (or its ``TAG = "{tag}"`` line where the
  pip line says ``git+{REPO}@{TAG}``): a class keeps the release it
  started with, not whatever main has become;
- every other link to the project's repository (``github.com/{repo}``,
  ``git+https://github.com/{repo}@{tag}``).

``--check`` changes nothing and lists each place that disagrees with
publish.toml (exit status 1 if any).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import publishing

ROOT = publishing.ROOT
NAME = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
COLAB = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repo>" + NAME +
    r")/blob/(?P<branch>[A-Za-z0-9_./-]+?)/(?P<path>notebooks/|classroom/)")
# the install cell's REPO line, in a notebook's JSON (\") or as text (")
REPO_LINE = re.compile(
    r'REPO = (?P<q>\\?")https://github\.com/(?P<repo>' + NAME +
    r')(?P=q)')
# ``git+{REPO}@v0.2.0``, or ``git+{REPO}@{TAG}`` with a TAG line
PIP_REPO = re.compile(
    r"git\+\{REPO\}(?:@(?P<tag>\{TAG\}|[A-Za-z0-9_./-]+))?")
TAG_LINE = re.compile(r'TAG = (?P<q>\\?")(?P<tag>[A-Za-z0-9_./-]*)(?P=q)')
PIP_URL = re.compile(r"git\+https://github\.com/(?P<repo>[A-Za-z0-9_.-]+/"
                     r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*?)(?:\.git)?"
                     r"(?:@(?P<tag>[A-Za-z0-9_./-]*[A-Za-z0-9_]))?")
KEYS = ("repo", "branch", "tag")


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


def project_repos(text: str) -> set[str]:
    """The repositories this text names as the project's own (in a badge
    or an install cell)."""
    return ({m["repo"] for m in COLAB.finditer(text)}
            | {m["repo"] for m in REPO_LINE.finditer(text)})


def rewrite(text: str, s: dict[str, str], known: set[str]) -> str:
    """``text`` with every place pointed at the settings ``s``; ``known``:
    the names the project's repository has had (other links to them are
    rewritten too)."""
    repo, branch, tag = s["repo"], s["branch"], s["tag"]
    text = COLAB.sub(
        lambda m: (f"https://colab.research.google.com/github/{repo}/blob/"
                   f"{branch}/{m['path']}"), text)
    text = REPO_LINE.sub(
        lambda m: f"REPO = {m['q']}https://github.com/{repo}{m['q']}", text)
    text = PIP_REPO.sub(lambda m: m[0] if m["tag"] == "{TAG}"
                        else f"git+{{REPO}}@{tag}", text)
    text = TAG_LINE.sub(lambda m: f"TAG = {m['q']}{tag}{m['q']}", text)
    text = PIP_URL.sub(
        lambda m: (f"git+https://github.com/{repo}@{tag}"
                   if m["repo"] in known | {repo} else m[0]), text)
    for old in sorted(known - {repo}):
        text = re.sub(r"(?<![A-Za-z0-9_.-])github\.com/" + re.escape(old)
                      + r"(?![A-Za-z0-9_-])", f"github.com/{repo}", text)
    return text


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def disagreements(root: Path = ROOT,
                  s: dict[str, str] | None = None) -> list[str]:
    """Each place that disagrees with publish.toml, as ``file:line: ...``
    (and each notebook without a badge or an install cell)."""
    s = s or publishing.settings(root / "publish.toml")
    texts = {p: p.read_text(encoding="utf-8") for p in files(root)}
    known = {s["repo"]}.union(*map(project_repos, texts.values()))
    out = []
    for path, text in texts.items():
        rel = path.relative_to(root).as_posix()
        for m in COLAB.finditer(text):
            if (m["repo"], m["branch"]) != (s["repo"], s["branch"]):
                out.append(f"{rel}:{_line(text, m.start())}: Colab link to "
                           f"{m['repo']}@{m['branch']}, publish.toml says "
                           f"{s['repo']}@{s['branch']}")
        for m in REPO_LINE.finditer(text):
            if m["repo"] != s["repo"]:
                out.append(f"{rel}:{_line(text, m.start())}: REPO names "
                           f"{m['repo']}, publish.toml says {s['repo']}")
        for m in TAG_LINE.finditer(text):
            if m["tag"] != s["tag"]:
                out.append(f"{rel}:{_line(text, m.start())}: TAG = "
                           f"{m['tag']!r}, publish.toml's tag is {s['tag']}")
        for m in PIP_REPO.finditer(text):
            if m["tag"] == "{TAG}" and TAG_LINE.search(text):
                continue
            if m["tag"] != s["tag"]:
                out.append(f"{rel}:{_line(text, m.start())}: pip installs "
                           f"git+{{REPO}}@{m['tag'] or '(default branch)'}"
                           f", publish.toml's tag is {s['tag']}")
        for m in PIP_URL.finditer(text):
            if (m["repo"] in known and
                    (m["repo"], m["tag"]) != (s["repo"], s["tag"])):
                out.append(f"{rel}:{_line(text, m.start())}: pip installs "
                           f"{m[0]}, publish.toml says "
                           f"{s['repo']}@{s['tag']}")
        if path.suffix == ".ipynb":
            if not COLAB.search(text):
                out.append(f"{rel}: no Open in Colab badge")
            if not REPO_LINE.search(text) or not PIP_REPO.search(text):
                out.append(f"{rel}: no Colab install cell (REPO = ... and "
                           f"pip install git+{{REPO}}@TAG)")
    return out


def publish(root: Path = ROOT, **values: str | None) -> list[Path]:
    """Write ``values`` into publish.toml (if any), then rewrite every
    file; returns the files that changed."""
    toml = root / "publish.toml"
    before = publishing.settings(toml)
    s = (write_settings(toml, **values) if any(values.values())
         else before)
    texts = {p: p.read_text(encoding="utf-8") for p in files(root)}
    known = {before["repo"]}.union(*map(project_repos, texts.values()))
    changed = []
    for path, text in texts.items():
        new = rewrite(text, s, known)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/publish.py")
    p.add_argument("--repo", help="GitHub owner/name")
    p.add_argument("--branch", help="the branch the Colab badges open")
    p.add_argument("--tag", help="the release tag the install cells pin")
    p.add_argument("--check", action="store_true",
                   help="change nothing; list what disagrees")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    values = {k: getattr(args, k) or None for k in KEYS}
    try:
        if args.check:
            if any(values.values()):
                raise ValueError("--check takes no --repo/--branch/--tag")
            bad = disagreements(args.root)
            for line in bad:
                print(line)
            s = publishing.settings(args.root / "publish.toml")
            print(f"{len(bad)} place(s) disagree with publish.toml "
                  f"({s['repo']}, branch {s['branch']}, tag {s['tag']})"
                  + ("; run `make publish`" if bad else ""))
            return 1 if bad else 0
        changed = publish(args.root, **values)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = publishing.settings(args.root / "publish.toml")
    print(f"publish.toml: {s['repo']}, branch {s['branch']}, tag "
          f"{s['tag']}; rewrote {len(changed)} file(s)")
    for path in changed:
        print("  " + path.relative_to(args.root).as_posix())
    return 0


if __name__ == "__main__":
    sys.exit(main())
