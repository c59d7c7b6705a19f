"""Training on the Kaggle house prices: the book's ``train`` and its
k-fold protocol, the log-RMSE metric and the final fit on all rows.

``k_fold`` takes either the raw feature DataFrame (each fold then fits a
:class:`~d2l_densenet.house.HousePreprocessor` on its own training rows:
the honest protocol) or an already preprocessed tensor (the book's).
The data and its preprocessing are ``house.py``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .house import (
    TARGET,
    HousePreprocessor,
    _check_features,
    house_features,
)

__all__ = ["log_rmse", "get_k_fold_data", "train_house", "k_fold",
           "fit_and_predict"]


def log_rmse(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """The book's metric: RMSE between log prices, predictions clamped at
    1 so the log stays finite."""
    preds, labels = preds.detach().reshape(-1), labels.reshape(-1)
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} "
                         f"labels")
    clipped = torch.clamp(preds.float(), 1, float("inf"))
    rmse = torch.sqrt(nn.functional.mse_loss(torch.log(clipped),
                                             torch.log(labels.float())))
    return rmse.item()


def get_k_fold_data(k: int, i: int, X, y):
    """The book's split: fold ``i`` of ``k`` contiguous folds is the
    validation set (rows beyond ``k * (n // k)`` are not used). ``X`` may
    be a tensor or a DataFrame (rows are taken in order)."""
    for name, value in (("k", k), ("i", i)):
        integral = isinstance(value, numbers.Integral)
        if isinstance(value, bool) or not integral:
            raise TypeError(f"{name} must be an int, got {value!r}")
    if not 2 <= k <= len(X):
        raise ValueError(f"k must be between 2 and the number of rows "
                         f"({len(X)}), got {k}")
    if not 0 <= i < k:
        raise ValueError(f"i must be a fold index between 0 and k - 1 = "
                         f"{k - 1}, got {i}")
    if len(y) != len(X):
        raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
    fold_size = len(X) // k
    take = (lambda a, idx: a.iloc[idx]) if isinstance(X, pd.DataFrame) \
        else (lambda a, idx: a[idx])
    train_idx, valid_idx = [], None
    for j in range(k):
        idx = slice(j * fold_size, (j + 1) * fold_size)
        if j == i:
            valid_idx = idx
        else:
            train_idx.append(np.arange(j * fold_size, (j + 1) * fold_size))
    train_idx = np.concatenate(train_idx)
    if not isinstance(X, pd.DataFrame):
        train_idx = torch.as_tensor(train_idx)
    y_train = y[torch.as_tensor(train_idx)]
    return take(X, train_idx), y_train, take(X, valid_idx), y[valid_idx]


class _Target:
    """Maps prices to what the net is trained on, and back."""

    def __init__(self, kind: str, labels: torch.Tensor) -> None:
        if kind not in ("price", "log"):
            raise ValueError(f"target must be 'price' (the book: MSE on "
                             f"prices) or 'log', got {kind!r}")
        self.kind = kind
        if kind == "log":
            logs = torch.log(labels)
            self.mu, self.sigma = logs.mean(), logs.std()

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        if self.kind == "price":
            return labels
        return (torch.log(labels) - self.mu) / self.sigma

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        if self.kind == "price":
            return out
        return torch.exp(out * self.sigma + self.mu)


#: The optimizers ``train_house`` accepts.
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "sgd": torch.optim.SGD}


def _make_optimizer(name: str, params, lr: float, weight_decay: float):
    """``foreach=True``: one kernel per step for all parameters (PyTorch's
    default on GPUs only). The models here are tiny: on a CPU the
    per-parameter loop cost about 15% of a DenseMLP's training time (2
    cores, AVX2), and the arithmetic is the same (tests/test_house.py)."""
    if name in OPTIMIZERS:
        return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay,
                                foreach=True)
    raise ValueError(f"optimizer must be 'adam' (the book), 'adamw' or "
                     f"'sgd', got {name!r}")


@torch.no_grad()
def _predict(net: nn.Module, X: torch.Tensor, target: _Target,
             batch: int = 4096, eval_mode: bool = True) -> torch.Tensor:
    was_training = net.training
    net.train(not eval_mode)
    out = torch.cat([net(X[i:i + batch]) for i in range(0, len(X), batch)])
    net.train(was_training)
    return target.decode(out)


def train_house(net: nn.Module, train_features: torch.Tensor,
                train_labels: torch.Tensor, valid_features=None,
                valid_labels=None, *, num_epochs: int, lr: float,
                weight_decay: float = 0.0, batch_size: int = 64,
                optimizer: str = "adam", target: str = "price",
                seed: int | None = 0, device=None, eval_mode: bool = True):
    """The book's ``train``: minibatch ``optimizer`` on the squared error,
    log-RMSE of train (and validation) rows after every epoch.

    ``target='price'`` is the book (MSE on prices); ``target='log'`` trains
    on standardised log prices (statistics of the training rows) and
    predicts ``exp`` of the output. Evaluation runs the net in eval mode
    (BatchNorm's running statistics, no dropout); ``eval_mode=False`` does
    what the book's code does, which never calls ``net.eval()``: BatchNorm
    then normalises with the statistics of the rows being evaluated (and
    updates its running statistics), dropout stays on. ``seed`` fixes the
    batch order with a generator of its own (``None``: a fresh order); the
    global RNG is not reseeded. Returns ``(train_ls, valid_ls, predict)``
    where ``predict(X)`` gives prices."""
    device = torch.device(device or "cpu")
    if train_labels.dim() == 1:
        train_labels = train_labels.reshape(-1, 1)
    if valid_labels is not None and valid_labels.dim() == 1:
        valid_labels = valid_labels.reshape(-1, 1)
    Xtr = train_features.to(device, torch.float32)
    ytr = train_labels.to(device, torch.float32)
    tgt = _Target(target, ytr)
    ytr_t = tgt.encode(ytr)
    if valid_features is not None:
        Xva = valid_features.to(device, torch.float32)
        yva = valid_labels.to(device, torch.float32)
    net = net.to(device)
    opt = _make_optimizer(optimizer, net.parameters(), lr, weight_decay)
    loss = nn.MSELoss()
    gen = torch.Generator()   # batch order; the global RNG is untouched
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    n = len(Xtr)
    train_ls, valid_ls = [], []
    for _ in range(num_epochs):
        net.train()
        perm = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2 and n > 1:   # BatchNorm needs 2 rows
                continue
            opt.zero_grad()
            l = loss(net(Xtr[idx]), ytr_t[idx])
            l.backward()
            opt.step()
        train_ls.append(log_rmse(_predict(net, Xtr, tgt,
                                          eval_mode=eval_mode), ytr))
        if valid_features is not None:
            valid_ls.append(log_rmse(_predict(net, Xva, tgt,
                                              eval_mode=eval_mode), yva))

    def predict(X: torch.Tensor) -> torch.Tensor:
        return _predict(net, X.to(device, torch.float32), tgt,
                        eval_mode=eval_mode).cpu()

    return train_ls, valid_ls, predict


def _fold_tensors(X_tr, X_va, dummy_na):
    if isinstance(X_tr, pd.DataFrame):
        pre = HousePreprocessor(dummy_na=dummy_na).fit(X_tr)
        return pre.transform(X_tr), pre.transform(X_va)
    return X_tr, X_va


def k_fold(k: int, X, y: torch.Tensor,
           net_fn: Callable[[int], nn.Module], *, num_epochs: int,
           lr: float, weight_decay: float = 0.0, batch_size: int = 64,
           optimizer: str = "adam", target: str = "price", seed: int = 0,
           device=None, dummy_na: bool = True, eval_mode: bool = True,
           verbose: bool = True):
    """The book's ``k_fold`` with a model factory.

    ``X`` is either the raw feature DataFrame (``house_features(train)``):
    each fold then fits a :class:`HousePreprocessor` on its training rows
    only (the honest protocol), or an already preprocessed tensor (e.g.
    from :func:`preprocess_book`: the book's protocol). ``net_fn(d)``
    builds a fresh net for ``d`` input features; fold ``i`` seeds torch
    with ``seed * 1000 + i`` (init and batch order). Returns a dict with
    per-fold curves ``train_ls``/``valid_ls`` (lists of lists), the final
    ``train``/``valid`` log-RMSE per fold and their means."""
    if isinstance(X, pd.DataFrame):
        _check_features(X)
    y = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
    if len(X) != len(y):
        raise ValueError(f"{len(X)} feature rows but {len(y)} labels")
    out = dict(train_ls=[], valid_ls=[], train=[], valid=[])
    for i in range(k):
        X_tr, y_tr, X_va, y_va = get_k_fold_data(k, i, X, y)
        X_tr, X_va = _fold_tensors(X_tr, X_va, dummy_na)
        fold_seed = seed * 1000 + i
        torch.manual_seed(fold_seed)
        net = net_fn(X_tr.shape[1])
        train_ls, valid_ls, _ = train_house(
            net, X_tr, y_tr, X_va, y_va, num_epochs=num_epochs, lr=lr,
            weight_decay=weight_decay, batch_size=batch_size,
            optimizer=optimizer, target=target, seed=fold_seed,
            device=device, eval_mode=eval_mode)
        out["train_ls"].append(train_ls)
        out["valid_ls"].append(valid_ls)
        out["train"].append(train_ls[-1])
        out["valid"].append(valid_ls[-1])
        if verbose:
            print(f"fold {i + 1}, train log rmse {train_ls[-1]:f}, "
                  f"valid log rmse {valid_ls[-1]:f}")
    out["train_mean"] = float(np.mean(out["train"]))
    out["valid_mean"] = float(np.mean(out["valid"]))
    if verbose:
        print(f"{k}-fold validation: avg train log rmse: "
              f"{out['train_mean']:f}, avg valid log rmse: "
              f"{out['valid_mean']:f}")
    if not all(math.isfinite(v) for v in out["valid"]):
        print("warning: some folds diverged (non-finite log rmse)")
    return out


def fit_and_predict(train_data: pd.DataFrame, test_data: pd.DataFrame,
                    net_fn: Callable[[int], nn.Module], *,
                    num_epochs: int, lr: float, weight_decay: float = 0.0,
                    batch_size: int = 64, optimizer: str = "adam",
                    target: str = "price", seed: int = 0, device=None,
                    dummy_na: bool = True):
    """Train on all training rows (preprocessing fitted on them only) and
    predict the test rows. Returns ``(train_ls, predictions)``; the
    predictions are prices, shape (n_test,)."""
    pre = HousePreprocessor(dummy_na=dummy_na).fit(house_features(train_data))
    X = pre.transform(house_features(train_data))
    X_test = pre.transform(house_features(test_data))
    y = torch.tensor(train_data[TARGET].to_numpy(), dtype=torch.float32)
    torch.manual_seed(seed)
    net = net_fn(X.shape[1])
    train_ls, _, predict = train_house(
        net, X, y, num_epochs=num_epochs, lr=lr, weight_decay=weight_decay,
        batch_size=batch_size, optimizer=optimizer, target=target,
        seed=seed, device=device)
    return train_ls, predict(X_test).reshape(-1)
