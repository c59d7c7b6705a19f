"""Several processes (``torchrun``): ranks, collectives, decisions made
once and errors agreed on, and SyncBatchNorm for the CPU.

Two rules keep a run of N processes from hanging or drifting apart:

* whatever must be the same in every process (a measured precision, the
  settings read from a checkpoint) is decided once, on rank 0, and
  broadcast (:func:`decided_by_rank0`);
* code that can fail in one process only (reading a file, loading data)
  runs inside :func:`agreed`: before anyone goes on to the next
  collective, every rank learns whether any rank failed, and then every
  rank raises, with the first failure's message. A lone failure would
  otherwise leave the others waiting in a collective until the gloo or
  NCCL timeout.

Without an initialised process group all of this is a no-op.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["world", "is_main", "say", "sum_over_ranks", "agreed",
           "decided_by_rank0", "RankFailedError", "broadcast_buffers",
           "CpuSyncBatchNorm", "convert_sync_batchnorm"]

T = TypeVar("T")


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


def sum_over_ranks(values, device) -> list[float]:
    """Element-wise sum of ``values`` over all processes."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class RankFailedError(RuntimeError):
    """Another process failed; this one stops with it."""


def _describe(error: BaseException) -> tuple[str, str]:
    return type(error).__name__, str(error)


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
    raise RankFailedError(f"process {r} of {size} failed ({kind}): "
                          f"{message}")


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
