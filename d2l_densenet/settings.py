"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when an accelerator (CUDA, MPS, XPU) is available,
else ``cpu``. Fonts are in ``plots``, the devices in ``devices``, and
what is printed, in English or Chinese, in ``messages``.

How a recipe runs beside its hyperparameters (bf16 autocast,
channels-last, learning-rate schedule) is in ``TRAIN_OPTIONS``. Whether
bf16 pays on this CPU is decided by measuring, in ``amp.py``
(:func:`~d2l_densenet.amp.resolve_amp`).
"""
from __future__ import annotations

import functools
import os

import torch

from . import devices
from .amp import resolve_amp
from .messages import join, set_language, text
from .plots import setup_plots

__all__ = ["MODES", "RECIPES", "TRAIN_OPTIONS", "run_mode", "choose",
           "train_options", "lr_scheduler"]

MODES = ("gpu", "cpu", "smoke")
ENV = "D2L_DENSENET_MODE"

#: The command line's recipes: the book's on a GPU, a reduced one for a
#: CPU (Fashion-MNIST at 32x32, the smallest size above the chapter
#: model's minimum of 29).
RECIPES = {
    "gpu": dict(epochs=10, lr=0.1, batch_size=256, resize=96),
    "cpu": dict(epochs=3, lr=0.1, batch_size=128, resize=32),
}

#: How each recipe trains, as ``train_ch6`` options. The GPU recipe is
#: the book's (fp32, constant learning rate). The CPU recipe uses what
#: the CPU supports: channels-last (oneDNN's fast layout), bf16 autocast
#: where :func:`cpu_amp` measured it clearly faster, and a cosine decay
#: of the learning rate over the epochs (a short run ends on a small
#: step instead of wherever lr 0.1 leaves it).
TRAIN_OPTIONS = {
    "gpu": dict(amp=None, channels_last=False, lr_schedule="constant"),
    "cpu": dict(amp="auto", channels_last=True, lr_schedule="cosine"),
}
LR_SCHEDULES = ("constant", "cosine")


def run_mode(mode: str | None = None) -> str:
    """The run mode: ``mode`` if given, else ``$D2L_DENSENET_MODE``, else
    chosen from the device (``gpu`` on any accelerator, else ``cpu``)."""
    mode = mode or os.environ.get(ENV) or (
        "cpu" if devices.default_device().type == "cpu" else "gpu")
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(text("settings.bad_mode", env=ENV, modes=MODES,
                              mode=mode))
    if mode == "gpu" and devices.default_device().type == "cpu":
        raise ValueError(text("settings.no_gpu", env=ENV, accelerators=", "
                              .join(devices.ACCELERATORS)))
    return mode


def choose(settings: dict[str, dict], mode: str | None = None,
           lang: str = "en"):
    """Pick this run's settings from ``{"gpu": {...}, "cpu": {...},
    "smoke": {...}}`` and say on screen which ones are in force, in the
    reader's language ``lang`` (``"en"``, or ``"zh"`` in the Chinese
    edition).

    Returns ``(mode, device, settings)``. A notebook's parameters cell is
    one call to this function; it also calls :func:`setup_plots`. A
    setting ``amp="auto"`` is resolved for the device
    (:func:`resolve_amp`: measured on a CPU) and the choice printed.

    ``lang`` becomes the reader's language of this process and of the
    commands it starts (``$D2L_DENSENET_LANG``, see
    :func:`~d2l_densenet.messages.language`): the command line a notebook
    runs with ``subprocess`` prints in it, and so do the package's
    errors and warnings.
    """
    set_language(lang)
    missing = [m for m in MODES if m not in settings]
    if missing:
        raise ValueError(f"settings for mode(s) {missing} are missing; "
                         f"give one dict for each of {MODES}")
    mode = run_mode(mode)
    device = devices.default_device()
    chosen = dict(settings[mode])
    shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
    book = ", ".join(f"{k}={v}" for k, v in settings["gpu"].items())
    name = devices.device_name(device)
    where = (str(device) if name is None else
             text("device.named", lang, device=device, name=name))
    note = (text("settings.books", lang) if mode == "gpu" else
            text("settings.reduced", lang, book=book))
    print(text("settings.banner", lang, mode=mode.upper(), where=where,
               shown=shown, note=note))
    if chosen.get("amp") == "auto":
        chosen["amp"], why = resolve_amp("auto", device)
        print(text("settings.amp_auto", lang,
                   amp=chosen["amp"] or text("amp.none_fp32", lang),
                   reason=join(why, lang)))
    setup_plots(lang)
    return mode, device, chosen


def lr_scheduler(name: str | None, num_epochs: int):
    """``train_ch6``'s ``scheduler`` for a schedule name: ``"constant"``
    (the book's; returns None) or ``"cosine"`` (cosine decay over
    ``num_epochs``, stepped once per epoch: lr 0.1 over 3 epochs gives
    0.1, 0.075, 0.025)."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got "
                         f"{name!r}")
    if name == "constant":
        return None
    return functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR,
                             T_max=num_epochs)


def train_options(recipe: str, device, **overrides) -> dict:
    """``TRAIN_OPTIONS[recipe]`` with the non-None ``overrides`` applied
    and ``amp="auto"`` resolved for ``device``; prints one line saying
    what is in force and why (in the reader's language,
    :func:`~d2l_densenet.messages.language`). Returns ``amp``,
    ``channels_last`` and ``lr_schedule``."""
    if recipe not in TRAIN_OPTIONS:
        raise ValueError(f"recipe must be one of {sorted(TRAIN_OPTIONS)}, "
                         f"got {recipe!r}")
    unknown = set(overrides) - set(TRAIN_OPTIONS[recipe])
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; accepted: "
                         f"{sorted(TRAIN_OPTIONS[recipe])}")
    options = dict(TRAIN_OPTIONS[recipe])
    options.update({k: v for k, v in overrides.items() if v is not None})
    options["amp"], why = resolve_amp(options["amp"], device)
    lr_scheduler(options["lr_schedule"], 1)  # check the name
    print(text("settings.train_options", device=torch.device(device),
               amp=options["amp"] or "none",
               channels_last=options["channels_last"],
               lr_schedule=options["lr_schedule"], reason=join(why)))
    return options
