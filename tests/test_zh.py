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
    for a, b in zip(code_shape(en), code_shape(zh), strict=True):
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
    for i, (a, b) in enumerate(zip(en, zh, strict=True)):
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


# --- kept in step: each zh markdown cell records its English twin's hash

def test_stale_translation_is_named(tmp_path, monkeypatch):
    """A changed English cell makes its stamped zh twin stale, and the
    message names the notebook and the cell."""
    import zh_sync
    en_dir, zh_dir = tmp_path, tmp_path / "zh"
    zh_dir.mkdir()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {},
                     "source": ["# Title\n", "Text."]},
                    {"cell_type": "code", "metadata": {}, "source": "x=1",
                     "outputs": [], "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (en_dir / "01_x.ipynb").write_text(json.dumps(nb))
    zh = json.loads(json.dumps(nb))
    zh["cells"][0]["source"] = ["# 标题\n", "正文。"]
    (zh_dir / "01_x.ipynb").write_text(json.dumps(zh))
    monkeypatch.setattr(zh_sync, "EN_DIR", en_dir)
    assert "not stamped" in zh_sync.stale_cells(zh_dir / "01_x.ipynb")[0]
    zh_sync.stamp(zh_dir / "01_x.ipynb")
    assert zh_sync.stale_cells(zh_dir / "01_x.ipynb") == []
    # trailing spaces and the published repository's links do not count
    nb["cells"][0]["source"] = [
        "# Title  \n", "Text. [c](https://github.com/a/b/blob/x.ipynb)"]
    zh_twin = json.loads((zh_dir / "01_x.ipynb").read_text())
    zh_twin["cells"][0]["source"] = [
        "# 标题\n", "正文。[c](https://github.com/a/b/blob/x.ipynb)"]
    (zh_dir / "01_x.ipynb").write_text(json.dumps(zh_twin))
    assert zh_sync.en_hash("# Title\nText.") != zh_sync.en_hash(
        "# Title\nText!")
    nb["cells"][0]["source"] = ["# Title  \n", "Text."]
    (en_dir / "01_x.ipynb").write_text(json.dumps(nb))
    assert zh_sync.stale_cells(zh_dir / "01_x.ipynb") == []
    nb["cells"][0]["source"] = ["# Title\n", "Text, changed."]
    (en_dir / "01_x.ipynb").write_text(json.dumps(nb))
    (msg,) = zh_sync.stale_cells(zh_dir / "01_x.ipynb")
    assert "01_x.ipynb cell 0" in msg and "English changed" in msg


def test_changed_english_label_makes_code_cell_stale(tmp_path, monkeypatch):
    """A code cell records its English twin's strings and comments: a
    changed English label (or comment) makes the zh cell stale, a change
    to the code alone does not (test_same_cells_and_code checks that),
    nor does a new release pin or link (make publish)."""
    import zh_sync
    en_dir, zh_dir = tmp_path, tmp_path / "zh"
    zh_dir.mkdir()

    def write(folder, code):
        nb = {"cells": [{"cell_type": "code", "metadata": {},
                         "source": code, "outputs": [],
                         "execution_count": None}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (folder / "01_x.ipynb").write_text(json.dumps(nb))

    en = ('ax.set_title("Memory")  # MiB per step\n'
          'print(f"{n} params", "d2l-densenet==0.3.0")\n')
    write(en_dir, en)
    write(zh_dir, 'ax.set_title("显存")  # 每步的MiB\n'
                  'print(f"{n}个参数", "d2l-densenet==0.3.0")\n')
    monkeypatch.setattr(zh_sync, "EN_DIR", en_dir)
    (msg,) = zh_sync.stale_cells(zh_dir / "01_x.ipynb")
    assert "code cell 0" in msg and "not stamped" in msg
    assert zh_sync.stamp(zh_dir / "01_x.ipynb") == 1
    assert zh_sync.stale_cells(zh_dir / "01_x.ipynb") == []
    # the code alone, white space, a release: still in step
    write(en_dir, en.replace("{n}", "{n + 0}").replace("  #", "   #")
          .replace("0.3.0", "0.4.0"))
    assert zh_sync.stale_cells(zh_dir / "01_x.ipynb") == []
    # a changed label, a changed comment: stale, named
    for changed in (en.replace("Memory", "Peak memory"),
                    en.replace("MiB per step", "MiB per training step")):
        write(en_dir, changed)
        (msg,) = zh_sync.stale_cells(zh_dir / "01_x.ipynb")
        assert "01_x.ipynb code cell 0" in msg
        assert "strings or comments changed" in msg
    # the install cell is make publish's: never stamped, never stale
    install = 'INSTALL = "google.colab" in sys.modules\nprint("hi")\n'
    write(en_dir, install)
    write(zh_dir, install.replace("hi", "你好"))
    assert zh_sync.stamp(zh_dir / "01_x.ipynb") == 0
    assert zh_sync.stale_cells(zh_dir / "01_x.ipynb") == []


@pytest.mark.parametrize("path", series("zh"),
                         ids=[p.name for p in series("zh")])
def test_translation_is_in_step_with_english(path: Path):
    import zh_sync
    stale = zh_sync.stale_cells(path)
    assert not stale, (
        "update these translations, then run `python tools/zh_sync.py "
        "stamp " + f"notebooks/zh/{path.name}" + "`:\n" + "\n".join(stale))


# --- one term per concept: GLOSSARY.md's rejected variants -------------

ROOT = EN[0].parent.parent if EN else Path(__file__).parent.parent
GLOSSARY = ROOT / "notebooks" / "zh" / "GLOSSARY.md"


def rejected_terms() -> dict[str, str]:
    """``{rejected variant: chosen term}`` from GLOSSARY.md's table
    (``| English | 中文 | 不用 |``; variants separated by 、)."""
    out = {}
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):   # the rules table (test_zh_terms.py)
            break
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if (len(cols) < 3 or cols[0] == "English"
                or not re.search(r"[\u4e00-\u9fff]", cols[2])):
            continue
        for variant in re.split(r"[、,，]", cols[2]):
            variant = variant.strip()
            if variant:
                out[variant] = cols[1]
    return out


def chinese_texts() -> list[tuple[str, str]]:
    """(where, text) of everything a Chinese reader reads: zh notebooks'
    markdown and code, README.zh.md and the classroom's Chinese texts;
    quoted forum text (markdown lines starting with ">") left out."""
    out = []
    for path in series("zh"):
        for i, c in enumerate(cells(path)):
            text = source(c)
            if c["cell_type"] == "markdown":
                text = "\n".join(line for line in text.splitlines()
                                 if not line.lstrip().startswith(">"))
            out.append((f"notebooks/zh/{path.name} cell {i}", text))
    extra = [ROOT / "README.zh.md",
             *sorted((ROOT / "notebooks" / "classroom" / "zh").glob("*"))]
    for path in extra:
        if path.is_file():
            text = "\n".join(
                line for line in path.read_text(encoding="utf-8")
                .splitlines() if not line.lstrip().startswith(">"))
            out.append((str(path.relative_to(ROOT)), text))
    return out


#: Words that contain a rejected variant but mean something else.
OTHER_WORDS = ("笔记本电脑",)  # a laptop, not a Jupyter notebook


def term_problems(texts, rejected) -> list[str]:
    problems = []
    for where, text in texts:
        for word in OTHER_WORDS:
            text = text.replace(word, "")
        # a quotation (the forum's words, an old term) in “…” is no use
        text = re.sub(r"“[^”]*”", "", text)
        for variant, chosen in rejected.items():
            if variant in text:
                problems.append(f"{where}: {variant!r} (say {chosen!r})")
        # "notebook" in a Chinese line, outside code spans, links, paths
        prose = re.sub(r"`[^`]*`|\]\([^)]*\)|\S*/\S*|\S+\.ipynb|<!--.*?-->",
                       "", text, flags=re.S)
        if any(re.search(r"[\u4e00-\u9fff]", line) and re.search(
                r"(?i)(?<![a-z])notebooks?(?![a-z])", line)
               for line in prose.splitlines()):
            problems.append(f"{where}: 'notebook' in Chinese prose (say "
                            f"'记事本' or 'Jupyter记事本')")
    return problems


def test_glossary_lists_rejected_variants():
    rejected = rejected_terms()
    assert rejected.get("拼接") == "连结", (
        "GLOSSARY.md must list rejected variants in a third column")
    assert len(rejected) >= 10


def test_term_check_can_fail():
    rejected = {"拼接": "连结", "笔记本": "记事本"}
    assert term_problems([("x", "把两个张量拼接起来")], rejected)
    assert term_problems([("x", "打开笔记本")], rejected)
    assert not term_problems([("x", "在笔记本电脑上运行")], rejected)
    assert not term_problems([("x", "论坛：“把张量拼接起来”")], rejected)
    assert term_problems([("x", "运行这个notebook即可")], rejected)
    assert not term_problems([("x", "把张量连结；见`notebooks/zh/a.ipynb`")],
                             rejected)


def test_one_term_per_concept():
    problems = term_problems(chinese_texts(), rejected_terms())
    assert not problems, (
        "terms rejected by notebooks/zh/GLOSSARY.md (quote the forum in "
        "a '>' block or in “…” to keep its words):\n" + "\n".join(problems))
