"""What the series says about the book's editions names the version
(the facts: ../shared/book-editions.md, from the book's git history)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXTS = sorted([ROOT / "README.md", ROOT / "README.zh.md",
                *ROOT.glob("notebooks/**/*.ipynb"),
                *ROOT.glob("notebooks/**/*.md"),
                *ROOT.glob("d2l_densenet/*.py")])
#: "0.17" alone hides which release: v0.17.0-v0.17.3 end with max
#: pooling, v0.17.4-v0.17.6 with average pooling.
BARE_017 = re.compile(r"(?<![\d.])0\.17(?![.\d])")


def bare_versions(text: str) -> list[str]:
    return [text[max(0, m.start() - 30):m.end() + 10]
            for m in BARE_017.finditer(text)]


def test_check_can_fail():
    assert bare_versions("the code of d2l 0.17 ends with max")
    assert bare_versions("d2l-en 0.17, d2l 1.0")
    assert not bare_versions("d2l-en v0.17.3 and v0.17.4 differ; 0.175")


@pytest.mark.parametrize("path", TEXTS,
                         ids=[str(p.relative_to(ROOT)) for p in TEXTS])
def test_every_017_names_its_point_release(path):
    found = bare_versions(path.read_text(encoding="utf-8"))
    assert not found, (f"{path.relative_to(ROOT)} says '0.17' without the "
                       f"point release: {found}")
