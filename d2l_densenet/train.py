"""A ``train_ch6``-compatible training loop.

``train_ch6(net, train_iter, test_iter, num_epochs, lr, device)`` behaves
as the book's (Xavier init, SGD, the same two closing lines) and adds
options: Adam, mixed precision, channels-last, seeds, progress display,
and a returned per-epoch history.

It also survives what a long run meets:

* checkpoints (``checkpoint_dir=``): the whole training state is written
  atomically at the end of every epoch, and ``resume=True`` continues
  from the latest one, refusing a checkpoint made with other settings;
* a loss that becomes NaN or inf stops training at once
  (:class:`NonFiniteLossError`), before the bad step changes the weights;
* several processes (``torchrun``, DistributedDataParallel): when a
  process group is initialised the model is wrapped in DDP, training and
  test counts are summed over the processes and only rank 0 prints.

The command line (``python -m d2l_densenet``) lives in ``cli.py``.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from .checks import check_positive_int
from .measure import Timer

__all__ = ["train_ch6", "evaluate_accuracy", "accuracy", "OPTIMIZERS",
           "AMP_DTYPES", "PROGRESS", "NonFiniteLossError", "CheckpointError",
           "CpuSyncBatchNorm", "convert_sync_batchnorm", "save_checkpoint",
           "load_checkpoint", "checkpoint_files"]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROGRESS = ("auto", "animator", "tqdm", "print", "none")


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (the book's ``d2l.accuracy``)."""
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return float((y_hat.type(y.dtype) == y).sum())


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, or made by another run."""


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless a
    process group (e.g. from ``torchrun``) is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_over_ranks(values, device) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if _world()[1] == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _correct_and_total(net, data_iter, device) -> tuple[float, float]:
    net.eval()
    correct = total = 0.0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += accuracy(net(X), y)
            total += y.numel()
    # each process saw its shard of the test set: count them all once
    correct, total = _sum_over_ranks((correct, total), device)
    return correct, total


def evaluate_accuracy(net: nn.Module, data_iter, device=None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (``evaluate_accuracy_gpu``).
    Under DDP every process passes its shard; the counts are summed."""
    if device is None:
        device = next(iter(net.parameters())).device
    correct, total = _correct_and_total(net, data_iter, device)
    return correct / total


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell else None
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _Progress:
    """One interface over d2l.Animator, tqdm and plain prints."""

    def __init__(self, kind: str, num_epochs: int, num_batches: int):
        if kind not in PROGRESS:
            raise ValueError(f"progress must be one of {PROGRESS}, got "
                             f"{kind!r}")
        if kind == "auto":
            kind = ("animator" if _in_notebook()
                    else "tqdm" if sys.stderr.isatty() else "print")
        self.kind, self.num_epochs = kind, num_epochs
        self.bar = self.animator = None
        if kind == "animator":
            from d2l import torch as d2l
            self.animator = d2l.Animator(
                xlabel="epoch", xlim=[1, num_epochs],
                legend=["train loss", "train acc", "test acc"])
        elif kind == "tqdm":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=num_epochs * num_batches, unit="batch")

    def batch(self, x: float, loss: float, acc: float, show: bool) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if show:
                self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
        elif self.animator is not None and show:
            self.animator.add(x, (loss, acc, None))

    def epoch(self, epoch: int, loss: float, acc: float,
              test_acc: float) -> None:
        if self.animator is not None:
            self.animator.add(epoch, (None, None, test_acc))
        elif self.kind == "print":
            print(f"epoch {epoch}/{self.num_epochs}: loss {loss:.3f}, "
                  f"train acc {acc:.3f}, test acc {test_acc:.3f}",
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _init_weights(m: nn.Module) -> None:
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


# --- SyncBatchNorm on the CPU ------------------------------------------

class _AllReduceSum(torch.autograd.Function):
    """``all_reduce`` (sum) whose gradient is the sum of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(_BatchNorm):
    """Batch normalization over the global batch of all processes, for
    the CPU (gloo), where ``nn.SyncBatchNorm`` does not run.

    In training mode with several processes the batch mean and variance
    come from two differentiable all-reduces over the processes, so N
    processes with batch B/N normalise exactly as one process with batch
    B does; otherwise it is plain batch normalization. Parameter and
    buffer names are BatchNorm's, so checkpoints stay interchangeable.
    """

    def _check_input_dim(self, X: torch.Tensor) -> None:
        if X.dim() < 2:
            raise ValueError(f"expected at least 2-D input (batch, "
                             f"channels, ...), got {X.dim()}-D")

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not (self.training and _world()[1] > 1):
            return super().forward(X)
        self._check_input_dim(X)
        C = X.shape[1]
        dims = [d for d in range(X.dim()) if d != 1]
        shape = [1, C] + [1] * (X.dim() - 2)
        Xf = X.to(torch.promote_types(X.dtype, torch.float32))
        sums = _AllReduceSum.apply(torch.cat(
            [Xf.sum(dims), Xf.new_tensor([X.numel() // C])]))
        n = sums[-1]
        mean = sums[:C] / n
        centred = Xf - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (self.momentum if self.momentum is not None
                     else 1.0 / float(self.num_batches_tracked))
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        Y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            Y = Y * self.weight.view(shape) + self.bias.view(shape)
        return Y.to(X.dtype)


def convert_sync_batchnorm(net: nn.Module,
                           device: str | torch.device = "cuda"
                           ) -> nn.Module:
    """``nn.SyncBatchNorm.convert_sync_batchnorm`` for a model that
    trains on ``device``: PyTorch's SyncBatchNorm on GPUs,
    :class:`CpuSyncBatchNorm` on the CPU."""
    net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    if torch.device(device).type == "cpu":
        for m in net.modules():
            if type(m) is nn.SyncBatchNorm:
                m.__class__ = CpuSyncBatchNorm
    return net


# --- checkpoints -------------------------------------------------------

CHECKPOINT_FORMAT = "d2l_densenet-checkpoint-1"
_KEYS = ("format", "epoch", "model", "optimizer", "scheduler", "scaler",
         "rng", "history", "settings")
#: Checkpoints kept in the directory: the latest and the one before it.
KEEP = 2


def checkpoint_files(directory) -> list[Path]:
    """The checkpoints in ``directory`` (``epoch-NNNN.pt``), oldest first."""
    files = Path(directory).glob("epoch-[0-9]*.pt")
    return sorted(files, key=lambda p: int(p.stem.split("-")[1]))


def save_checkpoint(state: dict, path) -> None:
    """``torch.save(state, path)`` atomically: write a temporary file in
    the same directory, fsync it, then ``os.replace`` it onto ``path``;
    a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by ``train_ch6``; a truncated, corrupt or
    foreign file raises :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"{path} is truncated or corrupt and was not loaded "
            f"({type(e).__name__}: {reason})") from e
    if not isinstance(state, dict) or state.get(
            "format") != CHECKPOINT_FORMAT or not set(_KEYS) <= set(state):
        raise CheckpointError(
            f"{path} is not a checkpoint written by d2l_densenet's "
            f"train_ch6 (format {CHECKPOINT_FORMAT})")
    return state


def _rng_state(device: torch.device) -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"name": name,
                       "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": pos, "has_gauss": has_gauss,
                       "cached_gaussian": gauss}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    s = state["numpy"]
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32),
                         s["pos"], s["has_gauss"], s["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _describe(net: nn.Module) -> str:
    """The model as a checkpoint compares it: class, size, and a digest of
    its parameter and buffer names and shapes."""
    layout = repr([(k, tuple(v.shape)) for k, v in net.state_dict().items()])
    digest = hashlib.sha1(layout.encode()).hexdigest()[:8]
    n = sum(p.numel() for p in net.parameters())
    return f"{type(net).__name__}, {n:,} parameters, layout {digest}"


class _Checkpoints:
    """Where ``train_ch6`` saves and resumes (rank 0 writes)."""

    def __init__(self, directory, settings: dict, parts: dict,
                 device: torch.device) -> None:
        self.dir, self.settings = Path(directory), settings
        self.parts, self.device = parts, device
        if self.dir.exists() and not self.dir.is_dir():
            raise CheckpointError(f"checkpoint_dir {self.dir} is a file, "
                                  f"not a directory")
        self.last_saved: Path | None = None

    def resume(self, resume: bool, history: dict) -> int:
        """Load the latest checkpoint if ``resume``; return the number of
        epochs already done."""
        files = checkpoint_files(self.dir) if self.dir.is_dir() else []
        if not resume:
            if files:
                raise CheckpointError(
                    f"{self.dir} already holds checkpoints (latest "
                    f"{files[-1].name}); resume=True (--resume) continues "
                    f"that run, or use another checkpoint directory")
            return 0
        if not files:
            return 0
        path = files[-1]
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            older = (f" The previous checkpoint {files[-2]} is kept: "
                     f"delete {path.name} and resume again to continue "
                     f"from it." if len(files) > 1 else "")
            raise CheckpointError(f"{e}.{older}") from e
        diff = [f"{k} {state['settings'].get(k)!r} (this run: "
                f"{self.settings.get(k)!r})"
                for k in sorted(set(state["settings"]) | set(self.settings))
                if state["settings"].get(k) != self.settings.get(k)]
        if diff:
            raise CheckpointError(
                f"cannot resume from {path}: it was made with other "
                f"settings: {'; '.join(diff)}. Resume with the same "
                f"settings or use another checkpoint directory")
        for name, obj in self.parts.items():
            if obj is not None:
                obj.load_state_dict(state[name])
        _set_rng_state(state["rng"], self.device)
        history.update(state["history"])
        self.last_saved = path
        return state["epoch"]

    def save(self, epoch: int, history: dict) -> None:
        path = self.dir / f"epoch-{epoch:04d}.pt"
        if _world()[0] == 0:
            state = {"format": CHECKPOINT_FORMAT, "epoch": epoch,
                     "rng": _rng_state(self.device), "history": history,
                     "settings": self.settings,
                     "info": {"world_size": _world()[1],
                              "device": str(self.device),
                              "torch": str(torch.__version__)}}
            for name, obj in self.parts.items():
                state[name] = None if obj is None else obj.state_dict()
            save_checkpoint(state, path)
            for old in checkpoint_files(self.dir)[:-KEEP]:
                old.unlink()
            for tmp in self.dir.glob(".epoch-*.tmp"):  # from a killed run
                tmp.unlink()
        if _world()[1] > 1:
            dist.barrier()
        self.last_saved = path


# --- the loop ----------------------------------------------------------

def _global_batch(train_iter, world_size: int):
    size = getattr(train_iter, "batch_size", None)
    return None if size is None else size * world_size


def _check_finite(value: float, epoch: int, i: int, num_batches: int,
                  lr: float, device, saved: Path | None) -> None:
    """Stop every process if the loss of any of them is NaN or inf."""
    bad = not math.isfinite(value)
    if _world()[1] > 1:
        bad = _sum_over_ranks([float(bad)], device)[0] > 0
    if not bad:
        return
    what = (f"became {value}" if not math.isfinite(value)
            else "became NaN or inf in another process")
    kept = (f"the last good checkpoint {saved} is kept" if saved
            else "no checkpoint was saved")
    raise NonFiniteLossError(
        f"the training loss {what} at epoch {epoch + 1}, batch {i + 1} of "
        f"{num_batches}; training stopped before that step ({kept}). "
        f"Lower the learning rate (lr={lr:g}; try {lr / 10:g})")


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int,
              lr: float, device, *, optimizer: str = "sgd",
              amp: str | None = None, channels_last: bool = False,
              progress: str = "auto", seed: int | None = None,
              init: bool = True, sync_bn: bool = False,
              scheduler: Callable | None = None,
              checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = False,
              config: dict | None = None) -> dict[str, list[float]]:
    """Train ``net`` as the book's ``train_ch6`` does and return the
    per-epoch history (``epoch``, ``train_loss``, ``train_acc``,
    ``test_acc``, ``seconds``).

    ``optimizer``: "sgd" (book) or "adam". ``amp``: None, "bf16" or
    "fp16" autocast (fp16 on CUDA only, with a gradient scaler).
    ``seed`` fixes initialisation and data order. ``init=False`` keeps
    the current weights (e.g. pretrained ones) instead of Xavier.
    ``scheduler``: a function from the optimizer to an LR scheduler,
    stepped once per epoch.

    ``checkpoint_dir`` saves model, optimizer, scheduler, RNG states,
    epoch, history and the settings at the end of every epoch (the last
    ``KEEP`` files are kept); ``resume=True`` continues from the latest
    one. ``config`` adds settings a resumed run must match (the CLI
    passes its data options); ``num_epochs`` may grow on resume.

    Under ``torchrun`` (an initialised process group) the model is
    wrapped in DistributedDataParallel, ``sync_bn=True`` converts its
    batch normalization to SyncBatchNorm (on GPUs and CPUs), and the
    iterators must be sharded (``load_data_fashion_mnist(...,
    rank=, world_size=)``). A NaN or inf loss raises
    :class:`NonFiniteLossError` before the bad step is taken.
    """
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
    device = torch.device(device)
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' "
                         "on the CPU or amp=None")
    rank, world = _world()
    say = print if rank == 0 else (lambda *args, **kwargs: None)
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
    where = str(device) if world == 1 else (
        f"{world} processes ({device.type}, {dist.get_backend()})")
    say("training on", where)
    net.to(device)
    if sync_bn and world > 1:
        net = convert_sync_batchnorm(net, device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    sched = scheduler(opt) if scheduler is not None else None
    loss = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    autocast = dict(device_type=device.type, dtype=AMP_DTYPES.get(amp),
                    enabled=amp is not None)
    history = {k: [] for k in ("epoch", "train_loss", "train_acc",
                               "test_acc", "seconds")}
    store, done = None, 0
    if checkpoint_dir is not None:
        settings = {"model": _describe(net), "optimizer": optimizer,
                    "lr": lr, "amp": amp,
                    "scheduler": sched and type(sched).__name__,
                    "batch_size": _global_batch(train_iter, world),
                    **(config or {})}
        store = _Checkpoints(checkpoint_dir, settings, dict(
            model=net, optimizer=opt, scheduler=sched, scaler=scaler),
            device)
        done = store.resume(resume, history)
        s1, s2 = _sum_over_ranks([done, done * done], device)
        if s2 * world != s1 * s1:  # the epochs found differ between ranks
            raise CheckpointError(
                f"the processes found different checkpoints in "
                f"{checkpoint_dir}; it must be one folder shared by all")
        if done:
            say(f"resuming from {store.last_saved}: epoch {done} of "
                f"{num_epochs} done")
    model = net
    if world > 1:
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda"
            else None)
    num_batches = len(train_iter)
    bar = _Progress(progress if rank == 0 else "none", num_epochs,
                    num_batches)
    timer = Timer()
    timer.times.clear()
    train_l, train_acc, test_acc = (history[k][-1] if history[k]
                                    else math.nan for k in (
                                        "train_loss", "train_acc",
                                        "test_acc"))
    seen = test_n = 0
    sampler = getattr(train_iter, "sampler", None)
    try:
        for epoch in range(done, num_epochs):
            if hasattr(sampler, "set_epoch"):  # DistributedSampler
                sampler.set_epoch(epoch)
            start = time.perf_counter()
            total_l = total_acc = n = 0.0
            model.train()
            for i, (X, y) in enumerate(train_iter):
                timer.start()
                opt.zero_grad()
                X, y = X.to(device), y.to(device)
                if channels_last:
                    X = X.contiguous(memory_format=torch.channels_last)
                with torch.autocast(**autocast):
                    y_hat = model(X)
                    l = loss(y_hat, y)
                value = float(l.detach())
                _check_finite(value, epoch, i, num_batches, lr, device,
                              store and store.last_saved)
                scaler.scale(l).backward()
                scaler.step(opt)
                scaler.update()
                with torch.no_grad():
                    total_l += value * X.shape[0]
                    total_acc += accuracy(y_hat, y)
                    n += X.shape[0]
                timer.stop()
                train_l, train_acc = total_l / n, total_acc / n
                show = ((i + 1) % max(num_batches // 5, 1) == 0
                        or i == num_batches - 1)
                bar.batch(epoch + (i + 1) / num_batches, train_l,
                          train_acc, show)
            total_l, total_acc, n = _sum_over_ranks((total_l, total_acc, n),
                                                    device)
            train_l, train_acc = total_l / n, total_acc / n
            seen += n
            if sched is not None:
                sched.step()
            if world > 1:  # every process evaluates rank 0's statistics
                for b in net.buffers():
                    dist.broadcast(b, 0)
            with torch.autocast(**autocast):
                correct, test_n = _correct_and_total(net, test_iter, device)
            test_acc = correct / test_n
            for key, value in zip(history, (epoch + 1, train_l, train_acc,
                                            test_acc,
                                            time.perf_counter() - start)):
                history[key].append(value)
            if store is not None:
                store.save(epoch + 1, history)
            bar.epoch(epoch + 1, train_l, train_acc, test_acc)
    finally:
        bar.close()
    say(f"loss {train_l:.3f}, train acc {train_acc:.3f}, "
        f"test acc {test_acc:.3f}")
    if seen:
        history["examples_per_sec"] = seen / timer.sum()
        say(f"{history['examples_per_sec']:.1f} examples/sec on {where}")
    else:
        history["examples_per_sec"] = math.nan
        say(f"nothing to train: the checkpoint holds epoch {done} of "
            f"{num_epochs}")
    history["test_examples"] = int(test_n)
    return history
