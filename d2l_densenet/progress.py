"""How ``train_ch6`` shows its progress: the book's Animator in a
notebook, a tqdm bar in a terminal, one printed line per epoch in a log,
or nothing. The Animator comes from the ``d2l`` package, which the
package itself does not need: without it a notebook gets a tqdm bar."""
from __future__ import annotations

import sys

__all__ = ["PROGRESS", "Progress"]

#: What ``train_ch6(progress=...)`` accepts; "auto" picks the Animator in
#: a notebook (tqdm there if ``d2l`` is not installed), tqdm on a
#: terminal, else "print".
PROGRESS = ("auto", "animator", "tqdm", "print", "none")
#: How to get the Animator's package (its pins break recent Pythons).
D2L_INSTALL = "pip install d2l==1.0.3 --no-deps"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell else None
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _animator_class():
    """``d2l.torch.Animator``, or None where ``d2l`` cannot be imported."""
    try:
        from d2l import torch as d2l
    except ImportError:
        return None
    return d2l.Animator


class Progress:
    """One interface over d2l.Animator, tqdm and plain prints."""

    def __init__(self, kind: str, num_epochs: int, num_batches: int):
        if kind not in PROGRESS:
            raise ValueError(f"progress must be one of {PROGRESS}, got "
                             f"{kind!r}")
        animator = None
        if kind == "auto":
            notebook = _in_notebook()
            animator = _animator_class() if notebook else None
            kind = ("animator" if animator is not None
                    else "tqdm" if notebook or sys.stderr.isatty()
                    else "print")
        elif kind == "animator":
            animator = _animator_class()
            if animator is None:
                raise ModuleNotFoundError(
                    f"progress='animator' draws with the d2l package's "
                    f"Animator, and d2l cannot be imported here; install "
                    f"it ({D2L_INSTALL}) or use progress='tqdm' or "
                    f"'print'", name="d2l")
        self.kind, self.num_epochs = kind, num_epochs
        self.num_batches = num_batches
        self.bar = self.animator = None
        if kind == "animator":
            self.animator = animator(
                xlabel="epoch", xlim=[1, num_epochs],
                legend=["train loss", "train acc", "test acc"])
        elif kind == "tqdm":
            from tqdm.auto import tqdm
            self.bar = tqdm(total=num_epochs * num_batches, unit="batch")

    def batch(self, epoch: int, i: int, loss: float, acc: float) -> None:
        """After batch ``i`` (from 0) of ``epoch`` (from 0); the book
        plots five points per epoch."""
        n = self.num_batches
        show = (i + 1) % max(n // 5, 1) == 0 or i == n - 1
        if self.bar is not None:
            self.bar.update(1)
            if show:
                self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
        elif self.animator is not None and show:
            self.animator.add(epoch + (i + 1) / n, (loss, acc, None))

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
