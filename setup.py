"""The PyPI page's text: README.md with its relative links made absolute.

PyPI has no repository to resolve ``[text](notebooks/x.ipynb)`` against,
so each relative link points at that file in publish.toml's repository
and branch (``https://github.com/REPO/blob/BRANCH/PATH``). README.md
itself keeps relative links, which GitHub and the site (make site)
resolve. Everything else about the package is in pyproject.toml.
"""
import re
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
# a markdown link's target that is neither absolute (scheme:, /) nor an
# anchor in the page (#)
RELATIVE = re.compile(r"\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|[#/])"
                      r"(?P<path>[^)\s]+)\)")


def pypi_readme(root: Path = HERE) -> str:
    publish = tomllib.loads((root / "publish.toml").read_text("utf-8"))
    repo, branch = publish["publish"]["repo"], publish["publish"]["branch"]
    base = f"https://github.com/{repo}/blob/{branch}/"
    text = (root / "README.md").read_text(encoding="utf-8")
    return RELATIVE.sub(lambda m: f"]({base}{m['path']})", text)


if __name__ == "__main__":
    # imported here: tests/test_wheel.py imports pypi_readme() where
    # setuptools may be missing (a Python 3.12+ venv has none)
    from setuptools import setup

    setup(long_description=pypi_readme(),
          long_description_content_type="text/markdown")
