"""Which device a run uses, and its description: a leaf every module may
import (it imports none of ours)."""
from __future__ import annotations

import torch

__all__ = ["ACCELERATORS", "default_device", "device_name",
           "device_description"]

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
