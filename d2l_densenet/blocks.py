"""The chapter's building blocks: conv_block, DenseBlock, transition_block.

Written in the book's PyTorch style (d2l-zh 2.x, d2l-en <= v0.17.6): every
block takes its channel counts explicitly, so the channel arithmetic stays
visible. 稠密块 = dense block, 过渡层 = transition layer,
增长率 = growth rate (the ``num_channels`` of a dense block).
"""
from __future__ import annotations

import torch
from torch import nn

from . import fast
from .checks import check_positive_int
from .memory_efficient import checkpoint_level, memory_level

__all__ = ["conv_block", "DenseBlock", "transition_block", "POOLS"]

#: Pooling layers a transition block accepts, by name.
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """BatchNorm -> ReLU -> 3x3 conv (padding 1): keeps height and width."""
    check_positive_int(input_channels=input_channels,
                        num_channels=num_channels)
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks; each one's output is concatenated onto its
    input along the channel dimension, so conv ``i`` (from 0) sees
    ``input_channels + i * num_channels`` channels.

    ``num_channels`` is the growth rate. ``out_channels`` is
    ``input_channels + num_convs * num_channels``.

    ``memory_efficient`` (False, True or a name in
    :data:`~d2l_densenet.MEMORY_EFFICIENT_LEVELS`, see ``memory_efficient``)
    recomputes each conv block's input (the concatenation, BatchNorm and
    ReLU) during backward instead of storing it, trading time for memory.

    Inside :func:`~d2l_densenet.fast.fast_paths` (``train_ch6`` turns it
    on) a CPU forward computes the same thing faster (see ``fast.py``).
    """

    def __init__(self, num_convs: int, input_channels: int,
                 num_channels: int, memory_efficient=False) -> None:
        super().__init__()
        check_positive_int(num_convs=num_convs,
                            input_channels=input_channels,
                            num_channels=num_channels)
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(
                num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)
        self.in_channels = input_channels
        self.growth_rate = num_channels
        self.out_channels = input_channels + num_convs * num_channels
        self.memory_efficient = memory_level(memory_efficient)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled():
            return torch.cat(self.forward_list([X]), dim=1)
        quick = not self.memory_efficient and fast.active(X)
        for blk in self.net:
            Y = fast.conv_block(blk, X) if quick else None
            if Y is None:
                Y = blk(X)
            # Concatenate each block's input and output on channels (dim 1)
            X = torch.cat((X, Y), dim=1)
        return X

    def forward_list(self, features: list[torch.Tensor]
                     ) -> list[torch.Tensor]:
        """``features`` plus each conv block's output, not concatenated
        (used by the memory-efficient levels)."""
        features = list(features)
        for blk in self.net:
            features.append(checkpoint_level(
                lambda *inputs, blk=blk: blk(torch.cat(inputs, dim=1)),
                blk, features, self.memory_efficient))
        return features


def transition_block(input_channels: int, num_channels: int,
                     pool: str = "avg") -> nn.Sequential:
    """BatchNorm -> ReLU -> 1x1 conv -> 2x2 stride-2 pooling.

    The 1x1 conv sets the channel count (the chapter halves it), the
    pooling halves height and width. ``pool`` is ``"avg"`` (the book) or
    ``"max"`` (exercise 1).
    """
    check_positive_int(input_channels=input_channels,
                        num_channels=num_channels)
    if pool not in POOLS:
        raise ValueError(
            f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        POOLS[pool](kernel_size=2, stride=2))
