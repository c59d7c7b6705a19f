"""`make site` (tools/build_site.py): the static site shows every
notebook of both editions with its figures and printed answers, how it
was executed, a link to its twin, its Colab badge, and the classroom
edition's student notebooks unexecuted; it needs no network."""
import json
import re
from pathlib import Path

import publishing
import pytest
from _site import GROUP, built_site
from run_notebooks import RUN_KEY, series

pytestmark = [pytest.mark.notebook, GROUP]
NAMES = [p.stem for p in series("en")]
PAGES = [f"{e}/{n}" for e in ("en", "zh") for n in NAMES]


@pytest.fixture(scope="module")
def site():
    return built_site()


def _html(site, rel: str) -> str:
    return (site["dir"] / f"{rel}.html").read_text(encoding="utf-8")


def _executed(site, rel: str) -> dict:
    """The executed notebook the page was built from (the site's copy: a
    notebook test may run the notebook again while the site is read)."""
    return json.loads((site["src"] / f"{rel}.ipynb")
                      .read_text(encoding="utf-8"))


def test_index_is_the_readme_and_links_every_notebook_page(site):
    index = _html(site, "index")
    readme = (Path(publishing.ROOT) / "README.md").read_text("utf-8")
    title = readme.splitlines()[0].lstrip("# ").strip()
    assert f"<h1>{title}" in index
    assert "Two commands" in index
    hrefs = set(re.findall(r'href="([^"#]+)', index))
    for rel in PAGES:
        assert f"{rel}.html" in hrefs, f"index does not link {rel}"
        assert (site["dir"] / f"{rel}.html").is_file()
    assert "zh/index.html" in hrefs and "classroom/index.html" in hrefs
    assert (site["dir"] / "search.html").is_file()
    assert (site["dir"] / "searchindex.js").stat().st_size > 1000


@pytest.mark.parametrize("rel", PAGES)
def test_page_shows_figures_answers_and_how_it_ran(site, rel):
    html = _html(site, rel)
    nb = _executed(site, rel)
    info = nb["metadata"][RUN_KEY]
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    # every figure the run drew is on the page, as a file of the site
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    images = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.png)"', html)
    assert len(images) >= figures
    for src in images:
        path = (site["dir"] / rel).parent / src
        assert path.resolve().is_file() and path.stat().st_size > 0
    # every headline answer the notebook printed is on the page
    heads = [line[4:] for o in outputs if o.get("output_type") == "stream"
             for line in "".join(o.get("text", "")).splitlines()
             if line.startswith("==> ")]
    text = re.sub(r"<[^>]+>", "", html).replace("&gt;", ">")
    text = text.replace("&lt;", "<").replace("&amp;", "&")
    for line in heads:
        assert line[:60] in text, line
    # how it was executed: mode, device and run time
    assert info["mode"] == "smoke"
    assert "smoke" in text and info["device"] in text
    seconds = f"{info['seconds']:.0f} s"
    assert seconds in text or f"{info['seconds'] / 60:.1f} min" in text


@pytest.mark.parametrize("rel", PAGES)
def test_page_links_its_twin_and_colab(site, rel):
    edition, name = rel.split("/")
    twin = {"en": "zh", "zh": "en"}[edition]
    html = _html(site, rel)
    assert f'href="../{twin}/{name}.html"' in html
    s = publishing.settings()
    folder = "notebooks/" + ("zh/" if edition == "zh" else "")
    colab = (f"https://colab.research.google.com/github/{s['repo']}/blob/"
             f"{s['branch']}/{folder}{name}.ipynb")
    assert f'href="{colab}"' in html
    lang = 'lang="zh-CN"' if edition == "zh" else 'lang="en"'
    assert f"<html {lang}" in html


def test_student_notebooks_are_there_unexecuted(site):
    student = site["student"]
    site = site["dir"]
    pages = sorted((site / "classroom").glob("*.html")) + sorted(
        (site / "classroom" / "zh").glob("*.html"))
    names = sorted(p.stem for p in student.glob("*.ipynb"))
    zh = sorted(p.stem for p in student.glob("zh/*.ipynb"))
    assert len(names) >= 6 and zh == names
    rendered = {p.relative_to(site / "classroom").with_suffix("").as_posix()
                for p in pages}
    assert set(names) | {f"zh/{n}" for n in zh} <= rendered
    for name in names:
        html = (site / "classroom" / f"{name}.html").read_text("utf-8")
        assert 'class="cell_output' not in html, f"{name} has outputs"
        assert "colab.research.google.com/github/" in html
        nb = json.loads((student / f"{name}.ipynb").read_text("utf-8"))
        assert all(not c.get("outputs") for c in nb["cells"])
    index = (site / "classroom" / "index.html").read_text("utf-8")
    for name in names:
        assert f'href="{name}.html"' in index


def test_site_needs_no_network(site):
    """No script, stylesheet, image or font from another host, and the
    math is MathML in the page (no MathJax from a CDN)."""
    math = _html(site, "en/02_parameters_vs_resnet")
    site = site["dir"]
    pages = list(site.rglob("*.html"))
    assert len(pages) >= len(PAGES) + 12 + 3
    for page in pages:
        html = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|img|link|iframe)\b[^>]*?'
                            r'(?:src|href)="((?:https?:)?//[^"]+)"', html)
        assert not remote, f"{page.relative_to(site)} loads {remote}"
    assert "<math" in math and "mathjax" not in math.lower()
