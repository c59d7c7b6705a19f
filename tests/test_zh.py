"""The Chinese edition (notebooks/zh/, 中文版) is the English series,
translated: the same cells in the same order, and code that differs only
in what a reader sees (string literals and comments). Each zh notebook
also runs in smoke mode (tests/test_notebooks.py)."""
import io
import json
import re
import tokenize
from pathlib import Path

import pytest
from run_notebooks import EDITIONS, series

EN = series("en")
#: English notebooks whose Chinese edition is still to be written; the
#: list can only shrink (a test fails if one of them is translated and
#: still listed, or if any other notebook lacks its twin).
NOT_YET_TRANSLATED: set[str] = set()
TRANSLATED = [p for p in EN if p.name not in NOT_YET_TRANSLATED]


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


# Tokens a translation may change: string literals and comments. An
# f-string counts as one string, on every Python (3.12+ splits it into
# parts): a translation may reorder its text and placeholders.
# Everything else must be identical.
_FREE = {tokenize.STRING, tokenize.COMMENT}
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER}
_F_START = getattr(tokenize, "FSTRING_START", object())
_F_END = getattr(tokenize, "FSTRING_END", object())


def code_shape(code: str) -> list[tuple[int, int, str]]:
    """(line, type, text) of every token, with strings and comments
    blanked: two cells with equal shapes differ only in those."""
    out, depth = [], 0
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == _F_START:
            if depth == 0:
                out.append((tok.start[0], tokenize.STRING, "<text>"))
            depth += 1
            continue
        if depth:
            depth -= tok.type == _F_END
            continue
        if tok.type in _SKIP:
            continue
        text = "<text>" if tok.type in _FREE else tok.string
        out.append((tok.start[0], tok.type, text))
    return out


def first_difference(en: str, zh: str) -> str:
    for a, b in zip(code_shape(en), code_shape(zh)):
        if a[1:] != b[1:]:
            return f"English line {a[0]} has {a[2]!r}, zh line {b[0]} " \
                   f"has {b[2]!r}"
    return "one cell has more code than the other"


def test_parity_check_can_fail():
    """Strings and comments may differ; names, numbers, calls may not."""
    en = 'plt.title("Memory")  # MiB\nx = f(1, k="a")\n'
    assert code_shape(en) == code_shape(
        'plt.title("显存")  # 兆字节\nx = f(1, k="a")\n')
    assert code_shape(en) != code_shape(
        'plt.title("Memory")  # MiB\nx = f(2, k="a")\n')
    assert code_shape(en) != code_shape(
        'plt.title("Memory")  # MiB\nx = g(1, k="a")\n')
    # An f-string is one string on every Python, whatever it holds.
    assert code_shape('print(f"{n:,} params {x!r}")\ny = 1\n') == \
        code_shape('print(f"参数 {x!r}: {n:,}")\ny = 1\n')
    assert code_shape('print(f"a{b}")\ny = 1\n') != \
        code_shape('print(f"a{b}")\ny = 2\n')


def test_every_english_notebook_has_a_chinese_edition():
    zh = {p.name for p in series("zh")}
    want = {p.name for p in TRANSLATED}
    assert zh == want, (
        f"missing in notebooks/zh/: {sorted(want - zh)}; only in "
        f"notebooks/zh/ (or translated but still in NOT_YET_TRANSLATED): "
        f"{sorted(zh - want)}")


@pytest.mark.parametrize("path", TRANSLATED,
                         ids=[p.name for p in TRANSLATED])
def test_same_cells_and_code(path: Path):
    twin = EDITIONS["zh"] / path.name
    if not twin.exists():
        pytest.fail(f"notebooks/zh/{path.name} is missing")
    en, zh = cells(path), cells(twin)
    assert [c["cell_type"] for c in en] == [c["cell_type"] for c in zh], (
        f"{path.name}: the editions' cells differ in number or kind "
        f"({len(en)} English, {len(zh)} Chinese cells)")
    for i, (a, b) in enumerate(zip(en, zh)):
        if a["cell_type"] != "code":
            continue
        assert code_shape(source(a)) == code_shape(source(b)), (
            f"{path.name} cell {i}: code differs beyond strings and "
            f"comments: {first_difference(source(a), source(b))}")


@pytest.mark.parametrize("path", series("zh"),
                         ids=[p.name for p in series("zh")])
def test_chinese_notebook_is_chinese_and_links_to_itself(path: Path):
    zh = cells(path)
    badge = source(zh[0])
    assert f"notebooks/zh/{path.name}" in badge, (
        "the Colab badge must open the Chinese notebook")
    prose = "".join(source(c) for c in zh if c["cell_type"] == "markdown")
    han = len(re.findall(r"[\u4e00-\u9fff]", prose))
    assert han > 0.2 * len(re.findall(r"[A-Za-z]", prose)), (
        f"{path.name}: the markdown is mostly not Chinese")
