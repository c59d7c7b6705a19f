"""The built site in a real browser: headless Chromium opens every page
served on 127.0.0.1. Each loads without a console error or a failed
request, every image (each figure) has loaded, math is laid out, search
finds the notebooks, and the Chinese pages draw their text with a font
that has Chinese glyphs. Screenshots go to build/site-shots/.

(The name sorts after test_notebooks.py: under pytest-xdist the notebook
tests are dispatched first, and the site reuses what they executed.)"""
import re

import pytest
from _site import GROUP, SHOTS, browser, built_site, require_browser, serve
from run_notebooks import series

pytestmark = [pytest.mark.notebook, GROUP]
N_EN, N_ZH = len(series("en")), len(series("zh"))
#: Font families with Chinese glyphs (fonts-noto-cjk, fonts-wqy-*, the
#: ones macOS and Windows ship).
CJK_FONT = re.compile(r"CJK|WenQuanYi|WQY|Noto Sans SC|Noto Serif SC|"
                      r"PingFang|YaHei|SimHei|Heiti", re.I)
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """(base URL, browser context, site) for the site in smoke mode."""
    require_browser()
    site = built_site()
    with serve(site["dir"]) as url, \
            browser(tmp_path_factory.mktemp("chromium")) as context:
        yield url, context, site


def _pages(site_dir):
    return sorted(p.relative_to(site_dir).as_posix()
                  for p in site_dir.rglob("*.html"))


def _open(context, url):
    """A new page at ``url``; returns (page, problems): console errors,
    uncaught exceptions, failed requests, HTTP errors."""
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(
        f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(
        f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(
        f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="load")
    return page, problems


def _broken_images(page) -> list:
    return page.eval_on_selector_all(
        "img", "els => els.filter(i => !(i.complete && i.naturalWidth > 0"
        " && i.naturalHeight > 0)).map(i => i.currentSrc || i.src)")


def test_every_page_loads_cleanly_with_every_figure(chromium):
    url, context, site = chromium
    pages = _pages(site["dir"])
    notebooks = [p for p in pages if re.match(r"(en|zh)/\d\d_", p)]
    assert len(notebooks) == N_EN + N_ZH
    failures, n_images = [], 0
    for rel in pages:
        page, problems = _open(context, f"{url}/{rel}")
        page.wait_for_load_state("networkidle")
        broken = _broken_images(page)
        n_images += page.locator("img").count()
        if re.match(r"(en|zh)/\d\d_", rel):
            figures = page.locator("div.cell_output img").count()
            if figures == 0:
                problems.append("no figure in the outputs")
        failures += [f"{rel}: {p}" for p in problems]
        failures += [f"{rel}: image not loaded: {b}" for b in broken]
        page.close()
    assert not failures, "\n".join(failures)
    assert n_images > N_EN + N_ZH


def test_figures_and_math_are_laid_out_and_screenshots(chromium):
    url, context, site = chromium
    SHOTS.mkdir(parents=True, exist_ok=True)
    for edition in ("en", "zh"):
        rel = f"{edition}/02_parameters_vs_resnet.html"
        page, problems = _open(context, f"{url}/{rel}")
        page.screenshot(path=str(SHOTS / f"site-{edition}-02-top.png"))
        figure = page.locator("div.cell_output img").first
        figure.scroll_into_view_if_needed()
        box = figure.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        page.screenshot(path=str(SHOTS / f"site-{edition}-02-figure.png"))
        maths = page.locator("math")
        assert maths.count() > 5
        sizes = page.eval_on_selector_all(
            "math", "els => els.map(e => e.getBoundingClientRect().width)")
        assert min(sizes) > 0, "a formula is not laid out"
        maths.nth(3).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"site-{edition}-02-math.png"))
        assert not problems, problems
        page.close()
    page, problems = _open(context, f"{url}/index.html")
    page.screenshot(path=str(SHOTS / "site-index.png"), full_page=False)
    assert not problems, problems


def test_search_finds_the_notebooks(chromium):
    url, context, _ = chromium
    page, problems = _open(context, f"{url}/search.html?q=DenseNet")
    page.wait_for_selector("#search-results li", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#search-results p')?.textContent"
        ".includes('found')", timeout=30_000)
    links = page.eval_on_selector_all(
        "#search-results li a", "els => els.map(a => a.href)")
    assert sum(bool(re.search(r"/(en|zh)/\d\d_\w+\.html", h))
               for h in links) >= N_EN, links
    assert not problems, problems


def _fonts_of_first_chinese_text(context, page) -> tuple[str, list]:
    """The first element of the page body whose own text has Chinese
    characters, and the platform fonts Chromium drew that text with."""
    text = page.evaluate("""() => {
      const han = /[\\u4e00-\\u9fff]/;
      for (const el of document.querySelectorAll(
          'div.body h1, div.body p, div.body li')) {
        const own = [...el.childNodes].filter(n => n.nodeType === 3)
          .map(n => n.textContent).join('');
        if (han.test(own)) { el.id = 'cjk-probe'; return own; }
      }
      return null;
    }""")
    assert text, "no Chinese text on the page"
    cdp = context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root,
                                          "selector": "#cjk-probe"})
    fonts = cdp.send("CSS.getPlatformFontsForNode",
                     {"nodeId": node["nodeId"]})["fonts"]
    cdp.detach()
    return text, fonts


def test_chinese_pages_render_in_a_cjk_font(chromium):
    url, context, site = chromium
    zh = [p for p in _pages(site["dir"]) if p.startswith(("zh/",
                                                          "classroom/zh/"))]
    assert len(zh) >= N_ZH + 6
    failures = []
    for rel in zh:
        page, _ = _open(context, f"{url}/{rel}")
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        text, fonts = _fonts_of_first_chinese_text(context, page)
        cjk = sum(f["glyphCount"] for f in fonts
                  if CJK_FONT.search(f["familyName"]))
        if cjk < len(HAN.findall(text)):
            failures.append(f"{rel}: {len(HAN.findall(text))} Chinese "
                            f"characters, fonts {fonts}")
        page.close()
    assert not failures, "\n".join(failures)
