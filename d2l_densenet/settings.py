"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when CUDA is available, else ``cpu``.
"""
from __future__ import annotations

import os

import torch

__all__ = ["MODES", "RECIPES", "run_mode", "default_device", "choose"]

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


def choose(settings: dict[str, dict], mode: str | None = None):
    """Pick this run's settings from ``{"gpu": {...}, "cpu": {...},
    "smoke": {...}}`` and say on screen which ones are in force.

    Returns ``(mode, device, settings)``. A notebook's parameters cell is
    one call to this function.
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
    return mode, device, chosen
