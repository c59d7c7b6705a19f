import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from d2l_densenet import ResNet, count_parameters, densenet, resnet18
from d2l_densenet.models import CheckedInput

MODELS = {
    "densenet": lambda: densenet(),
    "densenet_max": lambda: densenet(transition_pool="max"),
    "resnet18": lambda: resnet18(),
}


def conv(c_in, c_out, k):
    """Parameters of a k x k conv with bias (the book's default)."""
    return k * k * c_in * c_out + c_out


def bn(c):
    return 2 * c   # gamma and beta


def book_resnet18_count(in_channels=1, num_classes=10):
    """ResNet-18 of the book counted by hand: stem, four stages of two
    residual blocks (two 3x3 convs + two BNs; a 1x1 shortcut where a
    stage starts with a new width), head."""
    total = conv(in_channels, 64, 7) + bn(64)
    prev = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            c_in = prev if block == 0 else width
            total += conv(c_in, width, 3) + conv(width, width, 3)
            total += 2 * bn(width)
            if c_in != width:
                total += conv(c_in, width, 1)
        prev = width
    return total + 512 * num_classes + num_classes


def book_densenet_count(num_channels=64, growth_rate=32,
                        arch=(4, 4, 4, 4), num_classes=10):
    """The chapter's DenseNet counted by hand: BN + 3x3 conv per conv
    block, BN + 1x1 conv per transition, BN + linear head."""
    total = conv(1, num_channels, 7) + bn(num_channels)
    for i, num_convs in enumerate(arch):
        for _ in range(num_convs):
            total += bn(num_channels) + conv(num_channels, growth_rate, 3)
            num_channels += growth_rate
        if i != len(arch) - 1:
            total += bn(num_channels) + conv(num_channels,
                                             num_channels // 2, 1)
            num_channels //= 2
    return total + bn(num_channels) + num_channels * num_classes \
        + num_classes


def test_exact_parameter_counts():
    """The book's numbers, 758,226 (DenseNet) and 11,178,378 (ResNet-18),
    agree with a count by hand of the book's layers."""
    assert count_parameters(densenet()) == book_densenet_count() == 758_226
    assert count_parameters(densenet(transition_pool="max")) == 758_226
    assert count_parameters(resnet18()) == book_resnet18_count() \
        == 11_178_378
    assert count_parameters(resnet18(in_channels=3, num_classes=7)) \
        == book_resnet18_count(3, 7)


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


@pytest.mark.parametrize("arch,widths", [
    ((2, 2, 2), (64, 128, 256, 512)),
    ((2, 2, 2, 2, 2), (64, 128, 256, 512)),
    ((2, 2, 2, 2), (64, 128))])
def test_resnet_arch_and_widths_must_match(arch, widths):
    """One width per stage: a stage is never dropped (nor a width
    ignored) without a word."""
    with pytest.raises(ValueError) as err:
        ResNet(arch=arch, widths=widths)
    msg = str(err.value)
    assert f"got {len(arch)} in arch=" in msg
    assert f"and {len(widths)} in widths=" in msg


def test_resnet_other_depths_build_every_stage():
    net = ResNet(arch=(1, 1, 1), widths=(16, 32, 64))
    assert [n for n, _ in net.named_children()] == [
        "b1", "b2", "b3", "b4", "last"]
    assert net.num_features == 64
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("widths", [(), (64, 0), (64, 12.5), "ab"])
def test_bad_resnet_widths(widths):
    with pytest.raises(ValueError, match="widths must be a non-empty"):
        ResNet(arch=(2, 2), widths=widths)


@pytest.mark.parametrize("name", list(MODELS))
def test_input_size_is_worked_out_once(name, monkeypatch):
    """The module walk behind the size check runs on the first forward
    only, not on every one; replacing a child module redoes it."""
    walks = []
    walk = CheckedInput.downsampling

    def counted(self):
        walks.append(1)
        return walk(self)

    monkeypatch.setattr(CheckedInput, "downsampling", counted)
    net = MODELS[name]().eval()
    X = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        for _ in range(3):
            net(X)
    assert len(walks) == 1
    net.b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=3, padding=1),
                           nn.MaxPool2d(4))
    with torch.no_grad():
        net(X)
    assert len(walks) == 2


def test_replacing_a_layer_changes_the_minimum_size():
    net = densenet()
    assert net.min_input_size() == 29
    net.b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=3, padding=1))
    assert net.min_input_size() == 8   # the stem no longer shrinks
    net.b1[0] = nn.Conv2d(1, 64, kernel_size=3, stride=2, padding=1)
    assert net.min_input_size() == 8   # a nested change is not noticed
    net.forget_input_size()
    assert net.min_input_size() == 15


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


@pytest.mark.parametrize("build", [
    densenet, lambda: densenet(arch=(4, 4)), lambda: densenet(arch=(4,)),
    lambda: densenet(arch=(1, 1, 1, 1, 1)), resnet18])
def test_minimum_size_is_exactly_where_the_layers_start_to_run(build):
    """Shape arithmetic, checked against the layers themselves: with the
    input check bypassed, one pixel less fails inside PyTorch."""
    net = build().eval()
    need = net.min_input_size()
    with torch.no_grad():
        assert nn.Sequential.forward(
            net, torch.rand(1, 1, need, need)).shape == (1, 10)
        if need > 1:
            with pytest.raises(RuntimeError):
                nn.Sequential.forward(
                    net, torch.rand(1, 1, need - 1, need - 1))


def test_minimum_size_follows_the_architecture():
    """29 for the chapter's model; each extra transition doubles it."""
    sizes = [densenet(arch=(1,) * n).min_input_size() for n in range(1, 6)]
    assert sizes == [1, 5, 13, 29, 61]


def test_first_call_counts_only_real_work():
    """The size check runs nothing: a FLOP counter around the first
    training step counts what it counts around the second one."""
    net = densenet()
    X, y = torch.rand(2, 1, 32, 32), torch.tensor([0, 1])
    counts = []
    for _ in range(2):
        with FlopCounterMode(display=False) as flops:
            nn.functional.cross_entropy(net(X), y).backward()
        counts.append(flops.get_total_flops())
    assert counts[0] == counts[1] > 0


# --- the head's pooling: d2l 1.0 (avg) and the Chinese edition (max) -------

def book_densenet(head_pool):
    """The chapter's PyTorch code as printed: the Chinese edition and
    d2l-en 0.17 end with nn.AdaptiveMaxPool2d((1, 1)); d2l 1.0 averages."""
    def conv_block(input_channels, num_channels):
        return nn.Sequential(
            nn.BatchNorm2d(input_channels), nn.ReLU(),
            nn.Conv2d(input_channels, num_channels, kernel_size=3,
                      padding=1))

    class DenseBlock(nn.Module):
        def __init__(self, num_convs, input_channels, num_channels):
            super().__init__()
            layer = []
            for i in range(num_convs):
                layer.append(conv_block(
                    num_channels * i + input_channels, num_channels))
            self.net = nn.Sequential(*layer)

        def forward(self, X):
            for blk in self.net:
                Y = blk(X)
                X = torch.cat((X, Y), dim=1)
            return X

    def transition_block(input_channels, num_channels):
        return nn.Sequential(
            nn.BatchNorm2d(input_channels), nn.ReLU(),
            nn.Conv2d(input_channels, num_channels, kernel_size=1),
            nn.AvgPool2d(kernel_size=2, stride=2))

    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    pool = (nn.AdaptiveMaxPool2d((1, 1)) if head_pool == "max"
            else nn.AdaptiveAvgPool2d((1, 1)))
    return nn.Sequential(
        b1, *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(), pool,
        nn.Flatten(), nn.Linear(num_channels, 10))


@pytest.mark.parametrize("head_pool", ["avg", "max"])
def test_same_outputs_as_the_books_code(head_pool):
    torch.manual_seed(0)
    book = book_densenet(head_pool)
    net = densenet(head_pool=head_pool)
    ours, theirs = net.state_dict(), book.state_dict()
    assert [v.shape for v in ours.values()] == [
        v.shape for v in theirs.values()]
    net.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    X = torch.rand(4, 1, 96, 96)
    for mode in ("train", "eval"):
        getattr(book, mode)(), getattr(net, mode)()
        torch.testing.assert_close(net(X), book(X), rtol=0, atol=0)
    other = densenet(head_pool="avg" if head_pool == "max" else "max")
    other.load_state_dict(net.state_dict())
    other.eval()
    assert not torch.allclose(other(X), net(X))


@pytest.mark.parametrize("pool", ["mean", "AVG", None])
def test_bad_head_pool(pool):
    with pytest.raises(ValueError, match=r"head_pool must be one of "
                                         r"\['avg', 'max'\]"):
        densenet(head_pool=pool)


def test_non_square_too_small():
    with pytest.raises(ValueError, match="Input images are 96x20"):
        densenet()(torch.rand(1, 1, 96, 20))


def test_non_tensor_input():
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        densenet()([[1.0]])
