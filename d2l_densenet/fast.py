"""Fast paths: the chapter's DenseNet computed faster on a CPU, the same
function up to float rounding.

At the CPU recipe's 32x32 the last dense blocks see 2x2 and 1x1 feature
maps, where oneDNN's convolution backward is 2.4x to 5.7x slower than
the same arithmetic as one matrix product, and the transitions spend
their time on a 1x1 convolution of four times the pixels it needs.
Inside :func:`fast_paths` (``train_ch6`` turns it on while it trains
and evaluates), on CPU tensors:

* a dense layer's ReLU runs in place on its BatchNorm's output (a fresh
  tensor that autograd does not keep), saving one allocation and pass;
* a stride-1 "same" convolution of an image of at most
  :data:`SMALL_PIXELS` pixels (2x2, 1x1) is one matrix product with the
  convolution written out as a dense matrix (:func:`small_conv2d`);
* a 1x1 convolution of an image of at most :data:`POINTWISE_PIXELS`
  pixels is a matrix product over the pixels (:func:`pointwise_conv2d`);
* a transition (BatchNorm, ReLU, 1x1 conv, 2x2 average pooling) pools
  before the convolution: both are linear and act on different axes, so
  they commute exactly (``pool(conv(z)) == conv(pool(z))``, the bias
  included), and the convolution sees a quarter of the pixels;
* the stem's ReLU runs in place.

Nothing changes in the model: the same modules, parameters, buffers
(BatchNorm statistics are updated as before) and names, so checkpoints
load either way. Each step was kept only where it measured faster on
both CPU classes: ``benchmarks/bench_speed.py`` times the step with
each one turned off in turn (its "fast paths, one at a time" table).

Where a module involved has a hook (forward or backward, its own or
global: ``torchinfo``, ``FlopCounterMode``, a notebook's recorder), the
plain path runs, so whatever a hook sees is what the plain model does;
likewise off the CPU (not measured there) and with ``memory_efficient``.
"""
from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn
from torch.nn.modules import module as _module
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["fast_paths", "fast_paths_enabled", "small_conv2d",
           "pointwise_conv2d", "conv2d", "SMALL_PIXELS", "POINTWISE_PIXELS"]

#: A "same" convolution of an image of at most this many pixels runs as
#: one matrix product (2x2 and 1x1 maps; at 4x4 oneDNN is as fast).
SMALL_PIXELS = 4
#: A 1x1 convolution of at most this many pixels runs as a matrix
#: product (4x4 and smaller; at 8x8 oneDNN is as fast).
POINTWISE_PIXELS = 16

_state = threading.local()


def fast_paths_enabled() -> bool:
    """Whether :func:`fast_paths` is on in this thread."""
    return getattr(_state, "enabled", False)


@contextlib.contextmanager
def fast_paths(enabled: bool = True):
    """Turn the fast paths on (or off) for the ``with`` block, in this
    thread; ``train_ch6`` does so while it trains and evaluates."""
    before = fast_paths_enabled()
    _state.enabled = enabled
    try:
        yield
    finally:
        _state.enabled = before


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_backward_hooks", "_global_backward_pre_hooks")
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
          "_backward_pre_hooks")


def hooked(*modules: nn.Module) -> bool:
    """Whether a global module hook or a hook of one of ``modules`` (or
    their submodules) is registered: then the plain path runs."""
    if any(getattr(_module, name, None) for name in _GLOBAL_HOOKS):
        return True
    return any(getattr(m, name, None) for top in modules
               for m in top.modules() for name in _HOOKS)


def active(x: torch.Tensor) -> bool:
    """Whether the fast paths apply to input ``x``."""
    return fast_paths_enabled() and x.device.type == "cpu"


def _like(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` (channels-last strides) in ``x``'s memory layout."""
    if x.is_contiguous(memory_format=torch.channels_last):
        return out
    return out.contiguous()


_TAPS: dict = {}


def _taps(h: int, w: int, kh: int, kw: int, device,
          dtype) -> torch.Tensor:
    """The 0/1 matrix that spreads a (kh*kw)-tap kernel over the
    (input pixel, output pixel) pairs of an h x w image: row
    ``((a*w + b)*h + i)*w + j`` (input pixel (a, b), output pixel
    (i, j)) has its 1 at the tap joining them, none where no tap
    does. A matrix product, not indexing, so its backward is one
    too."""
    key = (h, w, kh, kw, str(device), dtype)
    if key not in _TAPS:
        a, i = torch.arange(h), torch.arange(h)
        b, j = torch.arange(w), torch.arange(w)
        # input row a, output row i: kernel row a - i + kh // 2
        r = (a[:, None] - i[None, :] + kh // 2)  # (a, i)
        q = (b[:, None] - j[None, :] + kw // 2)  # (b, j)
        r = r[:, None, :, None].expand(h, w, h, w)
        q = q[None, :, None, :].expand(h, w, h, w)
        ok = (r >= 0) & (r < kh) & (q >= 0) & (q < kw)
        S = torch.zeros(h * w * h * w, kh * kw)
        rows = torch.arange(h * w * h * w)[ok.reshape(-1)]
        S[rows, (r * kw + q)[ok]] = 1.0
        _TAPS[key] = S.to(device=device, dtype=dtype)
    return _TAPS[key]


def small_conv2d(x: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None) -> torch.Tensor:
    """A stride-1 convolution with odd kernel and zero padding of half
    its size ("same") as one matrix product: the (H*W*C_in) x
    (H*W*C_out) matrix whose block (input pixel, output pixel) is the
    kernel tap joining them (zero where none does). Worth it for tiny
    images only: the matrix has (H*W)^2 blocks."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    S = _taps(h, w, kh, kw, weight.device, weight.dtype)
    taps = weight.permute(2, 3, 1, 0).reshape(kh * kw, c * o)
    big = (S @ taps).view(h, w, h, w, c, o)  # a, b, i, j, C, O
    big = big.permute(0, 1, 4, 2, 3, 5).reshape(h * w * c, h * w * o)
    xs = x.permute(0, 2, 3, 1).reshape(n, h * w * c)
    out = (xs @ big if bias is None
           else torch.addmm(bias.repeat(h * w), xs, big))
    return _like(out.view(n, h, w, o).permute(0, 3, 1, 2), x)


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution (stride 1, no padding) as a matrix product of
    the (pixels, C_in) matrix with the (C_in, C_out) weights."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    xs = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    wt = weight.reshape(o, c).t()
    out = xs @ wt if bias is None else torch.addmm(bias, xs, wt)
    return _like(out.view(n, h, w, o).permute(0, 3, 1, 2), x)


def _same(conv: nn.Conv2d) -> bool:
    kh, kw = conv.kernel_size
    return (conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding_mode == "zeros"
            and kh % 2 == 1 and kw % 2 == 1
            and conv.padding == (kh // 2, kw // 2))


def conv2d(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, as a matrix product where that is faster (see the
    module's notes); ``conv`` must be a plain ``nn.Conv2d`` without
    hooks (the caller checks)."""
    if type(conv) is nn.Conv2d and x.dim() == 4 and _same(conv):
        pixels = x.shape[-2] * x.shape[-1]
        if conv.kernel_size == (1, 1):
            if pixels <= POINTWISE_PIXELS:
                return pointwise_conv2d(x, conv.weight, conv.bias)
        elif pixels <= SMALL_PIXELS:
            return small_conv2d(x, conv.weight, conv.bias)
    return conv(x)


def _is(m, cls) -> bool:
    return type(m) is cls


def conv_block(blk: nn.Module, X: torch.Tensor) -> torch.Tensor | None:
    """A dense layer (BatchNorm, ReLU, Conv2d) on ``X``, fast; None if
    ``blk`` is not one or has hooks."""
    if not (isinstance(blk, nn.Sequential) and len(blk) == 3
            and isinstance(blk[0], _BatchNorm) and _is(blk[1], nn.ReLU)
            and _is(blk[2], nn.Conv2d)) or hooked(blk):
        return None
    return conv2d(blk[2], torch.relu_(blk[0](X)))


def transition(blk: nn.Module, X: torch.Tensor) -> torch.Tensor | None:
    """A transition (BatchNorm, ReLU, 1x1 Conv2d, AvgPool2d) on ``X``
    with the pooling first; None if ``blk`` is not one or has hooks."""
    if not (isinstance(blk, nn.Sequential) and len(blk) == 4
            and isinstance(blk[0], _BatchNorm) and _is(blk[1], nn.ReLU)
            and _is(blk[2], nn.Conv2d) and _is(blk[3], nn.AvgPool2d)):
        return None
    conv, pool = blk[2], blk[3]
    if not (conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and pool.padding in (0, (0, 0))
            and pool.divisor_override is None) or hooked(blk):
        return None
    return conv2d(conv, pool(torch.relu_(blk[0](X))))


def stem(blk: nn.Module, X: torch.Tensor) -> torch.Tensor | None:
    """The stem (Conv2d, BatchNorm, ReLU, MaxPool2d) with the ReLU in
    place; None if ``blk`` is not one or has hooks."""
    if not (isinstance(blk, nn.Sequential) and len(blk) == 4
            and isinstance(blk[1], _BatchNorm) and _is(blk[2], nn.ReLU)) \
            or hooked(blk):
        return None
    return blk[3](torch.relu_(blk[1](blk[0](X))))
