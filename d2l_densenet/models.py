"""The chapter's DenseNet and the book's ResNet-18, with input checks.

Module names follow d2l 1.0 (``b1``, ``dense_blk1``, ``tran_blk1``, ...,
``last``) so torchinfo summaries and per-stage tables read well and
checkpoints stay loadable.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import DenseBlock, transition_block

__all__ = ["CheckedInput", "DenseNet", "Residual", "ResNet", "densenet",
           "resnet18"]


class CheckedInput:
    """Mixin for models that check their input before running.

    A model sets ``in_channels`` and calls ``check_input(X)`` at the top of
    ``forward``. The smallest height/width the model accepts is derived
    from the architecture itself: the model is run on shape-only ("meta")
    tensors of growing size until no layer complains.
    """

    in_channels: int
    _min_size: int | None = None
    _probing: bool = False

    def min_input_size(self) -> int:
        """Smallest height (= width) that every layer of the model accepts."""
        if self._min_size is None:
            self._min_size = self._search_min_size()
        return self._min_size

    def _runs_at(self, size: int) -> bool:
        params = {name: torch.empty_like(t, device="meta")
                  for name, t in self.state_dict(keep_vars=True).items()}
        # Batch of 2: BatchNorm in training mode needs >1 value per channel.
        X = torch.empty(2, self.in_channels, size, size, device="meta")
        self._probing = True
        try:
            torch.func.functional_call(self, params, (X,), strict=False)
            return True
        except RuntimeError:
            return False
        finally:
            self._probing = False

    def _search_min_size(self, largest: int = 4096) -> int:
        if not self._runs_at(largest):
            raise RuntimeError(
                f"{type(self).__name__} does not run even on "
                f"{largest}x{largest} inputs")
        lo, hi = 1, largest  # invariant: runs at hi
        while lo < hi:
            mid = (lo + hi) // 2
            if self._runs_at(mid):
                hi = mid
            else:
                lo = mid + 1
        return hi

    def check_input(self, X: torch.Tensor) -> None:
        """Raise a clear error if ``X`` is not (batch, in_channels, H, W)
        with H and W large enough for the model's down-sampling."""
        if self._probing:
            return
        if not isinstance(X, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__} expects a torch.Tensor of shape "
                f"(batch, {self.in_channels}, height, width), got "
                f"{type(X).__name__}")
        if X.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D tensor (batch, "
                f"{self.in_channels}, height, width), got {X.dim()}-D "
                f"shape {tuple(X.shape)}; for a single image use "
                f"X.unsqueeze(0)")
        if X.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels} "
                f"input channel(s) but got {X.shape[1]} (input shape "
                f"{tuple(X.shape)}); build it with "
                f"in_channels={X.shape[1]} or convert the images")
        need = self.min_input_size()
        height, width = X.shape[-2:]
        if height < need or width < need:
            raise ValueError(
                f"Input images are {height}x{width}, but "
                f"{type(self).__name__} needs at least {need}x{need}: "
                f"its down-sampling layers shrink smaller images to "
                f"nothing. Resize the images, e.g. "
                f"load_data_fashion_mnist(batch_size, resize=96) as the "
                f"book does")


class DenseNet(CheckedInput, nn.Sequential):
    """The chapter's DenseNet: stem ``b1``, dense blocks ``dense_blk{i}``
    with transitions ``tran_blk{i}`` between them, and head ``last``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 num_channels: int = 64, growth_rate: int = 32,
                 arch: Sequence[int] = (4, 4, 4, 4),
                 transition_pool: str = "avg",
                 memory_efficient: bool = False) -> None:
        super().__init__()
        if not arch or any(isinstance(n, bool) or not isinstance(n, int)
                           or n < 1 for n in arch):
            raise ValueError(
                f"arch must be a non-empty sequence of positive ints "
                f"(convs per dense block), got {arch!r}")
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
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes)))
        self.num_features = num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        return super().forward(X)


def densenet(in_channels: int = 1, num_classes: int = 10,
             growth_rate: int = 32, arch: Sequence[int] = (4, 4, 4, 4),
             transition_pool: str = "avg", num_channels: int = 64,
             memory_efficient: bool = False) -> DenseNet:
    """The chapter's DenseNet (758,226 parameters at the defaults).

    ``memory_efficient=True`` checkpoints every conv block in the dense
    blocks (see :class:`~d2l_densenet.blocks.DenseBlock`)."""
    return DenseNet(in_channels=in_channels, num_classes=num_classes,
                    num_channels=num_channels, growth_rate=growth_rate,
                    arch=tuple(arch), transition_pool=transition_pool,
                    memory_efficient=memory_efficient)


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
        self.in_channels = in_channels
        self.add_module("b1", nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2,
                      padding=3),
            nn.BatchNorm2d(widths[0]), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        prev = widths[0]
        for i, (num_residuals, width) in enumerate(zip(arch, widths)):
            self.add_module(f"b{i + 2}", resnet_block(
                prev, width, num_residuals, first_block=(i == 0)))
            prev = width
        self.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(prev, num_classes)))
        self.num_features = prev

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        return super().forward(X)


def resnet18(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """The book's ResNet-18 (11,178,378 parameters for 1 channel, 10
    classes)."""
    return ResNet(in_channels=in_channels, num_classes=num_classes)


# --- The paper's DenseNet-BC family (exercise 4) ----------------------------


# --- DenseMLP (exercise 5) --------------------------------------------------
