"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when an accelerator (CUDA, MPS, XPU) is available,
else ``cpu``. Fonts are in ``plots``, the devices in ``devices``, and
what is printed, in English or Chinese, in ``messages``.

A fourth mode, ``gpu-rehearsal``, is the GPU-mode rehearsal on the CPU:
``choose`` returns mode ``"gpu"`` (every GPU branch runs), the CPU as the
device, and GPU mode's settings with their sizes taken from smoke mode
(the notebook names which: ``rehearse=``, ``keep=``, a
``"gpu-rehearsal"`` dict). The device calls a GPU branch makes
(``devices.empty_cache``, ``devices.max_memory_reserved``, ...) answer
on the CPU there. It checks the GPU paths' logic, not their speed.

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

__all__ = ["MODES", "REHEARSAL", "RUN_MODES", "SIZE_KEYS", "RECIPES",
           "TRAIN_OPTIONS", "run_mode", "choose", "rehearsal_settings",
           "train_options", "lr_scheduler"]

#: The modes a notebook's parameters cell gives settings for.
MODES = ("gpu", "cpu", "smoke")
ENV = devices.MODE_ENV
#: The GPU-mode rehearsal: GPU mode's code on the CPU at smoke size.
REHEARSAL = devices.REHEARSAL
#: Every mode ``run_mode`` accepts (``make run MODE=...``).
RUN_MODES = (*MODES, REHEARSAL)
#: Settings that multiply the work of one run (epochs, data): the
#: rehearsal never runs them at GPU mode's value where smoke mode's
#: differs (at any depth of nested dicts). Counts of runs (seeds) may
#: keep GPU mode's value where a GPU branch needs it (a paired test
#: needs 3 pairs); they are still named in rehearse= or keep=.
SIZE_KEYS = frozenset({"num_epochs", "epochs", "final_epochs", "subset",
                       "test_subset", "schedule"})

#: The command line's recipes: the book's on a GPU, a reduced one for a
#: CPU (Fashion-MNIST at 32x32, the smallest size above the chapter
#: model's minimum of 29). The CPU recipe's 3 epochs at batch 64 reached
#: 0.90 on seeds 0-2 in less time than 4 epochs at batch 128 (README,
#: "The command line").
RECIPES = {
    "gpu": dict(epochs=10, lr=0.1, batch_size=256, resize=96),
    "cpu": dict(epochs=3, lr=0.1, batch_size=64, resize=32),
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
    chosen from the device (``gpu`` on any accelerator, else ``cpu``);
    one of ``RUN_MODES`` (``gpu-rehearsal`` runs on any machine)."""
    mode = mode or os.environ.get(ENV) or (
        "cpu" if devices.default_device().type == "cpu" else "gpu")
    mode = mode.strip().lower()
    if mode not in RUN_MODES:
        raise ValueError(text("settings.bad_mode", env=ENV, modes=RUN_MODES,
                              mode=mode))
    if mode == "gpu" and devices.default_device().type == "cpu":
        raise ValueError(text("settings.no_gpu", env=ENV, accelerators=", "
                              .join(devices.ACCELERATORS)))
    return mode


_UNSET = object()


def _differs(a, b) -> bool:
    return a is _UNSET or b is _UNSET or a != b


def _sizes_kept(gpu, smoke, chosen, path=()):
    """``(dotted name, value, smoke's)`` of each size setting (``SIZE_KEYS``,
    at any depth) that ``chosen`` keeps at GPU mode's value where smoke
    mode's differs."""
    found = []
    if not (isinstance(gpu, dict) and isinstance(chosen, dict)):
        return found
    smoke = smoke if isinstance(smoke, dict) else {}
    for key, value in chosen.items():
        g, s = gpu.get(key, _UNSET), smoke.get(key, _UNSET)
        name = ".".join((*path, str(key)))
        if (key in SIZE_KEYS and g is not _UNSET and not _differs(value, g)
                and _differs(g, s)):
            found.append((name, value, None if s is _UNSET else s))
        else:
            found += _sizes_kept(g, s, value, (*path, str(key)))
    return found


def rehearsal_settings(settings: dict[str, dict], rehearse=(), keep=(),
                       lang: str | None = None) -> tuple[dict, list[str]]:
    """The GPU-mode rehearsal's settings and the names taken at smoke
    size: GPU mode's dict, with each key in ``rehearse`` at smoke mode's
    value and each key of ``settings["gpu-rehearsal"]`` (if any) at that
    value; ``keep`` names the keys that stay at GPU mode's value (its
    recipe: lr, optimizer, ...). ``rehearse=True`` takes every other key
    that differs from smoke mode (a notebook whose settings are all
    sizes).

    Every key whose value differs between GPU and smoke mode must be
    named in exactly one of the three, and no size (``SIZE_KEYS``, at
    any depth) may keep GPU mode's value where smoke mode's differs:
    else a ``ValueError`` names the keys (a forgotten key fails instead
    of training GPU mode's recipe on the CPU)."""
    gpu, smoke = settings["gpu"], settings["smoke"]
    given = dict(settings.get(REHEARSAL) or {})
    keep = [keep] if isinstance(keep, str) else list(keep)
    if isinstance(rehearse, str):
        rehearse = [rehearse]
    elif rehearse is True:
        rehearse = [k for k in gpu if k in smoke and k not in keep
                    and k not in given and _differs(gpu[k], smoke[k])]
    rehearse = list(rehearse)
    named = rehearse + keep + list(given)
    twice = sorted({k for k in named if named.count(k) > 1})
    if twice:
        raise ValueError(text("settings.rehearsal_twice", lang,
                              keys=", ".join(twice)))
    unknown = [k for k in named if k not in gpu]
    if unknown:
        raise ValueError(text("settings.rehearsal_bad_keys", lang,
                              where="rehearse=/keep=/gpu-rehearsal",
                              keys=", ".join(map(str, unknown)),
                              known=", ".join(gpu)))
    no_smoke = [k for k in rehearse if k not in smoke]
    if no_smoke:
        raise ValueError(text("settings.rehearsal_no_smoke", lang,
                              keys=", ".join(no_smoke)))
    differ = [k for k in gpu if _differs(gpu[k], smoke.get(k, _UNSET))]
    undeclared = [k for k in differ if k not in named]
    if undeclared:
        raise ValueError(text("settings.rehearsal_undeclared", lang,
                              keys=", ".join(undeclared)))
    chosen = dict(gpu)
    chosen.update({k: smoke[k] for k in rehearse})
    chosen.update(given)
    kept = _sizes_kept(gpu, smoke, chosen)
    if kept:
        name, value, small = kept[0]
        raise ValueError(text("settings.rehearsal_size_kept", lang,
                              key=name, value=value, smoke=small))
    return chosen, [k for k in chosen if k in rehearse or k in given]


def choose(settings: dict[str, dict], mode: str | None = None,
           lang: str = "en", *, rehearse=(), keep=()):
    """Pick this run's settings from ``{"gpu": {...}, "cpu": {...},
    "smoke": {...}}`` and say on screen which ones are in force, in the
    reader's language ``lang`` (``"en"``, or ``"zh"`` in the Chinese
    edition).

    Returns ``(mode, device, settings)``. A notebook's parameters cell is
    one call to this function; it also calls :func:`setup_plots`. A
    setting ``amp="auto"`` is resolved for the device
    (:func:`resolve_amp`: measured on a CPU) and the choice printed.

    In the GPU-mode rehearsal (mode ``gpu-rehearsal``) it returns
    ``("gpu", cpu, ...)``: GPU mode's settings at smoke size, as
    :func:`rehearsal_settings` makes them from ``rehearse`` (keys taken
    from smoke mode), ``keep`` (keys kept from GPU mode) and an optional
    ``settings["gpu-rehearsal"]`` dict (values of its own), and a banner
    that says it is a rehearsal. Where any of the three is given, they
    are checked in every mode, so a key added to one mode and forgotten
    in them fails in smoke mode's tests too.

    ``lang`` becomes the reader's language of this process and of the
    commands it starts (``$D2L_DENSENET_LANG``, see
    :func:`~d2l_densenet.messages.language`): the command line a notebook
    runs with ``subprocess`` prints in it, and so do the package's
    errors and warnings. The mode is passed on the same way where it is
    the rehearsal (``$D2L_DENSENET_MODE``), so ``devices`` and the
    commands a notebook starts know it.
    """
    set_language(lang)
    missing = [m for m in MODES if m not in settings]
    if missing:
        raise ValueError(f"settings for mode(s) {missing} are missing; "
                         f"give one dict for each of {MODES}")
    unknown = [m for m in settings if m not in RUN_MODES]
    if unknown:
        raise ValueError(f"settings for unknown mode(s) {unknown}; give "
                         f"one dict for each of {MODES} and optionally "
                         f"{REHEARSAL!r}")
    mode = run_mode(mode)
    declared = bool(rehearse or keep or REHEARSAL in settings)
    if declared or mode == REHEARSAL:
        rehearsed, sizes = rehearsal_settings(settings, rehearse, keep,
                                              lang)
    if mode == REHEARSAL or devices.rehearsing():
        os.environ[ENV] = mode  # what devices and subprocesses read
    book = ", ".join(f"{k}={v}" for k, v in settings["gpu"].items())
    if mode == REHEARSAL:
        device = torch.device("cpu")
        chosen = rehearsed
        shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
        print(text("settings.rehearsal", lang, where=device, shown=shown,
                   sizes=", ".join(f"{k}={chosen[k]}" for k in sizes)))
        mode = "gpu"
    else:
        device = devices.default_device()
        chosen = dict(settings[mode])
        shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
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


def lr_scheduler(name: str | None, num_epochs: int,
                 num_batches: int | None = None):
    """``train_ch6``'s ``scheduler`` for a schedule name: ``"constant"``
    (the book's; returns None) or ``"cosine"``: cosine decay over
    ``num_epochs``, stepped once per epoch (lr 0.1 over 3 epochs gives
    0.1, 0.075, 0.025), or, given ``num_batches`` (batches per epoch),
    after every batch, from lr down to 0 at the last step (the function
    then has ``interval = "batch"``, which ``train_ch6`` reads)."""
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got "
                         f"{name!r}")
    if num_batches is not None and (
            isinstance(num_batches, bool) or not isinstance(num_batches, int)
            or num_batches < 1):
        raise ValueError(f"num_batches must be a positive int or None, got "
                         f"{num_batches!r}")
    if name == "constant":
        return None
    if num_batches is None:
        return functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR,
                                 T_max=num_epochs)
    factory = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR,
                                T_max=num_epochs * num_batches)
    factory.interval = "batch"
    return factory


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
