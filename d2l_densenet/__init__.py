"""d2l_densenet: the DenseNet chapter of Dive into Deep Learning, tested.

The public API, one concern per module:

* ``blocks``   -- ``conv_block``, ``DenseBlock``, ``transition_block``;
  the DenseNet-BC layer, block and transition
* ``models``   -- the chapter's ``densenet``, the book's ``resnet18``, the
  paper's ``densenet121/161/169/201/264`` and ``DenseMLP``
* ``data``     -- ``load_data_fashion_mnist`` (torchvision and fast paths)
* ``train``    -- ``train_ch6`` and the CLI
* ``measure``  -- parameters, peak memory, step time
* ``house``    -- the Kaggle house-price data, preprocessing and k-fold
* ``settings`` -- run modes (gpu / cpu / smoke) for notebooks
"""
from .blocks import (
    DenseBlock,
    DenseBlockBC,
    DenseLayerBC,
    TransitionBC,
    conv_block,
    transition_block,
)
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
from .house import (
    HouseDataCorruptError,
    HouseDataNotFoundError,
    HousePreprocessor,
    find_house_data,
    house_features,
    k_fold,
    log_rmse,
    preprocess_book,
    read_house_data,
    submission_frame,
)
from .measure import (
    MemoryReport,
    Timer,
    count_parameters,
    parameter_table,
    peak_memory,
    saved_tensor_bytes,
    step_time,
    tensor_bytes,
)
from .models import (
    DENSENET_BC_CONFIGS,
    WEIGHT_URLS,
    DenseLinearBlock,
    DenseMLP,
    DenseNet,
    DenseNetBC,
    Residual,
    ResNet,
    dense_linear_block,
    dense_mlp,
    densenet,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    densenet264,
    load_weights,
    remap_legacy_keys,
    resnet18,
    transition_linear_block,
)

_TRAIN_NAMES = ("train_ch6", "evaluate_accuracy", "accuracy")


def __getattr__(name):
    # Imported lazily so `python -m d2l_densenet.train` runs the module
    # once (runpy warns when a package has already imported it).
    if name in _TRAIN_NAMES:
        from . import train
        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "conv_block", "DenseBlock", "transition_block",
    "DenseNet", "Residual", "ResNet", "densenet", "resnet18",
    "load_data_fashion_mnist", "fashion_mnist_datasets",
    "find_fashion_mnist", "balanced_indices", "TensorLoader",
    "get_fashion_mnist_labels", "DataNotFoundError", "CorruptDataError",
    "train_ch6", "evaluate_accuracy", "accuracy",
    "count_parameters", "parameter_table", "peak_memory",
    "saved_tensor_bytes", "step_time", "tensor_bytes", "MemoryReport",
    "Timer",
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
