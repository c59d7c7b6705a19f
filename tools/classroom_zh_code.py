"""Chinese code comments and check messages for the Chinese student
notebooks (notebooks/classroom/zh/code.md).

The file holds one section per English comment block or check message:

    <!-- comment en=HASH -->
    > the English comment (its lines joined by spaces), for reference
    the Chinese comment

    <!-- check en=HASH -->
    > f'the English message {with} {placeholders}'
    f'中文的消息{with}{placeholders}'

    <!-- title en=HASH -->
    > same as reference
    与参考实现相同

A check's Chinese is a Python string expression with the same ``{...}``
placeholders as the English; a title (what a check tests, from its
function's name) is plain text. The build replaces each comment of a
code cell and each message of a public check in the Chinese student
notebook (its metadata and its Colab copies), writes the Chinese of
every check, hidden ones included, and the titles for grading Chinese
submissions (``autograder/NAME-zh.json``), and stops, naming what to
add, when one has no Chinese or its English changed.
"""
from __future__ import annotations

import ast
import hashlib
import re
import textwrap
from pathlib import Path

_MARK = re.compile(r"^<!-- (comment|check|title) en=(\w+) -->[ \t]*$",
                   re.M)
_COMMENT = re.compile(r"^(?P<code>[^#]*?)(?P<gap>\s*)# ?(?P<text>.*)$")
#: Chinese comment lines are wrapped at this many characters (a CJK
#: character is about two columns wide).
WIDTH = 34


class ZhCodeError(ValueError):
    """A comment or a message without Chinese, or a bad section."""


def en_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()[:8]


def read(path: Path) -> dict[tuple[str, str], str]:
    """``{(kind, hash): Chinese}``; ``{}`` if there is no file."""
    if not path.exists():
        return {}
    parts = _MARK.split(path.read_text(encoding="utf-8"))
    out = {}
    for kind, h, body in zip(parts[1::3], parts[2::3], parts[3::3],
                             strict=False):
        lines = [line for line in body.strip().splitlines()
                 if not line.startswith(">")]
        zh = "\n".join(lines).strip()
        if not zh:
            raise ZhCodeError(f"{path}: the {kind} section en={h} has no "
                              f"Chinese")
        out[(kind, h)] = zh
    return out


def _placeholders(expr: str) -> list[str]:
    tree = ast.parse(expr, mode="eval")
    return sorted(ast.dump(n) for n in ast.walk(tree)
                  if isinstance(n, ast.FormattedValue))


def messages(test: str) -> list[str]:
    """The source of every assertion message of a test file (and of
    ``raise AssertionError(...)``), as it appears in the file."""
    out = []
    for node in ast.walk(ast.parse(test)):
        msg = None
        if isinstance(node, ast.Assert):
            msg = node.msg
        elif (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
              and node.exc.args):
            msg = node.exc.args[0]
        if msg is not None:
            out.append(ast.get_source_segment(test, msg))
    return out


def comment_blocks(source: str) -> list[tuple[int, int, str, str]]:
    """(first line, end line, indent, English) of each comment block of a
    code cell: consecutive whole-line comments, or one inline comment
    (then indent is the code before it)."""
    lines, out, i = source.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        m = _COMMENT.match(line)
        if not m or line.lstrip().startswith(("%", "!")) or (
                m.group("code").count('"') % 2):
            i += 1
            continue
        if m.group("code").strip():  # inline comment
            out.append((i, i + 1, m.group("code") + m.group("gap"),
                        m.group("text").strip()))
            i += 1
            continue
        j, texts = i, []
        while j < len(lines) and lines[j].strip().startswith("#") and (
                _COMMENT.match(lines[j]).group("code") == m.group("code")):
            texts.append(_COMMENT.match(lines[j]).group("text").strip())
            j += 1
        out.append((i, j, m.group("code"), " ".join(texts)))
        i = j
    return out


def translate_code(source: str, table, missing: list) -> str:
    """A code cell's source with Chinese comments."""
    lines = source.split("\n")
    for start, end, indent, en in reversed(comment_blocks(source)):
        zh = table.get(("comment", en_hash(en)))
        if zh is None:
            missing.append(("comment", en, en))
            continue
        if end - start == 1 and indent.strip():  # inline
            new = [f"{indent}# {zh}"]
        else:
            new = [f"{indent}# {part}" for part in
                   textwrap.wrap(zh, WIDTH, break_long_words=True,
                                 break_on_hyphens=False)]
        lines[start:end] = new
    return "\n".join(lines)


def translate_test(test: str, table, missing: list) -> str:
    """A public check with Chinese messages."""
    for en in sorted(set(messages(test)), key=len, reverse=True):
        zh = table.get(("check", en_hash(en)))
        if zh is None:
            missing.append(("check", en, en))
            continue
        try:
            same = _placeholders(zh) == _placeholders(en)
        except SyntaxError as e:
            raise ZhCodeError(f"the Chinese of check message {en[:60]!r}"
                              f" is not a Python string: {e}") from e
        if not same:
            raise ZhCodeError(
                f"the Chinese of check message {en[:60]!r} must have the "
                f"same {{...}} placeholders as the English")
        test = test.replace(en, zh)
    return test


def translate_title(title: str, table, missing: list) -> str:
    """A check's title (what it tests, e.g. "same as reference") in
    Chinese."""
    zh = table.get(("title", en_hash(title)))
    if zh is None:
        missing.append(("title", title, title))
        return title
    return zh


def missing_report(path: Path, missing: list) -> str:
    """What to add to ``path`` for each missing translation."""
    seen, parts = set(), []
    for kind, en, _ in missing:
        h = en_hash(en)
        if (kind, h) in seen:
            continue
        seen.add((kind, h))
        parts.append(f"<!-- {kind} en={h} -->\n> {en}\n")
    return (f"{len(parts)} comment(s)/check message(s) have no Chinese "
            f"in {path}; add these sections with the Chinese under "
            f"each:\n\n" + "\n".join(parts))
