"""Several processes (``torchrun``): ranks, collectives, decisions made
once and errors agreed on, and SyncBatchNorm for the CPU.

Three rules keep a run of N processes from hanging or drifting apart:

* whatever must be the same in every process (a measured precision, the
  settings read from a checkpoint) is decided once, on rank 0, and
  broadcast (:func:`decided_by_rank0`);
* code that can fail in one process only (reading a file, loading data,
  a training step's forward pass, an evaluation) runs before a
  collective that carries whether it failed (:func:`agreed`,
  :func:`exchange`): every rank learns of a failure in the same
  collective, and every rank raises, the failing one its own error, the
  others :class:`RankFailedError` naming it. A lone failure would
  otherwise leave the others waiting in their next collective;
* a failure that cannot be agreed on (inside a collective the others
  are already waiting in: DDP's gradient all-reduce in the backward
  pass, SyncBatchNorm's in the forward pass; a process that dies) is
  written to the process group's store (:func:`failures_named`). The
  others stop when their collective fails: within seconds on gloo if
  the failed process has exited (or torchrun has ended it), else after
  the process group's timeout (:func:`timeout`, which the command line
  passes to ``init_process_group``); they then raise
  :class:`RankFailedError` naming the process that failed.

Data is fetched by one process per machine while the others wait
(:func:`one_per_machine`). Without an initialised process group all of
this is a no-op.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["world", "is_main", "say", "sum_over_ranks", "agreed",
           "exchange", "decided_by_rank0", "RankFailedError",
           "failures_named", "one_per_machine", "timeout", "TIMEOUT_ENV",
           "broadcast_buffers", "CpuSyncBatchNorm",
           "convert_sync_batchnorm"]

T = TypeVar("T")

#: Seconds a process waits in a collective before it gives up, for what
#: cannot be agreed on (see :func:`timeout`).
TIMEOUT_ENV = "D2L_DENSENET_TIMEOUT"
DEFAULT_TIMEOUT_S = 300
#: How long a process waits for the others' record of a failure after a
#: collective failed (the failed process writes it before it exits).
RECORD_GRACE_S = 5.0
#: How long the other processes wait for one per machine to fetch data.
FETCH_PATIENCE = timedelta(minutes=30)
_PREFIX = "d2l_densenet"


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless a
    process group (e.g. from ``torchrun``) is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in rank 0 (and in a single process): the one that prints."""
    return world()[0] == 0


def say(*args, **kwargs) -> None:
    """``print`` in rank 0 only."""
    if is_main():
        print(*args, **kwargs)


def timeout() -> timedelta:
    """The process-group timeout the command line passes to
    ``init_process_group``: how long a process waits in a collective for
    the others. Failures agreed on stop every process within seconds;
    this bounds the wait for the rest (a process that hangs, or fails
    inside a collective and stays alive). ``$D2L_DENSENET_TIMEOUT``
    (seconds) overrides the default of 300."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0, "
                         f"got {text!r}")
    return timedelta(seconds=seconds)


def sum_over_ranks(values, device) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class RankFailedError(RuntimeError):
    """Another process failed; this one stops with it. ``rank`` is the
    failed process (None where no process recorded a failure)."""

    def __init__(self, message: str, rank: int | None = None) -> None:
        super().__init__(message)
        self.rank = rank


def _describe(error: BaseException) -> tuple[str, str]:
    return type(error).__name__, str(error)


def _failed_message(r: int, size: int, kind: str, message: str) -> str:
    return f"process {r} of {size} failed ({kind}): {message}"


def _raise_agreed(mine: BaseException | None) -> None:
    """Every rank passes its error (or None); if any rank has one, every
    rank raises: a failing rank its own error, the others
    :class:`RankFailedError` with the first failing rank's message."""
    rank, size = world()
    if size == 1:
        if mine is not None:
            raise mine
        return
    gathered: list = [None] * size
    dist.all_gather_object(gathered,
                           None if mine is None else _describe(mine))
    failed = [(r, e) for r, e in enumerate(gathered) if e is not None]
    if not failed:
        return
    if mine is not None:
        raise mine
    r, (kind, message) = failed[0]
    raise RankFailedError(_failed_message(r, size, kind, message), rank=r)


@contextlib.contextmanager
def agreed():
    """Run the block; then every rank learns whether any rank raised,
    and if one did, every rank raises (its own error, or
    :class:`RankFailedError` naming the failing rank and its message).

    Use it around code that can fail in one process only, before the
    next collective: ``with agreed(): state = load(path)``."""
    error = None
    try:
        yield
    except Exception as e:
        error = e
    _raise_agreed(error)


def exchange(values: Sequence[float], device,
             error: BaseException | None = None) -> list[list[float]]:
    """Every rank's ``values``, one row per rank, in a single all-reduce
    that also carries whether each rank failed: if any rank passes an
    ``error``, every rank raises (its own error, or
    :class:`RankFailedError` naming the first failing rank).

    The training loop calls it once per step, after the forward pass and
    before the backward pass, with the loss; in a single process it
    raises ``error`` or returns ``[values]``."""
    rank, size = world()
    if size == 1:
        if error is not None:
            raise error
        return [list(values)]
    t = torch.zeros(size, len(values) + 1, dtype=torch.float64)
    t[rank, 0] = float(error is not None)
    t[rank, 1:] = torch.tensor([float(v) for v in values],
                               dtype=torch.float64)
    t = t.to(device)
    dist.all_reduce(t)
    rows = t.tolist()
    if any(row[0] for row in rows):
        _raise_agreed(error)
    return [row[1:] for row in rows]


def decided_by_rank0(decide: Callable[[], T]) -> T:
    """``decide()`` run in rank 0 only, its result (any picklable object)
    broadcast to every rank; an error in rank 0 is raised everywhere."""
    rank, size = world()
    if size == 1:
        return decide()
    box: list = [None]
    error = None
    if rank == 0:
        try:
            box = [decide()]
        except Exception as e:
            error = e
    _raise_agreed(error)
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --- failures that cannot be agreed on ---------------------------------

#: One random token per process group, drawn by rank 0: the namespace of
#: this group's keys in the store (a store can outlive a group).
_tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _token() -> str:
    """The current process group's token (a collective the first time)."""
    group = dist.group.WORLD
    if group not in _tokens:
        _tokens[group] = decided_by_rank0(lambda: secrets.token_hex(8))
    return _tokens[group]


def _store():
    """The default process group's store, or None."""
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:
        return None


def _failure_key(token: str, rank: int) -> str:
    return f"{_PREFIX}/{token}/failed/{rank}"


def _is_lost_contact(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another
    process went away or did not answer (gloo, NCCL, the store)."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(s in text for s in (
        "gloo", "Gloo", "NCCL", "Connection closed by peer",
        "Connection reset by peer", "Timed out waiting", "timed out"))


def _recorded_failure(token: str, rank: int, size: int,
                      grace: float) -> RankFailedError | None:
    """The first other rank's recorded failure, waiting up to ``grace``
    seconds for one to appear."""
    store = _store()
    if store is None:
        return None
    deadline = time.monotonic() + grace
    while True:
        for r in range(size):
            if r == rank:
                continue
            key = _failure_key(token, r)
            try:
                if store.check([key]):
                    kind, message = json.loads(store.get(key).decode())
                    return RankFailedError(
                        _failed_message(r, size, kind, message), rank=r)
            except Exception:   # the store itself is gone
                return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


@contextlib.contextmanager
def failures_named(grace: float = RECORD_GRACE_S):
    """Around work in which a failure may not be agreed on (a training
    loop): a failure of this process is written to the process group's
    store before it is raised; a collective that fails because another
    process went away or timed out becomes :class:`RankFailedError`
    naming the process that recorded a failure (waiting up to ``grace``
    seconds for its record), or saying that contact was lost.

    Every rank enters it at the same point (the first entry in a process
    group is a collective). A no-op in a single process."""
    rank, size = world()
    if size == 1:
        yield
        return
    token = _token()
    try:
        yield
    except RankFailedError:
        raise
    except Exception as e:
        if not _is_lost_contact(e):
            store = _store()
            with contextlib.suppress(Exception):
                kind, message = _describe(e)
                store.set(_failure_key(token, rank),
                          json.dumps([kind, message[:2000]]))
            raise
        named = _recorded_failure(token, rank, size, grace)
        if named is None:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            named = RankFailedError(
                f"lost contact with the other processes ({type(e).__name__}"
                f": {first}); one of them died or stopped answering "
                f"without recording an error")
        raise named from e


def _local_rank(rank: int) -> int:
    """This process's rank on its machine: ``$LOCAL_RANK`` (torchrun),
    else the global rank (processes started by hand: one machine)."""
    try:
        return int(os.environ["LOCAL_RANK"])
    except (KeyError, ValueError):
        return rank


def one_per_machine(work: Callable[[], T],
                    patience: timedelta = FETCH_PATIENCE) -> T:
    """``work()`` (e.g. find or download a data set) first in one process
    per machine (local rank 0), then, once all of those have succeeded,
    in the others, which find what the first one fetched instead of
    fetching it again at the same time. The others wait on the process
    group's store for up to ``patience`` (a download may take longer
    than a collective's timeout). Errors are agreed on: a failure in any
    process stops every process. Every rank calls it at the same point;
    in a single process it is ``work()``."""
    rank, size = world()
    if size == 1:
        return work()
    local = _local_rank(rank)
    key = f"{_PREFIX}/{_token()}/fetched/{rank - local}/{_next_fetch()}"
    store = _store()
    result, error = None, None
    if local == 0:
        try:
            result = work()
        except Exception as e:
            error = e
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.set(key, "1")
    elif store is not None:
        with contextlib.suppress(Exception):  # else: the collective waits
            store.wait([key], patience)
    _raise_agreed(error)            # a failed fetch stops every process
    with agreed():
        if local != 0:
            result = work()
    return result


_fetches = 0


def _next_fetch() -> int:
    """A counter of :func:`one_per_machine` calls (the same in every
    process, which all call it together)."""
    global _fetches
    _fetches += 1
    return _fetches


def broadcast_buffers(net: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm's running statistics) to every
    rank, so that every rank evaluates the same model."""
    if world()[1] > 1:
        for b in net.buffers():
            dist.broadcast(b, 0)


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
        if not (self.training and world()[1] > 1):
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
