"""Run modes shared by the notebooks and ``make run``.

``D2L_DENSENET_MODE`` picks the mode: ``gpu`` (the book's settings),
``cpu`` (reduced settings a 2-core laptop finishes in minutes) or
``smoke`` (what CI runs: seconds per notebook). Unset, the mode follows
the device: ``gpu`` when an accelerator (CUDA, MPS, XPU) is available,
else ``cpu``. Fonts and the reader's language are in ``plots``.

How a recipe runs beside its hyperparameters (bf16 autocast,
channels-last, learning-rate schedule) is in ``TRAIN_OPTIONS``. Whether
bf16 pays on this CPU is decided by measuring, in ``amp.py``
(:func:`~d2l_densenet.amp.resolve_amp`).
"""
from __future__ import annotations

import functools
import os
import re

import torch

# The precision choice lives in amp.py; these names stay importable here.
from .amp import (  # noqa: F401
    AMP_CHOICES,
    AMP_ENV,
    AMP_MIN_SPEEDUP,
    AmpChoice,
    cpu_amp,
    cpu_amp_choice,
    resolve_amp,
)
from .plots import CJK_FONTS, LANGUAGES, language, set_language, setup_plots

__all__ = ["MODES", "RECIPES", "TRAIN_OPTIONS", "run_mode",
           "default_device", "choose", "AmpChoice", "cpu_amp",
           "cpu_amp_choice", "resolve_amp", "train_options",
           "lr_scheduler", "setup_plots", "CJK_FONTS", "LANGUAGES",
           "language", "set_language", "device_description",
           "ACCELERATORS"]

MODES = ("gpu", "cpu", "smoke")
ENV = "D2L_DENSENET_MODE"

#: The command line's recipes: the book's on a GPU, a reduced one for a
#: CPU (Fashion-MNIST at 32x32, the smallest size above the chapter
#: model's minimum of 29).
RECIPES = {
    "gpu": dict(epochs=10, lr=0.1, batch_size=256, resize=96),
    "cpu": dict(epochs=4, lr=0.1, batch_size=128, resize=32),
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


#: Accelerators a run may use (``torch.accelerator``'s device types);
#: only CUDA has been run (no Mac or Intel GPU here, see the README).
ACCELERATORS = ("cuda", "mps", "xpu")


def default_device() -> torch.device:
    """The accelerator if there is one, else the CPU (the book's
    ``d2l.try_gpu()``, for any GPU): ``torch.accelerator``'s current one
    (CUDA, MPS or XPU) where the installed PyTorch has it, else CUDA if
    available, else the CPU."""
    acc = getattr(torch, "accelerator", None)
    if acc is not None and acc.is_available():
        kind = acc.current_accelerator().type
        if kind in ACCELERATORS:
            return torch.device(kind)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def device_description(device) -> str:
    """``device`` and, for a GPU, its name: ``"cuda (NVIDIA H100 80GB
    HBM3)"``, ``"mps (Apple GPU)"``, ``"cpu"``."""
    device = torch.device(device)
    if device.type == "cpu":
        return "cpu"
    if device.type == "mps":
        return f"{device} (Apple GPU)"
    try:
        name = getattr(torch, device.type).get_device_name(device)
    except (AttributeError, AssertionError, RuntimeError):
        return str(device)
    return f"{device} ({name})"


def run_mode(mode: str | None = None) -> str:
    """The run mode: ``mode`` if given, else ``$D2L_DENSENET_MODE``, else
    chosen from the device (``gpu`` on any accelerator, else ``cpu``)."""
    mode = mode or os.environ.get(ENV) or (
        "cpu" if default_device().type == "cpu" else "gpu")
    mode = mode.strip().lower()
    if mode not in MODES:
        raise ValueError(f"{ENV} must be one of {MODES}, got {mode!r}")
    if mode == "gpu" and default_device().type == "cpu":
        raise ValueError(f"{ENV}=gpu but no GPU is available to PyTorch "
                         f"(looked for {', '.join(ACCELERATORS)}); use "
                         f"cpu or smoke")
    return mode


#: ``resolve_amp``'s reasons in Chinese, one pattern per "; "-separated
#: part; a part without a pattern is shown as it is.
_AMP_REASONS_ZH = (
    (r"the GPU supports bf16", "该GPU支持bf16"),
    (r"the GPU has no bf16", "该GPU不支持bf16"),
    (r"fp32", "使用fp32"),
    (r"no autocast decision for (\S+)", "在{0}上不自动选择精度"),
    (r"set by (\S+)", "由环境变量{0}指定"),
    (r"this PyTorch has no oneDNN \(CPU: (\S+)\)",
     "此PyTorch没有oneDNN（CPU：{0}）"),
    (r"CPU (\S+), bf16 support not reported",
     "CPU：{0}，oneDNN未报告是否支持bf16"),
    (r"oneDNN reports bf16 support \(CPU (\S+)\)",
     "oneDNN报告支持bf16（CPU：{0}）"),
    (r"oneDNN reports no bf16 support \(CPU (\S+)\)",
     "oneDNN报告不支持bf16（CPU：{0}）"),
    (r"measured bf16 ([\d.]+)x faster than fp32",
     "实测bf16的速度是fp32的{0}倍"),
    (r"measured bf16 at ([\d.]+)x fp32's speed \(needs >= ([\d.]+)x\)",
     "实测bf16的速度是fp32的{0}倍（至少需要{1}倍）"),
    (r"median of (\d+) alternating pairs, ([\d.]+)x to ([\d.]+)x",
     "取{0}对交替测量的中位数（各对为{1}倍至{2}倍）"),
    (r"a close call \(within (\d+)% of the ([\d.]+)x threshold\): another "
     r"run may choose otherwise, set (\S+) or --amp to fix it",
     "结果接近阈值（与{1}倍相差不到{0}%）：再次运行可能作出不同的选择，"
     "可用{2}或--amp固定"),
)


def _amp_reason_zh(reason: str) -> str:
    """``reason`` (from ``resolve_amp``) in Chinese, part by part."""
    parts = []
    for part in reason.split("; "):
        for pattern, zh in _AMP_REASONS_ZH:
            m = re.fullmatch(pattern, part)
            if m:
                part = zh.format(*m.groups())
                break
        parts.append(part)
    return "；".join(parts)


def choose(settings: dict[str, dict], mode: str | None = None,
           lang: str = "en"):
    """Pick this run's settings from ``{"gpu": {...}, "cpu": {...},
    "smoke": {...}}`` and say on screen which ones are in force, in the
    reader's language ``lang`` (``"en"``, or ``"zh"`` in the Chinese
    edition; see :func:`~d2l_densenet.plots.language`).

    Returns ``(mode, device, settings)``. A notebook's parameters cell is
    one call to this function; it also calls :func:`setup_plots`. A
    setting ``amp="auto"`` is resolved for the device
    (:func:`resolve_amp`: measured on a CPU) and the choice printed.
    """
    set_language(lang)
    missing = [m for m in MODES if m not in settings]
    if missing:
        raise ValueError(f"settings for mode(s) {missing} are missing; "
                         f"give one dict for each of {MODES}")
    mode = run_mode(mode)
    device = default_device()
    chosen = dict(settings[mode])
    shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
    book = ", ".join(f"{k}={v}" for k, v in settings["gpu"].items())
    where = device_description(device)
    if lang == "zh":
        where = re.sub(r" \((.*)\)$", r"（\1）", where)
        note = ("书中的设置" if mode == "gpu" else
                f"由GPU设置（{book}）缩减而来，结果与书中不同")
        print(f"{mode.upper()}模式，设备{where}：{shown}\n（{note}）")
    else:
        note = ("the book's settings" if mode == "gpu" else
                f"reduced from the GPU settings ({book}); results differ "
                f"from the book")
        print(f"{mode.upper()} mode on {where}: {shown}\n({note})")
    if chosen.get("amp") == "auto":
        chosen["amp"], why = resolve_amp("auto", device)
        if lang == "zh":
            print(f"amp=auto -> {chosen['amp'] or '无（fp32）'}："
                  f"{_amp_reason_zh(why)}")
        else:
            print(f"amp=auto -> {chosen['amp'] or 'none (fp32)'}: {why}")
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
    what is in force and why. Returns ``amp``, ``channels_last`` and
    ``lr_schedule``."""
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
    print(f"training options on {torch.device(device)}: "
          f"amp={options['amp'] or 'none'}, "
          f"channels_last={options['channels_last']}, "
          f"lr_schedule={options['lr_schedule']}\n"
          f"(amp: {why})")
    return options
