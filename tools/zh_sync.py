"""Keep the Chinese edition in step with the English text.

Every markdown cell of ``notebooks/zh/NN_*.ipynb`` records, in its
metadata (``d2l_densenet.en_hash``), the hash of the English cell it
translates. When the English cell changes, the hash no longer matches and
``tests/test_zh.py`` names the cell: update the translation, then stamp it.

``python tools/zh_sync.py check`` lists stale or unstamped cells (exit 1
if any); ``python tools/zh_sync.py stamp notebooks/zh/01_x.ipynb
[--cell N ...]`` records the current English hash for every markdown
cell (or only the cells given, by index), after you have checked that the
translation says what the English says.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from publishing import without_published_links

ROOT = Path(__file__).resolve().parent.parent
EN_DIR = ROOT / "notebooks"
ZH_DIR = EN_DIR / "zh"
KEY = "d2l_densenet"


def en_hash(text: str) -> str:
    """Hash of an English cell's text, ignoring trailing spaces and the
    published repository's links."""
    text = without_published_links(text)
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]


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
        if a["cell_type"] != "markdown":
            continue
        stamp = b.get("metadata", {}).get(KEY, {}).get("en_hash")
        first = _source(a).strip().splitlines()[:1]
        where = (f"{zh_path.name} cell {i} (English: "
                 f"{first[0][:50] if first else ''!r})")
        if stamp is None:
            out.append(f"{where}: not stamped")
        elif stamp != en_hash(_source(a)):
            out.append(f"{where}: the English changed since it was "
                       f"translated")
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
        if a["cell_type"] != "markdown" or b["cell_type"] != "markdown":
            continue
        if only is not None and i not in only:
            continue
        b.setdefault("metadata", {}).setdefault(KEY, {})["en_hash"] = \
            en_hash(_source(a))
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
