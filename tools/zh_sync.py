"""Keep the Chinese edition in step with the English text.

Every markdown cell of ``notebooks/zh/NN_*.ipynb`` records, in its
metadata (``d2l_densenet.en_hash``), the hash of the English cell it
translates. Every code cell records the hash of its English twin's
string literals and comments (``d2l_densenet.en_strings_hash``): the
code itself is the same in both editions (``tests/test_zh.py`` checks
it), the strings and comments are what a reader sees and what the
translation changes. When the English changes, the hash no longer
matches and ``tests/test_zh.py`` names the cell: update the translation,
then stamp it. The install cell is left out: ``make publish`` writes it
whole in both editions (tools/publish.py).

``python tools/zh_sync.py check`` lists stale or unstamped cells (exit 1
if any); ``python tools/zh_sync.py stamp notebooks/zh/01_x.ipynb
[--cell N ...]`` records the current English hashes for every markdown
and code cell (or only the cells given, by index), after you have
checked that the translation says what the English says.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from publishing import without_published_links
from zh_terms import code_texts

ROOT = Path(__file__).resolve().parent.parent
EN_DIR = ROOT / "notebooks"
ZH_DIR = EN_DIR / "zh"
KEY = "d2l_densenet"
#: The metadata field of a markdown cell and of a code cell.
FIELD = {"markdown": "en_hash", "code": "en_strings_hash"}
#: The install cell (tools/publish.py writes it whole in both editions).
_INSTALL = '"google.colab" in sys.modules'
# what make publish rewrites in a string: the release pin, git URLs
_PIN = re.compile(r"(?<![\w.-])d2l-densenet==[0-9][A-Za-z0-9.]*[A-Za-z0-9]")
_GIT = re.compile(r"git\+<published-link>|git\+https://\S+")


def en_hash(text: str) -> str:
    """Hash of an English cell's text, ignoring trailing spaces and the
    published repository's links."""
    text = without_published_links(text)
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def en_strings_hash(code: str) -> str:
    """Hash of an English code cell's string literals and comments (in
    order, white space collapsed), ignoring what ``make publish``
    rewrites (links, the release pin): a change to the code alone leaves
    it as it is."""
    lines = []
    for _, text in code_texts(code):
        text = _GIT.sub("<git-url>", without_published_links(text))
        lines.append(" ".join(_PIN.sub("<pin>", text).split()))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


def _hash(cell: dict) -> str | None:
    """The hash a zh twin of this English cell records; None for a cell
    that is not stamped (raw cells, the install cell)."""
    if cell["cell_type"] == "markdown":
        return en_hash(_source(cell))
    if cell["cell_type"] == "code" and _INSTALL not in _source(cell):
        return en_strings_hash(_source(cell))
    return None


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def stale_cells(zh_path: Path) -> list[str]:
    """One message per zh markdown cell whose English twin changed since
    it was stamped (or that was never stamped); [] when in step."""
    en_path = EN_DIR / zh_path.name
    en, zh = _cells(en_path), _cells(zh_path)
    if [c["cell_type"] for c in en] != [c["cell_type"] for c in zh]:
        return [f"{zh_path.name}: the editions' cells differ in number or "
                f"kind ({len(en)} English, {len(zh)} Chinese cells)"]
    out = []
    for i, (a, b) in enumerate(zip(en, zh, strict=True)):
        want = _hash(a)
        if want is None:
            continue
        field = FIELD[a["cell_type"]]
        stamp = b.get("metadata", {}).get(KEY, {}).get(field)
        first = _source(a).strip().splitlines()[:1]
        what = "" if a["cell_type"] == "markdown" else "code "
        where = (f"{zh_path.name} {what}cell {i} (English: "
                 f"{first[0][:50] if first else ''!r})")
        if stamp is None:
            out.append(f"{where}: not stamped")
        elif stamp != want:
            out.append(f"{where}: the English "
                       + ("changed" if not what else
                          "strings or comments changed")
                       + " since it was translated")
    return out


def stamp(zh_path: Path, only: list[int] | None = None) -> int:
    """Record the English hashes in ``zh_path``; returns cells stamped."""
    en = _cells(EN_DIR / zh_path.name)
    raw = zh_path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    if len(en) != len(nb["cells"]):
        raise SystemExit(f"{zh_path.name}: {len(en)} English cells, "
                         f"{len(nb['cells'])} Chinese: align them first")
    n = 0
    for i, (a, b) in enumerate(zip(en, nb["cells"], strict=True)):
        want = _hash(a)
        if want is None or a["cell_type"] != b["cell_type"]:
            continue
        if only is not None and i not in only:
            continue
        b.setdefault("metadata", {}).setdefault(KEY, {})[
            FIELD[a["cell_type"]]] = want
        n += 1
    text = json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False,
                      separators=(",", ": ")) + "\n"
    zh_path.write_text(text, encoding="utf-8")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="list stale or unstamped zh cells")
    st = sub.add_parser("stamp", help="record the English hashes")
    st.add_argument("notebooks", nargs="+", type=Path)
    st.add_argument("--cell", type=int, action="append",
                    help="stamp only this cell index (repeatable)")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        problems = [m for p in sorted(ZH_DIR.glob("[0-9][0-9]_*.ipynb"))
                    for m in stale_cells(p)]
        print("\n".join(problems) or "every Chinese cell is in step")
        return 1 if problems else 0
    for p in args.notebooks:
        if not p.exists() or p.resolve().parent != ZH_DIR.resolve():
            print(f"error: {p} is not a notebook in {ZH_DIR}",
                  file=sys.stderr)
            return 2
        print(f"{p.name}: stamped {stamp(p, args.cell)} cell(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
