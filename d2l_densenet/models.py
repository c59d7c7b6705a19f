"""The models: the chapter's DenseNet and the book's ResNet-18 (with input
checks), the paper's DenseNet-BC family (exercise 4) and DenseMLP
(exercise 5).

Module names follow d2l 1.0 (``b1``, ``dense_blk1``, ``tran_blk1``, ...,
``last``) so torchinfo summaries and per-stage tables read well and
checkpoints stay loadable.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import (
    DenseBlock,
    DenseBlockBC,
    DenseLayerBC,
    TransitionBC,
    _check_positive_int,
    transition_block,
)

__all__ = ["CheckedInput", "DenseNet", "Residual", "ResNet", "densenet",
           "resnet18"]


def _check_arch(arch, what: str, name: str = "arch") -> None:
    """``arch`` lists block sizes: a non-empty sequence of positive ints."""
    if not arch or any(isinstance(n, bool) or not isinstance(n, int)
                       or n < 1 for n in arch):
        raise ValueError(f"{name} must be a non-empty sequence of positive "
                         f"ints ({what}), got {arch!r}")


def _check_tensor(X, owner: str, layout: str, single: str) -> None:
    """``X`` must be a tensor with as many dimensions as ``layout`` (a
    string like "(batch, 1, height, width)") names."""
    ndim = layout.count(",") + 1
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor of shape {layout},"
                        f" got {type(X).__name__}")
    if X.dim() != ndim:
        raise ValueError(
            f"{owner} expects a {ndim}-D tensor {layout}, got {X.dim()}-D "
            f"shape {tuple(X.shape)}; for {single} use X.unsqueeze(0)")


class CheckedInput:
    """Mixin for models that check their input before running.

    A model sets ``in_channels`` and calls ``check_input(X)`` at the top of
    ``forward``. The smallest height/width the model accepts is derived
    from the architecture itself: the model is run on shape-only ("meta")
    tensors of growing size until no layer complains.
    """

    in_channels: int
    _min_size: int | None = None
    _probing: bool = False

    def min_input_size(self) -> int:
        """Smallest height (= width) that every layer of the model accepts."""
        if self._min_size is None:
            self._min_size = self._search_min_size()
        return self._min_size

    def _runs_at(self, size: int) -> bool:
        params = {name: torch.empty_like(t, device="meta")
                  for name, t in self.state_dict(keep_vars=True).items()}
        # Batch of 2: BatchNorm in training mode needs >1 value per channel.
        X = torch.empty(2, self.in_channels, size, size, device="meta")
        self._probing = True
        try:
            torch.func.functional_call(self, params, (X,), strict=False)
            return True
        except RuntimeError:
            return False
        finally:
            self._probing = False

    def _search_min_size(self, largest: int = 4096) -> int:
        if not self._runs_at(largest):
            raise RuntimeError(
                f"{type(self).__name__} does not run even on "
                f"{largest}x{largest} inputs")
        lo, hi = 1, largest  # invariant: runs at hi
        while lo < hi:
            mid = (lo + hi) // 2
            if self._runs_at(mid):
                hi = mid
            else:
                lo = mid + 1
        return hi

    def check_input(self, X: torch.Tensor) -> None:
        """Raise a clear error if ``X`` is not (batch, in_channels, H, W)
        with H and W large enough for the model's down-sampling."""
        if self._probing:
            return
        _check_tensor(X, type(self).__name__,
                      f"(batch, {self.in_channels}, height, width)",
                      "a single image")
        if X.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels} "
                f"input channel(s) but got {X.shape[1]} (input shape "
                f"{tuple(X.shape)}); build it with "
                f"in_channels={X.shape[1]} or convert the images")
        need = self.min_input_size()
        height, width = X.shape[-2:]
        if height < need or width < need:
            raise ValueError(
                f"Input images are {height}x{width}, but "
                f"{type(self).__name__} needs at least {need}x{need}: "
                f"its down-sampling layers shrink smaller images to "
                f"nothing. Resize the images, e.g. "
                f"load_data_fashion_mnist(batch_size, resize=96) as the "
                f"book does")


class DenseNet(CheckedInput, nn.Sequential):
    """The chapter's DenseNet: stem ``b1``, dense blocks ``dense_blk{i}``
    with transitions ``tran_blk{i}`` between them, and head ``last``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 num_channels: int = 64, growth_rate: int = 32,
                 arch: Sequence[int] = (4, 4, 4, 4),
                 transition_pool: str = "avg",
                 memory_efficient: bool = False) -> None:
        super().__init__()
        _check_arch(arch, "convs per dense block")
        self.in_channels = in_channels
        self.add_module("b1", nn.Sequential(
            nn.Conv2d(in_channels, num_channels, kernel_size=7, stride=2,
                      padding=3),
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        for i, num_convs in enumerate(arch):
            blk = DenseBlock(num_convs, num_channels, growth_rate,
                             memory_efficient=memory_efficient)
            self.add_module(f"dense_blk{i + 1}", blk)
            # The number of output channels of the previous dense block
            num_channels = blk.out_channels
            # A transition layer that halves the channels between blocks
            if i != len(arch) - 1:
                self.add_module(f"tran_blk{i + 1}", transition_block(
                    num_channels, num_channels // 2, pool=transition_pool))
                num_channels = num_channels // 2
        self.add_module("last", nn.Sequential(
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes)))
        self.num_features = num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        return super().forward(X)


def densenet(in_channels: int = 1, num_classes: int = 10,
             growth_rate: int = 32, arch: Sequence[int] = (4, 4, 4, 4),
             transition_pool: str = "avg", num_channels: int = 64,
             memory_efficient: bool = False) -> DenseNet:
    """The chapter's DenseNet (758,226 parameters at the defaults).

    ``memory_efficient=True`` checkpoints every conv block in the dense
    blocks (see :class:`~d2l_densenet.blocks.DenseBlock`)."""
    return DenseNet(in_channels=in_channels, num_classes=num_classes,
                    num_channels=num_channels, growth_rate=growth_rate,
                    arch=tuple(arch), transition_pool=transition_pool,
                    memory_efficient=memory_efficient)


class Residual(nn.Module):
    """The book's residual block: two 3x3 convs, optional 1x1 shortcut."""

    def __init__(self, input_channels: int, num_channels: int,
                 use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3,
                               padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3,
                               padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels,
                                   kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels: int, num_channels: int, num_residuals: int,
                 first_block: bool = False) -> nn.Sequential:
    """A ResNet stage: the first block halves H/W unless ``first_block``."""
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels,
                                use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return nn.Sequential(*blk)


class ResNet(CheckedInput, nn.Sequential):
    """The book's ResNet: stem ``b1``, stages ``b2``..``b5``, head ``last``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 arch: Sequence[int] = (2, 2, 2, 2),
                 widths: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.add_module("b1", nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2,
                      padding=3),
            nn.BatchNorm2d(widths[0]), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)))
        prev = widths[0]
        for i, (num_residuals, width) in enumerate(zip(arch, widths)):
            self.add_module(f"b{i + 2}", resnet_block(
                prev, width, num_residuals, first_block=(i == 0)))
            prev = width
        self.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(prev, num_classes)))
        self.num_features = prev

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.check_input(X)
        return super().forward(X)


def resnet18(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """The book's ResNet-18 (11,178,378 parameters for 1 channel, 10
    classes)."""
    return ResNet(in_channels=in_channels, num_classes=num_classes)


# --- The paper's DenseNet-BC family (exercise 4) ----------------------------
# DenseNet-BC (Huang et al. 2017, Table 1) with torchvision's module names,
# so torchvision's ImageNet weights load with strict=True.
__all__ += ["DenseNetBC", "DENSENET_BC_CONFIGS", "WEIGHT_URLS",
            "load_weights", "remap_legacy_keys", "densenet121",
            "densenet161", "densenet169", "densenet201", "densenet264"]

#: torchvision's ImageNet weights (the file names carry the SHA-256 prefix
#: that ``check_hash=True`` verifies).
WEIGHT_URLS = {
    "densenet121": "https://download.pytorch.org/models/"
                   "densenet121-a639ec97.pth",
    "densenet161": "https://download.pytorch.org/models/"
                   "densenet161-8d451a50.pth",
    "densenet169": "https://download.pytorch.org/models/"
                   "densenet169-b2777c0a.pth",
    "densenet201": "https://download.pytorch.org/models/"
                   "densenet201-c1103571.pth",
}

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


class DenseNetBC(CheckedInput, nn.Module):
    """The paper's DenseNet-BC: ``features`` (``conv0``, ``norm0``,
    ``relu0``, ``pool0``, ``denseblock1``, ``transition1``, ...,
    ``denseblockN``, ``norm5``), then ReLU, global average pooling and
    ``classifier``, exactly torchvision's ``DenseNet`` layout and init.

    ``growth_rate`` is k, ``block_config`` the layers per dense block,
    ``num_init_features`` the stem's channels, ``bn_size * growth_rate``
    the bottleneck width, ``compression`` the transitions' theta.
    ``memory_efficient=True`` checkpoints every bottleneck (see
    :class:`~d2l_densenet.blocks.DenseLayerBC`); it works with
    ``torch.compile`` but not for training under ``torch.jit.script``.
    """

    # Python-only bookkeeping that TorchScript must not try to type.
    __jit_ignored_attributes__ = ["in_channels", "_min_size", "_probing",
                                  "block_config", "growth_rate",
                                  "num_features"]
    __jit_unused_properties__ = ["memory_efficient"]

    def __init__(self, growth_rate: int = 32,
                 block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4,
                 drop_rate: float = 0.0, num_classes: int = 1000,
                 in_channels: int = 3, memory_efficient: bool = False,
                 compression: float = 0.5) -> None:
        super().__init__()
        _check_arch(block_config, "layers per dense block",
                    name="block_config")
        _check_positive_int(growth_rate=growth_rate,
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

    def _search_min_size(self, largest: int = 4096) -> int:
        # Dense layers keep height and width; only the stem and the
        # transitions shrink them. Probing a twin with one tiny layer per
        # block gives the same answer in a fraction of the time.
        twin = DenseNetBC(growth_rate=1,
                          block_config=(1,) * len(self.block_config),
                          num_init_features=1, bn_size=1, num_classes=1,
                          in_channels=self.in_channels)
        return CheckedInput._search_min_size(twin, largest)

    @property
    def memory_efficient(self) -> bool:
        """Whether the dense layers checkpoint their bottlenecks; can be
        set on a built model (``net.memory_efficient = True``)."""
        return any(getattr(m, "memory_efficient", False)
                   for m in self.modules() if isinstance(m, DenseLayerBC))

    @memory_efficient.setter
    def memory_efficient(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, DenseLayerBC):
                m.memory_efficient = bool(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            self.check_input(x)
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
        warnings.warn(
            f"The weights' classifier has {w.shape[0]} classes, the model "
            f"{mine.shape[0]} (num_classes={mine.shape[0]}): the "
            f"classifier is NOT loaded and keeps its fresh random init; "
            f"everything else is pretrained. Fine-tune before use.",
            UserWarning, stacklevel=3)
        sd["classifier.weight"] = mine
        sd["classifier.bias"] = own["classifier.bias"]
    w, mine = sd.get("features.conv0.weight"), own.get("features.conv0.weight")
    if (w is not None and mine is not None and w.dim() == 4
            and w.shape[1] != mine.shape[1]):
        if w.shape[1] == 3 and mine.shape[1] == 1:
            warnings.warn(
                "The weights' stem (features.conv0) takes 3 (RGB) "
                "channels, the model 1 (in_channels=1): the RGB filters "
                "are summed, so a gray image gives the response of the "
                "same image repeated in R, G and B. Fine-tune before use.",
                UserWarning, stacklevel=3)
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


def _build_bc(name: str, num_classes: int, in_channels: int,
              memory_efficient: bool, weights: str | None,
              pretrained: bool, progress: bool, **kwargs) -> DenseNetBC:
    if pretrained:
        if weights not in (None, "imagenet"):
            raise ValueError(f"pretrained=True means weights='imagenet'; "
                             f"got weights={weights!r} as well")
        weights = "imagenet"
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got "
                         f"{weights!r}")
    if weights is not None and name not in WEIGHT_URLS:
        raise ValueError(
            f"There are no published ImageNet weights for {name} "
            f"(torchvision has them for {', '.join(sorted(WEIGHT_URLS))}); "
            f"use weights=None and train it")
    growth_rate, block_config, num_init_features = DENSENET_BC_CONFIGS[name]
    model = DenseNetBC(growth_rate=growth_rate, block_config=block_config,
                       num_init_features=num_init_features,
                       num_classes=num_classes, in_channels=in_channels,
                       memory_efficient=memory_efficient, **kwargs)
    if weights == "imagenet":
        load_weights(model, WEIGHT_URLS[name], progress=progress)
    return model


def densenet121(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient: bool = False, weights: str | None = None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-121 (k=32, blocks 6-12-24-16; 7,978,856 parameters).
    ``weights="imagenet"`` (or ``pretrained=True``) loads torchvision's
    ImageNet weights (see :func:`load_weights`)."""
    return _build_bc("densenet121", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet161(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient: bool = False, weights: str | None = None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-161 (k=48, 96-channel stem, blocks 6-12-36-24;
    28,681,000 parameters)."""
    return _build_bc("densenet161", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet169(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient: bool = False, weights: str | None = None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-169 (k=32, blocks 6-12-32-32; 14,149,480 parameters)."""
    return _build_bc("densenet169", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet201(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient: bool = False, weights: str | None = None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-201 (k=32, blocks 6-12-48-32; 20,013,928 parameters)."""
    return _build_bc("densenet201", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


def densenet264(num_classes: int = 1000, in_channels: int = 3, *,
                memory_efficient: bool = False, weights: str | None = None,
                pretrained: bool = False, progress: bool = True,
                **kwargs) -> DenseNetBC:
    """DenseNet-264 (k=32, blocks 6-12-64-48; 33,337,704 parameters).
    No ImageNet weights are published: ``weights`` must stay None."""
    return _build_bc("densenet264", num_classes, in_channels,
                     memory_efficient, weights, pretrained, progress,
                     **kwargs)


# --- DenseMLP (exercise 5) --------------------------------------------------
# Dense connectivity for tabular data: the conv block becomes
# BatchNorm-ReLU-Linear, channels become features, and a transition layer
# shrinks the width with a Linear layer (there is no H/W to pool).

__all__ += ["dense_linear_block", "DenseLinearBlock",
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
        _check_positive_int(in_features=in_features,
                            num_features=num_features,
                            growth_rate=growth_rate,
                            num_outputs=num_outputs)
        _check_arch(arch, "layers per dense block")
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
        _check_tensor(X, name, f"(batch, {self.in_features})",
                      "one example")
        if not X.is_floating_point():
            raise TypeError(
                f"{name} expects floating-point features, got {X.dtype}; "
                f"convert with X.float() (one-hot columns included)")
        if X.shape[1] != self.in_features:
            raise ValueError(
                f"{name} was built for {self.in_features} input features "
                f"but got {X.shape[1]} (input shape {tuple(X.shape)}); "
                f"build it with in_features={X.shape[1]} or preprocess the "
                f"data the same way as for training")
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
