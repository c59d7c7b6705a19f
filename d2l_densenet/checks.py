"""Argument and input checks shared by the models: each names what was
wrong and what is accepted."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["check_positive_int", "check_arch", "check_tensor",
           "check_width", "min_input_size"]


def check_positive_int(**values: int) -> None:
    """Each keyword argument must be an int >= 1 (not a bool)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} must be a positive int, got {value!r}")


def check_arch(arch, what: str, name: str = "arch") -> None:
    """``arch`` lists block sizes: a non-empty sequence of positive ints."""
    if not arch or any(isinstance(n, bool) or not isinstance(n, int)
                       or n < 1 for n in arch):
        raise ValueError(f"{name} must be a non-empty sequence of positive "
                         f"ints ({what}), got {arch!r}")


def check_tensor(X, owner: str, layout: str, single: str) -> None:
    """``X`` must be a tensor with as many dimensions as ``layout`` (a
    string like "(batch, 1, height, width)") names."""
    ndim = layout.count(",") + 1
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor of shape {layout},"
                        f" got {type(X).__name__}")
    if X.dim() != ndim:
        raise ValueError(
            f"{owner} expects a {ndim}-D tensor {layout}, got {X.dim()}-D "
            f"shape {tuple(X.shape)}; for {single} use X.unsqueeze(0)")


def check_width(X: torch.Tensor, owner: str, expected: int, what: str,
                fix: str) -> None:
    """``X.shape[1]`` (channels or features) must be ``expected``; ``fix``
    ends the message with what to do."""
    if X.shape[1] != expected:
        raise ValueError(
            f"{owner} was built for {expected} {what} but got "
            f"{X.shape[1]} (input shape {tuple(X.shape)}); {fix}")


def _pair(v) -> int:
    return v[0] if isinstance(v, (tuple, list)) else v


def min_input_size(layers: Sequence[nn.Module]) -> int:
    """Smallest height (= width) that survives ``layers``, the convs and
    pools that shrink the image, in the order the image meets them.

    Shape arithmetic only: a layer with kernel k, stride s and padding p
    turns n pixels into ``(n + 2p - k) // s + 1``, so it gives at least m
    pixels from ``(m - 1) * s + k - 2p``. Going backwards from the one
    pixel the head needs gives the answer without running the model.
    """
    m = 1
    for layer in reversed(layers):
        k, s, p = (_pair(layer.kernel_size), _pair(layer.stride),
                   _pair(layer.padding))
        m = max(1, (m - 1) * s + k - 2 * p)
    return m
