"""Which device a run uses, its description, and the device calls a
notebook's GPU path makes: a leaf every module may import (it imports
none of ours).

The device calls (``empty_cache``, ``synchronize``, ``reset_peak_memory``,
``memory_allocated``, ``max_memory_allocated``, ``memory_reserved``,
``max_memory_reserved``, ``mem_get_info``, ``device_count``) are what a
notebook calls instead of ``torch.cuda.*``, so that its GPU path also
runs in the *GPU-mode rehearsal* (``D2L_DENSENET_MODE=gpu-rehearsal``,
``settings.choose``): GPU mode's code on the CPU with smoke-sized data.

* On CUDA (and XPU, the same functions in ``torch.xpu``) each is the
  ``torch.cuda`` call of the same name.
* In the rehearsal, on the CPU, the memory readings are the process's
  own counters from the operating system: ``memory_allocated`` and
  ``memory_reserved`` are its resident memory (``VmRSS``), the
  ``max_*`` readings its high-water mark (``VmHWM``) since the last
  ``reset_peak_memory`` (Linux resets it; elsewhere it counts from the
  process's start), ``mem_get_info`` the machine's available and total
  memory, ``empty_cache`` gives freed heap back to the OS (glibc's
  ``malloc_trim``), and ``device_count`` is ``REHEARSAL_PROCESSES`` (CPU
  processes, gloo, stand in for GPUs). They exercise the GPU path's
  logic; they are not GPU figures (a CPU has no caching allocator:
  allocated and reserved are the same reading). ``torch.profiler`` is
  not used for them: a profiler started while another runs (the one in
  ``measure.peak_memory``) ends the first one's recording, so it cannot
  back a counter read across arbitrary code.
* On the CPU outside the rehearsal the memory readings refuse
  (``ValueError``): there they would pretend; ``measure.peak_memory``
  measures a CPU step. ``synchronize`` and ``empty_cache`` have nothing
  to wait for or release there beyond the heap trim.
* On an Apple GPU (MPS) the calls PyTorch offers are used
  (``current_allocated_memory``, ``driver_allocated_memory``,
  ``recommended_max_memory``); it has no peak counter, so the ``max_*``
  readings and ``reset_peak_memory`` refuse. Not run here (no Mac).
"""
from __future__ import annotations

import ctypes
import os
import re
import sys

import torch

__all__ = ["ACCELERATORS", "MODE_ENV", "REHEARSAL", "REHEARSAL_PROCESSES",
           "default_device", "device_name", "device_description",
           "rehearsing", "gpu_path", "device_count", "synchronize",
           "empty_cache", "reset_peak_memory", "memory_allocated",
           "max_memory_allocated", "memory_reserved",
           "max_memory_reserved", "mem_get_info"]

#: Accelerators a run may use (``torch.accelerator``'s device types);
#: only CUDA has been run (no Mac or Intel GPU here, see the README).
ACCELERATORS = ("cuda", "mps", "xpu")
#: The environment variable holding the run mode (``settings.run_mode``).
MODE_ENV = "D2L_DENSENET_MODE"
#: The run mode of the GPU-mode rehearsal on the CPU.
REHEARSAL = "gpu-rehearsal"
#: How many GPUs the rehearsal's ``device_count`` reports: as many CPU
#: processes (gloo) stand in for them.
REHEARSAL_PROCESSES = 2


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


def device_name(device) -> str | None:
    """A GPU's name (``"NVIDIA H100 80GB HBM3"``, ``"Apple GPU"``), or
    None for the CPU or where PyTorch does not tell."""
    device = torch.device(device)
    if device.type == "cpu":
        return None
    if device.type == "mps":
        return "Apple GPU"
    try:
        return getattr(torch, device.type).get_device_name(device)
    except (AttributeError, AssertionError, RuntimeError):
        return None


def device_description(device) -> str:
    """``device`` and, for a GPU, its name: ``"cuda (NVIDIA H100 80GB
    HBM3)"``, ``"mps (Apple GPU)"``, ``"cpu"``."""
    name = device_name(device)
    return str(torch.device(device)) if name is None else (
        f"{torch.device(device)} ({name})")


# --- the GPU-mode rehearsal ---------------------------------------------

def rehearsing() -> bool:
    """True in the GPU-mode rehearsal: ``$D2L_DENSENET_MODE`` is
    ``gpu-rehearsal`` (``settings.choose`` sets it when it picks the
    rehearsal, so the commands a notebook starts know it too)."""
    return os.environ.get(MODE_ENV, "").strip().lower() == REHEARSAL


def gpu_path(device) -> bool:
    """Whether code meant for a GPU runs on ``device``: an accelerator,
    or the CPU in the rehearsal. A notebook writes ``if
    dd.devices.gpu_path(device):`` where it would test ``device.type ==
    "cuda"``."""
    device = torch.device(device)
    return device.type in ACCELERATORS or (device.type == "cpu"
                                           and rehearsing())


def device_count() -> int:
    """How many GPUs a GPU-mode run may use (``torch.cuda.device_count()``
    for any accelerator); in the rehearsal ``REHEARSAL_PROCESSES``, the
    CPU processes standing in for them."""
    if rehearsing():
        return REHEARSAL_PROCESSES
    acc = getattr(torch, "accelerator", None)
    if acc is not None and hasattr(acc, "device_count"):
        return acc.device_count()
    return torch.cuda.device_count()


def _api(device: torch.device):
    """``torch.cuda`` or ``torch.xpu`` (the same memory functions)."""
    return getattr(torch, device.type)


def _refuse(device: torch.device, what: str):
    if device.type == "cpu":
        return ValueError(
            f"{what} reads a GPU's memory counters; on the CPU only the "
            f"GPU-mode rehearsal ({MODE_ENV}={REHEARSAL}) answers it, with "
            f"the process's own counters. Take this path with `if "
            f"dd.devices.gpu_path(device):`, and measure a CPU step with "
            f"dd.peak_memory")
    return ValueError(f"{what} is not offered on {device.type} (PyTorch "
                       f"has no such counter there); supported: cuda, xpu"
                       f" and the CPU in the GPU-mode rehearsal")


def _cpu_counters(device: torch.device, what: str) -> None:
    """Refuse a memory reading on the CPU outside the rehearsal."""
    if not rehearsing():
        raise _refuse(device, what)


def synchronize(device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on a
    CPU)."""
    device = torch.device(device)
    if device.type == "mps":
        torch.mps.synchronize()
    elif device.type != "cpu":
        _api(device).synchronize(device)


def _trim_heap() -> bool:
    """Give freed heap back to the OS (glibc's ``malloc_trim``; False
    where there is none)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def empty_cache(device) -> None:
    """Release the memory a GPU's caching allocator keeps for reuse
    (``torch.cuda.empty_cache()``); on the CPU, give freed heap back to
    the OS (glibc's ``malloc_trim``, Linux), the nearest thing."""
    device = torch.device(device)
    if device.type == "cpu":
        _trim_heap()
    elif device.type == "mps":
        torch.mps.empty_cache()
    else:
        _api(device).empty_cache()


def _proc_bytes(path: str, field: str) -> int | None:
    """``field``'s value in kB in ``path`` (``/proc/self/status``,
    ``/proc/meminfo``) in bytes, or None where there is none."""
    try:
        with open(path) as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def _rss() -> int:
    """The process's resident memory now (bytes)."""
    now = _proc_bytes("/proc/self/status", "VmRSS")
    if now is not None:
        return now
    return _high_water_mark()  # no /proc: the best reading there is


def _high_water_mark() -> int:
    """The process's resident-memory high-water mark (bytes): ``VmHWM``
    (Linux), else ``ru_maxrss`` (since the process started)."""
    high = _proc_bytes("/proc/self/status", "VmHWM")
    if high is not None:
        return high
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_memory(device) -> None:
    """Start the ``max_*`` readings afresh
    (``torch.cuda.reset_peak_memory_stats``); in the rehearsal, on the
    CPU, the process's high-water mark is reset (Linux: freed heap is
    given back, then ``/proc/self/clear_refs``)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "reset_peak_memory")
        _trim_heap()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass  # elsewhere the mark counts from the process's start
    elif device.type == "mps":
        raise _refuse(device, "reset_peak_memory")
    else:
        _api(device).reset_peak_memory_stats(device)


def memory_allocated(device) -> int:
    """Bytes in tensors on ``device`` now (``torch.cuda.memory_allocated``;
    MPS: ``current_allocated_memory``; rehearsal CPU: resident memory)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "memory_allocated")
        return _rss()
    if device.type == "mps":
        return torch.mps.current_allocated_memory()
    return _api(device).memory_allocated(device)


def max_memory_allocated(device) -> int:
    """Most bytes in tensors since ``reset_peak_memory``
    (``torch.cuda.max_memory_allocated``; rehearsal CPU: the resident
    memory's high-water mark)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "max_memory_allocated")
        return max(_high_water_mark(), _rss())
    if device.type == "mps":
        raise _refuse(device, "max_memory_allocated")
    return _api(device).max_memory_allocated(device)


def memory_reserved(device) -> int:
    """Bytes the allocator holds now, in tensors or kept for reuse
    (``torch.cuda.memory_reserved``; MPS: ``driver_allocated_memory``;
    rehearsal CPU: resident memory)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "memory_reserved")
        return _rss()
    if device.type == "mps":
        return torch.mps.driver_allocated_memory()
    return _api(device).memory_reserved(device)


def max_memory_reserved(device) -> int:
    """Most bytes the allocator held since ``reset_peak_memory``
    (``torch.cuda.max_memory_reserved``; rehearsal CPU: the resident
    memory's high-water mark)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "max_memory_reserved")
        return max(_high_water_mark(), _rss())
    if device.type == "mps":
        raise _refuse(device, "max_memory_reserved")
    return _api(device).max_memory_reserved(device)


def mem_get_info(device) -> tuple[int, int]:
    """``(free, total)`` bytes of the device's memory
    (``torch.cuda.mem_get_info``; MPS: the recommended maximum and what
    the driver holds; rehearsal CPU: the machine's available and total
    memory)."""
    device = torch.device(device)
    if device.type == "cpu":
        _cpu_counters(device, "mem_get_info")
        total = _proc_bytes("/proc/meminfo", "MemTotal")
        free = _proc_bytes("/proc/meminfo", "MemAvailable")
        if total is None or free is None:
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            free = os.sysconf("SC_AVPHYS_PAGES") * page
        return free, total
    if device.type == "mps":
        total = torch.mps.recommended_max_memory()
        return max(total - torch.mps.driver_allocated_memory(), 0), total
    return _api(device).mem_get_info(device)
