"""Math as MathML, written at build time (docutils' LaTeX converter):
browsers render it natively (Chromium 109+, Firefox, Safari), so the
site shows formulas with no JavaScript, no web fonts and no CDN."""
from html import escape

from docutils import nodes
from docutils.utils.math import MathError, latex2mathml
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _mathml(tex: str, block: bool) -> str:
    try:
        return latex2mathml.tex2mathml(tex, as_block=block)
    except (SyntaxError, MathError) as e:  # unsupported: show the source
        logger.warning(f"math not converted to MathML: {tex!r}: {e}")
        return f'<code class="math-source">{escape(tex)}</code>'


def visit_math(self, node):
    self.body.append(_mathml(node.astext(), block=False))
    raise nodes.SkipNode


def visit_math_block(self, node):
    self.body.append(f'<div class="math-block">'
                     f'{_mathml(node.astext(), block=True)}</div>')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer("mathml", (visit_math, None),
                               (visit_math_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
