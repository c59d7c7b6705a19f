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

__all__ = ["conv_block", "DenseBlock", "transition_block", "POOLS",
           "DenseLayerBC", "DenseBlockBC", "TransitionBC"]

#: Pooling layers a transition block accepts, by name.
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def _check_positive_int(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} must be a positive int, got {value!r}")


def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """BatchNorm -> ReLU -> 3x3 conv (padding 1): keeps height and width."""
    _check_positive_int(input_channels=input_channels,
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
        _check_positive_int(num_convs=num_convs,
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


def transition_block(input_channels: int, num_channels: int,
                     pool: str = "avg") -> nn.Sequential:
    """BatchNorm -> ReLU -> 1x1 conv -> 2x2 stride-2 pooling.

    The 1x1 conv sets the channel count (the chapter halves it), the
    pooling halves height and width. ``pool`` is ``"avg"`` (the book) or
    ``"max"`` (exercise 1).
    """
    _check_positive_int(input_channels=input_channels,
                        num_channels=num_channels)
    if pool not in POOLS:
        raise ValueError(
            f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        POOLS[pool](kernel_size=2, stride=2))


# --- The paper's DenseNet-BC pieces (exercise 4) ----------------------------
# Module names are torchvision's (norm1, relu1, conv1, ..., denselayer1,
# norm/relu/conv/pool), so torchvision's state dicts load unchanged.


class DenseLayerBC(nn.Module):
    """One DenseNet-BC layer: BN-ReLU-1x1 conv (the bottleneck, to
    ``bn_size * growth_rate`` channels), then BN-ReLU-3x3 conv to
    ``growth_rate`` channels; convs without bias, as in the paper.

    ``forward`` takes a tensor or the list of all earlier feature maps
    (concatenated on channels inside the bottleneck). With
    ``memory_efficient=True`` the concatenate-BN-ReLU-1x1-conv part is
    recomputed during backward (``torch.utils.checkpoint``) instead of being
    stored; that saves the quadratic memory of the concatenations.
    ``drop_rate > 0`` adds dropout after the 3x3 conv while training.
    """

    def __init__(self, input_channels: int, growth_rate: int,
                 bn_size: int = 4, drop_rate: float = 0.0,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        _check_positive_int(input_channels=input_channels,
                            growth_rate=growth_rate, bn_size=bn_size)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(
                f"drop_rate must be in [0, 1), got {drop_rate!r}")
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(input_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(input_channels, inner, kernel_size=1,
                               bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, growth_rate, kernel_size=3,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = bool(memory_efficient)

    def bottleneck(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate -> BN -> ReLU -> 1x1 conv."""
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def _needs_grad(self, inputs: list[torch.Tensor]) -> bool:
        # A loop, not any(): TorchScript cannot compile generators.
        if not torch.is_grad_enabled():
            return False
        for t in inputs:
            if t.requires_grad:
                return True
        return False

    @torch.jit.unused
    def checkpointed_bottleneck(self, inputs: list[torch.Tensor]
                                ) -> torch.Tensor:
        """``bottleneck`` whose inputs and outputs are not kept for
        backward: it is run again when the gradient is needed."""
        return checkpoint_batchnorm_once(
            lambda *features: self.bottleneck(list(features)), self.norm1,
            *inputs)

    # TorchScript has no Union argument types: declare both signatures
    # (as type comments: this module's annotations are strings).
    @torch.jit._overload_method  # noqa: F811
    def forward(self, inputs):  # noqa: F811
        # type: (List[Tensor]) -> Tensor
        pass

    @torch.jit._overload_method  # noqa: F811
    def forward(self, inputs):  # noqa: F811
        # type: (Tensor) -> Tensor
        pass

    def forward(self, inputs):  # noqa: F811
        if isinstance(inputs, torch.Tensor):
            prev = [inputs]
        else:
            prev = inputs
        if self.memory_efficient and self._needs_grad(prev):
            if torch.jit.is_scripting():
                raise RuntimeError(
                    "DenseLayerBC: memory_efficient=True cannot train "
                    "under torch.jit.script (checkpointing is Python "
                    "only); build the model with memory_efficient=False "
                    "to script it, or use torch.compile instead")
            out = self.checkpointed_bottleneck(prev)
        else:
            out = self.bottleneck(prev)
        out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = nn.functional.dropout(out, p=self.drop_rate,
                                        training=self.training)
        return out


class DenseBlockBC(nn.ModuleDict):
    """``num_layers`` :class:`DenseLayerBC` named ``denselayer1``, ...;
    layer ``i`` (from 0) sees ``input_channels + i * growth_rate``
    channels. ``forward`` returns all feature maps concatenated:
    ``out_channels = input_channels + num_layers * growth_rate``."""

    _version = 2  # as torchvision's _DenseBlock (state-dict metadata)

    def __init__(self, num_layers: int, input_channels: int,
                 growth_rate: int, bn_size: int = 4,
                 drop_rate: float = 0.0,
                 memory_efficient: bool = False) -> None:
        super().__init__()
        _check_positive_int(num_layers=num_layers,
                            input_channels=input_channels,
                            growth_rate=growth_rate)
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayerBC(
                input_channels + i * growth_rate, growth_rate,
                bn_size=bn_size, drop_rate=drop_rate,
                memory_efficient=memory_efficient))
        self.in_channels = input_channels
        self.growth_rate = growth_rate
        self.out_channels = input_channels + num_layers * growth_rate

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        features = [X]
        for _, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)


class TransitionBC(nn.Sequential):
    """BN -> ReLU -> 1x1 conv (no bias) -> 2x2 average pooling, children
    ``norm``, ``relu``, ``conv``, ``pool``. The conv keeps
    ``int(input_channels * compression)`` channels (the paper's
    compression factor theta = 0.5 halves them) unless ``num_channels``
    is given."""

    def __init__(self, input_channels: int, num_channels: int | None = None,
                 compression: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(
                f"compression must be in (0, 1], got {compression!r}")
        if num_channels is None:
            num_channels = max(1, int(input_channels * compression))
        _check_positive_int(input_channels=input_channels,
                            num_channels=num_channels)
        self.norm = nn.BatchNorm2d(input_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(input_channels, num_channels, kernel_size=1,
                              bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.out_channels = num_channels
