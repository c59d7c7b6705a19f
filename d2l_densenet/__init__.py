"""d2l_densenet: the DenseNet chapter of Dive into Deep Learning, tested.

The public API (re-exports only), one concern per module:

* ``blocks``   -- the chapter's ``conv_block``, ``DenseBlock``,
  ``transition_block``
* ``memory_efficient`` -- the memory-efficient levels (recompute, not
  store; formerly ``checkpointing``)
* ``models``   -- the chapter's ``densenet`` and the book's ``resnet18``
* ``family``   -- the paper's DenseNet-BC: ``densenet121/161/169/201/264``
* ``mlp``      -- exercise 5: ``DenseMLP``
* ``data``     -- ``load_data_fashion_mnist`` (torchvision and fast paths)
* ``house``    -- the Kaggle house-price data and preprocessing
* ``house_train`` -- house-price training, log-RMSE and the k-fold protocol
* ``files``    -- find, verify and download a data set
* ``train``    -- ``train_ch6``, the book's loop
* ``fast``     -- fast paths: the same DenseNet, faster on a CPU
* ``checkpoints`` -- saved training state: atomic save, resume
* ``checkpoint_folders`` -- ``checkpoint_folder``: where a notebook keeps
  them (Google Drive on Colab, a local stand-in in the GPU-mode rehearsal)
* ``distributed`` -- several processes: agreed decisions and errors,
  CPU SyncBatchNorm
* ``progress`` -- Animator, tqdm or printed lines
* ``amp``      -- the precision choice (bf16 measured on a CPU)
* ``measure``  -- parameters, peak memory, step time, time ratios
* ``settings`` -- run modes (gpu / cpu / smoke, and the GPU-mode rehearsal
  on the CPU) and the CLI's recipes
* ``devices``  -- ``default_device``, device descriptions, and the device
  calls of GPU paths (``empty_cache``, ``max_memory_reserved``, ...)
* ``messages`` -- what the package says, in English and Chinese
* ``reuse``    -- feature reuse in a trained dense block (the paper's
  Figure 5)
* ``cli``      -- ``python -m d2l_densenet`` and ``d2l-densenet``

Names are imported on first use (PEP 562): ``import d2l_densenet`` loads
no module of its own, nor torch, torchvision or pandas; ``dd.densenet``
loads ``models`` (and torch), ``dd.read_house_data`` loads ``house``
(and pandas), ``dd.densenet121`` loads ``family``, whose torchvision
weights enums are built when first asked for.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Each public name and the module that defines it.
_EXPORTS = {
    "blocks": ("conv_block", "DenseBlock", "transition_block"),
    "memory_efficient": ("MEMORY_EFFICIENT_LEVELS",),
    "models": ("DenseNet", "Residual", "ResNet", "densenet", "resnet18"),
    "data": ("load_data_fashion_mnist", "fashion_mnist_datasets",
             "find_fashion_mnist", "balanced_indices", "TensorLoader",
             "get_fashion_mnist_labels", "DataNotFoundError",
             "CorruptDataError"),
    "train": ("train_ch6", "evaluate_accuracy", "accuracy"),
    "fast": ("fast_paths",),
    "checkpoint_folders": ("checkpoint_folder",),
    "measure": ("count_parameters", "parameter_table", "peak_memory",
                "saved_tensor_bytes", "step_time", "tensor_bytes",
                "MemoryReport", "Timer", "time_ratio", "TimeRatio"),
    "family": ("DenseLayerBC", "DenseBlockBC", "TransitionBC", "DenseNetBC",
               "DENSENET_BC_CONFIGS", "WEIGHT_URLS", "load_weights",
               "remap_legacy_keys", "densenet121", "densenet161",
               "densenet169", "densenet201", "densenet264"),
    "mlp": ("DenseMLP", "DenseLinearBlock", "dense_linear_block",
            "dense_mlp", "transition_linear_block"),
    "house": ("read_house_data", "find_house_data", "house_features",
              "HousePreprocessor", "preprocess_book", "submission_frame",
              "HouseDataNotFoundError", "HouseDataCorruptError"),
    "house_train": ("k_fold", "log_rmse"),
    "reuse": ("feature_reuse", "source_channels"),
}
_WHERE = {name: module for module, names in _EXPORTS.items()
          for name in names}
#: The package's modules, also reachable as attributes (``dd.family``).
_SUBMODULES = ("amp", "blocks", "checkpoint_folders", "checkpoints",
               "checks", "cli", "data",
               "devices", "distributed", "family", "fast", "files", "house",
               "house_train", "measure", "memory_efficient", "messages",
               "mlp", "models", "plots", "progress", "reuse", "settings",
               "stats", "train")

__all__ = [
    "conv_block", "DenseBlock", "transition_block",
    "MEMORY_EFFICIENT_LEVELS",
    "DenseNet", "Residual", "ResNet", "densenet", "resnet18",
    "load_data_fashion_mnist", "fashion_mnist_datasets",
    "find_fashion_mnist", "balanced_indices", "TensorLoader",
    "get_fashion_mnist_labels", "DataNotFoundError", "CorruptDataError",
    "train_ch6", "evaluate_accuracy", "accuracy", "checkpoint_folder",
    "fast_paths", "count_parameters", "parameter_table", "peak_memory",
    "saved_tensor_bytes", "step_time", "tensor_bytes", "MemoryReport",
    "Timer", "time_ratio", "TimeRatio", "feature_reuse", "source_channels",
    "DenseLayerBC", "DenseBlockBC", "TransitionBC", "DenseNetBC",
    "DENSENET_BC_CONFIGS", "WEIGHT_URLS", "load_weights",
    "remap_legacy_keys", "densenet121", "densenet161", "densenet169",
    "densenet201", "densenet264",
    "DenseMLP", "DenseLinearBlock", "dense_linear_block", "dense_mlp",
    "transition_linear_block", "read_house_data", "find_house_data",
    "house_features", "HousePreprocessor", "preprocess_book", "k_fold",
    "log_rmse", "submission_frame", "HouseDataNotFoundError",
    "HouseDataCorruptError",
]


def _version() -> str:
    """The installed package's version (pyproject.toml is the one place
    it is written); "0+unknown" when run from a checkout not installed."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("d2l-densenet")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562)."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}",
                                                __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        value = _version()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute "
                             f"{name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES)
                  | {"__version__"})


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .blocks import DenseBlock, conv_block, transition_block
    from .checkpoint_folders import checkpoint_folder
    from .data import (
        CorruptDataError,
        DataNotFoundError,
        TensorLoader,
        balanced_indices,
        fashion_mnist_datasets,
        find_fashion_mnist,
        get_fashion_mnist_labels,
        load_data_fashion_mnist,
    )
    from .family import (
        DENSENET_BC_CONFIGS,
        WEIGHT_URLS,
        DenseBlockBC,
        DenseLayerBC,
        DenseNetBC,
        TransitionBC,
        densenet121,
        densenet161,
        densenet169,
        densenet201,
        densenet264,
        load_weights,
        remap_legacy_keys,
    )
    from .fast import fast_paths
    from .house import (
        HouseDataCorruptError,
        HouseDataNotFoundError,
        HousePreprocessor,
        find_house_data,
        house_features,
        preprocess_book,
        read_house_data,
        submission_frame,
    )
    from .house_train import k_fold, log_rmse
    from .measure import (
        MemoryReport,
        Timer,
        TimeRatio,
        count_parameters,
        parameter_table,
        peak_memory,
        saved_tensor_bytes,
        step_time,
        tensor_bytes,
        time_ratio,
    )
    from .memory_efficient import MEMORY_EFFICIENT_LEVELS
    from .mlp import (
        DenseLinearBlock,
        DenseMLP,
        dense_linear_block,
        dense_mlp,
        transition_linear_block,
    )
    from .models import DenseNet, Residual, ResNet, densenet, resnet18
    from .reuse import feature_reuse, source_channels
    from .train import accuracy, evaluate_accuracy, train_ch6
