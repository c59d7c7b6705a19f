"""Fonts and plot set-up.

The Chinese edition's figures have Chinese titles and labels, so
matplotlib needs a font with Chinese glyphs. :func:`setup_plots` finds
one (``CJK_FONTS``, in order of preference) and appends it to
``font.family``: Latin text keeps its font and each Chinese character
falls back to the CJK font. When there is none it says so once, in
Chinese, with the command that installs one, instead of letting the
reader find boxes in the figures.

Fonts that come in one ``.ttc`` file with several faces: matplotlib
before 3.11 reads only the first face, so Debian's ``fonts-noto-cjk``
offers "Noto Sans CJK JP" (every face of that file has the Chinese
glyphs; only the preferred shapes of a few characters differ) and
macOS's ``PingFang.ttc`` may offer "PingFang HK"; both are listed. A
listed font is used only if it draws a sample of Chinese text
(:func:`has_glyphs`), so a name without the glyphs is never chosen.

The reader's language is passed in (``lang=``); where it is not, it is
the one setting of :func:`~d2l_densenet.messages.language`.
"""
from __future__ import annotations

import re
import warnings

from .messages import language, text

__all__ = ["CJK_FONTS", "FONT_PACKAGES", "has_glyphs", "find_cjk_font",
           "setup_plots", "missing_font_message"]


#: Fonts with Chinese glyphs, in order of preference: Simplified Chinese
#: faces first (Noto Sans CJK / Source Han Sans from fonts-noto-cjk or
#: Adobe, macOS's PingFang, Hiragino Sans GB and Heiti, Windows's
#: Microsoft YaHei and SimHei, Debian's WenQuanYi), then the other faces
#: of the same families, which matplotlib < 3.11 finds as the first
#: face of a .ttc file (fonts-noto-cjk: "Noto Sans CJK JP").
CJK_FONTS = (
    "Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN",
    "Noto Sans SC", "PingFang SC", "Hiragino Sans GB", "Heiti SC",
    "STHeiti", "Microsoft YaHei", "SimHei", "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK TC", "Noto Sans CJK HK", "Noto Sans CJK JP",
    "Noto Sans CJK KR", "Source Han Sans TC", "Source Han Sans HK",
    "Source Han Sans JP", "Source Han Sans KR", "Source Han Sans",
    "PingFang TC", "PingFang HK", "Heiti TC", "Microsoft JhengHei",
)
#: Parts of the file names of those fonts, to register files installed
#: after matplotlib built its font cache (e.g. by Colab's first cell).
_FONT_FILES = re.compile(r"cjk|wqy|sourcehan|pingfang|hiragino|heiti|"
                         r"msyh|msjh|simhei", re.IGNORECASE)
#: Chinese text a chosen font must draw: the figures' kind of labels.
_SAMPLE = "稠密连接网络：训练损失、测试精度（迭代周期）"
#: Debian/Ubuntu/Colab packages with such a font (the first is the most
#: complete, the second the smallest download).
FONT_PACKAGES = ("fonts-noto-cjk", "fonts-wqy-microhei")
_told = False          # the missing-font message is said once


def has_glyphs(entry, text: str = _SAMPLE) -> bool:
    """Whether the font face of a matplotlib ``FontEntry`` has a glyph
    for every character of ``text``."""
    from matplotlib import ft2font

    index = getattr(entry, "index", 0)
    try:
        font = (ft2font.FT2Font(entry.fname, face_index=index) if index
                else ft2font.FT2Font(entry.fname))
        charmap = font.get_charmap()
    except (OSError, RuntimeError, TypeError, ValueError):
        return False
    return all(ord(c) in charmap for c in text)


def _register_system_cjk_files(manager) -> None:
    """Add the font files whose names look like ``CJK_FONTS``' to
    matplotlib's font list (its cache may predate them)."""
    from matplotlib import font_manager

    known = {f.fname for f in manager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known and _FONT_FILES.search(path):
            try:
                manager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue


def find_cjk_font() -> str | None:
    """The first font of ``CJK_FONTS`` that matplotlib knows and that
    draws Chinese; font files installed since matplotlib built its cache
    are registered first if none is known. None if there is none."""
    from matplotlib import font_manager

    manager = font_manager.fontManager

    def first():
        faces = {}
        for f in manager.ttflist:
            faces.setdefault(f.name, f)
        return next((name for name in CJK_FONTS if name in faces
                     and has_glyphs(faces[name])), None)

    found = first()
    if found is None:
        _register_system_cjk_files(manager)
        found = first()
    return found


def missing_font_message(lang: str = "zh") -> str:
    """What to do when no font draws Chinese: in Chinese, with the
    install command (``lang="en"``: followed by the same in English)."""
    noto, wqy = FONT_PACKAGES
    zh = text("plots.missing_font", "zh", noto=noto, wqy=wqy)
    if language(lang) == "zh":
        return zh
    return zh + "\n" + text("plots.missing_font", "en", noto=noto, wqy=wqy)


def _tell_missing_font(lang: str) -> None:
    global _told
    if not _told:
        _told = True
        print(missing_font_message(lang))


_GLYPH = re.compile(r"Glyph (\d+)\b.* missing from")


def _is_chinese(codepoint: int) -> bool:
    """CJK ideographs (and their extensions), CJK punctuation and
    full-width forms."""
    return (0x3000 <= codepoint <= 0x303F or 0x3400 <= codepoint <= 0x9FFF
            or 0xF900 <= codepoint <= 0xFAFF or 0xFF00 <= codepoint <= 0xFFEF
            or 0x20000 <= codepoint <= 0x3134F)


def _watch_missing_glyphs() -> None:
    """Say :func:`missing_font_message` once when matplotlib warns that a
    Chinese glyph is missing ("Glyph 20013 (...) missing from font(s)
    DejaVu Sans."): the warning is shown as before."""
    shown = warnings.showwarning
    if getattr(shown, "_d2l_densenet", False):
        return

    def showwarning(message, category, filename, lineno, file=None,
                    line=None):
        m = _GLYPH.search(str(message))
        if m and _is_chinese(int(m.group(1))):
            _tell_missing_font("en")
        return shown(message, category, filename, lineno, file, line)

    showwarning._d2l_densenet = True
    warnings.showwarning = showwarning


def setup_plots(lang: str | None = None) -> str | None:
    """Let matplotlib draw Chinese labels: the font of
    :func:`find_cjk_font` is appended to ``font.family``, so Latin text
    keeps its font and each Chinese character falls back to it.

    Returns the font's name, or None. Then, once per process, a message
    in Chinese says how to install one: at once when ``lang`` (default:
    :func:`~d2l_densenet.messages.language`) is ``"zh"``, else when
    matplotlib first warns about a missing Chinese glyph.
    """
    import matplotlib

    lang = language(lang)
    found = find_cjk_font()
    if found is None:
        if lang == "zh":
            _tell_missing_font("zh")
        else:
            _watch_missing_glyphs()
        return None
    family = list(matplotlib.rcParams["font.family"])
    if found not in family:
        # matplotlib falls back along font.family, glyph by glyph.
        matplotlib.rcParams["font.family"] = family + [found]
    return found
