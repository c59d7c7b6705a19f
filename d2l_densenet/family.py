"""The paper's DenseNet-BC family (exercise 4): DenseNet-121/161/169/
201/264 (Huang et al. 2017, Table 1), with torchvision's module names and
init, so torchvision's ImageNet weights load with ``strict=True``.

Module names are torchvision's (``features.denseblock1.denselayer1.norm1``,
``transition1.conv``, ``classifier``); the weight URLs come from
torchvision's weights API (``DenseNet121_Weights.IMAGENET1K_V1``).
"""
from __future__ import annotations

import functools
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .checks import check_arch, check_positive_int
from .memory_efficient import (
    MemoryEfficient,
    checkpoint_batchnorm_once,
    checkpoint_level,
    forward_stages,
    memory_level,
)
from .messages import text
from .models import CheckedInput

# WEIGHTS and WEIGHT_URLS: made on first use (the module's __getattr__).
__all__ = ["DenseLayerBC", "DenseBlockBC", "TransitionBC", "DenseNetBC",
           "DENSENET_BC_CONFIGS", "load_weights",
           "WEIGHTS", "WEIGHT_URLS",  # noqa: F822
           "remap_legacy_keys", "densenet121", "densenet161", "densenet169",
           "densenet201", "densenet264"]


class DenseLayerBC(nn.Module):
    """One DenseNet-BC layer: BN-ReLU-1x1 conv (the bottleneck, to
    ``bn_size * growth_rate`` channels), then BN-ReLU-3x3 conv to
    ``growth_rate`` channels; convs without bias, as in the reference
    code and torchvision.

    ``forward`` takes a tensor or the list of all earlier feature maps
    (concatenated on channels inside the bottleneck). With
    ``memory_efficient=True`` (= "bottleneck") the concatenate-BN-ReLU-1x1
    conv part is recomputed during backward (``torch.utils.checkpoint``)
    instead of being stored; that saves the quadratic memory of the
    concatenations. "selective" keeps only the two conv outputs, "layer"
    only the layer's output (see :data:`MEMORY_EFFICIENT_LEVELS`).
    ``drop_rate > 0`` adds dropout after the 3x3 conv while training.
    """

    def __init__(self, input_channels: int, growth_rate: int,
                 bn_size: int = 4, drop_rate: float = 0.0,
                 memory_efficient=False) -> None:
        super().__init__()
        check_positive_int(input_channels=input_channels,
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
        self.memory_efficient = memory_level(memory_efficient)

    def bottleneck(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate -> BN -> ReLU -> 1x1 conv."""
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def checkpointed_bottleneck(self, inputs: list[torch.Tensor]
                                ) -> torch.Tensor:
        """``bottleneck`` whose inputs and outputs are not kept for
        backward: it is run again when the gradient is needed."""
        return checkpoint_batchnorm_once(
            lambda *features: self.bottleneck(list(features)), self.norm1,
            *inputs)

    def whole(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The whole layer up to dropout: bottleneck, BN, ReLU, 3x3 conv."""
        return self.conv2(self.relu2(self.norm2(
            self.bottleneck(list(inputs)))))

    def forward(self, inputs: torch.Tensor | list[torch.Tensor]
                ) -> torch.Tensor:
        prev = [inputs] if isinstance(inputs, torch.Tensor) else inputs
        level = self.memory_efficient
        if level in ("selective", "layer"):
            out = checkpoint_level(self.whole, self, prev, level)
        elif level and torch.is_grad_enabled():
            out = self.conv2(self.relu2(self.norm2(
                self.checkpointed_bottleneck(prev))))
        else:
            out = self.whole(*prev)
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
                 memory_efficient=False) -> None:
        super().__init__()
        check_positive_int(num_layers=num_layers,
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
        return torch.cat(self.forward_list([X]), 1)

    def forward_list(self, features: list[torch.Tensor]
                     ) -> list[torch.Tensor]:
        """``features`` plus each layer's output, not concatenated."""
        features = list(features)
        for _, layer in self.items():
            features.append(layer(features))
        return features


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
        check_positive_int(input_channels=input_channels,
                            num_channels=num_channels)
        self.norm = nn.BatchNorm2d(input_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(input_channels, num_channels, kernel_size=1,
                              bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.out_channels = num_channels


#: The models torchvision publishes ImageNet weights for.
_PUBLISHED = ("densenet121", "densenet161", "densenet169", "densenet201")


@functools.cache
def _weights() -> dict:
    """``WEIGHTS``: torchvision's weights enums, built on first use
    (importing ``torchvision.models`` takes seconds)."""
    from torchvision import models

    return {name: getattr(models, name.replace("densenet", "DenseNet")
                          + "_Weights").IMAGENET1K_V1
            for name in _PUBLISHED}


@functools.cache
def _weight_urls() -> dict[str, str]:
    return {name: w.url for name, w in _weights().items()}


def __getattr__(name: str):
    """``WEIGHTS`` (torchvision's ImageNet weights enums, by model name)
    and ``WEIGHT_URLS`` (their URLs; the file names carry the SHA-256
    prefix that ``check_hash=True`` verifies), made on first use."""
    if name == "WEIGHTS":
        return _weights()
    if name == "WEIGHT_URLS":
        return _weight_urls()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Table 1 of the paper: (growth_rate, block_config, num_init_features).
DENSENET_BC_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
    "densenet264": (32, (6, 12, 64, 48), 64),
}

# Old checkpoints name a dense layer's modules ``norm.1``, ``conv.2``, ...;
# torchvision renames them with this pattern (``norm.1`` -> ``norm1``).
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var"
    r"|num_batches_tracked))$")


class DenseNetBC(CheckedInput, MemoryEfficient, nn.Module):
    """The paper's DenseNet-BC: ``features`` (``conv0``, ``norm0``,
    ``relu0``, ``pool0``, ``denseblock1``, ``transition1``, ...,
    ``denseblockN``, ``norm5``), then ReLU, global average pooling and
    ``classifier``, exactly torchvision's ``DenseNet`` layout and init.

    ``growth_rate`` is k, ``block_config`` the layers per dense block,
    ``num_init_features`` the stem's channels, ``bn_size * growth_rate``
    the bottleneck width, ``compression`` the transitions' theta.
    ``memory_efficient``: False, True (checkpoint every bottleneck, as
    torchvision; works with ``torch.compile``) or a name in
    :data:`MEMORY_EFFICIENT_LEVELS`; "selective" and "layer" also
    checkpoint the stem and the transitions, on the list of feature maps.
    """

    def __init__(self, growth_rate: int = 32,
                 block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4,
                 drop_rate: float = 0.0, num_classes: int = 1000,
                 in_channels: int = 3, memory_efficient=False,
                 compression: float = 0.5) -> None:
        super().__init__()
        memory_efficient = memory_level(memory_efficient)
        check_arch(block_config, "layers per dense block",
                    name="block_config")
        check_positive_int(growth_rate=growth_rate,
                            num_init_features=num_init_features,
                            num_classes=num_classes,
                            in_channels=in_channels)
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.block_config = tuple(block_config)
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features,
                                kernel_size=7, stride=2, padding=3,
                                bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(self.block_config):
            block = DenseBlockBC(num_layers, num_features, growth_rate,
                                 bn_size=bn_size, drop_rate=drop_rate,
                                 memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = block.out_channels
            if i != len(self.block_config) - 1:
                trans = TransitionBC(num_features, compression=compression)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features = trans.out_channels
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        # torchvision's ("official") init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        if self.checkpoints_stages():
            out = forward_stages(self.features, x, self.memory_efficient)
        else:
            out = self.features(x)
        out = F.relu(out, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)


def remap_legacy_keys(state_dict: Mapping[str, torch.Tensor]
                      ) -> OrderedDict[str, torch.Tensor]:
    """A copy of ``state_dict`` with old dense-layer keys renamed
    (``...denselayer1.norm.1.weight`` -> ``...denselayer1.norm1.weight``,
    torchvision's regex, also for ``num_batches_tracked``) and a
    ``module.`` prefix (``nn.DataParallel``) removed."""
    out = OrderedDict()
    keys = list(state_dict)
    strip = bool(keys) and all(k.startswith("module.") for k in keys)
    for key in keys:
        new = key[len("module."):] if strip else key
        m = _LEGACY_KEY.match(new)
        if m:
            new = m.group(1) + m.group(2)
        out[new] = state_dict[key]
    return out


def _read_state_dict(source, progress: bool):
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, str) and source.startswith(("http://",
                                                      "https://")):
        # The file name's hash prefix is checked; weights_only refuses
        # pickled code.
        return torch.hub.load_state_dict_from_url(
            source, map_location="cpu", progress=progress,
            check_hash=True, weights_only=True)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"no weights file at {os.fspath(source)!r} (give a URL, a "
                f"file path or a state dict)")
        return torch.load(source, map_location="cpu", weights_only=True)
    raise TypeError(f"source must be a URL, a file path or a state dict, "
                    f"got {type(source).__name__}")


def _adapt_head_and_stem(model: nn.Module, sd: dict) -> None:
    """Fit pretrained weights to a model with other ``num_classes`` (new
    classifier) or ``in_channels=1`` (stem summed over RGB), warning."""
    own = model.state_dict()
    w, mine = sd.get("classifier.weight"), own.get("classifier.weight")
    if (w is not None and mine is not None and w.dim() == 2
            and w.shape[1] == mine.shape[1] and w.shape[0] != mine.shape[0]):
        warnings.warn(text("family.new_classifier", theirs=w.shape[0],
                           ours=mine.shape[0]), UserWarning, stacklevel=3)
        sd["classifier.weight"] = mine
        sd["classifier.bias"] = own["classifier.bias"]
    w, mine = sd.get("features.conv0.weight"), own.get("features.conv0.weight")
    if (w is not None and mine is not None and w.dim() == 4
            and w.shape[1] != mine.shape[1]):
        if w.shape[1] == 3 and mine.shape[1] == 1:
            warnings.warn(text("family.summed_stem"), UserWarning,
                          stacklevel=3)
            sd["features.conv0.weight"] = w.sum(dim=1, keepdim=True)
        else:
            raise ValueError(
                f"The weights' stem (features.conv0) takes {w.shape[1]} "
                f"input channel(s) but the model has in_channels="
                f"{mine.shape[1]}; pretrained weights can be adapted to "
                f"in_channels=1 (gray) only. Build the model with "
                f"in_channels={w.shape[1]} or in_channels=1, or use "
                f"weights=None")


def load_weights(model: nn.Module, source, *, progress: bool = True,
                 adapt: bool = True) -> nn.Module:
    """Load weights into ``model`` (strict) and return it.

    ``source`` is a URL (downloaded once into torch hub's cache, hash
    checked, ``weights_only``), a local file saved with ``torch.save``, or
    a state dict. Legacy keys (``norm.1``) are renamed first. With
    ``adapt=True`` a different ``num_classes`` keeps the model's fresh
    classifier and ``in_channels=1`` sums the RGB stem filters, each with
    a warning; any other mismatch raises a ``ValueError`` that lists it.
    """
    sd = remap_legacy_keys(_read_state_dict(source, progress))
    if adapt:
        _adapt_head_and_stem(model, sd)
    own = model.state_dict()
    # Files saved before PyTorch 0.4 (torchvision's) have no BatchNorm
    # ``num_batches_tracked``; load_state_dict sets those to 0.
    missing = [k for k in own if k not in sd
               and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and hasattr(sd[k], "shape")
              and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def some(items):
            more = f", ... ({len(items)} in all)" if len(items) > 3 else ""
            return ", ".join(items[:3]) + more
        problems = [f"{name} keys: {some(items)}" for name, items in
                    (("missing", missing), ("unexpected", unexpected),
                     ("shape-mismatched", shapes)) if items]
        raise ValueError(
            f"The weights do not fit this {type(model).__name__}: "
            + "; ".join(problems) + ". Were they saved from another "
            "architecture (e.g. DenseNet-169 weights for a DenseNet-121)?")
    model.load_state_dict(sd, strict=True)
    return model


def _resolve_weights(name: str, weights, pretrained: bool):
    """None, or the torchvision weights enum that ``weights`` names:
    ``"imagenet"``, ``"DEFAULT"``, ``"IMAGENET1K_V1"`` or the enum itself
    (``torchvision.models.DenseNet121_Weights.IMAGENET1K_V1``)."""
    if pretrained:
        if weights is not None:
            raise ValueError(f"pretrained=True means weights='imagenet'; "
                             f"got weights={weights!r} as well")
        weights = "imagenet"
    if weights is None:
        return None
    if name not in _PUBLISHED:
        raise ValueError(
            f"There are no published ImageNet weights for {name} "
            f"(torchvision has them for {', '.join(_PUBLISHED)}); "
            f"use weights=None and train it")
    enum = _weights()[name]
    if weights in ("imagenet", "DEFAULT", "IMAGENET1K_V1", enum):
        return enum
    raise ValueError(
        f"weights must be None, 'imagenet', 'DEFAULT', 'IMAGENET1K_V1' or "
        f"{type(enum).__name__}.IMAGENET1K_V1 for {name}, got {weights!r}")


def _build_bc(name: str, num_classes: int, in_channels: int,
              memory_efficient, weights, pretrained: bool,
              progress: bool, **kwargs) -> DenseNetBC:
    enum = _resolve_weights(name, weights, pretrained)
    growth_rate, block_config, num_init_features = DENSENET_BC_CONFIGS[name]
    model = DenseNetBC(growth_rate=growth_rate, block_config=block_config,
                       num_init_features=num_init_features,
                       num_classes=num_classes, in_channels=in_channels,
                       memory_efficient=memory_efficient, **kwargs)
    if enum is not None:
        load_weights(model, enum.url, progress=progress)
    return model


def densenet121(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient=False, weights=None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-121 (k=32, blocks 6-12-24-16; 7,978,856 parameters).
    ``weights="imagenet"`` (or ``pretrained=True``) loads torchvision's
    ImageNet weights (see :func:`load_weights`)."""
    return _build_bc("densenet121", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet161(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient=False, weights=None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-161 (k=48, 96-channel stem, blocks 6-12-36-24;
    28,681,000 parameters)."""
    return _build_bc("densenet161", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet169(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient=False, weights=None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-169 (k=32, blocks 6-12-32-32; 14,149,480 parameters)."""
    return _build_bc("densenet169", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet201(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient=False, weights=None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-201 (k=32, blocks 6-12-48-32; 20,013,928 parameters)."""
    return _build_bc("densenet201", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet264(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient=False, weights=None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-264 (k=32, blocks 6-12-64-48; 33,337,704 parameters).
    No ImageNet weights are published: ``weights`` must stay None."""
    return _build_bc("densenet264", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)
