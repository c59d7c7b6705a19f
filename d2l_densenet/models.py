"""The chapter's models: DenseNet (稠密连接网络) and the book's ResNet-18
for the comparisons, with input checks.

Module names follow d2l 1.0 (``b1``, ``dense_blk1``, ``tran_blk1``, ...,
``last``) so torchinfo summaries and per-stage tables read well and
checkpoints stay loadable. The paper's DenseNet-BC family lives in
``family.py``, the exercise's DenseMLP in ``mlp.py``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import fast
from .blocks import DenseBlock, transition_block
from .checks import check_arch, check_tensor, min_input_size
from .memory_efficient import MemoryEfficient, forward_stages, memory_level
from .messages import text

__all__ = ["CheckedInput", "DenseNet", "Residual", "ResNet", "densenet",
           "resnet18", "HEAD_POOLS"]

#: The head's global pooling, by name. d2l-en v0.14.0-v0.17.3 and d2l-zh
#: 2.0.0-alpha0..beta0 end the PyTorch model with
#: ``nn.AdaptiveMaxPool2d((1, 1))`` ("max"); d2l-en v0.17.4+, d2l 1.0,
#: d2l-zh 2.0.0, the MXNet/TensorFlow code and the paper average ("avg").
HEAD_POOLS = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}

_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


class CheckedInput:
    """Mixin for models that check their input before running.

    A model sets ``in_channels`` and calls ``check_input(X)`` at the top of
    ``forward``. The smallest height/width it accepts follows from its
    convs and pools by shape arithmetic (:func:`checks.min_input_size`):
    nothing is run, so profilers and FLOP counters see only real work.
    The walk over the modules happens once: the size is kept and only
    worked out again after a direct child module is set or replaced
    (``net.b1 = ...``); after changing a nested layer in place call
    :meth:`forget_input_size`.
    """

    in_channels: int
    #: The kept minimum height/width (None: not worked out yet).
    _min_input_size: int | None = None

    def downsampling(self) -> list[nn.Module]:
        """The convs and pools an image passes through, in order."""
        return [m for m in self.modules() if isinstance(m, _SPATIAL)]

    def min_input_size(self) -> int:
        """Smallest height (= width) that every layer of the model accepts
        (worked out on the first call, then kept)."""
        if self._min_input_size is None:
            self._min_input_size = min_input_size(self.downsampling())
        return self._min_input_size

    def forget_input_size(self) -> None:
        """Drop the kept minimum size: the next check works it out anew."""
        self.__dict__.pop("_min_input_size", None)  # back to the class's

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, nn.Module):
            self.forget_input_size()
        super().__setattr__(name, value)

    def add_module(self, name: str, module: nn.Module | None) -> None:
        self.forget_input_size()
        super().add_module(name, module)

    def check_input(self, X: torch.Tensor) -> None:
        """Raise a clear error if ``X`` is not (batch, in_channels, H, W)
        with H and W large enough for the model's down-sampling."""
        check_tensor(X, type(self).__name__,
                     f"(batch, {self.in_channels}, height, width)",
                     "a single image")
        if X.shape[1] != self.in_channels:
            raise ValueError(text(
                "models.channels", model=type(self).__name__,
                expected=self.in_channels, got=X.shape[1],
                shape=tuple(X.shape)))
        need = self.min_input_size()
        height, width = X.shape[-2:]
        if height < need or width < need:
            raise ValueError(text("models.too_small", height=height,
                                  width=width, model=type(self).__name__,
                                  need=need))


class DenseNet(CheckedInput, MemoryEfficient, nn.Sequential):
    """The chapter's DenseNet: stem ``b1``, dense blocks ``dense_blk{i}``
    with transitions ``tran_blk{i}`` between them, and head ``last``.

    Inside :func:`~d2l_densenet.fast.fast_paths` (``train_ch6`` turns it
    on) a CPU forward computes the same function faster with the same
    modules (see ``fast.py``)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 num_channels: int = 64, growth_rate: int = 32,
                 arch: Sequence[int] = (4, 4, 4, 4),
                 transition_pool: str = "avg", head_pool: str = "avg",
                 memory_efficient=False) -> None:
        super().__init__()
        check_arch(arch, "convs per dense block")
        memory_efficient = memory_level(memory_efficient)
        if head_pool not in HEAD_POOLS:
            raise ValueError(f"head_pool must be one of "
                             f"{sorted(HEAD_POOLS)}, got {head_pool!r}")
        self.in_channels = in_channels
        self.add_module("b1", nn.Sequential(
            nn.Conv2d(in_channels, num_channels, kernel_size=7, stride=2,
                      padding=3),
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        for i, num_convs in enumerate(arch):
            blk = DenseBlock(num_convs, num_channels, growth_rate,
                             memory_efficient=memory_efficient)
            self.add_module(f"dense_blk{i + 1}", blk)
            # The number of output channels of the previous dense block
            num_channels = blk.out_channels
            # A transition layer that halves the channels between blocks
            if i != len(arch) - 1:
                self.add_module(f"tran_blk{i + 1}", transition_block(
                    num_channels, num_channels // 2, pool=transition_pool))
                num_channels = num_channels // 2
        self.add_module("last", nn.Sequential(
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            HEAD_POOLS[head_pool]((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes)))
        self.num_features = num_channels
        self.head_pool = head_pool

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        if self.checkpoints_stages():
            # The stem and transitions checkpointed too (see blocks.py)
            return forward_stages(self, X, self.memory_efficient)
        if fast.active(X) and not self.memory_efficient:
            return self._fast_forward(X)
        return super().forward(X)

    def _fast_forward(self, X: torch.Tensor) -> torch.Tensor:
        """The same function as the plain forward, faster on a CPU
        (``fast.py``): the stem's ReLU in place, the transitions pooling
        before their 1x1 conv, the dense blocks their own fast path."""
        for name, m in self.named_children():
            Y = None
            if name == "b1":
                Y = fast.stem(m, X)
            elif name.startswith("tran_blk"):
                Y = fast.transition(m, X)
            X = m(X) if Y is None else Y
        return X


def densenet(in_channels: int = 1, num_classes: int = 10,
             growth_rate: int = 32, arch: Sequence[int] = (4, 4, 4, 4),
             transition_pool: str = "avg", num_channels: int = 64,
             head_pool: str = "avg",
             memory_efficient=False) -> DenseNet:
    """The chapter's DenseNet (758,226 parameters at the defaults).

    ``head_pool="avg"`` is d2l 1.0's and the paper's global average
    pooling; ``"max"`` is the PyTorch code of d2l-en v0.14.0-v0.17.3 and
    d2l-zh 2.0.0-alpha0..beta0
    (``nn.AdaptiveMaxPool2d``). ``memory_efficient=True`` checkpoints
    every conv block in the dense blocks (see
    :class:`~d2l_densenet.blocks.DenseBlock`); "selective" and "layer"
    (:data:`~d2l_densenet.MEMORY_EFFICIENT_LEVELS`) also the stem
    and the transitions."""
    return DenseNet(in_channels=in_channels, num_classes=num_classes,
                    num_channels=num_channels, growth_rate=growth_rate,
                    arch=tuple(arch), transition_pool=transition_pool,
                    head_pool=head_pool, memory_efficient=memory_efficient)


class Residual(nn.Module):
    """The book's residual block: two 3x3 convs, optional 1x1 shortcut."""

    def __init__(self, input_channels: int, num_channels: int,
                 use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3,
                               padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3,
                               padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels,
                                   kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels: int, num_channels: int, num_residuals: int,
                 first_block: bool = False) -> nn.Sequential:
    """A ResNet stage: the first block halves H/W unless ``first_block``."""
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels,
                                use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return nn.Sequential(*blk)


class ResNet(CheckedInput, nn.Sequential):
    """The book's ResNet: stem ``b1``, stages ``b2``..``b5``, head ``last``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 arch: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        check_arch(arch, "residual blocks per stage")
        check_arch(widths, "channels per stage", name="widths")
        if len(arch) != len(widths):
            raise ValueError(
                f"arch and widths must have one entry per stage, got "
                f"{len(arch)} in arch={tuple(arch)!r} and {len(widths)} in "
                f"widths={tuple(widths)!r}")
        self.in_channels = in_channels
        self.add_module("b1", nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2,
                      padding=3),
            nn.BatchNorm2d(widths[0]), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        prev = widths[0]
        for i, (num_residuals, width) in enumerate(
                zip(arch, widths, strict=True)):
            self.add_module(f"b{i + 2}", resnet_block(
                prev, width, num_residuals, first_block=(i == 0)))
            prev = width
        self.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(prev, num_classes)))
        self.num_features = prev

    def downsampling(self) -> list[nn.Module]:
        # The 1x1 shortcut (conv3) runs beside conv1, not after it.
        shortcuts = {id(m.conv3) for m in self.modules()
                     if isinstance(m, Residual) and m.conv3 is not None}
        return [m for m in super().downsampling()
                if id(m) not in shortcuts]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        return super().forward(X)


def resnet18(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """The book's ResNet-18 (11,178,378 parameters for 1 channel, 10
    classes)."""
    return ResNet(in_channels=in_channels, num_classes=num_classes)
