"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when CUDA is available, else ``cpu``.
"""
from __future__ import annotations

import os

import torch

__all__ = ["MODES", "run_mode", "default_device"]

MODES = ("gpu", "cpu", "smoke")
ENV = "D2L_DENSENET_MODE"


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
