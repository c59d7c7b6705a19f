"""Measurement helpers: parameters, peak memory of a training step, time.

``peak_memory`` and ``step_time`` run one procedure on every device:

1. snapshot the model's parameters, buffers and gradients and the
   optimizer's state (a copy kept on the CPU, so the measured device holds
   only what training holds);
2. warm up: untimed training steps (forward, loss, backward, optimizer
   step), so lazily created state (Adam's moments, thread pools, cuDNN
   plans) exists before anything is counted;
3. baseline: the bytes of what this measurement owns -- parameters,
   buffers, optimizer state, input and target -- not everything on the
   device, so other models alive in the process are not charged;
4. the counted steps, each started with the gradients cleared
   (``set_to_none``), as in a training loop (called inside
   ``torch.autocast``, the weights' casts cached by the warm-up are reused,
   so the step is not charged for them);
5. restore the snapshot: parameters, buffers (BatchNorm running stats,
   ``num_batches_tracked``), gradients and optimizer state are as before.

Only the counters differ between devices, each reading relative to the
start of its step:

* CUDA (and XPU, same API in ``torch.xpu``):
  ``torch.cuda.max_memory_allocated(device)`` after
  ``reset_peak_memory_stats(device)``, minus ``memory_allocated(device)``
  at the step's start; the device is synchronized before each reading;
* MPS (Apple GPUs): ``torch.mps`` has no peak counter and no reset, so
  the peak is *sampled*: ``torch.mps.current_allocated_memory()`` (the
  bytes of live tensors, as CUDA's ``memory_allocated``) is read at the
  step's start, after every module's forward, when the gradient of every
  module's output is computed, and at the step's end; the reading is the
  largest sample minus the first. It is a lower bound: a workspace
  allocated and freed inside one operation falls between samples.
  ``driver_allocated_memory()`` is not used: it includes the allocator's
  cached blocks (as CUDA's ``memory_reserved``). Not run here (no Mac):
  only the arithmetic is tested, on a fake counter;
* CPU: every allocation and free made by PyTorch's CPU allocator during the
  step, recorded by ``torch.profiler`` (``profile_memory=True``) and summed
  in time order; then, in a second step, the growth of the process's
  resident-memory high-water mark (``VmHWM``, Linux) as an OS-level
  reading;
* time: ``time.perf_counter`` between synchronizations of the device.

One timing policy for the series: a single CPU timing is noise (about
20% from run to run on a shared machine), so a time *ratio* is only
stated from alternating, repeated measurements: :func:`time_ratio` runs
the two callables in alternating order for ``pairs >= MIN_TIME_PAIRS``
pairs and reports the median and the range of the per-pair ratios.

``saved_tensor_bytes`` is a *model* of activation memory (what autograd
saves for backward); it cannot see what ``torch.utils.checkpoint``
recomputes or keeps internally, so use it beside the measured peak, not
instead of it.
"""
from __future__ import annotations

import copy
import ctypes
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .messages import Message, language, text

__all__ = ["count_parameters", "parameter_table", "tensor_bytes",
           "saved_tensor_bytes", "MemoryReport", "peak_memory",
           "step_time", "Timer", "MiB", "MIN_TIME_PAIRS", "TimeRatio",
           "time_ratio"]

MiB = 2 ** 20


def count_parameters(net: nn.Module) -> int:
    """Number of trainable scalars in ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def parameter_table(net: nn.Module) -> list[tuple[str, int]]:
    """``[(stage name, parameters), ..., ("total", n)]`` over ``net``'s
    direct children (``b1``, ``dense_blk1``, ... for the chapter's
    models)."""
    rows = [(name, count_parameters(child))
            for name, child in net.named_children()]
    own = sum(p.numel() for p in net.parameters(recurse=False)
              if p.requires_grad)
    if own:
        rows.append(("(own)", own))
    rows.append(("total", count_parameters(net)))
    return rows


def tensor_bytes(tensors) -> int:
    """Bytes held by distinct storages among ``tensors``."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total


def _loss(net, X, y, loss_fn):
    out = net(X)
    if y is None:
        return out.float().sum()
    return (loss_fn or nn.CrossEntropyLoss())(out, y)


def saved_tensor_bytes(net: nn.Module, X: torch.Tensor,
                       y: torch.Tensor | None = None,
                       loss_fn: Callable | None = None) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one
    forward pass (parameters excluded): a model of activation memory."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved = []

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss(net, X, y, loss_fn)
    del loss
    return tensor_bytes(saved)


@dataclass
class MemoryReport:
    """Memory of one training step (forward + backward), in bytes.

    ``baseline``: what the measurement owns after the warm-up (parameters,
    buffers, optimizer state, the input and target). ``extra``: the most
    the step allocated on top of that (activations, gradients,
    workspaces). ``peak = baseline + extra``. ``rss_extra``: on CPU, the
    growth of the process's resident-memory high-water mark during a step
    (Linux). ``method``: how the peak was measured, a
    :class:`~d2l_densenet.messages.Message` (``method.text(lang)``; a
    plain ``str`` is shown as it is).
    """

    device: str
    method: Message | str
    baseline: int
    extra: int
    param_bytes: int
    rss_extra: int | None = None

    @property
    def peak(self) -> int:
        return self.baseline + self.extra

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str | None = None) -> str:
        """The report in ``lang`` (``"en"`` or ``"zh"``; None: the
        reader's language, :func:`~d2l_densenet.messages.language`)."""
        method = (self.method.text(lang) if isinstance(self.method, Message)
                  else self.method)
        s = text("measure.report", lang, device=self.device,
                 peak=self.peak / MiB, baseline=self.baseline / MiB,
                 extra=self.extra / MiB, method=method)
        if self.rss_extra is not None:
            s += text("measure.rss", lang, rss=self.rss_extra / MiB)
        return s


def _owned_bytes(net: nn.Module, optimizer, X, y) -> int:
    """Bytes of what one measurement owns: parameters, buffers, gradients,
    optimizer state, input and target."""
    tensors = list(net.parameters()) + list(net.buffers()) + [X, y]
    tensors += [p.grad for p in net.parameters()]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values()
                        if isinstance(v, torch.Tensor)]
    return tensor_bytes(tensors)


def _snapshot(v):
    """A copy of ``v``; tensors are copied to the CPU."""
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", copy=True)
    return copy.deepcopy(v)


@contextmanager
def _restored(net: nn.Module, optimizer):
    """Put ``net``'s parameters, buffers and gradients and ``optimizer``'s
    state back as they were on entry (the copy waits on the CPU)."""
    params = list(net.parameters())
    tensors = params + list(net.buffers())
    saved = [_snapshot(t) for t in tensors]
    grads = [_snapshot(p.grad) for p in params]
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        opt_state = {
            "state": {k: {n: _snapshot(v) for n, v in state.items()}
                      for k, state in opt_state["state"].items()},
            "param_groups": _snapshot(opt_state["param_groups"])}
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved, strict=True):
                t.copy_(s)
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.to(p.device)
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)


def _synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to do on a CPU)."""
    if device.type == "mps":
        torch.mps.synchronize()
    elif device.type != "cpu":
        getattr(torch, device.type).synchronize(device)


class _Uncounted:
    """Counter of a warm-up step: reads nothing."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        return None


class _Clock:
    """Seconds of a step, between synchronizations of ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        _synchronize(self.device)
        self._start = time.perf_counter()

    def stop(self) -> float:
        _synchronize(self.device)
        return time.perf_counter() - self._start


class _CudaPeak:
    """Most bytes the caching allocator of ``device`` (CUDA, or XPU with
    the same functions in ``torch.xpu``) held in tensors during a step,
    above what it held when the step started."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.api = getattr(torch, device.type)
        self.method = Message("measure.method_max", device=device.type)

    def start(self) -> None:
        _synchronize(self.device)
        self.api.reset_peak_memory_stats(self.device)
        self._start = self.api.memory_allocated(self.device)

    def stop(self) -> int:
        _synchronize(self.device)
        return self.api.max_memory_allocated(self.device) - self._start


class _MpsPeak:
    """Most bytes of live tensors on an Apple GPU during a step, above
    what was allocated when it started, sampled (``torch.mps`` has no
    peak counter): at the start, after each module's forward, when each
    module output's gradient is computed, and at the end."""

    method = Message("measure.method_mps")

    def __init__(self) -> None:
        self._samples: list[int] = []

    def _sample(self) -> None:
        self._samples.append(torch.mps.current_allocated_memory())

    def _after_forward(self, module, args, output) -> None:
        self._sample()
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: self._sample())

    def start(self) -> None:
        torch.mps.synchronize()
        self._samples = []
        self._sample()
        self._hook = nn.modules.module.register_module_forward_hook(
            self._after_forward)

    def stop(self) -> int:
        self._hook.remove()
        torch.mps.synchronize()
        self._sample()
        return max(self._samples) - self._samples[0]


class _CpuAllocatorPeak:
    """Peak bytes allocated by PyTorch's CPU allocator during a step,
    above what was allocated when it started (``torch.profiler``)."""

    method = Message("measure.method_cpu")

    def start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        # Keep the profiler's own log lines (read at start-up) off the
        # output.
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
        self._prof = profile(activities=[ProfilerActivity.CPU],
                             profile_memory=True, record_shapes=False)
        self._prof.start()

    def stop(self) -> int:
        self._prof.stop()
        events = [e for e in self._prof.profiler.kineto_results.events()
                  if e.name() == "[memory]" and e.device_type()
                  == torch.autograd.DeviceType.CPU]
        current = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            current += e.nbytes()
            peak = max(peak, current)
        return peak


class _RssPeak:
    """Growth of the process's resident-memory high-water mark during a
    step (Linux; ``None`` elsewhere)."""

    def start(self) -> None:
        self._start = (_proc_status("VmRSS") if _reset_rss_peak()
                       else None)

    def stop(self) -> int | None:
        high = _proc_status("VmHWM")
        if self._start is None or high is None:
            return None
        return high - self._start


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(field + r":\s+(\d+) kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def _reset_rss_peak() -> bool:
    """Give freed heap back to the OS and reset VmHWM (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _device_of(X: torch.Tensor) -> torch.device:
    """The device measured (a seam for the tests' fake CUDA)."""
    return X.device


def _memory_counters(device: torch.device) -> list:
    """The memory counters of ``device``, one counted step each."""
    if device.type in ("cuda", "xpu"):
        return [_CudaPeak(device)]
    if device.type == "mps":
        return [_MpsPeak()]
    if device.type == "cpu":
        return [_CpuAllocatorPeak(), _RssPeak()]
    raise ValueError(f"peak_memory supports cpu, cuda, mps and xpu "
                     f"tensors, got device {device}")


def _step(net, X, y, loss_fn, optimizer, counter=None):
    """One training step from cleared gradients, read by ``counter``."""
    counter = _Uncounted() if counter is None else counter
    net.zero_grad(set_to_none=True)
    counter.start()
    loss = _loss(net, X, y, loss_fn)
    loss.backward()
    if optimizer is not None:
        optimizer.step()
    return counter.stop()


def _measure(net, X, y, loss_fn, optimizer, counters, warmup):
    """The procedure of ``peak_memory`` and ``step_time``: ``warmup``
    uncounted steps, the baseline, one step per counter; ``net`` and
    ``optimizer`` restored. Returns ``(baseline, readings)``."""
    with _restored(net, optimizer):
        for _ in range(warmup):
            _step(net, X, y, loss_fn, optimizer)
        net.zero_grad(set_to_none=True)
        baseline = _owned_bytes(net, optimizer, X, y)
        readings = [_step(net, X, y, loss_fn, optimizer, counter)
                    for counter in counters]
    return baseline, readings


def peak_memory(net: nn.Module, X: torch.Tensor,
                y: torch.Tensor | None = None,
                loss_fn: Callable | None = None,
                optimizer: torch.optim.Optimizer | None = None,
                rss: bool = True) -> MemoryReport:
    """Measure the memory of one training step of ``net`` on ``X``'s device
    (the module docstring gives the procedure).

    The step starts with the gradients cleared, so ``extra`` includes
    allocating them. With ``y=None`` the loss is ``net(X).sum()``.
    ``net`` and ``optimizer`` are left as they were. ``rss=False`` skips
    the CPU's second, OS-level reading (one step fewer; ``rss_extra`` is
    then None).
    """
    device = _device_of(X)
    counters = _memory_counters(device)
    if not rss:
        counters = [c for c in counters if not isinstance(c, _RssPeak)]
    baseline, readings = _measure(net, X, y, loss_fn, optimizer, counters,
                                  warmup=1)
    return MemoryReport(str(device), counters[0].method, baseline,
                        readings[0], tensor_bytes(net.parameters()),
                        readings[1] if len(readings) > 1 else None)


def step_time(net: nn.Module, X: torch.Tensor,
              y: torch.Tensor | None = None,
              loss_fn: Callable | None = None,
              optimizer: torch.optim.Optimizer | None = None,
              warmup: int = 2, repeats: int = 5) -> float:
    """Median seconds of one forward + backward (+ optimizer step) after
    ``warmup`` untimed steps; ``net`` and ``optimizer`` are left as they
    were."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    clock = _Clock(_device_of(X))
    _, times = _measure(net, X, y, loss_fn, optimizer, [clock] * repeats,
                        warmup)
    return statistics.median(times)


class Timer:
    """Record running times (the book's ``d2l.Timer``)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = None
        self.start()

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        self.times.append(time.perf_counter() - self._start)
        return self.times[-1]

    def sum(self) -> float:
        return sum(self.times)

    def avg(self) -> float:
        return self.sum() / len(self.times) if self.times else 0.0


#: The fewest alternating pairs a time ratio is stated from.
MIN_TIME_PAIRS = 5


@dataclass
class TimeRatio:
    """Seconds of ``g`` relative to ``f`` from alternating pairs:
    ``ratios[i] = g_seconds[i] / f_seconds[i]``; ``median``, ``low`` and
    ``high`` summarise them."""

    f_seconds: list[float]
    g_seconds: list[float]

    @property
    def ratios(self) -> list[float]:
        return [g / f for f, g in zip(self.f_seconds, self.g_seconds,
                                      strict=True)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    @property
    def pairs(self) -> int:
        return len(self.f_seconds)

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str | None = None) -> str:
        """"1.31x (1.20-1.45 over 7 alternating pairs)", in ``lang``
        (``"en"`` or ``"zh"``; None: the reader's language)."""
        if (lang or language()) == "zh":
            return (f"{self.median:.2f}倍（{self.pairs}对交替测量，范围"
                    f"{self.low:.2f}～{self.high:.2f}）")
        return (f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f} over "
                f"{self.pairs} alternating pairs)")


def time_ratio(f: Callable[[], object], g: Callable[[], object],
               pairs: int = 7, warmup: int = 1,
               device: torch.device | str = "cpu") -> TimeRatio:
    """Time ``g()`` relative to ``f()``: ``warmup`` untimed calls of each,
    then ``pairs`` pairs run in alternating order (f, g, then g, f, ...),
    so a machine that slows down or speeds up during the measurement
    weighs on both alike. Each call is timed between synchronizations of
    ``device``. A ratio needs at least :data:`MIN_TIME_PAIRS` pairs."""
    if not isinstance(pairs, int) or pairs < MIN_TIME_PAIRS:
        raise ValueError(f"pairs must be an integer >= {MIN_TIME_PAIRS} "
                         f"(a time ratio is only stated from that many "
                         f"alternating pairs), got {pairs!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    clock = _Clock(torch.device(device))
    for _ in range(warmup):
        f(), g()
    seconds: tuple[list[float], list[float]] = ([], [])
    for i in range(pairs):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            clock.start()
            (f, g)[which]()
            seconds[which].append(clock.stop())
    return TimeRatio(*seconds)
