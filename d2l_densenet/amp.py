"""Mixed precision: which autocast dtype a run trains in, and how the
CPU recipe's ``amp="auto"`` is decided.

Whether bf16 pays on this CPU is decided by measuring, not by guessing
from the CPU's name: a CPU without native bf16 (e.g. AVX2 only) runs
bf16 convolutions far slower than fp32 and keeps fp32. The measurement
is made to survive a busy machine: after a warm-up, fp32 and bf16 steps
alternate (fp32 first in one pair, bf16 first in the next) and the
decision rests on the median of the per-pair speed ratios, so a burst
of load from another process moves one pair, not the verdict. When the
median lies close to the threshold the choice says so.

A measurement can still come out differently in two runs. Whatever it
decided is recorded in the checkpoint (its ``amp`` setting), and the
command line's ``--resume`` reuses that choice instead of measuring
again. Under ``torchrun`` rank 0 measures and every rank uses its
answer (:func:`resolve_amp`).

Every decision comes with its reasons as codes with fields
(:class:`~d2l_densenet.messages.Message`); their words, in English and
Chinese, live in the one message table (``messages.MESSAGES``).
"""
from __future__ import annotations

import functools
import os
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from .distributed import decided_by_rank0
from .messages import Message, join

__all__ = ["AMP_DTYPES", "AMP_CHOICES", "AMP_ENV", "AMP_MIN_SPEEDUP",
           "CLOSE_MARGIN", "AmpChoice", "AmpTiming", "cpu_bf16_support",
           "measure_amp", "cpu_amp_choice", "cpu_amp", "resolve_amp"]

#: ``train_ch6(amp=...)`` -> the autocast dtype (None: fp32, no autocast).
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: What a recipe or ``--amp`` may say; "auto" is decided for the device.
AMP_CHOICES = ("auto", "none", "bf16", "fp16")
AMP_ENV = "D2L_DENSENET_CPU_AMP"
#: bf16 must be at least this much faster than fp32 to be chosen.
AMP_MIN_SPEEDUP = 1.2
#: A measured speed ratio within this fraction of ``AMP_MIN_SPEEDUP`` is
#: reported as a close call.
CLOSE_MARGIN = 0.15


@dataclass(frozen=True)
class AmpTiming:
    """One measurement: median seconds of a training step in fp32 and in
    bf16, and the fp32/bf16 ratio of each alternating pair."""

    fp32_s: float
    bf16_s: float
    ratios: tuple[float, ...]

    @property
    def speedup(self) -> float:
        """Median of the per-pair ratios (> 1: bf16 faster)."""
        return statistics.median(self.ratios)


@dataclass(frozen=True)
class AmpChoice:
    """The CPU's autocast decision: ``amp`` is ``"bf16"`` or None (fp32);
    ``reason`` says why (message codes: :meth:`text` renders them);
    ``close`` is True when the measured speed ratio
    was near ``AMP_MIN_SPEEDUP`` (another run may decide otherwise); the
    times are one training step of a small conv block in each precision
    (None where not measured)."""

    amp: str | None
    reason: tuple[Message, ...]
    fp32_ms: float | None = None
    bf16_ms: float | None = None
    close: bool = False

    def text(self, lang: str | None = None) -> str:
        """The reason in ``lang`` (None: the reader's language)."""
        return join(self.reason, lang)

    def __str__(self) -> str:
        return (f"amp={self.amp or Message('amp.none_fp32')}: "
                f"{self.text()}")


def cpu_bf16_support() -> tuple[bool, Message]:
    """Whether oneDNN reports bf16 support on this CPU, and a note."""
    cap = torch.backends.cpu.get_cpu_capability()
    if not torch.backends.mkldnn.is_available():
        return False, Message("amp.no_onednn", cpu=cap)
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is None:  # not exposed by this PyTorch: let timing decide
        return True, Message("amp.bf16_not_reported", cpu=cap)
    try:
        ok = bool(check())
    except RuntimeError:
        return True, Message("amp.bf16_not_reported", cpu=cap)
    return ok, Message("amp.onednn_bf16" if ok else "amp.onednn_no_bf16",
                       cpu=cap)


def measure_amp(pairs: int = 7, warmup: int = 2, channels_last: bool = True,
                give_up: float = 3.0) -> AmpTiming:
    """Time one training step (BatchNorm, ReLU, 3x3 conv: the chapter's
    conv block at its common shape) in fp32 and under bf16 autocast.

    ``warmup`` steps of each first (oneDNN creates its primitives), then
    ``pairs`` pairs, alternating which precision goes first. Stops after
    three pairs once bf16 is ``give_up`` times slower (a CPU without
    bf16: no need to measure how much slower)."""
    g = torch.Generator().manual_seed(0)
    block = nn.Sequential(nn.BatchNorm2d(128), nn.ReLU(),
                          nn.Conv2d(128, 32, kernel_size=3, padding=1))
    X = torch.randn(64, 128, 8, 8, generator=g)
    if channels_last:
        block = block.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = block(X)
        out.float().square().mean().backward()
        block.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(warmup):
        step(False)
        step(True)
    fp32, bf16 = [], []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        times = {b: step(b) for b in order}
        fp32.append(times[False])
        bf16.append(times[True])
        if i >= 2 and statistics.median(bf16) > give_up * statistics.median(
                fp32):
            break
    return AmpTiming(statistics.median(fp32), statistics.median(bf16),
                     tuple(a / b for a, b in zip(fp32, bf16, strict=True)))


@functools.cache
def cpu_amp_choice() -> AmpChoice:
    """Decide once per process whether CPU training uses bf16 autocast.

    ``$D2L_DENSENET_CPU_AMP`` (``bf16`` or ``none``) overrides. Otherwise
    bf16 needs oneDNN's bf16 support on this CPU and, measured
    (:func:`measure_amp`), a median speed ratio of at least
    ``AMP_MIN_SPEEDUP``; else None (fp32).
    """
    forced = os.environ.get(AMP_ENV, "").strip().lower()
    if forced:
        if forced not in ("bf16", "none"):
            raise ValueError(f"{AMP_ENV} must be bf16 or none, got "
                             f"{forced!r}")
        return AmpChoice(None if forced == "none" else "bf16",
                         (Message("amp.set_by_env", env=AMP_ENV,
                                  value=forced),))
    ok, note = cpu_bf16_support()
    if not ok:
        return AmpChoice(None, (note, Message("amp.fp32")))
    timing = measure_amp()
    speedup = timing.speedup
    close = abs(speedup / AMP_MIN_SPEEDUP - 1) <= CLOSE_MARGIN
    ms = dict(fp32_ms=timing.fp32_s * 1e3, bf16_ms=timing.bf16_s * 1e3,
              close=close)
    spread = Message("amp.spread", pairs=len(timing.ratios),
                     low=min(timing.ratios), high=max(timing.ratios))
    warn = ((Message("amp.close_call", margin=CLOSE_MARGIN,
                     needed=AMP_MIN_SPEEDUP, env=AMP_ENV),) if close
            else ())
    if speedup >= AMP_MIN_SPEEDUP:
        return AmpChoice("bf16", (note, Message("amp.faster",
                                                speedup=speedup),
                                  spread, *warn), **ms)
    return AmpChoice(None, (note, Message("amp.not_faster", speedup=speedup,
                                          needed=AMP_MIN_SPEEDUP),
                            spread, *warn), **ms)


def cpu_amp() -> str | None:
    """``"bf16"`` if bf16 autocast is measured clearly faster on this
    CPU, else None (see :func:`cpu_amp_choice`)."""
    return cpu_amp_choice().amp


def resolve_amp(amp: str | None,
                device) -> tuple[str | None, tuple[Message, ...]]:
    """Turn an ``amp`` setting (``"auto"``, ``"none"``/None, ``"bf16"``,
    ``"fp16"``) into ``train_ch6``'s ``amp`` for ``device``, with the
    reason as message codes (``messages.join(reason, lang)`` renders
    it). ``"auto"``: measured on a CPU (:func:`cpu_amp`; by rank 0 only
    under torchrun, every rank gets its answer); bf16 on a GPU that
    supports it."""
    if amp is None or amp == "none":
        return None, (Message("amp.fp32"),)
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES} or None, got "
                         f"{amp!r}")
    if amp != "auto":
        return amp, (Message("amp.as_asked"),)
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", (Message("amp.gpu_bf16"),)
        return None, (Message("amp.gpu_no_bf16"), Message("amp.fp32"))
    if device.type != "cpu":
        return None, (Message("amp.no_decision", device=device.type),
                      Message("amp.fp32"))
    choice = decided_by_rank0(cpu_amp_choice)
    return choice.amp, choice.reason
