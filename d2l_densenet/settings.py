"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when CUDA is available, else ``cpu``.
"""
from __future__ import annotations

import os

import torch

__all__ = ["MODES", "RECIPES", "run_mode", "default_device", "choose",
           "setup_plots", "CJK_FONTS"]

MODES = ("gpu", "cpu", "smoke")
ENV = "D2L_DENSENET_MODE"

#: The command line's recipes: the book's on a GPU, a reduced one for a
#: CPU (Fashion-MNIST at 32x32, the smallest size above the chapter
#: model's minimum of 29).
RECIPES = {
    "gpu": dict(epochs=10, lr=0.1, batch_size=256, resize=96),
    "cpu": dict(epochs=3, lr=0.1, batch_size=128, resize=32),
}


def default_device() -> torch.device:
    """CUDA if available, else the CPU (the book's ``d2l.try_gpu()``)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_mode(mode: str | None = None) -> str:
    """The run mode: ``mode`` if given, else ``$D2L_DENSENET_MODE``, else
    chosen from the device."""
    mode = mode or os.environ.get(ENV) or (
        "gpu" if torch.cuda.is_available() else "cpu")
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"{ENV} must be one of {MODES}, got {mode!r}")
    if mode == "gpu" and not torch.cuda.is_available():
        raise ValueError(f"{ENV}=gpu but no CUDA device is available; use "
                         f"cpu or smoke")
    return mode


#: Fonts with Chinese glyphs, in order of preference (the Chinese
#: edition's figure titles and labels): Debian's fonts-wqy-microhei,
#: fonts-noto-cjk, and what Windows and macOS ship.
CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC",
             "Noto Sans SC", "Microsoft YaHei", "SimHei", "PingFang SC",
             "Heiti SC")


def setup_plots() -> str | None:
    """Let matplotlib draw Chinese labels: the first installed font of
    ``CJK_FONTS`` is appended to ``font.family``, so Latin text keeps its
    font and each Chinese character falls back to it.
    Returns the font's name, or None (then Chinese shows as boxes; on
    Debian/Ubuntu/Colab: ``apt-get install fonts-wqy-microhei``)."""
    import matplotlib
    from matplotlib import font_manager

    manager = font_manager.fontManager
    known = {f.name for f in manager.ttflist}
    if not known.intersection(CJK_FONTS):
        # Installed after matplotlib built its cache (e.g. by Colab's
        # first cell): register the files directly.
        for path in font_manager.findSystemFonts():
            if "wqy" in path.lower() or "cjk" in path.lower():
                try:
                    manager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        known = {f.name for f in manager.ttflist}
    found = next((f for f in CJK_FONTS if f in known), None)
    family = list(matplotlib.rcParams["font.family"])
    if found is not None and found not in family:
        # matplotlib falls back along font.family, glyph by glyph.
        matplotlib.rcParams["font.family"] = family + [found]
    return found


def choose(settings: dict[str, dict], mode: str | None = None):
    """Pick this run's settings from ``{"gpu": {...}, "cpu": {...},
    "smoke": {...}}`` and say on screen which ones are in force.

    Returns ``(mode, device, settings)``. A notebook's parameters cell is
    one call to this function; it also calls :func:`setup_plots`.
    """
    missing = [m for m in MODES if m not in settings]
    if missing:
        raise ValueError(f"settings for mode(s) {missing} are missing; "
                         f"give one dict for each of {MODES}")
    mode = run_mode(mode)
    device = default_device()
    chosen = dict(settings[mode])
    shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
    if mode == "gpu":
        note = "the book's settings"
    else:
        book = ", ".join(f"{k}={v}" for k, v in settings["gpu"].items())
        note = (f"reduced from the GPU settings ({book}); results differ "
                f"from the book")
    print(f"{mode.upper()} mode on {device}: {shown}\n({note})")
    setup_plots()
    return mode, device, chosen
