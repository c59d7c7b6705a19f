"""Exercise 5: DenseNet's ideas for an MLP (DenseMLP).

Dense connectivity for tabular data: the conv block becomes
BatchNorm-ReLU-Linear, channels become features, and a transition layer
shrinks the width with a Linear layer (there is no height or width to
pool).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .checks import (
    check_arch,
    check_positive_int,
    check_tensor,
    check_width,
)

__all__ = ["dense_linear_block", "DenseLinearBlock",
           "transition_linear_block", "DenseMLP", "dense_mlp"]


def dense_linear_block(input_features: int, num_features: int,
                       dropout: float = 0.0) -> nn.Sequential:
    """``conv_block`` for vectors: BN-ReLU-Linear (then Dropout if
    ``dropout`` > 0), ``input_features`` -> ``num_features``."""
    layers = [nn.BatchNorm1d(input_features), nn.ReLU(),
              nn.Linear(input_features, num_features)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class DenseLinearBlock(nn.Module):
    """``DenseBlock`` for vectors: each of ``num_layers`` BN-ReLU-Linear
    blocks sees the concatenation of the input and all earlier outputs and
    adds ``growth_rate`` features; ``out_features = input_features +
    num_layers * growth_rate``."""

    def __init__(self, num_layers: int, input_features: int,
                 growth_rate: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(*[
            dense_linear_block(input_features + i * growth_rate,
                               growth_rate, dropout)
            for i in range(num_layers)])
        self.out_features = input_features + num_layers * growth_rate

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            Y = blk(X)
            # Concatenate input and output of each block along the features
            X = torch.cat((X, Y), dim=1)
        return X


def transition_linear_block(input_features: int,
                            num_features: int) -> nn.Sequential:
    """``transition_block`` for vectors: BN-ReLU-Linear shrinks the width
    from ``input_features`` to ``num_features``."""
    return nn.Sequential(nn.BatchNorm1d(input_features), nn.ReLU(),
                         nn.Linear(input_features, num_features))


class DenseMLP(nn.Sequential):
    """A DenseNet for feature vectors: stem ``Linear(in_features,
    num_features)``, dense blocks ``dense_blk{i}`` with transitions
    ``tran_blk{i}`` (width * ``compression``) between them, and head
    ``last`` (BN-ReLU-[Dropout]-Linear to ``num_outputs``)."""

    def __init__(self, in_features: int, num_features: int = 64,
                 growth_rate: int = 32, arch: Sequence[int] = (2, 2),
                 dropout: float = 0.0, compression: float = 0.5,
                 num_outputs: int = 1) -> None:
        super().__init__()
        check_positive_int(in_features=in_features,
                            num_features=num_features,
                            growth_rate=growth_rate,
                            num_outputs=num_outputs)
        check_arch(arch, "layers per dense block")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not 0 < compression <= 1:
            raise ValueError(
                f"compression must be in (0, 1], got {compression!r}")
        self.in_features = in_features
        self.add_module("stem", nn.Linear(in_features, num_features))
        for i, num_layers in enumerate(arch):
            blk = DenseLinearBlock(num_layers, num_features, growth_rate,
                                   dropout)
            self.add_module(f"dense_blk{i + 1}", blk)
            num_features = blk.out_features
            if i != len(arch) - 1:
                shrunk = max(1, int(num_features * compression))
                self.add_module(f"tran_blk{i + 1}", transition_linear_block(
                    num_features, shrunk))
                num_features = shrunk
        head = [nn.BatchNorm1d(num_features), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(num_features, num_outputs))
        self.add_module("last", nn.Sequential(*head))
        self.num_features = num_features

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        check_tensor(X, name, f"(batch, {self.in_features})",
                      "one example")
        if not X.is_floating_point():
            raise TypeError(
                f"{name} expects floating-point features, got {X.dtype}; "
                f"convert with X.float() (one-hot columns included)")
        check_width(X, name, self.in_features, "input features",
                    f"build it with in_features={X.shape[1]} or preprocess "
                    f"the data the same way as for training")
        if self.training and X.shape[0] < 2:
            raise ValueError(
                f"{name} in training mode needs a batch of at least 2 rows "
                f"(BatchNorm1d), got {X.shape[0]}; call net.eval() to "
                f"predict single examples")
        return super().forward(X)


def dense_mlp(in_features: int, num_features: int = 64,
              growth_rate: int = 32, arch: Sequence[int] = (2, 2),
              dropout: float = 0.0, compression: float = 0.5,
              num_outputs: int = 1) -> DenseMLP:
    """A :class:`DenseMLP` (exercise 5: DenseNet ideas for an MLP)."""
    return DenseMLP(in_features, num_features=num_features,
                    growth_rate=growth_rate, arch=tuple(arch),
                    dropout=dropout, compression=compression,
                    num_outputs=num_outputs)
