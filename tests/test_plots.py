"""Fonts for Chinese labels (plots.py).

The machines are simulated by narrowing matplotlib's font list to what
such a machine would have; the fonts themselves are real files, and the
figures are really drawn (matplotlib warns "Glyph ... missing from
font(s) ..." for every character its fonts cannot draw).
"""
import dataclasses
import warnings

import matplotlib
import pytest
from matplotlib import font_manager, ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from d2l_densenet import plots

NOTO_INSTALL = "apt-get install -y fonts-noto-cjk"
LABELS = ("稠密连接网络：训练损失", "迭代周期", "测试精度（%）")


def _system_fonts(*parts):
    """Font files on this machine whose paths contain all ``parts``."""
    return sorted(p for p in font_manager.findSystemFonts()
                  if all(s in p.lower() for s in parts))


def _latin_only():
    """matplotlib's font list without any font of a CJK family."""
    return [f for f in font_manager.fontManager.ttflist
            if f.name not in plots.CJK_FONTS
            and not plots._FONT_FILES.search(f.fname)]


def _first_face(path):
    """The font entry matplotlib < 3.11 makes of a .ttc: its first face
    only."""
    return font_manager.ttfFontProperty(ft2font.FT2Font(path))


_shown = []     # the warnings shown (see the ``machine`` fixture)


def _record(message, category, filename, lineno, file=None, line=None):
    _shown.append(str(message))


def _missing_glyphs(labels=LABELS):
    """Draw a figure with ``labels`` as title, axis labels and legend;
    return matplotlib's missing-glyph warnings, as shown (through
    ``warnings.showwarning``, as in a notebook)."""
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([1, 2], [3, 4], label=labels[0])
    ax.set_title(labels[0])
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[-1])
    ax.legend()
    _shown.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        fig.canvas.draw()
    return [m for m in _shown if "missing from font" in m]


@pytest.fixture
def machine(monkeypatch):
    """A machine with the given font entries and font files (matplotlib's
    cache and the system fonts replaced), a Latin font.family, English,
    and the missing-font message not said yet."""
    def make(entries, files=()):
        monkeypatch.setattr(font_manager.fontManager, "ttflist",
                            [*_latin_only(), *entries])
        monkeypatch.setattr(font_manager, "findSystemFonts",
                            lambda *a, **k: list(files))
        cached = getattr(font_manager.fontManager, "_findfont_cached", None)
        if cached is not None:     # lookups made with the real font list
            cached.cache_clear()
    monkeypatch.setenv("D2L_DENSENET_LANG", "en")
    monkeypatch.setattr(plots, "_told", False)
    monkeypatch.setattr(warnings, "showwarning", _record)
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        yield make


def test_the_latin_machine_really_misses_chinese_glyphs(machine):
    """The check the font tests rely on: without a CJK font, drawing the
    labels warns once per missing character."""
    machine([])
    assert len(_missing_glyphs()) >= 10


def test_noto_cjk_only_machine_draws_chinese(machine):
    """fonts-noto-cjk alone (e.g. a fresh Debian with it installed after
    matplotlib built its cache): its files are registered and a Noto
    Sans CJK face draws every label."""
    files = _system_fonts("noto", "cjk")
    if not files:
        pytest.skip(f"fonts-noto-cjk is not installed; to run this test: "
                    f"sudo {NOTO_INSTALL}")
    machine([], files)
    found = plots.setup_plots()
    assert found is not None and found.startswith("Noto Sans CJK")
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans", found]
    assert _missing_glyphs() == []


def test_first_face_of_noto_ttc_is_found(machine):
    """matplotlib < 3.11 (Colab's 3.10) reads only the first face of
    NotoSansCJK-Regular.ttc: "Noto Sans CJK JP". It must be chosen and
    draw the Chinese labels."""
    files = _system_fonts("notosanscjk-regular.ttc")
    if not files:
        pytest.skip(f"fonts-noto-cjk is not installed; to run this test: "
                    f"sudo {NOTO_INSTALL}")
    face = _first_face(files[0])
    assert face.name == "Noto Sans CJK JP"
    machine([face])
    assert plots.setup_plots() == "Noto Sans CJK JP"
    assert _missing_glyphs() == []


def test_wenquanyi_only_machine_draws_chinese(machine):
    files = _system_fonts("wqy-microhei")
    if not files:
        pytest.skip("fonts-wqy-microhei is not installed; to run this "
                    "test: sudo apt-get install -y fonts-wqy-microhei")
    machine([_first_face(files[0])])
    assert plots.setup_plots() == "WenQuanYi Micro Hei"
    assert _missing_glyphs() == []


def test_simplified_chinese_faces_are_preferred(machine, monkeypatch):
    """Several fonts installed: the first of CJK_FONTS wins (WenQuanYi
    before the JP face of Noto Sans CJK), added once, after the Latin
    font."""
    monkeypatch.setattr(plots, "has_glyphs", lambda entry: True)
    machine([font_manager.FontEntry(fname="/x/NotoSansCJK.ttc",
                                    name="Noto Sans CJK JP"),
             font_manager.FontEntry(fname="/x/wqy-microhei.ttc",
                                    name="WenQuanYi Micro Hei")])
    assert plots.setup_plots() == "WenQuanYi Micro Hei"
    plots.setup_plots()
    assert matplotlib.rcParams["font.family"] == [
        "DejaVu Sans", "WenQuanYi Micro Hei"]


def test_a_listed_name_without_chinese_glyphs_is_not_chosen(machine):
    """A font that calls itself "Noto Sans CJK SC" but is a Latin font
    (here: DejaVu Sans's file) is skipped."""
    dejavu = next(f for f in font_manager.fontManager.ttflist
                  if f.name == "DejaVu Sans")
    impostor = dataclasses.replace(dejavu, name="Noto Sans CJK SC")
    assert not plots.has_glyphs(impostor)
    machine([impostor])
    assert plots.setup_plots() is None
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]


def test_no_font_in_chinese_says_so_once_with_the_install_command(
        machine, capsys):
    machine([])
    assert plots.setup_plots("zh") is None
    out = capsys.readouterr().out
    assert "没有找到能显示中文的字体" in out and NOTO_INSTALL in out
    assert "fonts-wqy-microhei" in out and "No font" not in out
    assert plots.setup_plots("zh") is None
    assert capsys.readouterr().out == ""
    assert matplotlib.rcParams["font.family"] == ["DejaVu Sans"]


def test_no_font_in_english_says_so_when_chinese_is_drawn(machine,
                                                          capsys):
    """English reader: nothing at set-up; drawing a missing Latin-range
    glyph says nothing; the first Chinese label says it once (in Chinese
    and English), and matplotlib's warnings are still shown."""
    machine([])
    assert plots.setup_plots() is None
    assert capsys.readouterr().out == ""
    assert _missing_glyphs(("\N{UPSIDE-DOWN FACE}",) * 3)
    assert capsys.readouterr().out == ""
    assert _missing_glyphs()                   # still warned about
    out = capsys.readouterr().out
    assert out.count(NOTO_INSTALL) == 2        # Chinese + English line
    assert "没有找到能显示中文的字体" in out
    _missing_glyphs()
    assert capsys.readouterr().out == ""


def test_language_is_checked():
    with pytest.raises(ValueError, match="lang must be one of en, zh, got "
                                         "'cn'"):
        plots.setup_plots("cn")
