"""feature_reuse: the paper's Figure 5 measure, checked on blocks whose
weights we set by hand."""
import math

import pytest
import torch
from torch import nn

from d2l_densenet import DenseBlock, DenseBlockBC, transition_block
from d2l_densenet.reuse import feature_reuse, source_channels


def set_by_source(weight: torch.Tensor, sizes, values) -> None:
    """Fill ``weight``'s input channels source by source: in each group
    even output channels get +v, odd ones -3v (an even number of output
    channels), so the group's mean absolute value is 2v."""
    assert weight.shape[0] % 2 == 0
    start = 0
    with torch.no_grad():
        for size, v in zip(sizes, values, strict=True):
            group = weight[:, start:start + size]
            group[0::2] = v
            group[1::2] = -3 * v
            start += size


def test_known_weights_give_the_known_matrix():
    blk = DenseBlock(2, 3, 4)                      # sources 3, 4, 4
    set_by_source(blk.net[0][2].weight, [3], [0.5])
    set_by_source(blk.net[1][2].weight, [3, 4], [1.0, 0.25])
    reader = nn.Linear(11, 4)
    set_by_source(reader.weight, [3, 4, 4], [0.1, 0.2, 0.4])
    got = feature_reuse(blk, reader)
    nan = math.nan
    want = torch.tensor([[1.0, 2.0, 0.2],
                         [nan, 0.5, 0.4],
                         [nan, nan, 0.8]], dtype=torch.float64)
    torch.testing.assert_close(got, want, equal_nan=True)
    # without a reader: the last column is gone, the shape stays (3, 2)
    torch.testing.assert_close(feature_reuse(blk), want[:, :2],
                               equal_nan=True)


def test_a_transition_block_reads_the_whole_block():
    blk = DenseBlock(3, 2, 5)
    assert source_channels(blk) == [2, 5, 5, 5]
    trans = transition_block(17, 8)
    set_by_source(trans[2].weight, [2, 5, 5, 5], [1.0, 2.0, 3.0, 4.0])
    got = feature_reuse(blk, trans)[:, -1]
    torch.testing.assert_close(got, torch.tensor([2.0, 4.0, 6.0, 8.0],
                                                 dtype=torch.float64))


def test_bottleneck_layers_use_their_first_conv():
    """DenseNet-BC: the 1x1 bottleneck reads the concatenation; the
    growth rate is the 3x3 conv's output."""
    blk = DenseBlockBC(2, 6, 3, bn_size=2)
    assert source_channels(blk) == [6, 3, 3]
    set_by_source(blk.denselayer2.conv1.weight, [6, 3], [1.0, 0.5])
    torch.testing.assert_close(
        feature_reuse(blk)[:2, 1],
        torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_untouched_weights_give_their_own_means():
    torch.manual_seed(0)
    blk = DenseBlock(2, 3, 4)
    w = blk.net[1][2].weight.detach()
    got = feature_reuse(blk)
    assert got[0, 1].item() == pytest.approx(w[:, :3].abs().mean().item())
    assert got[1, 1].item() == pytest.approx(w[:, 3:].abs().mean().item())


def test_a_reader_of_another_width_is_refused():
    with pytest.raises(ValueError, match="reader takes 10 input channels, "
                                         "but the dense block outputs 11"):
        feature_reuse(DenseBlock(2, 3, 4), nn.Linear(10, 2))
    with pytest.raises(ValueError, match="must be or contain a Conv2d"):
        feature_reuse(DenseBlock(2, 3, 4), nn.ReLU())


def test_a_plain_stack_is_not_a_dense_block():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    with pytest.raises(ValueError, match="layer 2 of the dense block reads "
                                         "4 channels"):
        feature_reuse(plain)
    with pytest.raises(ValueError, match="has no layers"):
        feature_reuse(nn.ReLU())
