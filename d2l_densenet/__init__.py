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
* ``checkpoints`` -- saved training state: atomic save, resume
* ``distributed`` -- several processes: agreed decisions and errors,
  CPU SyncBatchNorm
* ``progress`` -- Animator, tqdm or printed lines
* ``amp``      -- the precision choice (bf16 measured on a CPU)
* ``measure``  -- parameters, peak memory, step time, time ratios
* ``settings`` -- run modes (gpu / cpu / smoke) and the CLI's recipes
* ``cli``      -- ``python -m d2l_densenet`` and ``d2l-densenet``
"""
from .blocks import DenseBlock, conv_block, transition_block
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
from .train import accuracy, evaluate_accuracy, train_ch6


def _version() -> str:
    """The installed package's version (pyproject.toml is the one place
    it is written); "0+unknown" when run from a checkout not installed."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("d2l-densenet")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = [
    "conv_block", "DenseBlock", "transition_block",
    "MEMORY_EFFICIENT_LEVELS",
    "DenseNet", "Residual", "ResNet", "densenet", "resnet18",
    "load_data_fashion_mnist", "fashion_mnist_datasets",
    "find_fashion_mnist", "balanced_indices", "TensorLoader",
    "get_fashion_mnist_labels", "DataNotFoundError", "CorruptDataError",
    "train_ch6", "evaluate_accuracy", "accuracy",
    "count_parameters", "parameter_table", "peak_memory",
    "saved_tensor_bytes", "step_time", "tensor_bytes", "MemoryReport",
    "Timer", "time_ratio", "TimeRatio",
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
