"""The chapter's building blocks: conv_block, DenseBlock, transition_block.

Written in the book's PyTorch style (d2l 0.17 / Chinese edition): every
block takes its channel counts explicitly, so the channel arithmetic stays
visible. 稠密块 = dense block, 过渡层 = transition layer,
增长率 = growth rate (the ``num_channels`` of a dense block).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils import checkpoint

from .checks import check_positive_int

__all__ = ["conv_block", "DenseBlock", "transition_block", "POOLS",
           "checkpoint_batchnorm_once"]

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

    ``memory_efficient=True`` recomputes each conv block's input (the
    concatenation, BatchNorm and ReLU) during backward instead of storing
    it (``torch.utils.checkpoint``), trading time for memory.
    """

    def __init__(self, num_convs: int, input_channels: int,
                 num_channels: int, memory_efficient: bool = False) -> None:
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
        self.memory_efficient = memory_efficient

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled():
            return self._forward_checkpointed(X)
        for blk in self.net:
            Y = blk(X)
            # Concatenate each block's input and output on channels (dim 1)
            X = torch.cat((X, Y), dim=1)
        return X

    def _forward_checkpointed(self, X: torch.Tensor) -> torch.Tensor:
        features = [X]
        for blk in self.net:
            features.append(checkpoint_batchnorm_once(
                lambda *inputs, blk=blk: blk(torch.cat(inputs, dim=1)),
                blk, *features))
        return torch.cat(features, dim=1)


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


# --- The checkpoint helper (exercise 3: memory) ----------------------------

def checkpoint_batchnorm_once(fn, module: nn.Module,
                              *inputs: torch.Tensor) -> torch.Tensor:
    """``torch.utils.checkpoint`` of ``fn(*inputs)`` (non-reentrant) whose
    recomputation in backward leaves the running statistics of the
    BatchNorm layers in ``module`` as the forward pass left them, so each
    batch is counted once (torchvision's memory-efficient DenseNet counts
    it twice)."""
    if torch.compiler.is_compiling():
        # Compiled graphs recompute without re-running Python and apply
        # the running-statistics update once.
        return checkpoint.checkpoint(fn, *inputs, use_reentrant=False)
    calls = []

    def run(*args):
        calls.append(1)
        if len(calls) == 1:          # the forward pass
            return fn(*args)
        with _batchnorm_stats_kept(module):   # the recomputation
            return fn(*args)
    return checkpoint.checkpoint(run, *inputs, use_reentrant=False)


class _batchnorm_stats_kept:
    """Restore the running statistics of every BatchNorm in ``module`` on
    exit, so a recomputation does not count the same batch twice."""

    def __init__(self, module: nn.Module) -> None:
        self.buffers = [b for m in module.modules()
                        if isinstance(m, nn.modules.batchnorm._NormBase)
                        for b in m.buffers()]

    def __enter__(self) -> None:
        self.saved = [b.clone() for b in self.buffers]

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for b, saved in zip(self.buffers, self.saved):
                b.copy_(saved)
