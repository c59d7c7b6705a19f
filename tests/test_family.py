"""Exercise 4: the paper's DenseNet-BC family (Huang et al. 2017, Table 1)
against torchvision: parameter counts, state-dict equivalence, pretrained
loading (offline, through the same code path as the download), the
memory-efficient variant, input errors and torch.compile."""
import copy
import re

import pytest
import torch
import torchvision
from torch import nn

from d2l_densenet import (
    DENSENET_BC_CONFIGS,
    WEIGHT_URLS,
    DenseBlockBC,
    DenseLayerBC,
    DenseNetBC,
    TransitionBC,
    count_parameters,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    densenet264,
    load_weights,
    remap_legacy_keys,
    saved_tensor_bytes,
)

BUILDERS = {"densenet121": densenet121, "densenet161": densenet161,
            "densenet169": densenet169, "densenet201": densenet201,
            "densenet264": densenet264}
COUNTS = {"densenet121": 7_978_856, "densenet161": 28_681_000,
          "densenet169": 14_149_480, "densenet201": 20_013_928,
          "densenet264": 33_337_704}


def small(**kwargs):
    """A tiny DenseNet-BC (same structure, few channels) for slow paths."""
    args = dict(growth_rate=4, block_config=(2, 2), num_init_features=8,
                num_classes=5)
    args.update(kwargs)
    return DenseNetBC(**args)


def randomize_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so loading them matters."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g)
                                + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g)
                                + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return net


def to_legacy(state_dict):
    """What torchvision's published .pth files contain: the old key format
    (``denselayer1.norm1`` -> ``denselayer1.norm.1``) and no BatchNorm
    ``num_batches_tracked`` (they predate PyTorch 0.4)."""
    return {re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.",
                   k): v for k, v in state_dict.items()
            if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def tv121():
    torch.manual_seed(0)
    with torch.no_grad():
        return randomize_bn(torchvision.models.densenet121(weights=None)
                            ).eval()


@pytest.fixture(scope="module")
def legacy_file(tv121, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "densenet121-legacy.pth"
    torch.save(to_legacy(tv121.state_dict()), path)
    return path


@pytest.fixture(scope="module")
def X32():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator()
                       .manual_seed(1))


@pytest.fixture(scope="module")
def tv121_out(tv121, X32):
    with torch.no_grad():
        return tv121(X32)


def same_weights(net, reference, skip=()):
    ref = reference.state_dict()
    for k, v in net.state_dict().items():
        if not k.startswith(skip) and not k.endswith("num_batches_tracked"):
            assert torch.equal(v, ref[k]), k


# --- architecture -----------------------------------------------------------

def torchvision_densenet(name):
    """torchvision's build of ``name`` from Table 1's numbers written
    here (DenseNet-264 has no torchvision builder, its class does)."""
    table1 = {"densenet121": (32, (6, 12, 24, 16), 64),
              "densenet161": (48, (6, 12, 36, 24), 96),
              "densenet169": (32, (6, 12, 32, 32), 64),
              "densenet201": (32, (6, 12, 48, 32), 64),
              "densenet264": (32, (6, 12, 64, 48), 64)}
    return torchvision.models.DenseNet(*table1[name])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_exact_parameter_counts(name):
    """Ours, torchvision's (its DenseNet class with Table 1's numbers)
    and the count in the docstrings agree."""
    with torch.device("meta"):   # no memory, no init: counts only
        net = BUILDERS[name]()
        tv = torchvision_densenet(name)
    assert count_parameters(net) == count_parameters(tv) == COUNTS[name]
    assert f"{COUNTS[name]:,} parameters" in BUILDERS[name].__doc__


def test_torchvision_builders_agree_with_its_class():
    """torchvision's own densenet121..201 builders count what its class
    does with Table 1's numbers: the reference above is torchvision's."""
    for name in ("densenet121", "densenet161", "densenet169",
                 "densenet201"):
        with torch.device("meta"):
            built = getattr(torchvision.models, name)(weights=None)
            table = torchvision_densenet(name)
        assert count_parameters(built) == count_parameters(table), name


def config_of(net: nn.Module) -> tuple:
    """(growth rate, layers per dense block, stem width) read off a built
    model's modules (torchvision's names)."""
    blocks = [m for name, m in net.features.named_children()
              if name.startswith("denseblock")]
    return (blocks[0].denselayer1.conv2.out_channels,
            tuple(len(b) for b in blocks),
            net.features.conv0.out_channels)


@pytest.mark.parametrize("name", ["densenet121", "densenet161",
                                  "densenet169", "densenet201"])
def test_table1_configs_match_torchvision(name):
    """Growth rate, layers per block and stem width of Table 1, as
    torchvision builds them."""
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)(weights=None)
        ours = BUILDERS[name]()
    assert DENSENET_BC_CONFIGS[name] == config_of(tv) == config_of(ours)


@pytest.mark.parametrize("name", ["densenet121", "densenet161",
                                  "densenet169", "densenet201"])
def test_same_state_dict_and_outputs_as_torchvision(name, X32):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        randomize_bn(tv)
    with torch.device("meta"):      # skip our init: weights come from tv
        net = BUILDERS[name]()
    assert list(net.state_dict()) == list(tv.state_dict())
    net.load_state_dict(tv.state_dict(), strict=True, assign=True)
    tv.eval(), net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X32), tv(X32), rtol=0, atol=0)


def test_module_names_are_torchvisions():
    net = small(block_config=(2, 2, 2))
    assert [n for n, _ in net.named_children()] == ["features",
                                                    "classifier"]
    assert [n for n, _ in net.features.named_children()] == [
        "conv0", "norm0", "relu0", "pool0", "denseblock1", "transition1",
        "denseblock2", "transition2", "denseblock3", "norm5"]
    layer = net.features.denseblock1.denselayer2
    assert [n for n, _ in layer.named_children()] == [
        "norm1", "relu1", "conv1", "norm2", "relu2", "conv2"]
    assert layer.conv1.bias is None and layer.conv2.bias is None
    assert [n for n, _ in net.features.transition1.named_children()] == [
        "norm", "relu", "conv", "pool"]


def test_blocks():
    layer = DenseLayerBC(6, growth_rate=4, bn_size=4)
    X = torch.randn(2, 6, 5, 5)
    assert layer.conv1.out_channels == 16
    assert layer(X).shape == (2, 4, 5, 5)
    # a list of earlier feature maps is concatenated first
    torch.testing.assert_close(layer([X[:, :2], X[:, 2:]]), layer(X))
    blk = DenseBlockBC(3, 6, growth_rate=4)
    Y = blk(X)
    assert Y.shape == (2, 6 + 3 * 4, 5, 5) and blk.out_channels == 18
    assert torch.equal(Y[:, :6], X)   # the block keeps its input
    trans = TransitionBC(18)
    assert trans.out_channels == 9
    assert trans(Y).shape == (2, 9, 2, 2)
    with pytest.raises(ValueError, match="drop_rate"):
        DenseLayerBC(6, 4, drop_rate=1.5)
    with pytest.raises(ValueError, match="block_config"):
        DenseNetBC(block_config=())


def test_dropout_only_while_training():
    net = small(drop_rate=0.5)
    X = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    assert not torch.equal(net(X), net(X))
    net.eval()
    assert torch.equal(net(X), net(X))


# --- pretrained weights (offline: same code path as the download) -----------

def test_remap_legacy_keys():
    sd = {"features.denseblock1.denselayer1.norm.1.weight": 1,
          "features.denseblock1.denselayer12.conv.2.weight": 2,
          "features.transition1.norm.weight": 3,
          "features.denseblock2.denselayer3.norm.2.num_batches_tracked": 4}
    assert list(remap_legacy_keys(sd)) == [
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer12.conv2.weight",
        "features.transition1.norm.weight",
        "features.denseblock2.denselayer3.norm2.num_batches_tracked"]
    wrapped = remap_legacy_keys({"module." + k: v for k, v in sd.items()})
    assert list(wrapped) == list(remap_legacy_keys(sd))


def test_legacy_file_loads_through_load_weights(legacy_file, X32,
                                                tv121_out):
    legacy = torch.load(legacy_file, weights_only=True)
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    net = load_weights(densenet121(), legacy_file).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(X32), tv121_out, rtol=0, atol=0)


def test_builder_downloads_with_hash_check(monkeypatch, legacy_file,
                                           tv121):
    """weights="imagenet" goes through torch.hub with check_hash and
    weights_only; the download is replaced by the local legacy file."""
    calls = []

    def fake_download(url, **kwargs):
        calls.append((url, kwargs))
        return torch.load(legacy_file, weights_only=True)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        fake_download)
    enum = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1
    for net in (densenet121(weights="imagenet"),
                densenet121(pretrained=True), densenet121(weights=enum),
                densenet121(weights="DEFAULT")):
        same_weights(net, tv121)
    assert [url for url, _ in calls] == [enum.url] * 4
    assert all(kw["check_hash"] and kw["weights_only"] for _, kw in calls)
    # check_hash needs torch hub's "<name>-<sha256 prefix>.<ext>" form
    assert re.search(r"-[0-9a-f]{8,}\.pth$", WEIGHT_URLS["densenet121"])


def test_new_num_classes_keeps_features_and_warns(tv121, legacy_file):
    net = densenet121(num_classes=10)
    with pytest.warns(UserWarning, match="classifier is NOT loaded"):
        load_weights(net, legacy_file)
    same_weights(net, tv121, skip="classifier")
    assert net.classifier.weight.shape == (10, 1024)


def test_gray_stem_sums_rgb_filters_and_warns(tv121, legacy_file):
    net = densenet121(in_channels=1)
    with pytest.warns(UserWarning, match="RGB filters are summed"):
        load_weights(net, legacy_file)
    same_weights(net, tv121, skip="features.conv0")
    gray = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            net.features.conv0(gray),
            tv121.features.conv0(gray.repeat(1, 3, 1, 1)))


def test_clear_errors_for_weights_that_do_not_fit(tv121, legacy_file):
    with pytest.raises(ValueError, match="in_channels=1 \\(gray\\) only"):
        load_weights(densenet121(in_channels=2), legacy_file)
    with pytest.raises(ValueError, match="do not fit this DenseNetBC"):
        load_weights(small(), legacy_file)
    with pytest.raises(ValueError, match="no published ImageNet weights"):
        densenet264(weights="imagenet")
    with pytest.raises(ValueError, match="weights must be None, 'imagenet'"):
        densenet121(weights="cifar")
    with pytest.raises(ValueError, match="DenseNet121_Weights"):
        densenet121(
            weights=torchvision.models.DenseNet169_Weights.IMAGENET1K_V1)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(small(), "/nonexistent/densenet.pth")
    with pytest.raises(TypeError, match="URL, a file path or a state dict"):
        load_weights(small(), 42)


def test_no_silent_download_without_network(monkeypatch, tmp_path):
    """weights="imagenet" with an empty torch hub cache really tries to
    download, and the conftest's network block stops it with its own
    message: nothing half-written is left in the cache."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    with pytest.raises(OSError, match="tests must not use the network"):
        densenet121(weights="imagenet", progress=False)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# --- input checks -----------------------------------------------------------

def test_min_input_size_matches_torchvision():
    meta = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.meta
    assert densenet121().min_input_size() == meta["min_size"][0] == 29


def test_clear_input_errors():
    net = small(block_config=(2, 2, 2, 2))   # four blocks: >= 29x29
    with pytest.raises(ValueError, match="needs at least 29x29"):
        net(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="built for 3 input channel"):
        net(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="4-D tensor"):
        net(torch.randn(3, 32, 32))
    assert small(block_config=(2, 2, 2, 2), in_channels=1)(
        torch.randn(2, 1, 29, 29)).shape == (2, 5)


# --- memory-efficient variant -----------------------------------------------

@pytest.fixture(scope="module")
def pair():
    """A standard and a memory-efficient copy of one DenseNet-BC (four
    blocks, narrower than DenseNet-121 to keep the tests fast)."""
    torch.manual_seed(0)
    net = small(growth_rate=8, block_config=(3, 4, 6, 3),
                num_init_features=16, num_classes=10)
    eff = copy.deepcopy(net)
    eff.memory_efficient = True
    return net, eff


def test_memory_efficient_saves_less_for_backward(pair):
    X = torch.randn(2, 3, 32, 32)
    net, eff = pair
    assert saved_tensor_bytes(eff, X) < 0.85 * saved_tensor_bytes(net, X)


def test_memory_efficient_in_eval_and_no_grad(pair):
    net, eff = (copy.deepcopy(m) for m in pair)
    X = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(eff(X), net(X))       # train mode
        net.eval(), eff.eval()
        torch.testing.assert_close(eff(X), net(X))       # eval mode
    assert eff.memory_efficient and not net.memory_efficient


@pytest.mark.parametrize("level", [True, "layer"])
def test_torch_compile_memory_efficient_matches_eager(level):
    """torch.compile traces the checkpoints (aot_eager here to stay fast;
    the default inductor backend gives the same gradients)."""
    torch.manual_seed(0)
    ref = small()
    eff = copy.deepcopy(ref)
    eff.memory_efficient = level
    X = torch.randn(2, 3, 32, 32)
    ref(X).sum().backward()
    compiled = torch.compile(eff, backend="aot_eager")
    compiled(X).sum().backward()
    for (name, p), q in zip(ref.named_parameters(), eff.parameters(),
                            strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    for (name, a), b in zip(ref.state_dict().items(),
                            eff.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, msg=name)
    with pytest.raises(ValueError, match="built for 3 input channel"):
        compiled(torch.randn(2, 1, 32, 32))
