"""Feature reuse in a trained dense block: the measure of Figure 5 of the
DenseNet paper (Huang et al., 2017, section 5, "Feature Reuse").

The paper's caption: "The color of pixel (s, l) encodes the average L1
norm (normalized by number of input feature-maps) of the weights
connecting convolutional layer s to l within a dense block." Layer
``l`` of a block reads the concatenation of the block's input (source
0) and the outputs of layers 1 .. l-1, so its first convolution's
input channels fall into one group per source; the measure is the mean
absolute weight over each group. The layer that reads the whole block
(the next transition layer's convolution, or the classifier after the
last block) gets one more column.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["source_channels", "feature_reuse"]


def _layers(block: nn.Module) -> list[nn.Module]:
    """The block's layers, in order: ``block.net``'s children (the
    chapter's ``DenseBlock``) or the block's own (``DenseBlockBC``)."""
    inner = getattr(block, "net", None)
    layers = list((inner if isinstance(inner, nn.Module) else block)
                  .children())
    if not layers:
        raise ValueError(f"{type(block).__name__} has no layers: pass a "
                         f"dense block (DenseBlock, DenseBlockBC)")
    return layers


def _convs(layer: nn.Module) -> list[nn.Conv2d]:
    convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"a layer of the dense block has no Conv2d: "
                         f"{type(layer).__name__}")
    return convs


def source_channels(block: nn.Module) -> list[int]:
    """Channels of each source a dense block concatenates: the block's
    input first, then each layer's output (the growth rate, read from
    the layer's last convolution). ``DenseBlock(2, 3, 10)`` gives
    ``[3, 10, 10]``."""
    layers = _layers(block)
    sources = [_convs(layers[0])[0].in_channels]
    for i, layer in enumerate(layers):
        first, last = _convs(layer)[0], _convs(layer)[-1]
        if first.in_channels != sum(sources):
            raise ValueError(
                f"layer {i + 1} of the dense block reads "
                f"{first.in_channels} channels, but the block's input and "
                f"the layers before it give {sum(sources)}: not a dense "
                f"block")
        sources.append(last.out_channels)
    return sources


def _weight(reader: nn.Module) -> torch.Tensor:
    """The weight of ``reader`` (a Conv2d or Linear, or the first one in
    a module such as a transition block), input channels on dim 1."""
    for m in [reader, *reader.modules()]:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            return m.weight
    raise ValueError(f"reader must be or contain a Conv2d or Linear, got "
                     f"{type(reader).__name__}")


def _group_means(weight: torch.Tensor, sizes: list[int]) -> list[float]:
    """Mean absolute weight over each group of input channels."""
    w = weight.detach().abs().double()
    groups = torch.split(w, sizes, dim=1)
    return [g.mean().item() for g in groups]


def feature_reuse(block: nn.Module, reader: nn.Module | None = None
                  ) -> torch.Tensor:
    """The paper's Figure 5 for one dense block, as a matrix.

    Row ``s`` is a source (0: the block's input, ``s``: layer ``s``'s
    output), column ``l - 1`` the target layer ``l`` (from 1); the entry
    is the mean absolute weight of layer ``l``'s first convolution on the
    input channels that came from source ``s`` (its L1 norm divided by
    the number of those weights). Sources a layer does not read (``s >=
    l``) are NaN. With ``reader`` (the next transition layer, or the
    classifier's ``nn.Linear`` after the last block) a last column gives
    its weights on every source. Returns float64 of shape
    ``(num_layers + 1, num_layers [+ 1])``; the values are not rescaled
    (divide each column by its maximum to compare layers, as a heat map
    with one colour scale does).
    """
    sources = source_channels(block)
    layers = _layers(block)
    cols = len(layers) + (reader is not None)
    out = torch.full((len(sources), cols), math.nan, dtype=torch.float64)
    for l, layer in enumerate(layers, start=1):
        weight = _convs(layer)[0].weight
        out[:l, l - 1] = torch.tensor(_group_means(weight, sources[:l]),
                                      dtype=torch.float64)
    if reader is not None:
        weight = _weight(reader)
        if weight.shape[1] != sum(sources):
            raise ValueError(
                f"reader takes {weight.shape[1]} input channels, but the "
                f"dense block outputs {sum(sources)}: pass the layer that "
                f"reads this block (its transition, or the classifier "
                f"after the last block)")
        out[:, -1] = torch.tensor(_group_means(weight, sources),
                                  dtype=torch.float64)
    return out
