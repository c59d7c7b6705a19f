"""Memory-efficient levels (``MEMORY_EFFICIENT_LEVELS``) of the chapter's
DenseNet and the paper's DenseNet-BC: each gives the standard model's
outputs and gradients, counts each batch once in BatchNorm, runs under
``no_grad`` and in eval mode, and keeps less memory than the level
before it (a direction test on small models, not a timed one)."""
import copy

import pytest
import torch
from torch import nn

from d2l_densenet import (
    MEMORY_EFFICIENT_LEVELS,
    DenseBlock,
    DenseNetBC,
    densenet,
    peak_memory,
)
from d2l_densenet.memory_efficient import memory_level

LEVELS = MEMORY_EFFICIENT_LEVELS   # True is "bottleneck"


def chapter(arch=(3, 3), **kwargs):
    return densenet(in_channels=3, num_classes=5, num_channels=16,
                    growth_rate=8, arch=arch, **kwargs)


def bc(arch=(3, 4), **kwargs):
    return DenseNetBC(growth_rate=8, block_config=arch,
                      num_init_features=16, num_classes=5, **kwargs)


MODELS = {"chapter": chapter, "bc": bc}


def pair(model, level, **kwargs):
    """A standard model and a copy with the same weights at ``level``."""
    torch.manual_seed(0)
    net = MODELS[model](**kwargs)
    eff = copy.deepcopy(net)
    eff.memory_efficient = level
    return net, eff


def same_gradients(net, eff):
    for (name, p), q in zip(net.named_parameters(), eff.parameters(),
                            strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6,
                                   msg=name)


def same_state(net, eff):
    """Same parameters and buffers (BatchNorm's running statistics and
    num_batches_tracked)."""
    for (name, a), b in zip(net.state_dict().items(),
                            eff.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, msg=name)


def batchnorms(net):
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_name_is_accepted_and_read_back(level):
    """Each advertised name builds every model kind and reads back as
    itself (a name the models did not handle would raise or read back
    as another level)."""
    for build in (chapter, bc):
        assert build(memory_efficient=level).memory_efficient == level
    assert DenseBlock(2, 3, 4, memory_efficient=level).memory_efficient \
        == level
    assert memory_level(level) == level


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("level", LEVELS)
def test_same_outputs_gradients_and_batchnorm_counted_once(model, level):
    net, eff = pair(model, level)
    X = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    grads = []
    for m in (net, eff):
        X1 = X.clone().requires_grad_()
        out = m(X1)
        nn.functional.cross_entropy(out, y).backward()
        grads.append((out.detach(), X1.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4,
                               atol=1e-6)
    same_gradients(net, eff)
    # Running statistics as after one forward pass: the recomputation in
    # backward does not count the batch a second time.
    same_state(net, eff)
    assert [int(bn.num_batches_tracked) for bn in batchnorms(eff)] == [
        1] * len(batchnorms(eff))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("level", LEVELS)
def test_no_grad_and_eval(model, level):
    net, eff = pair(model, level)
    X = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(eff(X), net(X))       # train mode
    net.eval(), eff.eval()
    with torch.no_grad():
        torch.testing.assert_close(eff(X), net(X))
    eff(X).sum().backward()                              # eval, with grad
    net(X).sum().backward()
    same_gradients(net, eff)
    same_state(net, eff)


@pytest.mark.parametrize("level", MEMORY_EFFICIENT_LEVELS)
def test_dropout_masks_recomputed_alike(level):
    """Recomputation replays the random dropout masks of the forward."""
    net, eff = pair("bc", level, drop_rate=0.3)
    X = torch.randn(2, 3, 32, 32)
    for m in (net, eff):
        torch.manual_seed(1)
        m(X).square().sum().backward()
    same_gradients(net, eff)


@pytest.mark.parametrize("level", LEVELS)
def test_dense_block_alone(level):
    torch.manual_seed(0)
    plain = DenseBlock(3, 4, 5)
    eff = DenseBlock(3, 4, 5, memory_efficient=level)
    eff.load_state_dict(plain.state_dict())
    X = torch.randn(2, 4, 6, 6)
    Y1, Y2 = plain(X), eff(X)
    torch.testing.assert_close(Y2, Y1)
    Y1.square().sum().backward()
    Y2.square().sum().backward()
    same_gradients(plain, eff)
    same_state(plain, eff)


@pytest.mark.parametrize("model", MODELS)
def test_level_names_read_back(model):
    net = MODELS[model](memory_efficient=True)
    assert net.memory_efficient == "bottleneck"      # torchvision's True
    net.memory_efficient = "layer"
    assert net.memory_efficient == "layer"
    net.memory_efficient = False
    assert net.memory_efficient is False


@pytest.mark.parametrize("build", [
    lambda v: chapter(memory_efficient=v),
    lambda v: bc(memory_efficient=v),
    lambda v: DenseBlock(2, 3, 4, memory_efficient=v),
    lambda v: setattr(bc(), "memory_efficient", v),
    lambda v: setattr(chapter(), "memory_efficient", v)])
@pytest.mark.parametrize("value", ["Layer", None])
def test_unknown_level(build, value):
    with pytest.raises(ValueError, match=(
            r"memory_efficient must be False, True or one of "
            r"'bottleneck', 'selective', 'layer', got")):
        build(value)


@pytest.mark.parametrize("model", MODELS)
def test_peak_memory_falls_level_by_level(model):
    """Measured (``peak_memory``, the CPU allocator's trace): each level
    keeps less than the one before it."""
    torch.manual_seed(0)
    base = MODELS[model](arch=(6, 6))
    X = torch.randn(8, 3, 32, 32)
    y = torch.arange(8) % 5
    extra = []
    for level in [False, *MEMORY_EFFICIENT_LEVELS]:
        net = copy.deepcopy(base)
        net.memory_efficient = level
        extra.append(peak_memory(net, X, y).extra)
    assert all(b < 0.95 * a for a, b in zip(extra, extra[1:],
                                            strict=False)), extra
