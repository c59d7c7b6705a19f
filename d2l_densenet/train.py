"""A ``train_ch6``-compatible training loop.

``train_ch6(net, train_iter, test_iter, num_epochs, lr, device)`` behaves
as the book's (Xavier init, SGD, the same two closing lines) and adds
options: Adam, mixed precision, channels-last, seeds, progress display,
and a returned per-epoch history.

The command line (``python -m d2l_densenet``) lives in ``cli.py``.
"""
from __future__ import annotations

import math
import sys
import time

import torch
from torch import nn

from .measure import Timer

__all__ = ["train_ch6", "evaluate_accuracy", "accuracy", "OPTIMIZERS",
           "AMP_DTYPES", "PROGRESS"]

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROGRESS = ("auto", "animator", "tqdm", "print", "none")


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions (the book's ``d2l.accuracy``)."""
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return float((y_hat.type(y.dtype) == y).sum())


def evaluate_accuracy(net: nn.Module, data_iter, device=None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (``evaluate_accuracy_gpu``)."""
    net.eval()
    if device is None:
        device = next(iter(net.parameters())).device
    correct = total = 0.0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += accuracy(net(X), y)
            total += y.numel()
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


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int,
              lr: float, device, *, optimizer: str = "sgd",
              amp: str | None = None, channels_last: bool = False,
              progress: str = "auto", seed: int | None = None,
              init: bool = True) -> dict[str, list[float]]:
    """Train ``net`` as the book's ``train_ch6`` does and return the
    per-epoch history (``epoch``, ``train_loss``, ``train_acc``,
    ``test_acc``, ``seconds``).

    ``optimizer``: "sgd" (book) or "adam". ``amp``: None, "bf16" or
    "fp16" autocast (fp16 on CUDA only, with a gradient scaler).
    ``seed`` fixes initialisation and data order. ``init=False`` keeps
    the current weights (e.g. pretrained ones) instead of Xavier.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, "
                         f"got {optimizer!r}")
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None or one of {sorted(AMP_DTYPES)},"
                         f" got {amp!r}")
    device = torch.device(device)
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' "
                         "on the CPU or amp=None")
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
    print("training on", device)
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = OPTIMIZERS[optimizer](net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=(amp == "fp16"))
    autocast = dict(device_type=device.type, dtype=AMP_DTYPES.get(amp),
                    enabled=amp is not None)
    num_batches = len(train_iter)
    bar = _Progress(progress, num_epochs, num_batches)
    timer = Timer()
    timer.times.clear()
    history = {k: [] for k in ("epoch", "train_loss", "train_acc",
                               "test_acc", "seconds")}
    train_l = train_acc = test_acc = math.nan
    seen = 0
    try:
        for epoch in range(num_epochs):
            start = time.perf_counter()
            total_l = total_acc = n = 0.0
            net.train()
            for i, (X, y) in enumerate(train_iter):
                timer.start()
                opt.zero_grad()
                X, y = X.to(device), y.to(device)
                if channels_last:
                    X = X.contiguous(memory_format=torch.channels_last)
                with torch.autocast(**autocast):
                    y_hat = net(X)
                    l = loss(y_hat, y)
                scaler.scale(l).backward()
                scaler.step(opt)
                scaler.update()
                with torch.no_grad():
                    total_l += float(l) * X.shape[0]
                    total_acc += accuracy(y_hat, y)
                    n += X.shape[0]
                timer.stop()
                train_l, train_acc = total_l / n, total_acc / n
                show = ((i + 1) % max(num_batches // 5, 1) == 0
                        or i == num_batches - 1)
                bar.batch(epoch + (i + 1) / num_batches, train_l,
                          train_acc, show)
            seen += n
            with torch.autocast(**autocast):
                test_acc = evaluate_accuracy(net, test_iter, device)
            bar.epoch(epoch + 1, train_l, train_acc, test_acc)
            for key, value in zip(history, (epoch + 1, train_l, train_acc,
                                            test_acc,
                                            time.perf_counter() - start)):
                history[key].append(value)
    finally:
        bar.close()
    print(f"loss {train_l:.3f}, train acc {train_acc:.3f}, "
          f"test acc {test_acc:.3f}")
    print(f"{seen / timer.sum():.1f} examples/sec on {str(device)}")
    history["examples_per_sec"] = seen / timer.sum()
    return history
