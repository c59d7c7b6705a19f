"""Sphinx configuration of the series' static site (``make site``).

tools/build_site.py copies this folder into build/site-src/ next to the
pages it generates, then runs sphinx-build. Notebooks are rendered with
myst-nb from their stored outputs (never executed here); math uses the
MathJax 2 copy of the PyPI package ``jupyter-server-mathjax``, served
from the site itself (no CDN: the site builds and reads offline).
"""
project = "d2l-densenet"
author = "d2l-densenet contributors"
copyright = "the d2l-densenet contributors"
extensions = ["myst_nb"]
# tools/build_site.py lays out every source; nothing is executed here.
nb_execution_mode = "off"
nb_merge_streams = True
# No widget JavaScript from a CDN (nbclient stores widget state).
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# MathJax 2 from _static/mathjax (copied by tools/build_site.py).
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {"tex2jax": {"processEscapes": True},
                   "messageStyle": "none"}
myst_update_mathjax = False
html_theme = "alabaster"
html_theme_options = {"page_width": "1100px", "sidebar_width": "260px",
                      "show_relbars": True}
html_sidebars = {"**": ["about.html", "searchbox.html", "navigation.html",
                        "relations.html"]}
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_title = "d2l-densenet"
html_show_sourcelink = False
exclude_patterns = ["_build", "**.lock", "**/checks/**", "Thumbs.db",
                    ".DS_Store"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header",
                     "myst.xref_missing", "misc.highlighting_failure"]
