"""fast.py: the fast paths compute what the plain model computes (outputs,
gradients, BatchNorm statistics), actually run where they should, and
step aside where a hook, another layer or the memory-efficient levels
need the plain path."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import d2l_densenet as dd
from d2l_densenet import fast
from d2l_densenet.fast import fast_paths


def _grads(out, inputs, G):
    return torch.autograd.grad(out, inputs, G)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("h,w,k,bias", [
    (2, 2, 3, True), (1, 1, 3, True), (1, 2, 3, False), (2, 1, 3, True),
    (2, 2, 5, True), (1, 1, 5, False), (3, 2, 3, True)])
def test_small_conv_is_the_convolution(h, w, k, bias, channels_last):
    """The dense-matrix form of a "same" convolution: output and the
    gradients of input, weight and bias, also where the kernel is
    larger than the image (cropped) and on non-square images."""
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    X = torch.randn(5, 7, h, w, generator=g).contiguous(
        memory_format=fmt).requires_grad_()
    W = torch.randn(6, 7, k, k, generator=g).requires_grad_()
    b = torch.randn(6, generator=g).requires_grad_() if bias else None
    Y = F.conv2d(X, W, b, padding=k // 2)
    Yf = fast.small_conv2d(X, W, b)
    torch.testing.assert_close(Yf, Y)
    assert Yf.is_contiguous(memory_format=fmt)
    G = torch.randn(Y.shape, generator=g)
    inputs = [X, W] + ([b] if bias else [])
    for a, e in zip(_grads(Yf, inputs, G), _grads(Y, inputs, G),
                    strict=True):
        torch.testing.assert_close(a, e)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_is_the_convolution(bias, channels_last):
    g = torch.Generator().manual_seed(1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    X = torch.randn(4, 9, 4, 3, generator=g).contiguous(
        memory_format=fmt).requires_grad_()
    W = torch.randn(5, 9, 1, 1, generator=g).requires_grad_()
    b = torch.randn(5, generator=g).requires_grad_() if bias else None
    Y, Yf = F.conv2d(X, W, b), fast.pointwise_conv2d(X, W, b)
    torch.testing.assert_close(Yf, Y)
    assert Yf.is_contiguous(memory_format=fmt)
    G = torch.randn(Y.shape, generator=g)
    inputs = [X, W] + ([b] if bias else [])
    for a, e in zip(_grads(Yf, inputs, G), _grads(Y, inputs, G),
                    strict=True):
        torch.testing.assert_close(a, e)


class _Spy:
    """Counts the calls of fast.small_conv2d and fast.pointwise_conv2d."""

    def __init__(self, monkeypatch):
        self.calls = {"small": 0, "pointwise": 0}
        for key, name in (("small", "small_conv2d"),
                          ("pointwise", "pointwise_conv2d")):
            real = getattr(fast, name)

            def spy(*args, real=real, key=key):
                self.calls[key] += 1
                return real(*args)
            monkeypatch.setattr(fast, name, spy)


def _step(net, X, y):
    loss = F.cross_entropy(net(X), y)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("channels_last", [True, False])
def test_densenet_fast_paths_train_like_the_plain_model(monkeypatch,
                                                        channels_last):
    """The chapter's DenseNet at the CPU recipe's 32x32: one training
    step with and without the fast paths gives the same loss and
    BatchNorm statistics, then the same eval output; every parameter's
    gradient is as close to float64's as the plain float32 one (a few
    are ill-conditioned: the stem's BatchNorm scale differs from float64
    by 5% in plain float32 too; the convolution biases before a
    BatchNorm have gradient 0, rounding noise in both); and the fast
    paths did run: 8 small convolutions (blocks 3 and 4, 2x2 and 1x1
    maps) and the 3 transitions' 1x1 convolutions (at 4x4, 2x2, 1x1
    after pooling first)."""
    spy = _Spy(monkeypatch)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    plain = dd.densenet().to(memory_format=fmt)
    quick, exact = copy.deepcopy(plain), copy.deepcopy(plain).double()
    X = torch.rand(6, 1, 32, 32).contiguous(memory_format=fmt)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    loss = _step(plain, X, y)
    _step(exact, X.double(), y)
    with fast_paths():
        loss_fast = _step(quick, X, y)
    assert spy.calls == {"small": 8, "pointwise": 3}
    torch.testing.assert_close(loss_fast, loss)
    scale = max(float(p.grad.norm()) for p in exact.parameters())
    for (name, p), q, r in zip(plain.named_parameters(), quick.parameters(),
                               exact.parameters(), strict=True):
        error = float((q.grad.double() - r.grad).norm())
        plain_error = float((p.grad.double() - r.grad).norm())
        assert error <= 3 * plain_error + 1e-6 * scale, (
            name, error, plain_error)
    for (name, b), c in zip(plain.named_buffers(), quick.buffers(),
                            strict=True):
        torch.testing.assert_close(c, b, msg=name)
    plain.eval()
    quick.eval()
    with torch.no_grad():
        expected = plain(X)
        with fast_paths():
            torch.testing.assert_close(quick(X), expected)


def test_fast_paths_are_off_outside_the_context(monkeypatch):
    spy = _Spy(monkeypatch)
    net = dd.densenet()
    X = torch.rand(2, 1, 32, 32)
    net(X)
    with fast_paths():
        assert fast.fast_paths_enabled()
        with fast_paths(False):
            net(X)
        assert fast.fast_paths_enabled()
    assert not fast.fast_paths_enabled()
    assert spy.calls == {"small": 0, "pointwise": 0}


def test_a_hook_sees_the_plain_layer(monkeypatch):
    """A forward hook on one conv: it sees that conv's real input (the
    2x2 map of dense block 3) and only that dense layer takes the plain
    path; the other 7 small convolutions stay fast."""
    spy = _Spy(monkeypatch)
    net = dd.densenet()
    seen = []
    net.dense_blk3.net[0][2].register_forward_hook(
        lambda m, args, out: seen.append((args[0].shape, out.shape)))
    with fast_paths():
        net(torch.rand(2, 1, 32, 32))
    assert seen == [((2, 112, 2, 2), (2, 32, 2, 2))]
    assert spy.calls["small"] == 7


def test_global_hooks_and_flop_counting_see_the_plain_model(monkeypatch):
    """FlopCounterMode (global module hooks) counts the plain model's
    FLOPs inside the fast paths, and no fast kernel runs."""
    from torch.utils.flop_counter import FlopCounterMode
    spy = _Spy(monkeypatch)
    net = dd.densenet()
    X = torch.rand(2, 1, 32, 32)
    counts = []
    for on in (False, True):
        with fast_paths(on), FlopCounterMode(display=False) as counter:
            net(X)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1]
    assert spy.calls == {"small": 0, "pointwise": 0}


def test_max_pool_transitions_and_memory_efficient_stay_plain(monkeypatch):
    """Max pooling does not commute with the 1x1 conv: those transitions
    run as built (the dense blocks stay fast); memory-efficient models
    take the plain path everywhere."""
    spy = _Spy(monkeypatch)
    X = torch.rand(2, 1, 32, 32)
    with fast_paths():
        dd.densenet(transition_pool="max")(X)
        assert spy.calls == {"small": 8, "pointwise": 0}
        dd.densenet(memory_efficient=True)(X).sum().backward()
    assert spy.calls == {"small": 8, "pointwise": 0}


def test_a_changed_layer_runs_as_built(monkeypatch):
    """A dense layer whose BatchNorm a student replaced by Identity runs
    its own modules: no ReLU in place on the block's input."""
    spy = _Spy(monkeypatch)
    blk = dd.DenseBlock(2, 3, 4)
    blk.net[0][0] = nn.Identity()
    X = torch.randn(2, 3, 1, 1)
    before = X.clone()
    with fast_paths():
        Y = blk(X)
    assert torch.equal(X, before)  # not changed in place
    assert torch.equal(Y[:, :3], before)
    assert spy.calls["small"] == 1  # only the unchanged second layer


def test_train_ch6_trains_inside_the_fast_paths(monkeypatch):
    """train_ch6's default: the fast paths on while it trains and tests,
    off again afterwards; fast=False leaves them off."""
    from d2l_densenet import train
    seen = []
    real = train._correct_and_total

    def spy(*args):
        seen.append(fast.fast_paths_enabled())
        return real(*args)
    monkeypatch.setattr(train, "_correct_and_total", spy)
    X = torch.rand(8, 1, 32, 32)
    y = torch.arange(8) % 10
    loader = [(X, y)] * 5
    for flag in (True, False):
        net = dd.densenet(arch=(1, 1), growth_rate=4, num_channels=4)
        dd.train_ch6(net, loader, loader, 1, 0.01, "cpu", seed=0,
                     progress="none", fast=flag)
        assert seen[-1] is flag
        assert not fast.fast_paths_enabled()
