"""d2l_densenet: the DenseNet chapter of Dive into Deep Learning, tested.

The public API, one concern per module:

* ``blocks``  -- ``conv_block``, ``DenseBlock``, ``transition_block``
* ``models``  -- the chapter's ``densenet`` and the book's ``resnet18``
* ``data``    -- ``load_data_fashion_mnist`` (torchvision and fast paths)
* ``train``   -- ``train_ch6`` and the CLI
* ``measure`` -- parameters, peak memory, step time
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
from .models import DenseNet, Residual, ResNet, densenet, resnet18

# --- exports for exercise 4 (the paper's family, models.py) ---

# --- exports for exercise 5 (DenseMLP in models.py, house.py) ---

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
]
