"""The Kaggle house-price pipeline (exercise 5) on the real CSVs from the
offline wheel, and the DenseMLP."""
import hashlib
import shutil

import pandas as pd
import pytest
import torch
from torch import nn

from d2l_densenet import (
    DenseLinearBlock,
    DenseMLP,
    HouseDataCorruptError,
    HouseDataNotFoundError,
    HousePreprocessor,
    dense_linear_block,
    dense_mlp,
    find_house_data,
    house,
    house_features,
    k_fold,
    log_rmse,
    preprocess_book,
    read_house_data,
    submission_frame,
)
from d2l_densenet.house import HOUSE_DATA_ENV, HOUSE_FILES
from d2l_densenet.house_train import get_k_fold_data, train_house


@pytest.fixture(scope="module")
def data():
    return read_house_data(download=False)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: threads only add overhead
    yield
    torch.set_num_threads(old)


def test_files_found_offline_and_verified(data):
    paths = find_house_data(download=False)
    for part, path in paths.items():
        sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        assert sha1 == HOUSE_FILES[part][2]
    train_data, test_data = data
    assert train_data.shape == (1460, 81)
    assert test_data.shape == (1459, 80)
    assert "SalePrice" in train_data.columns
    assert "SalePrice" not in test_data.columns


def test_book_preprocessing_feature_count(data):
    """pandas >= 2 reads the string "None" as missing, so MasVnrType loses
    its "None" category and the book's 331 columns become 330; reading
    the files as pandas 1 did gives the book's 331 again."""
    train_data, test_data = data
    X, X_test, y, names = preprocess_book(train_data, test_data)
    assert X.shape == (1460, 330) and X_test.shape == (1459, 330)
    assert X.dtype == torch.float32 and y.shape == (1460, 1)
    assert not torch.isnan(X).any() and not torch.isnan(X_test).any()
    assert "SalePrice" not in names and "Id" not in names
    assert "MasVnrType_None" not in names
    legacy = read_house_data(download=False, legacy_na=True)
    X_old, _, _, names_old = preprocess_book(*legacy)
    assert X_old.shape == (1460, 331)
    assert set(names_old) - set(names) == {"MasVnrType_None"}


def test_preprocessor_reproduces_the_book(data):
    train_data, test_data = data
    X, X_test, _, names = preprocess_book(train_data, test_data)
    pre = HousePreprocessor().fit(pd.concat(
        (house_features(train_data), house_features(test_data))))
    assert pre.feature_names == names
    assert torch.equal(pre.transform(house_features(train_data)), X)
    assert torch.equal(pre.transform(house_features(test_data)), X_test)


def test_no_target_in_features(data):
    train_data, _ = data
    features = house_features(train_data)
    assert "SalePrice" not in features.columns
    assert "Id" not in features.columns
    assert features.shape == (1460, 79)
    with pytest.raises(ValueError, match="SalePrice"):
        HousePreprocessor().fit(train_data)
    y = torch.ones(len(train_data))
    with pytest.raises(ValueError, match="SalePrice"):
        k_fold(2, train_data, y, lambda d: nn.Linear(d, 1), num_epochs=1,
               lr=1.0, verbose=False)


def test_fold_statistics_come_from_training_rows_only(data):
    """Changing (even destroying) the validation rows of a fold leaves the
    transform fitted on its training rows unchanged."""
    train_data, _ = data
    features = house_features(train_data)
    y = torch.tensor(train_data["SalePrice"].to_numpy(), dtype=torch.float)
    X_tr, _, X_va, _ = get_k_fold_data(5, 1, features, y)
    assert len(X_tr) == 1168 and len(X_va) == 292
    assert set(X_tr.index).isdisjoint(X_va.index)
    base = HousePreprocessor().fit(X_tr)
    ref = base.transform(X_tr)
    changed = features.copy()
    rows = X_va.index
    changed.loc[rows, "GrLivArea"] = 10 ** 6
    changed.loc[rows, "MSZoning"] = "NEW_CATEGORY"
    X_tr2, _, X_va2, _ = get_k_fold_data(5, 1, changed, y)
    pre = HousePreprocessor().fit(X_tr2)
    assert torch.equal(pre.transform(X_tr2), ref)
    assert pre.feature_names == base.feature_names
    assert pre.mean.equals(base.mean) and pre.std.equals(base.std)
    # an unseen category is treated as missing, never a new column
    out = pre.transform(X_va2)
    assert out.shape[1] == len(base.feature_names)
    j = base.feature_names.index("MSZoning_nan")
    assert torch.all(out[:, j] == 1)
    assert not torch.isnan(out).any() and out.dtype == torch.float32


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(HouseDataNotFoundError) as e:
        find_house_data(root=tmp_path, download=False)
    msg = str(e.value)
    assert "kaggle_house_pred_train.csv" in msg
    assert HOUSE_FILES["train"][2] in msg
    assert "pip install" in msg and "d2l-data" in msg


def test_corrupt_file_is_a_clear_error(tmp_path, monkeypatch):
    good = find_house_data(download=False)
    for part, path in good.items():
        shutil.copy(path, tmp_path / HOUSE_FILES[part][0])
    # the copies are accepted through the environment variable ...
    monkeypatch.setenv(HOUSE_DATA_ENV, str(tmp_path))
    found = find_house_data(download=False)
    assert found["train"].parent == tmp_path
    # ... until one byte changes
    target = tmp_path / HOUSE_FILES["test"][0]
    raw = bytearray(target.read_bytes())
    raw[200] = ord("7") if raw[200] != ord("7") else ord("8")
    target.write_bytes(bytes(raw))
    with pytest.raises(HouseDataCorruptError) as e:
        find_house_data(download=False)
    msg = str(e.value)
    assert str(target) in msg and HOUSE_FILES["test"][2] in msg


@pytest.mark.parametrize("how", ["root", "env"])
def test_missing_root_is_an_error_not_a_fallback(tmp_path, monkeypatch,
                                                 how):
    gone = tmp_path / "typo"
    if how == "env":
        monkeypatch.setenv(HOUSE_DATA_ENV, str(gone))
    with pytest.raises(HouseDataNotFoundError) as e:
        find_house_data(root=gone if how == "root" else None)
    msg = str(e.value)
    assert str(gone) in msg and "does not exist" in msg
    assert HOUSE_FILES["train"][0] in msg     # what is accepted
    assert not gone.exists()                   # nothing downloaded


@pytest.fixture
def served(tmp_path, monkeypatch):
    """d2l's DATA_URL pointed at a local folder (file://, no network)."""
    folder = tmp_path / "served"
    folder.mkdir()
    for part, path in find_house_data(download=False).items():
        shutil.copy(path, folder / HOUSE_FILES[part][0])
    monkeypatch.setattr(house, "DATA_URL", folder.as_uri() + "/")
    return folder


def test_download_fetches_only_what_is_missing(tmp_path, served):
    root = tmp_path / "root"
    root.mkdir()
    train = root / HOUSE_FILES["train"][1]       # the wheel's name
    shutil.copy(served / HOUSE_FILES["train"][0], train)
    found = find_house_data(root=root, download=True)
    assert found == {"train": train,
                     "test": root / HOUSE_FILES["test"][0]}
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [train.name, HOUSE_FILES["test"][0]])


def test_corrupt_download_leaves_nothing(tmp_path, served):
    bad = served / HOUSE_FILES["test"][0]
    bad.write_bytes(bad.read_bytes()[:-10])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(HouseDataCorruptError) as e:
        find_house_data(root=root, download=True)
    assert HOUSE_FILES["test"][2] in str(e.value)
    assert sorted(p.name for p in root.iterdir()) == [
        HOUSE_FILES["train"][0]]


def test_log_rmse_is_the_books_metric():
    labels = torch.tensor([[100.0], [1000.0]])
    assert log_rmse(labels, labels) == 0
    # predictions below 1 are clamped to 1 (log stays finite)
    preds = torch.tensor([[-5.0], [1000.0]])
    expected = (torch.log(torch.tensor(100.0)) ** 2 / 2) ** 0.5
    assert log_rmse(preds, labels) == pytest.approx(expected.item())


def test_dense_linear_block_shapes():
    blk = DenseLinearBlock(2, 3, 10)
    X = torch.randn(4, 3)
    assert blk(X).shape == (4, 23) and blk.out_features == 23
    assert dense_linear_block(5, 7)(torch.randn(4, 5)).shape == (4, 7)


def test_dense_mlp_shapes_gradients_and_names():
    net = dense_mlp(330, num_features=64, growth_rate=32, arch=(2, 2),
                    dropout=0.2)
    assert isinstance(net, DenseMLP)
    assert [n for n, _ in net.named_children()] == [
        "stem", "dense_blk1", "tran_blk1", "dense_blk2", "last"]
    # 64 -> +2*32 = 128 -> halved 64 -> +2*32 = 128
    assert net.num_features == 128
    X = torch.randn(8, 330)
    out = net(X)
    assert out.shape == (8, 1) and not torch.isnan(out).any()
    out.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    net.eval()
    assert net(X[:1]).shape == (1, 1)   # one example is fine in eval


@pytest.mark.parametrize("X, err, match", [
    (torch.randn(4, 10, 1), ValueError, "2-D"),
    (torch.randn(4, 9), ValueError, "10 input features"),
    (torch.ones(4, 10, dtype=torch.long), TypeError, "floating-point"),
    (torch.randn(1, 10), ValueError, "at least 2 rows"),
    ([[1.0] * 10], TypeError, "torch.Tensor"),
])
def test_dense_mlp_clear_errors(X, err, match):
    with pytest.raises(err, match=match):
        dense_mlp(10)(X)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch=()), r"arch must be a non-empty sequence of positive ints "
                    r"\(layers per dense block\), got \(\)"),
    (dict(arch=(2, 0)), r"arch must be .*, got \(2, 0\)"),
    (dict(growth_rate=0), "growth_rate must be a positive int, got 0"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0")])
def test_dense_mlp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dense_mlp(10, **kwargs)


@pytest.mark.slow
def test_short_k_fold_beats_the_linear_baseline(data, one_thread):
    """5 folds with per-fold preprocessing: a small DenseMLP on log prices
    (10 epochs) beats the book's linear model (lr 5, 100 epochs)."""
    train_data, test_data = data
    features = house_features(train_data)
    y = torch.tensor(train_data["SalePrice"].to_numpy(), dtype=torch.float)
    linear = k_fold(5, features, y, lambda d: nn.Linear(d, 1),
                    num_epochs=100, lr=5, weight_decay=0, batch_size=64,
                    verbose=False)
    assert 0.15 < linear["valid_mean"] < 0.2      # the book: about 0.17
    dense = k_fold(5, features, y,
                   lambda d: dense_mlp(d, 32, 16, (2, 2), dropout=0.2),
                   num_epochs=10, lr=3e-3, weight_decay=1e-2,
                   optimizer="adamw", batch_size=64, target="log",
                   verbose=False)
    assert len(dense["valid_ls"]) == 5
    assert all(len(c) == 10 for c in dense["train_ls"])
    assert dense["valid_mean"] < linear["valid_mean"]
    # a submission from the same pipeline
    from d2l_densenet.house_train import fit_and_predict
    _, preds = fit_and_predict(
        train_data, test_data,
        lambda d: dense_mlp(d, 32, 16, (2, 2), dropout=0.2), num_epochs=2,
        lr=3e-3, optimizer="adamw", target="log")
    sub = submission_frame(test_data, preds)
    assert sub.shape == (1459, 2)
    assert list(sub.columns) == ["Id", "SalePrice"]
    assert (sub["SalePrice"] > 0).all()


@pytest.mark.parametrize("seed", [None, 3])
def test_train_house_leaves_the_global_rng_alone(seed):
    X, y = torch.randn(20, 3), torch.rand(20) * 1e5 + 1e4
    net = nn.Linear(3, 1)
    before = torch.get_rng_state()
    train_house(net, X, y, num_epochs=2, lr=0.1, batch_size=8, seed=seed)
    assert torch.equal(torch.get_rng_state(), before)


def test_train_house_seed_fixes_the_batch_order():
    X, y = torch.randn(20, 3), torch.rand(20) * 1e5 + 1e4

    def losses(seed):
        torch.manual_seed(0)        # same initial weights
        return train_house(nn.Linear(3, 1), X, y, num_epochs=3, lr=0.1,
                           batch_size=4, seed=seed)[0]
    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_foreach_optimizers_train_as_the_per_parameter_loop(optimizer,
                                                            monkeypatch):
    """train_house's optimizers run with foreach=True (faster on a CPU);
    a DenseMLP (BatchNorm, dropout, weight decay) then ends with exactly
    the weights of PyTorch's per-parameter loop."""
    from d2l_densenet import house_train
    X, y = torch.randn(48, 7), torch.rand(48) * 1e5 + 1e4

    def weights():
        torch.manual_seed(0)
        net = dense_mlp(7, num_features=8, growth_rate=4, dropout=0.2)
        train_house(net, X, y, num_epochs=3, lr=1e-2, weight_decay=1e-2,
                    batch_size=16, optimizer=optimizer, target="log",
                    seed=1)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    fast = weights()
    made = house_train._make_optimizer(optimizer, [nn.Parameter(
        torch.zeros(1))], 0.1, 0.0)
    assert made.defaults["foreach"] is True
    loop = {name: lambda params, lr, weight_decay, cls=cls: cls(
        params, lr=lr, weight_decay=weight_decay, foreach=False)
        for name, cls in house_train.OPTIMIZERS.items()}
    monkeypatch.setattr(house_train, "_make_optimizer",
                        lambda name, *args: loop[name](*args))
    assert torch.equal(fast, weights())


def test_house_features_wants_a_dataframe():
    with pytest.raises(TypeError, match="data must be a pandas DataFrame"):
        house_features([[1, 2, 3]])


def test_preprocess_book_checks_its_inputs(data):
    train_data, test_data = data
    with pytest.raises(ValueError, match="train_data has no SalePrice"):
        preprocess_book(test_data, train_data)
    with pytest.raises(ValueError, match=r"only in test_data: \['Extra'\]"):
        preprocess_book(train_data, test_data.assign(Extra=1))
    with pytest.raises(TypeError, match="test_data must be a pandas"):
        preprocess_book(train_data, test_data.to_numpy())


@pytest.mark.parametrize("k, i, n_labels, err, match", [
    (1, 0, 10, ValueError, "k must be between 2 and"),
    (11, 0, 10, ValueError, r"number of rows \(10\), got 11"),
    (2.0, 0, 10, TypeError, "k must be an int"),
    (True, 0, 10, TypeError, "k must be an int"),
    (5, 5, 10, ValueError, "i must be a fold index between 0 and"),
    (5, -1, 10, ValueError, "k - 1 = 4, got -1"),
    (5, None, 10, TypeError, "i must be an int"),
    (5, 0, 9, ValueError, "10 feature rows but 9 labels"),
])
def test_get_k_fold_data_bad_arguments(k, i, n_labels, err, match):
    with pytest.raises(err, match=match):
        get_k_fold_data(k, i, torch.zeros(10, 2), torch.zeros(n_labels))


def test_get_k_fold_data_splits_in_order():
    X = torch.arange(10).reshape(-1, 1)
    X_tr, y_tr, X_va, y_va = get_k_fold_data(3, 1, X, X.reshape(-1) * 10)
    assert X_va.reshape(-1).tolist() == [3, 4, 5]
    assert X_tr.reshape(-1).tolist() == [0, 1, 2, 6, 7, 8]
    assert y_tr.tolist() == [0, 10, 20, 60, 70, 80]
    assert y_va.tolist() == [30, 40, 50]
