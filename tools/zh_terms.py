"""The Chinese edition's wording and typography rules, and the English
words it shows on screen.

``notebooks/zh/GLOSSARY.md`` has two tables. The first names one term
per concept and its rejected variants (``tests/test_zh.py`` checks
them). The second, "用词与排版规则", gives each rule a name, a regular
expression that finds the wrong form, the form to use, and an example of
each: "缩放" for γ (it stays right for resizing an image), "精度" where
it means bf16 or fp32, one wording per idea (无法检验, 检测不到,
训练小批量), one multiplication sign (×), one range sign (～), no space
between a number and a Chinese character, no line break inside a
Chinese paragraph. ``tests/test_zh_terms.py`` checks them.

``python tools/zh_terms.py`` lists every place a rule finds (exit 1 if
any); ``python tools/zh_terms.py --english DIR`` lists the English words
in the executed Chinese notebooks of DIR (default
``build/run/smoke/zh``) that ``tests/zh_english_allowed.txt`` does not
allow, with where each comes from, and what the rules find in their
printed Chinese.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "notebooks" / "zh" / "GLOSSARY.md"
ZH_DIR = ROOT / "notebooks" / "zh"
CLASSROOM = ROOT / "notebooks" / "classroom"
PACKAGE = ROOT / "d2l_densenet"
ALLOWED = ROOT / "tests" / "zh_english_allowed.txt"
RULES_HEADING = "## 用词与排版规则"

HAN = "\u4e00-\u9fff"
HAN_RE = re.compile(f"[{HAN}]")
#: Rules that are about wording; the others are typography, which the
#: classroom masters' English prose does not follow.
TYPOGRAPHY = {"times", "range", "space", "linebreak"}
#: Rules for markdown only (a "\n" in a printed string is a real break).
MARKDOWN_ONLY = {"linebreak"}
#: What a removed span (code, math, a quotation) leaves behind: neither
#: a digit, nor a Chinese character, nor white space.
GAP = "\u2022"


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern
    say: str
    bad: str
    good: str


@dataclass(frozen=True)
class Problem:
    where: str
    rule: str
    found: str
    context: str
    say: str

    def __str__(self) -> str:
        return (f"{self.where}: [{self.rule}] {self.found!r} in "
                f"{self.context!r} (say: {self.say})")


def _cells(line: str) -> list[str]:
    """A markdown table row's cells; ``\\|`` is a literal bar."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def _example(cell: str) -> str:
    return cell.replace("\\n", "\n")


def load_rules(path: Path = GLOSSARY) -> list[Rule]:
    """The rules of GLOSSARY.md's "用词与排版规则" table."""
    rules, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.startswith(RULES_HEADING)
            continue
        if not inside or not line.startswith("|"):
            continue
        cols = _cells(line)
        if len(cols) != 5 or cols[0] in ("规则", "") or set(cols[0]) <= \
                set("-: "):
            continue
        regex = cols[1]
        if not (regex.startswith("`") and regex.endswith("`")):
            raise ValueError(f"{path.name}: rule {cols[0]!r}: the regular "
                             f"expression must be in backticks")
        try:
            pattern = re.compile(regex[1:-1])
        except re.error as e:
            raise ValueError(f"{path.name}: rule {cols[0]!r}: bad regular "
                             f"expression: {e}") from None
        rules.append(Rule(cols[0], pattern, cols[2], _example(cols[3]),
                          _example(cols[4])))
    if not rules:
        raise ValueError(f"{path.name}: no table under {RULES_HEADING!r}")
    return rules


# --- what a Chinese reader reads -------------------------------------

_FENCE = re.compile(r"^ *(```|~~~).*?^ *\1[^\n]*$", re.S | re.M)
_SPANS = [
    re.compile(r"<!--.*?-->", re.S),              # HTML comments
    re.compile(r"\$\$.*?\$\$", re.S),             # display math
    re.compile(r"(?<![\\$])\$[^$\n]+?\$"),        # inline math
    re.compile(r"(`+)(?!`).*?(?<!`)\1", re.S),    # code spans
    re.compile(r"“[^”]*”"),                       # quotations
    re.compile(r"\]\([^)]*\)"),                   # link targets
    re.compile(r"<[^>\n]+>"),                     # HTML tags
    re.compile(r"https?://\S+"),                  # bare links
]


def prose(text: str) -> str:
    """Markdown as a reader reads it: blockquotes (quoted forum text),
    fenced code, code spans, math, “…” quotations, link targets and
    HTML left out; line numbers are kept."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = "\n".join("" if line.lstrip().startswith(">") else line
                     for line in text.splitlines())
    # a heading's section number: "### 3.1 用重计算代替存储"
    text = re.sub(r"^(#+[ \t]+\d+(?:\.\d+)*)[ \t]", "\\1" + GAP, text,
                  flags=re.M)
    for span in _SPANS:
        text = span.sub(lambda m: GAP + "\n" * m.group(0).count("\n"),
                        text)
    return text


def printed(text: str) -> str:
    """A string literal or comment as a reader reads it: code spans and
    “…” quotations left out."""
    for span in (_SPANS[3], _SPANS[4], _SPANS[7]):
        text = span.sub(GAP, text)
    return text


_PLACEHOLDER = "0"


def _placeholder(value: ast.FormattedValue) -> str:
    """What a reader sees in place of ``{...}``: a number ("0"), unless
    the placeholder is text (``!r``, ``!s``, a spec ending in ``s``, a
    left- or centre-aligned column), which reads as a gap."""
    spec = value.format_spec
    spec = "".join(v.value for v in spec.values
                   if isinstance(v, ast.Constant)) if spec else ""
    if value.conversion in (ord("r"), ord("s"), ord("a")) or \
            spec.endswith("s") or "<" in spec or "^" in spec:
        return GAP
    return _PLACEHOLDER


def _fstring(node: ast.JoinedStr) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else
                   _placeholder(v) for v in node.values)


def _no_magics(code: str) -> str:
    """IPython's ``%magic`` and ``!shell`` lines as ``pass``."""
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line)
                     for line in code.splitlines())


def code_texts(code: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal and comment of ``code``
    in source order; an f-string's placeholders read as "0"."""
    out = []
    try:
        tree = ast.parse(_no_magics(code))
    except SyntaxError:
        tree = None
    if tree is not None:
        inner = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                inner.update(id(v) for v in ast.walk(node) if v is not node)
        for node in ast.walk(tree):
            if id(node) in inner:
                continue
            if isinstance(node, ast.JoinedStr):
                out.append((node.lineno, _fstring(node)))
            elif isinstance(node, ast.Constant) and isinstance(node.value,
                                                                str):
                out.append((node.lineno, node.value))
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.COMMENT:
                out.append((tok.start[0], tok.string.lstrip("#").strip()))
            elif tree is None and tok.type == tokenize.STRING:
                out.append((tok.start[0], tok.string))
    except (tokenize.TokenError, SyntaxError):
        pass
    return sorted(out, key=lambda t: t[0])


def code_string_hash_input(code: str) -> str:
    """The text of ``code``'s string literals and comments, one per line,
    in source order (what ``tools/zh_sync.py`` hashes for a code cell)."""
    return "\n".join(" ".join(text.split()) for _, text in code_texts(code))


@dataclass(frozen=True)
class Text:
    """One piece of Chinese text: where it is, what kind (``markdown``,
    ``code`` or ``master``: a classroom master's English prose, for
    wording rules only), and the text a reader reads."""
    where: str
    kind: str
    text: str


def _notebook_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def notebook_texts(path: Path, kind_md: str = "markdown") -> list[Text]:
    out = []
    for i, cell in enumerate(_notebook_cells(path)):
        src = _source(cell)
        if cell["cell_type"] == "markdown":
            out.append(Text(f"{_rel(path)} cell {i}", kind_md, prose(src)))
        elif cell["cell_type"] == "code":
            for line, text in code_texts(src):
                if HAN_RE.search(text):
                    out.append(Text(f"{_rel(path)} cell {i} line {line}",
                                    "code", printed(text)))
    return out


def markdown_file_texts(path: Path) -> list[Text]:
    text = path.read_text(encoding="utf-8")
    if path.name == "code.md":
        # classroom: English after "> ", Chinese comments and check
        # messages (Python string expressions with {placeholders})
        text = re.sub(r"\{[^{}\n]*\}", _PLACEHOLDER, text)
        return [Text(_rel(path), "code", prose(text))]
    return [Text(_rel(path), "markdown", prose(text))]


def package_texts(package: Path = PACKAGE) -> list[Text]:
    out = []
    for path in sorted(package.glob("*.py")):
        for line, text in code_texts(path.read_text(encoding="utf-8")):
            if HAN_RE.search(text):
                out.append(Text(f"{_rel(path)} line {line}", "code",
                                printed(text)))
    return out


def chinese_sources() -> dict[str, list[Text]]:
    """``{file: [Text, ...]}`` for every file a Chinese reader reads."""
    out = {}
    for path in sorted(ZH_DIR.glob("[0-9][0-9]_*.ipynb")):
        out[_rel(path)] = notebook_texts(path)
    readme = ROOT / "README.zh.md"
    out[_rel(readme)] = markdown_file_texts(readme)
    for path in sorted((CLASSROOM / "zh").glob("*.md")):
        out[_rel(path)] = markdown_file_texts(path)
    for path in sorted(CLASSROOM.glob("*.ipynb")):
        out[_rel(path)] = notebook_texts(path, kind_md="master")
    out[_rel(PACKAGE)] = package_texts()
    return out


def _applies(rule: Rule, kind: str) -> bool:
    if kind == "master" and rule.name in TYPOGRAPHY:
        return False
    return not (rule.name in MARKDOWN_ONLY and kind != "markdown")


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:end if end >= 0 else None]
    if len(line) > 60:
        at = pos - start
        line = line[max(0, at - 30):at + 30]
    return line


def _headings_and_tables(text: str) -> str:
    """Line breaks after a heading or a table row are not inside a
    paragraph: mark them so that the linebreak rule skips them."""
    lines = text.split("\n")
    return "\n".join(line + GAP if line.lstrip().startswith(("#", "|"))
                     else line for line in lines)


def check(texts: list[Text], rules: list[Rule]) -> list[Problem]:
    """Every place a rule finds in ``texts``."""
    problems = []
    for t in texts:
        for rule in rules:
            if not _applies(rule, t.kind):
                continue
            text = (_headings_and_tables(t.text)
                    if rule.name in MARKDOWN_ONLY else t.text)
            for m in rule.pattern.finditer(text):
                line = t.text[:m.start()].count("\n")
                where = t.where + (f" line {line + 1}" if t.kind != "code"
                                   else "")
                problems.append(Problem(
                    where, rule.name, m.group(0),
                    _line_of(t.text, m.start()).replace(GAP, "…"),
                    rule.say))
    return problems


def check_text(text: str, rules: list[Rule], kind: str = "markdown"
               ) -> list[Problem]:
    """``check`` of one piece of markdown (or, ``kind="code"``, of one
    string literal), read as a reader reads it."""
    text = prose(text) if kind == "markdown" else printed(text)
    return check([Text("text", kind, text)], rules)


# --- English on screen -----------------------------------------------

@dataclass(frozen=True)
class Allowed:
    words: frozenset
    lines: tuple


def load_allowed(path: Path = ALLOWED) -> Allowed:
    """``tests/zh_english_allowed.txt``: one word a line (as written, or
    lower case for any case), ``line: REGEX`` for a whole printed line
    (the book's train_ch6 lines), ``#`` comments."""
    words, lines = set(), []
    for raw in path.read_text(encoding="utf-8").splitlines():
        item = raw.split(" #", 1)[0].strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("line:"):
            lines.append(re.compile(item[5:].strip()))
        else:
            words.add(item)
    return Allowed(frozenset(words), tuple(lines))


_A = r"(?<![A-Za-z0-9_])"     # an ASCII word starts (Han is \w too)
_Z = r"(?![A-Za-z0-9_])"
_CODE_LIKE = re.compile(
    r"`[^`\n]*`|'[^'\n]*'|\"[^\"\n]*\"|https?://\S+|"
    r"[\w.+-]*[/\\][\w./\\+-]*|"                       # paths
    + _A + r"[\w-]+\.(?:ipynb|py|md|csv|txt|json|pt|toml|html|png|svg)"
    + _Z + "|"
    + _A + r"[A-Za-z_]\w*(?:\(\)|\()|"                   # calls: f(
    + _A + r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+" + _Z + "|"  # nn.Linear
    + _A + r"[A-Za-z_]\w*=[^\s,;，；）)]*|"                # key=value
    + _A + r"[A-Za-z0-9]*(?:_|\d)[A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*" + _Z
    + "|"                                           # a_b, bf16, d2l-zh
    + _A + r"[a-z]+[A-Z][A-Za-z0-9_]*" + _Z + "|"         # camelCase
    + _A + r"[A-Z][a-z]+[A-Z][A-Za-z0-9_]*" + _Z + "|"    # DenseBlock
    + r"(?<![\w-])--?[A-Za-z][\w-]*")                   # --flags
_SOURCE = re.compile(r"^(\s*)(?:@\w|def |class |async def )")


def without_source_code(text: str) -> str:
    """``text`` without the Python source it prints
    (``inspect.getsource``): each ``def``/``class`` line and the
    indented lines under it are code, whatever their docstrings say."""
    out, indent = [], None
    for line in text.splitlines():
        m = _SOURCE.match(line)
        if m and (indent is None or len(m.group(1)) <= indent):
            indent = len(m.group(1))
            continue
        if indent is not None and (not line.strip() or len(line) - len(
                line.lstrip()) > indent or line.strip().startswith(")")):
            continue
        indent = None
        out.append(line)
    return "\n".join(out)


_WORD = re.compile(r"[A-Za-z](?:[A-Za-z']|-(?=[A-Za-z]))*")
#: What may stand between two words of one English phrase.
_JOIN = re.compile(r"[\s,.;:!?()'\"/&]*")


def _allowed_word(word: str, allowed: Allowed) -> bool:
    if word in allowed.words or word.lower() in allowed.words:
        return True
    parts = word.split("-")
    return len(parts) > 1 and all(_allowed_word(p, allowed) for p in parts)


def english_runs(text: str, allowed: Allowed) -> list[list[str]]:
    """The English phrases of ``text`` (runs of words not allowed, with
    only spaces and punctuation between them); code (quoted text,
    identifiers, paths, flags) and allowed lines are left out."""
    runs = []
    for line in text.splitlines():
        if any(p.search(line) for p in allowed.lines):
            continue
        line = _CODE_LIKE.sub("\0", line)
        end, run = None, []
        for m in _WORD.finditer(line):
            w = m.group(0).strip("'")
            if (len(w) < 2 and w not in ("a", "I")) or \
                    _allowed_word(w, allowed):
                continue
            if run and not _JOIN.fullmatch(line[end:m.start()]):
                runs.append(run)
                run = []
            run.append(w)
            end = m.end()
        if run:
            runs.append(run)
    return runs


def english_words(text: str, allowed: Allowed) -> list[str]:
    """The English words of ``text`` (see ``english_runs``)."""
    return [w for run in english_runs(text, allowed) for w in run]


def origin(runs: list[list[str]], notebook: str, package: str) -> str:
    """Where English phrases come from: ``notebook string`` (the zh
    cell's own strings hold the phrase), ``package message`` (the
    package's strings do) or ``library output`` (neither: PyTorch,
    pandas, torchinfo, ...); the most common of the phrases' origins."""
    votes = {"notebook string": 0, "package message": 0,
             "library output": 0}
    for run in runs:
        phrase = re.compile(r"(?<![A-Za-z])" + r"\W+".join(
            map(re.escape, run)) + r"(?![A-Za-z])")
        key = ("notebook string" if phrase.search(notebook) else
               "package message" if phrase.search(package) else
               "library output")
        votes[key] += len(run)
    return max(votes, key=votes.get)


def _html_text(html: str) -> str:
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"<br\s*/?>|</(tr|p|div|li|h\d)>", "\n", html)
    return re.sub(r"<[^>]+>", " ", html)


def output_texts(cell: dict) -> list[tuple[str, str]]:
    """``(kind, text)`` of what a code cell showed: streams, text/plain,
    text/markdown, text/html (tags left out); images are left out."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append((f"stream {o.get('name', '')}".strip(),
                        _source({"source": o.get("text", "")})))
        elif o.get("output_type") in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "text/html" in data:
                out.append(("text/html",
                            _html_text(_source({"source":
                                                data["text/html"]}))))
            elif "text/markdown" in data:
                out.append(("text/markdown",
                            prose(_source({"source":
                                           data["text/markdown"]}))))
            elif "text/plain" in data and not any(
                    k.startswith("image/") for k in data):
                out.append(("text/plain",
                            _source({"source": data["text/plain"]})))
        elif o.get("output_type") == "error":
            out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
    return out


#: Calls whose string arguments are drawn in a figure.
FIGURE_CALLS = {"set_title", "title", "suptitle", "set_xlabel", "set_ylabel",
                "xlabel", "ylabel", "text", "annotate", "legend",
                "set_xticklabels", "set_yticklabels", "xticks", "yticks",
                "bar_label", "set_label", "figtext", "table"}


def figure_strings(code: str) -> list[tuple[int, str]]:
    """``(line, text)`` of the strings a cell draws in a figure: the
    arguments of titles, labels, legends, ticks and texts, and every
    ``label=`` / ``title=`` / ``xlabel=`` / ``ylabel=`` keyword."""
    try:
        tree = ast.parse(_no_magics(code))
    except SyntaxError:
        return []
    out = []

    def strings(node):
        """The text a value shows: strings, f-strings, and those inside
        lists, tuples, +, conditional expressions, comprehensions and
        method calls on a string ("、".join(...)); not dict keys or
        other calls' arguments."""
        if isinstance(node, ast.JoinedStr):
            out.append((node.lineno, _fstring(node)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for e in node.elts:
                strings(e)
        elif isinstance(node, ast.BinOp):
            strings(node.left)
            strings(node.right)
        elif isinstance(node, ast.IfExp):
            strings(node.body)
            strings(node.orelse)
        elif isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            strings(node.elt)
        elif isinstance(node, ast.Call) and isinstance(
                node.func, ast.Attribute) and isinstance(
                    node.func.value, (ast.Constant, ast.JoinedStr)):
            strings(node.func.value)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in FIGURE_CALLS:
            for arg in node.args:
                strings(arg)
        for kw in node.keywords:
            if kw.arg in ("label", "title", "xlabel", "ylabel", "labels",
                          "legend"):
                strings(kw.value)
    seen, unique = set(), []
    for item in out:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def _package_strings() -> str:
    """The package's string literals that can reach the screen: not its
    docstrings, not its comments."""
    out = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef,
                                     ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr)}
        inner = {id(v) for node in ast.walk(tree)
                 if isinstance(node, ast.JoinedStr)
                 for v in ast.walk(node) if v is not node}
        for node in ast.walk(tree):
            if id(node) in docs or id(node) in inner:
                continue
            if isinstance(node, ast.JoinedStr):
                out.append(_fstring(node))
            elif isinstance(node, ast.Constant) and isinstance(node.value,
                                                                str):
                out.append(node.value)
    return "\n".join(out)


def english_on_screen(executed: Path, source: Path | None,
                      allowed: Allowed) -> list[dict]:
    """The English words an executed zh notebook showed, one dict per
    output (and per figure string of the source): ``where``, ``words``,
    ``origin`` (notebook string, package message or library output)."""
    cells = _notebook_cells(executed)
    src_cells = _notebook_cells(source) if source else cells
    package = _package_strings()
    found = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        code = _source(src_cells[i]) if i < len(src_cells) else ""
        strings = " ".join(t for _, t in code_texts(code))
        for kind, text in output_texts(cell):
            runs = english_runs(without_source_code(text), allowed)
            if not runs:
                continue
            found.append({"where": f"{executed.name} cell {i} ({kind})",
                          "words": [w for run in runs for w in run],
                          "phrases": [" ".join(run) for run in runs],
                          "origin": origin(runs, strings, package),
                          "text": text.strip()[:300]})
        for line, text in figure_strings(code):
            runs = english_runs(_SPANS[2].sub(" ", printed(text)),
                                allowed)
            if runs:
                found.append({"where": f"{executed.name} cell {i} line "
                                       f"{line} (figure text)",
                              "words": [w for run in runs for w in run],
                              "phrases": [" ".join(run) for run in runs],
                              "origin": "notebook string",
                              "text": text[:300]})
    return found


def output_problems(executed: Path, rules: list[Rule]) -> list[Problem]:
    """What the wording and typography rules find in the Chinese lines
    an executed notebook printed or displayed ("286 个参数" printed by
    ``print(n, "个参数")``, which no single string literal shows)."""
    texts = []
    for i, cell in enumerate(_notebook_cells(executed)):
        if cell.get("cell_type") != "code":
            continue
        for kind, text in output_texts(cell):
            lines = [line for line in without_source_code(text).splitlines()
                     if HAN_RE.search(line)]
            if lines:
                texts.append(Text(f"{executed.name} cell {i} ({kind})",
                                  "code", printed("\n".join(lines))))
    return check(texts, rules)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--english", nargs="?", type=Path, metavar="DIR",
                    const=ROOT / "build" / "run" / "smoke" / "zh",
                    help="list English on screen in DIR's executed "
                         "notebooks instead")
    args = ap.parse_args(argv)
    if args.english is not None:
        paths = sorted(args.english.glob("[0-9][0-9]_*.ipynb"))
        if not paths:
            print(f"error: no executed notebooks in {args.english} (run "
                  f"`python tools/run_notebooks.py --edition zh --mode "
                  f"smoke`)", file=sys.stderr)
            return 2
        allowed, n = load_allowed(), 0
        for path in paths:
            for f in english_on_screen(path, ZH_DIR / path.name, allowed):
                n += 1
                print(f"{f['where']} [{f['origin']}]: "
                      f"{' | '.join(dict.fromkeys(f['phrases']))}\n"
                      f"    {f['text'][:160]!r}")
            for p in output_problems(path, load_rules()):
                n += 1
                print(p)
        return 1 if n else 0
    try:
        rules = load_rules()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problems = [p for texts in chinese_sources().values()
                for p in check(texts, rules)]
    print("\n".join(map(str, problems)) or "no rule finds anything")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
