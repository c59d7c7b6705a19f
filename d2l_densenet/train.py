"""A ``train_ch6``-compatible training loop.

``train_ch6(net, train_iter, test_iter, num_epochs, lr, device)`` behaves
as the book's (Xavier init, SGD, the same two closing lines) and adds
options: Adam, mixed precision, channels-last, seeds, progress display,
and a returned per-epoch history. It also survives what a long run
meets:

* checkpoints (``checkpoint_dir=``, ``checkpoints.py``): the whole
  training state is saved atomically after every epoch, and
  ``resume=True`` continues from the latest one;
* a loss that diverges (NaN, inf, or far beyond any loss a learning
  classifier has, see :func:`loss_bound`) stops training at once
  (:class:`DivergedError`), before the bad step changes the weights;
* several processes (``torchrun``, ``distributed.py``): the model is
  wrapped in DistributedDataParallel, counts are summed over the
  processes, every check agreed by all of them, and only rank 0 prints.

The loop itself is :func:`train_ch6`; what it shows is ``progress.py``.
The command line (``python -m d2l_densenet``) lives in ``cli.py``.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .amp import AMP_DTYPES
from .checkpoints import CheckpointError, Checkpoints, describe
from .checks import check_positive_int
from .distributed import (
    broadcast_buffers,
    convert_sync_batchnorm,
    is_main,
    say,
    sum_over_ranks,
    world,
)
from .fast import fast_paths
from .measure import Timer
from .progress import PROGRESS, Progress

__all__ = ["train_ch6", "evaluate_accuracy", "accuracy", "OPTIMIZERS",
           "AMP_DTYPES", "PROGRESS", "DIVERGED_FACTOR", "loss_bound",
           "DivergedError", "NonFiniteLossError", "CheckpointError"]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
#: A batch loss above ``DIVERGED_FACTOR`` x ln(classes) stops training.
DIVERGED_FACTOR = 100
HISTORY = ("epoch", "train_loss", "train_acc", "test_acc", "seconds")


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (the book's ``d2l.accuracy``)."""
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return float((y_hat.type(y.dtype) == y).sum())


def _correct_and_total(net, data_iter, device) -> tuple[float, float]:
    net.eval()
    correct = total = 0.0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += accuracy(net(X), y)
            total += y.numel()
    # each process saw its shard of the test set: count them all once
    correct, total = sum_over_ranks((correct, total), device)
    return correct, total


def evaluate_accuracy(net: nn.Module, data_iter, device=None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (``evaluate_accuracy_gpu``).
    Under DDP every process passes its shard; the counts are summed."""
    if device is None:
        device = next(iter(net.parameters())).device
    correct, total = _correct_and_total(net, data_iter, device)
    return correct / total


class DivergedError(ValueError):
    """The training loss diverged: NaN, inf, or above :func:`loss_bound`."""


class NonFiniteLossError(DivergedError):
    """The training loss became NaN or infinite."""


def loss_bound(num_classes: int) -> float:
    """The largest mean cross-entropy of a batch that training accepts:
    ``DIVERGED_FACTOR`` (100) times ln(num_classes), the loss of guessing
    uniformly (230 for 10 classes, where a fresh net starts near 2.3).
    Above it the logits are hundreds apart on average and wrong: the
    weights have blown up (e.g. ``lr=1e9``) and training does not come
    back, so it stops with the same message as a NaN loss."""
    return DIVERGED_FACTOR * math.log(max(num_classes, 2))


def _check_loss(value: float, num_classes: int, epoch: int, i: int,
                num_batches: int, lr: float, device,
                saved: Path | None) -> None:
    """Stop every process if the loss of any of them diverged."""
    bound = loss_bound(num_classes)
    mine = not math.isfinite(value) or value > bound
    bad = mine
    if world()[1] > 1:
        bad = sum_over_ranks([float(mine)], device)[0] > 0
    if not bad:
        return
    kept = (f"the last good checkpoint {saved} is kept" if saved
            else "no checkpoint was saved")
    what = (f"became {value}" if not math.isfinite(value)
            else f"became {value:.3g}, above {bound:.3g} "
                 f"({DIVERGED_FACTOR} x ln {num_classes} classes)"
            if mine else "diverged in another process")
    error = NonFiniteLossError if not math.isfinite(value) else \
        DivergedError
    raise error(
        f"the training loss {what} at epoch {epoch + 1}, batch {i + 1} of "
        f"{num_batches}; training stopped before that step ({kept}). "
        f"Lower the learning rate (lr={lr:g}; try {lr / 10:g})")


def _check_options(optimizer, amp, num_epochs, lr, resume, checkpoint_dir,
                   device: torch.device) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, "
                         f"got {optimizer!r}")
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None or one of {sorted(AMP_DTYPES)},"
                         f" got {amp!r}")
    check_positive_int(num_epochs=num_epochs)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
            math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' "
                         "on the CPU or amp=None")


def _init_weights(m: nn.Module) -> None:
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


def _prepare(net: nn.Module, device, seed, init: bool, sync_bn: bool,
             channels_last: bool) -> nn.Module:
    """Seed, initialise (Xavier, as the book), move, convert BatchNorm."""
    if seed is not None:
        torch.manual_seed(seed)
        if init:
            # Biases keep their default init in the book; redraw them so
            # the seed alone fixes every parameter, not the RNG state at
            # the time the model was built.
            for m in net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    if init:
        net.apply(_init_weights)
    net.to(device)
    if sync_bn and world()[1] > 1:
        net = convert_sync_batchnorm(net, device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def _ddp(net: nn.Module, device: torch.device) -> nn.Module:
    if world()[1] == 1:
        return net
    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None)


def _set_epoch(loader, epoch: int) -> None:
    """A new shuffle each epoch, the same in every process and again on
    resume: the loader's own ``set_epoch`` (``TensorLoader``) or its
    sampler's (a DataLoader with a ``DistributedSampler``)."""
    for obj in (loader, getattr(loader, "sampler", None)):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


def _where(device: torch.device) -> str:
    size = world()[1]
    return str(device) if size == 1 else (
        f"{size} processes ({device.type}, {dist.get_backend()})")


def _settings(net, optimizer, lr, amp, sched, train_iter, config) -> dict:
    """What a resumed run must match (see ``checkpoints.Checkpoints``)."""
    size = getattr(train_iter, "batch_size", None)
    return {"model": describe(net), "optimizer": optimizer, "lr": lr,
            "amp": amp, "scheduler": sched and type(sched).__name__,
            "batch_size": None if size is None else size * world()[1],
            **(config or {})}


def _finish(history: dict, seen: float, timer: Timer, where: str,
            done: int, num_epochs: int, test_n: float) -> dict:
    """The book's two closing lines, and the rate in the history."""
    train_l, train_acc, test_acc = (history[k][-1] if history[k] else
                                    math.nan for k in HISTORY[1:4])
    say(f"loss {train_l:.3f}, train acc {train_acc:.3f}, "
        f"test acc {test_acc:.3f}")
    history["examples_per_sec"] = seen / timer.sum() if seen else math.nan
    if seen:
        say(f"{history['examples_per_sec']:.1f} examples/sec on {where}")
    else:
        say(f"nothing to train: the checkpoint holds epoch {done} of "
            f"{num_epochs}")
    history["test_examples"] = int(test_n)
    return history


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int,
              lr: float, device, *, optimizer: str = "sgd",
              amp: str | None = None, channels_last: bool | None = None,
              progress: str = "auto", seed: int | None = None,
              init: bool = True, sync_bn: bool = False,
              scheduler: Callable | None = None,
              checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = False,
              config: dict | None = None,
              fast: bool = True) -> dict[str, list[float]]:
    """Train ``net`` as the book's ``train_ch6`` does and return the
    per-epoch history (``epoch``, ``train_loss``, ``train_acc``,
    ``test_acc``, ``seconds``).

    ``optimizer``: "sgd" (book) or "adam". ``amp``: None, "bf16" or
    "fp16" autocast (fp16 on CUDA only, with a gradient scaler).
    ``seed`` fixes initialisation and data order. ``init=False`` keeps
    the current weights (e.g. pretrained ones) instead of Xavier.
    ``scheduler``: a function from the optimizer to an LR scheduler,
    stepped once per epoch, or after every batch if the function has
    ``interval = "batch"`` (``settings.lr_scheduler(..., num_batches=)``).
    Each epoch calls ``set_epoch(epoch)`` on the loader (or its sampler)
    where it has one.

    Speed (``benchmarks/bench_speed.py`` measures each): ``channels_last``
    None (the default) means True on a CPU, where oneDNN's convolutions
    run 1.3x faster in that layout, and False elsewhere (the book's
    layout); 4-D inputs only. ``fast=True`` trains and evaluates inside
    :func:`~d2l_densenet.fast.fast_paths`: the chapter's DenseNet then
    computes the same function faster on a CPU (``fast.py``); other
    models are unaffected.

    ``checkpoint_dir`` saves model, optimizer, scheduler, RNG states,
    epoch, history and the settings at the end of every epoch (the last
    ``KEEP`` files are kept); ``resume=True`` continues from the latest
    one. ``config`` adds settings a resumed run must match (the CLI
    passes its data options); ``num_epochs`` may grow on resume.

    Under ``torchrun`` (an initialised process group) the model is
    wrapped in DistributedDataParallel, ``sync_bn=True`` converts its
    batch normalization to SyncBatchNorm (on GPUs and CPUs), and the
    iterators must be sharded (``load_data_fashion_mnist(...,
    rank=, world_size=)``). A diverged loss raises
    :class:`DivergedError` before the bad step is taken.
    """
    device = torch.device(device)
    _check_options(optimizer, amp, num_epochs, lr, resume, checkpoint_dir,
                   device)
    where = _where(device)
    say("training on", where)
    if channels_last is None:  # measured faster on CPUs, not elsewhere
        channels_last = device.type == "cpu"
    net = _prepare(net, device, seed, init, sync_bn, channels_last)
    opt = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    sched = scheduler(opt) if scheduler is not None else None
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    loss = nn.CrossEntropyLoss()
    history = {k: [] for k in HISTORY}
    store, done = None, 0
    if checkpoint_dir is not None:
        store = Checkpoints(checkpoint_dir, _settings(
            net, optimizer, lr, amp, sched, train_iter, config), dict(
            model=net, optimizer=opt, scheduler=sched, scaler=scaler),
            device)
        done = store.resume(resume, history, num_epochs)
    model = _ddp(net, device)
    num_batches = len(train_iter)
    bar = Progress(progress if is_main() else "none", num_epochs,
                   num_batches)
    autocast = dict(device_type=device.type, dtype=AMP_DTYPES.get(amp),
                    enabled=amp is not None)
    timer, seen, test_n = Timer(), 0.0, 0.0
    timer.times.clear()
    per_batch = getattr(scheduler, "interval", "epoch") == "batch"
    speed = contextlib.ExitStack()  # fast paths while training, testing
    speed.enter_context(fast_paths(fast))
    try:
        for epoch in range(done, num_epochs):
            _set_epoch(train_iter, epoch)
            start = time.perf_counter()
            metric = [0.0, 0.0, 0.0]  # loss sum, correct, examples
            model.train()
            for i, (X, y) in enumerate(train_iter):
                timer.start()
                opt.zero_grad()
                X, y = X.to(device), y.to(device)
                if channels_last and X.dim() == 4:
                    X = X.contiguous(memory_format=torch.channels_last)
                with torch.autocast(**autocast):
                    y_hat = model(X)
                    l = loss(y_hat, y)
                value = float(l.detach())
                _check_loss(value, y_hat.shape[1], epoch, i, num_batches,
                            lr, device, store and store.last_saved)
                scaler.scale(l).backward()
                scaler.step(opt)
                scaler.update()
                if per_batch and sched is not None:
                    sched.step()
                for k, v in enumerate((value * X.shape[0],
                                       accuracy(y_hat, y), X.shape[0])):
                    metric[k] += v
                timer.stop()
                bar.batch(epoch, i, metric[0] / metric[2],
                          metric[1] / metric[2])
            total_l, correct, n = sum_over_ranks(metric, device)
            seen += n
            if sched is not None and not per_batch:
                sched.step()
            broadcast_buffers(net)  # every rank tests rank 0's statistics
            with torch.autocast(**autocast):
                test_correct, test_n = _correct_and_total(net, test_iter,
                                                          device)
            row = (epoch + 1, total_l / n, correct / n,
                   test_correct / test_n, time.perf_counter() - start)
            for key, value in zip(HISTORY, row, strict=True):
                history[key].append(value)
            if store is not None:
                store.save(epoch + 1, history)
            bar.epoch(epoch + 1, *(history[k][-1] for k in HISTORY[1:4]))
    finally:
        speed.close()
        bar.close()
    return _finish(history, seen, timer, where, done, num_epochs, test_n)
