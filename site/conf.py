"""Sphinx configuration of the series' static site (``make site``).

tools/build_site.py copies this folder into build/site-src/ next to the
pages it generates, then runs sphinx-build. Notebooks are rendered with
myst-nb from their stored outputs (never executed here); math is written
as MathML at build time (site/mathml.py), so the site builds and reads
offline.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
project = "d2l-densenet"
author = "d2l-densenet contributors"
copyright = "the d2l-densenet contributors"
extensions = ["myst_nb", "mathml"]
# tools/build_site.py lays out every source; nothing is executed here.
nb_execution_mode = "off"
nb_merge_streams = True
# No widget JavaScript from a CDN (nbclient stores widget state).
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# Math as MathML written at build time (site/mathml.py): rendered by the
# browser itself, no MathJax from a CDN.
html_math_renderer = "mathml"
myst_update_mathjax = False
html_theme = "alabaster"
html_theme_options = {"page_width": "1100px", "sidebar_width": "260px",
                      "show_relbars": True}
html_sidebars = {"**": ["about.html", "searchbox.html", "navigation.html",
                        "relations.html"]}
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_title = "d2l-densenet"
html_favicon = "_static/favicon.svg"
html_show_sourcelink = False
exclude_patterns = ["_build", "**.lock", "**/checks/**", "Thumbs.db",
                    ".DS_Store"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header",
                     "myst.xref_missing", "misc.highlighting_failure"]
