import pytest
import torch

from d2l_densenet import count_parameters, densenet, resnet18

MODELS = {
    "densenet": lambda: densenet(),
    "densenet_max": lambda: densenet(transition_pool="max"),
    "resnet18": lambda: resnet18(),
}


def test_exact_parameter_counts():
    """The book's numbers: 758,226 (DenseNet) and 11,178,378 (ResNet-18)."""
    assert count_parameters(densenet()) == 758_226
    assert count_parameters(densenet(transition_pool="max")) == 758_226
    assert count_parameters(resnet18()) == 11_178_378


def test_densenet_stage_names_and_shapes():
    """Layer-by-layer shapes at 96x96, as printed in the chapter."""
    net = densenet()
    names = [n for n, _ in net.named_children()]
    assert names == ["b1", "dense_blk1", "tran_blk1", "dense_blk2",
                     "tran_blk2", "dense_blk3", "tran_blk3", "dense_blk4",
                     "last"]
    X = torch.rand(1, 1, 96, 96)
    shapes = []
    for layer in net:
        X = layer(X)
        shapes.append(tuple(X.shape))
    assert shapes == [(1, 64, 24, 24), (1, 192, 24, 24), (1, 96, 12, 12),
                      (1, 224, 12, 12), (1, 112, 6, 6), (1, 240, 6, 6),
                      (1, 120, 3, 3), (1, 248, 3, 3), (1, 10)]


def test_resnet_stage_shapes():
    net = resnet18()
    assert [n for n, _ in net.named_children()] == [
        "b1", "b2", "b3", "b4", "b5", "last"]
    X = torch.rand(1, 1, 96, 96)
    widths = []
    for layer in net:
        X = layer(X)
        widths.append(X.shape[1])
    assert widths == [64, 64, 128, 256, 512, 10]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    net = MODELS[name]()
    X = torch.randn(4, 1, 32, 32)
    y = torch.randint(0, 10, (4,))
    out = net(X)
    assert out.shape == (4, 10)
    torch.nn.functional.cross_entropy(out, y).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert torch.isfinite(out).all()


def test_arguments_change_the_model():
    net = densenet(in_channels=3, num_classes=7, growth_rate=12,
                   arch=(2, 2))
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 7)
    # 64 + 2*12 = 88 -> 44 -> 44 + 2*12 = 68 features into the classifier
    assert net.last[-1].in_features == 68


@pytest.mark.parametrize("arch", [(), (4, 0), (4, -1), "44"])
def test_bad_arch(arch):
    with pytest.raises(ValueError, match="arch must be a non-empty"):
        densenet(arch=arch)


# --- clear errors for bad input ---------------------------------------------

@pytest.mark.parametrize("name", ["densenet", "resnet18"])
def test_wrong_channel_count(name):
    net = MODELS[name]()
    with pytest.raises(ValueError, match=r"built for 1 input channel\(s\) "
                                         r"but got 3 .*in_channels=3"):
        net(torch.rand(2, 3, 96, 96))


@pytest.mark.parametrize("shape", [(1, 96, 96), (96, 96), (2, 1, 1, 96, 96)])
def test_not_4d(shape):
    with pytest.raises(ValueError, match=r"expects a 4-D tensor .* got "
                                         rf"{len(shape)}-D shape"):
        densenet()(torch.rand(*shape))


def test_too_small_image_says_sizes_and_resize():
    net = densenet()
    with pytest.raises(ValueError) as err:
        net(torch.rand(2, 1, 28, 28))
    msg = str(err.value)
    assert "28x28" in msg and "at least 29x29" in msg and "resize=" in msg


def test_minimum_size_is_derived_from_architecture():
    """Not hard-coded: it changes with the number of down-sampling steps,
    and it is exactly the boundary where the network starts to run."""
    assert densenet().min_input_size() == 29
    assert densenet(arch=(4, 4)).min_input_size() == 5
    assert densenet(arch=(4,)).min_input_size() == 1
    assert densenet(arch=(1, 1, 1, 1, 1)).min_input_size() == 61
    net = densenet()
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 29, 29)).shape == (1, 10)


def test_non_square_too_small():
    with pytest.raises(ValueError, match="Input images are 96x20"):
        densenet()(torch.rand(1, 1, 96, 20))


def test_non_tensor_input():
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        densenet()([[1.0]])
