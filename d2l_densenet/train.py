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
  processes, and only rank 0 prints. Every step the processes exchange
  their losses and whether their loading, forward pass or loss failed,
  in one all-reduce before the backward pass (the next batch is fetched
  before it); evaluation ends with such an exchange too. A failure in
  one process thus stops every process at the same step, the others
  with :class:`~d2l_densenet.distributed.RankFailedError` naming it;
  what cannot be agreed on is named through the store
  (:func:`~d2l_densenet.distributed.failures_named`).

The loop itself is :func:`train_ch6`; what it shows is ``progress.py``.
The command line (``python -m d2l_densenet``) lives in ``cli.py``.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from .amp import AMP_DTYPES
from .checkpoints import CheckpointError, Checkpoints, describe
from .checks import check_positive_int
from .distributed import (
    broadcast_buffers,
    convert_sync_batchnorm,
    exchange,
    failures_named,
    is_main,
    say,
    world,
)
from .fast import fast_paths
from .measure import Timer
from .messages import text
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
    error = None
    try:
        with torch.no_grad():
            for X, y in data_iter:
                X, y = X.to(device), y.to(device)
                correct += accuracy(net(X), y)
                total += y.numel()
    except Exception as e:      # every process learns of it, below
        error = e
    # each process saw its shard of the test set: count them all once
    rows = exchange((correct, total), device, error)
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


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


def _check_losses(values: list[float], num_classes: int, epoch: int,
                  i: int, num_batches: int, lr: float,
                  saved: Path | None) -> None:
    """Stop if the loss of any process diverged: ``values`` holds every
    process's loss of this step (the same list in every process), so
    every process stops at the same step, before it changes the
    weights."""
    bound = loss_bound(num_classes)
    bad = [(r, v) for r, v in enumerate(values)
           if not math.isfinite(v) or v > bound]
    if not bad:
        return
    r, value = bad[0]
    size = len(values)
    kept = (f"the last good checkpoint {saved} is kept" if saved
            else "no checkpoint was saved")
    what = (f"became {value}" if not math.isfinite(value)
            else f"became {value:.3g}, above {bound:.3g} "
                 f"({DIVERGED_FACTOR} x ln {num_classes} classes)")
    where = f" in process {r} of {size}" if size > 1 else ""
    error = NonFiniteLossError if not math.isfinite(value) else \
        DivergedError
    raise error(
        f"the training loss {what}{where} at epoch {epoch + 1}, batch "
        f"{i + 1} of {num_batches}; training stopped before that step "
        f"({kept}). Lower the learning rate (lr={lr:g}; try {lr / 10:g})")


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


#: Models this process has trained (``init=None`` keeps their weights).
_TRAINED: weakref.WeakSet = weakref.WeakSet()
#: Layers whose constructors set the scale to 1 and the shift to 0.
_NORMS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _not_from_constructor(net: nn.Module) -> str | None:
    """Why ``net``'s weights did not come from its constructor (trained
    or loaded), or None where nothing says so: a model ``train_ch6`` has
    trained, or one whose normalization layers' scales and shifts are
    not the 1s and 0s every constructor sets (a shape check's forward
    pass changes BatchNorm's running statistics, not these)."""
    if net in _TRAINED:
        return "train_ch6 has trained it before"
    for m in net.modules():
        if not isinstance(m, _NORMS):
            continue
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        with torch.no_grad():
            if (weight is not None and bool((weight != 1).any())) or (
                    bias is not None and bool((bias != 0).any())):
                return (f"its {type(m).__name__} scales and shifts are not "
                        f"the 1s and 0s a constructor sets: trained or "
                        f"loaded weights")
    return None


def _prepare(net: nn.Module, device, seed, init: bool | None,
             sync_bn: bool, channels_last: bool) -> nn.Module:
    """Seed, initialise (Xavier, as the book), move, convert BatchNorm."""
    if init is None:
        why = _not_from_constructor(net)
        init = why is None
        if why:
            say(f"keeping the model's weights ({why}); init=True "
                f"re-initialises them (Xavier, as the book)")
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
    """``net`` in DistributedDataParallel (several processes). BatchNorm's
    running statistics stay each process's own while it trains (no
    broadcast before every forward pass: the step's only collectives
    are the exchange and the backward pass's); :func:`broadcast_buffers`
    copies rank 0's to every process before each evaluation."""
    if world()[1] == 1:
        return net
    options = dict(device_ids=[device.index] if device.type == "cuda"
                   else None)
    if "forward_sync_buffers" in inspect.signature(
            DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = False  # newer PyTorch
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(net, **options)


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


#: What a scheduler's ``state_dict`` holds besides its shape.
_SCHEDULE_PROGRESS = ("base_lrs", "last_epoch", "verbose")


def _schedule(sched) -> dict | None:
    """The shape of ``sched``, as a checkpoint records it: the plain
    values of its ``state_dict`` other than its progress (for a cosine,
    ``T_max``, the horizon in epochs, and ``eta_min``)."""
    if sched is None:
        return None
    plain = (int, float, str, bool, type(None))
    return {k: list(v) if isinstance(v, (list, tuple)) else v
            for k, v in sched.state_dict().items()
            if not k.startswith("_") and k not in _SCHEDULE_PROGRESS
            and (isinstance(v, plain) or isinstance(v, (list, tuple))
                 and all(isinstance(x, plain) for x in v))}


def _settings(net, optimizer, lr, amp, sched, train_iter, config) -> dict:
    """What a resumed run must match (see ``checkpoints.Checkpoints``);
    the schedule's shape (``schedule``) may change."""
    size = getattr(train_iter, "batch_size", None)
    return {"model": describe(net), "optimizer": optimizer, "lr": lr,
            "amp": amp, "scheduler": sched and type(sched).__name__,
            "schedule": _schedule(sched),
            "batch_size": None if size is None else size * world()[1],
            **(config or {})}


def _replay_schedule(scheduler: Callable, opt, done: int):
    """This run's schedule, stepped ``done`` times from the start (epochs,
    or batches for a per-batch schedule): the learning rate where an
    uninterrupted run with this run's schedule would be."""
    for group in opt.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    with warnings.catch_warnings():  # stepped before optimizer.step()
        warnings.simplefilter("ignore", UserWarning)
        sched = scheduler(opt)
        for _ in range(done):
            sched.step()
    return sched


def _resume_schedule(store: Checkpoints, scheduler, opt, sched,
                     done: int, num_epochs: int, steps_per_epoch: int):
    """After a resume: the checkpoint's scheduler where its shape is this
    run's; else (``--epochs`` changed a cosine's horizon, or an older
    checkpoint that did not record it) this run's schedule replayed to
    epoch ``done`` (``steps_per_epoch`` steps each: 1, or the batches of
    a per-batch schedule), said on screen."""
    if sched is None or not done:
        return sched
    saved, mine = store.found.get("schedule"), store.settings["schedule"]
    if saved == mine:
        return sched
    sched = _replay_schedule(scheduler, opt, done * steps_per_epoch)
    store.parts["scheduler"] = sched
    changes = ("the checkpoint does not record it" if saved is None else
               ", ".join(f"{k} {saved.get(k)!r} -> {mine.get(k)!r}"
                         for k in sorted(set(saved) | set(mine))
                         if saved.get(k) != mine.get(k)))
    say(f"the learning-rate schedule is this run's ({type(sched).__name__}"
        f", {changes}): epochs {done + 1}-{num_epochs} take the rates of "
        f"a {num_epochs}-epoch run (lr {opt.param_groups[0]['lr']:.3g} "
        f"in epoch {done + 1})")
    return sched


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
        say(text("train.nothing_to_train", done=done, total=num_epochs))
    history["test_examples"] = int(test_n)
    return history


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int,
              lr: float, device, *, optimizer: str = "sgd",
              amp: str | None = None, channels_last: bool | None = None,
              progress: str = "auto", seed: int | None = None,
              init: bool | None = None, sync_bn: bool = False,
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
    ``seed`` fixes initialisation and data order. ``init``: True
    initialises the weights (Xavier, as the book), False keeps them;
    None (the default) initialises a model as its constructor made it
    and keeps (saying so) the weights of one that was trained (by
    ``train_ch6``) or loaded (its BatchNorm scales and shifts are not
    the constructor's 1s and 0s): a pretrained DenseNet-BC is not
    silently re-initialised. Pass ``init=False`` for loaded weights in a
    model without normalization layers.
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
    passes its data options); ``num_epochs`` may grow on resume, and a
    schedule whose shape depends on it (a cosine's horizon) is this
    run's: a 3-epoch cosine resumed with ``num_epochs=6`` trains epochs
    4-6 at the 6-epoch cosine's rates (said on screen).

    Under ``torchrun`` (an initialised process group) the model is
    wrapped in DistributedDataParallel, ``sync_bn=True`` converts its
    batch normalization to SyncBatchNorm (on GPUs and CPUs), and the
    iterators must be sharded (``load_data_fashion_mnist(...,
    rank=, world_size=)``). A diverged loss raises
    :class:`DivergedError` before the bad step is taken, in every
    process; a failure in one process (loading, forward pass, loss,
    evaluation) stops every process at the same step, the others with
    :class:`~d2l_densenet.distributed.RankFailedError` naming it.
    """
    device = torch.device(device)
    _check_options(optimizer, amp, num_epochs, lr, resume, checkpoint_dir,
                   device)
    where = _where(device)
    say("training on", where)
    given = net
    if channels_last is None:  # measured faster on CPUs, not elsewhere
        channels_last = device.type == "cpu"
    net = _prepare(net, device, seed, init, sync_bn, channels_last)
    opt = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    sched = scheduler(opt) if scheduler is not None else None
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    loss = nn.CrossEntropyLoss()
    history = {k: [] for k in HISTORY}
    per_batch = getattr(scheduler, "interval", "epoch") == "batch"
    store, done = None, 0
    if checkpoint_dir is not None:
        store = Checkpoints(checkpoint_dir, _settings(
            net, optimizer, lr, amp, sched, train_iter, config), dict(
            model=net, optimizer=opt, scheduler=sched, scaler=scaler),
            device)
        done = store.resume(resume, history, num_epochs)
        sched = _resume_schedule(store, scheduler, opt, sched, done,
                                 num_epochs,
                                 len(train_iter) if per_batch else 1)
    model = _ddp(net, device)
    num_batches = len(train_iter)
    bar = Progress(progress if is_main() else "none", num_epochs,
                   num_batches)
    autocast = dict(device_type=device.type, dtype=AMP_DTYPES.get(amp),
                    enabled=amp is not None)
    timer, seen, test_n = Timer(), 0.0, 0.0
    timer.times.clear()
    with failures_named(), contextlib.closing(bar), fast_paths(fast):
        for epoch in range(done, num_epochs):
            start = time.perf_counter()
            metric = [0.0, 0.0, 0.0]  # loss sum, correct, examples
            model.train()
            batches = _AgreedBatches(train_iter, epoch, device, timer)
            for i, (X, y) in enumerate(batches):
                value = math.nan
                timer.start()
                try:
                    opt.zero_grad()
                    X, y = X.to(device), y.to(device)
                    if channels_last and X.dim() == 4:
                        X = X.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(**autocast):
                        y_hat = model(X)
                        l = loss(y_hat, y)
                    value = float(l.detach())
                except Exception as e:  # every process learns of it below
                    batches.failed(e)
                values = batches.agree(value)   # fetches the next batch
                _check_losses(values, y_hat.shape[1], epoch, i,
                              num_batches, lr, store and store.last_saved)
                # DDP all-reduces the gradients in the backward pass: a
                # failure inside it cannot be agreed on (failures_named)
                scaler.scale(l).backward()
                scaler.step(opt)
                scaler.update()
                _TRAINED.add(given)
                if per_batch and sched is not None:
                    sched.step()
                for k, v in enumerate((value * X.shape[0],
                                       accuracy(y_hat, y), X.shape[0])):
                    metric[k] += v
                timer.stop()
                bar.batch(epoch, i, metric[0] / metric[2],
                          metric[1] / metric[2])
            rows = exchange(metric, device)
            total_l, correct, n = (sum(r[k] for r in rows) for k in range(3))
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
    return _finish(history, seen, timer, where, done, num_epochs, test_n)


class _AgreedBatches:
    """The batches of one epoch, each agreed on by every process before
    its forward pass: the first one when the iteration starts, each next
    one fetched before the step's :func:`agree` and carried by its
    all-reduce. A loader that fails in one process, or runs out there
    first, thus stops every process at the same step, never in the
    middle of the others' collectives. Fetching a batch is not timed
    (``timer``, running during a step, pauses), as in the book."""

    def __init__(self, loader, epoch: int, device, timer: Timer) -> None:
        self.loader, self.epoch, self.device = loader, epoch, device
        self.timer = timer
        self.it = self.next = self.error = None
        self.i = 0

    def _fetch(self) -> None:
        try:
            if self.it is None:
                _set_epoch(self.loader, self.epoch)
                self.it = iter(self.loader)
            self.next = next(self.it, None)
        except Exception as e:
            self.error = e

    def __iter__(self):
        self._fetch()
        _same_length(exchange([self.next is None], self.device,
                              self.error), self.epoch, 0)
        while self.next is not None:
            batch, self.next = self.next, None
            yield batch

    def failed(self, error: BaseException) -> None:
        """This process's step failed (its forward pass, its loss)."""
        self.error = error

    def agree(self, value: float) -> list[float]:
        """Fetch the next batch (unless the step failed), then one
        all-reduce: every process's loss ``value`` (returned, one per
        process), whether it failed (then every process raises) and
        whether it has a next batch."""
        if self.error is None:
            self.timer.stop()
            self._fetch()
            self.timer.start()
        self.i += 1
        rows = exchange([value, self.next is None], self.device,
                        self.error)
        _same_length(rows, self.epoch, self.i)
        return [row[0] for row in rows]


def _same_length(rows: list[list[float]], epoch: int, i: int) -> None:
    """Every process has a next batch, or none has (the last entry of
    each row: 1.0 for none)."""
    ended = [r for r, row in enumerate(rows) if row[-1]]
    if ended and len(ended) < len(rows):
        raise ValueError(
            f"the processes have different numbers of training batches: "
            f"process {ended[0]} of {len(rows)} has {i} in epoch "
            f"{epoch + 1}, others more; give every process the same number "
            f"(a DistributedSampler with drop_last=True, or "
            f"load_data_fashion_mnist(..., rank=, world_size=))")
