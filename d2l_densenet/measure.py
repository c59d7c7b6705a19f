"""Measurement helpers: parameters, peak memory of a training step, time.

Peak memory is measured, not modelled:

* CUDA: ``torch.cuda.reset_peak_memory_stats`` / ``max_memory_allocated``
  around one forward + backward;
* CPU: every allocation and free made by PyTorch's CPU allocator during the
  step, recorded by ``torch.profiler`` (``profile_memory=True``) and summed
  in time order; the process's resident-memory high-water mark
  (``VmHWM``, Linux) is reported beside it as a second, OS-level reading.

``saved_tensor_bytes`` is a *model* of activation memory (what autograd
saves for backward); it cannot see what ``torch.utils.checkpoint``
recomputes or keeps internally, so use it beside the measured peak, not
instead of it.
"""
from __future__ import annotations

import ctypes
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["count_parameters", "parameter_table", "tensor_bytes",
           "saved_tensor_bytes", "MemoryReport", "peak_memory",
           "step_time", "Timer", "MiB"]

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

    ``baseline``: allocated before the step (parameters, buffers, existing
    gradients and optimizer state, the input). ``extra``: the most the step
    allocated on top of that (activations, gradients, workspaces).
    ``peak = baseline + extra``. ``rss_extra``: on CPU, the growth of the
    process's resident-memory high-water mark during the step (Linux).
    """

    device: str
    method: str
    baseline: int
    extra: int
    param_bytes: int
    rss_extra: int | None = None

    @property
    def peak(self) -> int:
        return self.baseline + self.extra

    def __str__(self) -> str:
        s = (f"{self.device}: peak {self.peak / MiB:.1f} MiB = baseline "
             f"{self.baseline / MiB:.1f} MiB + step {self.extra / MiB:.1f} "
             f"MiB ({self.method})")
        if self.rss_extra is not None:
            s += f"; RSS high-water +{self.rss_extra / MiB:.1f} MiB"
        return s


def _module_bytes(net: nn.Module, optimizer) -> int:
    tensors = list(net.parameters()) + list(net.buffers())
    tensors += [p.grad for p in net.parameters() if p.grad is not None]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values()
                        if isinstance(v, torch.Tensor)]
    return tensor_bytes(tensors)


def _step(net, X, y, loss_fn, optimizer):
    loss = _loss(net, X, y, loss_fn)
    loss.backward()
    if optimizer is not None:
        optimizer.step()


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


def _cpu_allocator_peak(fn) -> int:
    """Peak bytes allocated by PyTorch's CPU allocator while ``fn`` runs,
    above what was allocated when it started."""
    from torch.profiler import ProfilerActivity, profile

    # Keep the profiler's own log lines (read at start-up) off the output.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                 record_shapes=False) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type()
              == torch.autograd.DeviceType.CPU]
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def peak_memory(net: nn.Module, X: torch.Tensor,
                y: torch.Tensor | None = None,
                loss_fn: Callable | None = None,
                optimizer: torch.optim.Optimizer | None = None
                ) -> MemoryReport:
    """Measure the memory of one training step of ``net`` on ``X``'s device.

    Gradients are cleared first (``set_to_none``), so ``extra`` includes
    allocating them. With ``y=None`` the loss is ``net(X).sum()``.
    """
    device = X.device
    net.zero_grad(set_to_none=True)
    param_bytes = tensor_bytes(net.parameters())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _step(net, X, y, loss_fn, optimizer)
        torch.cuda.synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - baseline
        report = MemoryReport(str(device), "cuda max_memory_allocated",
                              baseline, extra, param_bytes)
    elif device.type == "cpu":
        baseline = _module_bytes(net, optimizer) + tensor_bytes([X, y])
        # Warm-up so one-time allocations (thread pools, ...) are not
        # counted, then one step under the profiler.
        _step(net, X, y, loss_fn, optimizer)
        net.zero_grad(set_to_none=True)
        extra = _cpu_allocator_peak(
            lambda: _step(net, X, y, loss_fn, optimizer))
        net.zero_grad(set_to_none=True)
        rss_extra = None
        if _reset_rss_peak():
            before = _proc_status("VmRSS")
            _step(net, X, y, loss_fn, optimizer)
            after = _proc_status("VmHWM")
            if before is not None and after is not None:
                rss_extra = after - before
        report = MemoryReport("cpu", "torch.profiler CPU allocator",
                              baseline, extra, param_bytes, rss_extra)
    else:
        raise ValueError(f"peak_memory supports cpu and cuda tensors, got "
                         f"device {device}")
    net.zero_grad(set_to_none=True)
    return report


def step_time(net: nn.Module, X: torch.Tensor,
              y: torch.Tensor | None = None,
              loss_fn: Callable | None = None,
              optimizer: torch.optim.Optimizer | None = None,
              warmup: int = 2, repeats: int = 5) -> float:
    """Median seconds of one forward + backward (+ optimizer step) after
    ``warmup`` untimed steps."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sync = (torch.cuda.synchronize if X.device.type == "cuda"
            else (lambda: None))
    times = []
    for i in range(warmup + repeats):
        net.zero_grad(set_to_none=True)
        sync()
        start = time.perf_counter()
        _step(net, X, y, loss_fn, optimizer)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    net.zero_grad(set_to_none=True)
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
