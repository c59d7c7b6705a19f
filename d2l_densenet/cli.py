"""The command line: ``python -m d2l_densenet`` trains the chapter's
DenseNet (or ResNet-18) on Fashion-MNIST with the book's recipe on a GPU
or a reduced one on a CPU (``settings.RECIPES``)."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import data, models, settings
from .train import AMP_DTYPES, OPTIMIZERS, PROGRESS, train_ch6

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    gpu, cpu = settings.RECIPES["gpu"], settings.RECIPES["cpu"]
    p = argparse.ArgumentParser(
        prog="python -m d2l_densenet",
        description="Train the chapter's DenseNet (or ResNet-18) on "
                    "Fashion-MNIST. Unset options come from the recipe: "
                    f"GPU {gpu}, CPU {cpu}.")
    p.add_argument("--model", choices=["densenet", "resnet18"],
                   default="densenet")
    p.add_argument("--recipe", choices=["auto", *settings.RECIPES],
                   default="auto",
                   help="settings to start from (auto: by device)")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--resize", type=int,
                   help="image side; 0 keeps 28 (too small for DenseNet)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd")
    p.add_argument("--amp", choices=["none", *sorted(AMP_DTYPES)],
                   default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--loader", choices=["tensor", "torchvision"],
                   default="tensor",
                   help="tensor: whole set on the device (fast); "
                        "torchvision: the book's DataLoader")
    p.add_argument("--subset", type=int,
                   help="class-balanced training subset size")
    p.add_argument("--test-subset", type=int)
    p.add_argument("--transition-pool", choices=["avg", "max"],
                   default="avg")
    p.add_argument("--head-pool", choices=sorted(models.HEAD_POOLS),
                   default="avg",
                   help="the head's global pooling: avg (d2l 1.0, the "
                        "paper) or max (the Chinese edition, d2l 0.17)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="folder with Fashion-MNIST")
    p.add_argument("--progress", choices=PROGRESS, default="auto")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train, print the final test accuracy and return
    the history."""
    args = parser().parse_args(argv)
    if args.device == "auto":
        device = settings.default_device()
    else:
        device = torch.device(args.device)
    name = args.recipe
    if name == "auto":
        name = "gpu" if device.type == "cuda" else "cpu"
    recipe = dict(settings.RECIPES[name])
    for key in recipe:
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    note = "" if name == "gpu" else (
        f" (reduced from the book's {settings.RECIPES['gpu']}; results "
        f"differ from the book)")
    print(f"{name.upper()} recipe on {device}: {recipe}{note}")
    if args.model == "densenet":
        net = models.densenet(transition_pool=args.transition_pool,
                              head_pool=args.head_pool)
    else:
        net = models.resnet18()
    train_iter, test_iter = data.load_data_fashion_mnist(
        recipe["batch_size"], resize=recipe["resize"] or None,
        root=args.data_root, fast=(args.loader == "tensor"),
        device=device, subset=args.subset, test_subset=args.test_subset)
    X, _ = next(iter(test_iter))
    net.check_input(X)  # fail now, not after an epoch of training
    start = time.perf_counter()
    history = train_ch6(
        net, train_iter, test_iter, recipe["epochs"], recipe["lr"], device,
        optimizer=args.optimizer,
        amp=None if args.amp == "none" else args.amp,
        channels_last=args.channels_last, progress=args.progress,
        seed=args.seed)
    minutes = (time.perf_counter() - start) / 60
    print(f"final test accuracy {history['test_acc'][-1]:.4f} on the "
          f"Fashion-MNIST test set ({len(test_iter)} batches) after "
          f"{minutes:.1f} min")
    return history


def run(argv: list[str] | None = None) -> int:
    """``main`` for the shell: bad input gives one line, no traceback."""
    try:
        main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
