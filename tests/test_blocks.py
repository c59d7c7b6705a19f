import pytest
import torch
from torch import nn

from d2l_densenet import DenseBlock, conv_block, transition_block


def test_book_shape_checks():
    """The chapter's own checks: 3 -> 23 channels, then halve everything."""
    blk = DenseBlock(2, 3, 10)
    X = torch.randn(4, 3, 8, 8)
    Y = blk(X)
    assert Y.shape == (4, 23, 8, 8)
    assert blk.out_channels == 23
    assert transition_block(23, 10)(Y).shape == (4, 10, 4, 4)


def test_dense_block_input_channels_grow():
    blk = DenseBlock(3, 5, 7)
    seen = [seq[0].num_features for seq in blk.net]
    assert seen == [5, 12, 19]
    assert blk.out_channels == 5 + 3 * 7


def test_dense_block_keeps_its_input():
    """Concatenation: the first channels of the output are the input."""
    blk = DenseBlock(2, 3, 4)
    X = torch.randn(2, 3, 5, 5)
    assert torch.equal(blk(X)[:, :3], X)


def test_conv_block_layers():
    blk = conv_block(3, 8)
    assert [type(m) for m in blk] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    conv = blk[2]
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    assert blk(torch.randn(2, 3, 6, 6)).shape == (2, 8, 6, 6)


@pytest.mark.parametrize("pool,cls", [("avg", nn.AvgPool2d),
                                      ("max", nn.MaxPool2d)])
def test_transition_pool_choice(pool, cls):
    blk = transition_block(8, 4, pool=pool)
    assert isinstance(blk[-1], cls)
    assert blk[2].kernel_size == (1, 1)
    assert blk(torch.randn(2, 8, 6, 6)).shape == (2, 4, 3, 3)


def test_transition_max_differs_from_avg():
    torch.manual_seed(0)
    avg = transition_block(4, 4, pool="avg")
    mx = transition_block(4, 4, pool="max")
    mx.load_state_dict(avg.state_dict())
    X = torch.randn(2, 4, 6, 6)
    assert not torch.allclose(avg(X), mx(X))


@pytest.mark.parametrize("pool", ["mean", "AVG", None, "l2"])
def test_transition_bad_pool(pool):
    with pytest.raises(ValueError, match=r"pool must be one of \['avg', "
                                         r"'max'\], got"):
        transition_block(8, 4, pool=pool)


@pytest.mark.parametrize("args", [(0, 3, 10), (2, -1, 10), (2, 3, 1.5)])
def test_dense_block_bad_sizes(args):
    with pytest.raises(ValueError, match="must be a positive int"):
        DenseBlock(*args)


def test_memory_efficient_dense_block_same_values_and_gradients():
    torch.manual_seed(0)
    plain = DenseBlock(3, 4, 5)
    ckpt = DenseBlock(3, 4, 5, memory_efficient=True)
    ckpt.load_state_dict(plain.state_dict())
    X1 = torch.randn(2, 4, 6, 6, requires_grad=True)
    X2 = X1.detach().clone().requires_grad_()
    Y1, Y2 = plain(X1), ckpt(X2)
    assert torch.allclose(Y1, Y2, atol=1e-6)
    Y1.square().sum().backward()
    Y2.square().sum().backward()
    assert torch.allclose(X1.grad, X2.grad, atol=1e-5)
    for (n, p1), p2 in zip(plain.named_parameters(), ckpt.parameters(),
                           strict=True):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-4), n
    with torch.no_grad():
        assert torch.equal(plain(X1), ckpt(X1))


def test_memory_efficient_counts_each_batch_once_in_batchnorm():
    """Recomputing in backward must not update the running statistics a
    second time: after one training step both blocks agree."""
    torch.manual_seed(0)
    plain = DenseBlock(2, 3, 4)
    ckpt = DenseBlock(2, 3, 4, memory_efficient=True)
    ckpt.load_state_dict(plain.state_dict())
    X = torch.randn(4, 3, 5, 5, requires_grad=True)
    plain(X).sum().backward()
    ckpt(X).sum().backward()
    for (name, b1), b2 in zip(plain.named_buffers(), ckpt.buffers(),
                              strict=True):
        assert torch.equal(b1, b2), name
    assert int(ckpt.net[0][0].num_batches_tracked) == 1
