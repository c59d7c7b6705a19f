"""The loader on the real Fashion-MNIST (Debian's offline copy)."""
import gzip
import shutil

import pytest
import torch

from d2l_densenet import data as D
from d2l_densenet import load_data_fashion_mnist

DEBIAN_DIR = D.DEBIAN_DIR


@pytest.fixture(scope="module")
def datasets():
    return D.fashion_mnist_datasets()


def test_found_and_verified():
    root = D.find_fashion_mnist()
    raw = root / "FashionMNIST" / "raw"
    for name in D.FASHION_MNIST_MD5:
        assert (raw / name).is_file()


def test_class_counts(datasets):
    train, test = datasets
    assert len(train) == 60_000 and len(test) == 10_000
    assert torch.bincount(train.targets).tolist() == [6000] * 10
    assert torch.bincount(test.targets).tolist() == [1000] * 10


@pytest.mark.parametrize("resize,side", [(None, 28), (32, 32)])
def test_batches(resize, side):
    train_iter, test_iter = load_data_fashion_mnist(
        64, resize=resize, num_workers=0)
    X, y = next(iter(train_iter))
    assert X.shape == (64, 1, side, side) and X.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert X.min() >= 0 and X.max() <= 1 and X.max() > 0.5
    assert len(test_iter) == -(-10_000 // 64)


@pytest.mark.parametrize("resize", [None, 32, 96])
def test_fast_path_equals_torchvision_path(resize):
    """Same images in the same order (test set, unshuffled); with resize,
    equal up to PIL's rounding to uint8 (at most 1/255)."""
    _, slow = load_data_fashion_mnist(500, resize=resize, num_workers=0)
    _, fast = load_data_fashion_mnist(500, resize=resize, fast=True,
                                      device="cpu")
    assert len(slow) == len(fast)
    pairs = zip(slow, fast, strict=True)
    for i, ((X, y), (Xf, yf)) in enumerate(pairs):
        assert torch.equal(y, yf)
        assert X.shape == Xf.shape and Xf.dtype == torch.float32
        tol = 0 if resize is None else 1 / 255 + 1e-6
        assert (X - Xf).abs().max() <= tol
        if i == 3:
            break


def test_fast_path_shuffles_per_epoch_reproducibly():
    train_iter, _ = load_data_fashion_mnist(256, fast=True, device="cpu")
    torch.manual_seed(1)
    a = next(iter(train_iter))[1]
    b = next(iter(train_iter))[1]
    torch.manual_seed(1)
    c = next(iter(train_iter))[1]
    assert not torch.equal(a, b)
    assert torch.equal(a, c)
    assert len(train_iter) == -(-60_000 // 256)


def test_subset_is_class_balanced_and_fixed():
    train_iter, test_iter = load_data_fashion_mnist(
        100, fast=True, device="cpu", subset=1000, test_subset=205)
    ys = torch.cat([y for _, y in train_iter])
    assert len(ys) == 1000
    assert torch.bincount(ys).tolist() == [100] * 10
    yt = torch.cat([y for _, y in test_iter])
    assert torch.bincount(yt).tolist() == [21] * 5 + [20] * 5
    slow_train, _ = load_data_fashion_mnist(100, subset=1000, num_workers=0)
    assert len(slow_train.dataset) == 1000


@pytest.mark.parametrize("n", [0, 5, 60_001, 2.5])
def test_bad_subset(n):
    with pytest.raises(ValueError, match="subset must be an int between"):
        load_data_fashion_mnist(10, fast=True, device="cpu", subset=n)


@pytest.mark.parametrize("bs", [0, -1, 1.5])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        load_data_fashion_mnist(bs)


# --- where the data comes from ----------------------------------------------

@pytest.fixture
def gz_copy(tmp_path):
    """A flat folder with the four .gz files, as Debian ships them."""
    (tmp_path / "gz").mkdir()
    for name in D.FASHION_MNIST_MD5:
        shutil.copy(DEBIAN_DIR / (name + ".gz"), tmp_path / "gz")
    return tmp_path / "gz"


def test_explicit_root_with_gz_files(gz_copy, tmp_path_factory,
                                     monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("D2L_DENSENET_CACHE", str(cache))
    root = D.find_fashion_mnist(gz_copy, download=False)
    assert root == cache / "fashion-mnist"
    train, _ = D.fashion_mnist_datasets(root=gz_copy, download=False)
    assert len(train) == 60_000


def test_env_var_is_used(gz_copy, tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("D2L_DENSENET_CACHE", str(cache))
    monkeypatch.setenv("D2L_DENSENET_DATA", str(gz_copy))
    assert D.find_fashion_mnist(download=False) == cache / "fashion-mnist"


def test_torchvision_layout_used_in_place(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in D.FASHION_MNIST_MD5:
        with gzip.open(DEBIAN_DIR / (name + ".gz"), "rb") as f:
            (raw / name).write_bytes(f.read())
    assert D.find_fashion_mnist(tmp_path, download=False) == tmp_path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No default place holds the data: ../data, Debian's folder and the
    cache are empty."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(D, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("D2L_DENSENET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("D2L_DENSENET_DATA", raising=False)
    return tmp_path


def test_no_data_no_network_gives_one_clear_error(nowhere):
    empty = nowhere / "empty"
    empty.mkdir()
    with pytest.raises(D.DataNotFoundError) as err:
        D.find_fashion_mnist(empty)
    msg = str(err.value)
    assert f"downloading it into {empty} failed" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "D2L_DENSENET_DATA" in msg


def test_default_places_in_order(nowhere):
    with pytest.raises(D.DataNotFoundError) as err:
        D.find_fashion_mnist(download=False)
    places = [str(p) for p in (
        D.D2L_DEFAULT_ROOT, nowhere / "no-debian",
        nowhere / "cache" / "fashion-mnist")]
    assert f"not found in {', '.join(places)} and download=False" \
        in str(err.value)


def test_no_data_without_download(tmp_path):
    with pytest.raises(D.DataNotFoundError, match="download=False"):
        D.find_fashion_mnist(tmp_path, download=False)


@pytest.mark.parametrize("how", ["root", "env"])
def test_missing_root_is_an_error_not_a_fallback(nowhere, monkeypatch, how):
    """An explicit folder that does not exist is refused, even though the
    data is in Debian's folder, and nothing is downloaded into it."""
    monkeypatch.setattr(D, "DEBIAN_DIR", DEBIAN_DIR)
    gone = nowhere / "typo"
    if how == "env":
        monkeypatch.setenv("D2L_DENSENET_DATA", str(gone))
    with pytest.raises(D.DataNotFoundError) as err:
        D.find_fashion_mnist(gone if how == "root" else None)
    assert f"{gone} (from " in str(err.value)
    assert "does not exist" in str(err.value)
    assert not gone.exists()


def test_cache_is_searched_last(nowhere, gz_copy):
    """Data the package (or tools/get_data.py) put into its cache is found
    there without any other copy."""
    cached = D.find_fashion_mnist(gz_copy, download=False)
    assert cached == nowhere / "cache" / "fashion-mnist"
    assert D.find_fashion_mnist(download=False) == cached


def test_corrupt_file_is_refused(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_CACHE",
                       str(tmp_path_factory.mktemp("cache")))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in D.FASHION_MNIST_MD5:
        with gzip.open(DEBIAN_DIR / (name + ".gz"), "rb") as f:
            payload = bytearray(f.read())
        if name == "t10k-images-idx3-ubyte":
            payload[5000] ^= 0xFF   # one flipped byte
        (raw / name).write_bytes(bytes(payload))
    with pytest.raises(D.CorruptDataError,
                       match=r"t10k-images-idx3-ubyte is corrupt .* md5"):
        load_data_fashion_mnist(10, root=tmp_path)


def test_truncated_gz_is_refused(gz_copy, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_CACHE",
                       str(tmp_path_factory.mktemp("cache")))
    bad = gz_copy / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(D.CorruptDataError,
                       match="train-labels-idx1-ubyte.gz"):
        D.find_fashion_mnist(gz_copy, download=False)
    # nothing half-written is left behind in the cache
    raw = D._cache_dir() / "fashion-mnist" / "FashionMNIST" / "raw"
    assert not (raw / "train-labels-idx1-ubyte").exists()
    assert not list(raw.glob("*.part"))


def test_text_labels():
    assert D.get_fashion_mnist_labels([0, 9]) == ["t-shirt", "ankle boot"]


# --- the training order: own generator, (seed, epoch), shards ---------------

def _loader(n=60, batch=8, seed=None, rank=0, world_size=1):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(
        n, 2, 2).contiguous()
    return D.TensorLoader(images, torch.arange(n), batch, shuffle=True,
                          device="cpu", seed=seed, rank=rank,
                          world_size=world_size)


def _pass(loader):
    return [i for _, y in loader for i in y.tolist()]


def test_same_seed_same_order_whatever_the_global_rng():
    """Two loaders with one seed shuffle alike although the global RNG
    differs between them (another draw, another seed)."""
    torch.manual_seed(0)
    a = _loader(seed=7)
    first = _pass(a)
    torch.manual_seed(123)
    torch.rand(5)
    b = _loader(seed=7)
    assert _pass(b) == first
    assert sorted(first) == list(range(60)) and first != list(range(60))
    torch.manual_seed(0)
    assert _pass(_loader(seed=8)) != first


def test_each_pass_is_the_next_epoch_and_set_epoch_picks_one():
    loader = _loader(seed=3)
    epochs = [_pass(loader) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    loader.set_epoch(1)
    assert _pass(loader) == epochs[1]
    other = _loader(seed=3)
    other.set_epoch(2)
    assert _pass(other) == epochs[2]
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        loader.set_epoch(-1)


def test_seeds_never_share_an_epoch():
    """seed + epoch would make seed 0's epoch 1 seed 1's epoch 0."""
    zero, one = _loader(seed=0), _loader(seed=1)
    zero.set_epoch(1)
    assert _pass(zero) != _pass(one)


@pytest.mark.parametrize("n", [60, 61])
def test_shards_of_two_ranks_partition_the_data(n):
    """Rank 0 and rank 1, each with its own global RNG state, take
    disjoint halves of one epoch's order that together cover it (up to
    the n % 2 examples cut so both run the same number of steps)."""
    shards = []
    for rank, noise in ((0, 1), (1, 2)):
        torch.manual_seed(noise)
        loader = _loader(n, batch=4, seed=11, rank=rank, world_size=2)
        loader.set_epoch(5)
        shards.append(_pass(loader))
    assert not set(shards[0]) & set(shards[1])
    assert len(shards[0]) == len(shards[1]) == n // 2
    whole = _loader(n, seed=11)
    whole.set_epoch(5)
    order = _pass(whole)[:n - n % 2]
    assert sorted(shards[0] + shards[1]) == sorted(order)
    assert shards[0] == order[0::2] and shards[1] == order[1::2]


def test_distributed_sampler_seed_is_passed_not_drawn():
    """Two ranks whose global RNGs differ get samplers with the same seed,
    whose shards partition the training set; with one process the same
    seed gives the TensorLoader's order."""
    kw = dict(resize=None, subset=40, num_workers=0, world_size=2,
              seed=4)
    shards = []
    for rank in (0, 1):
        torch.manual_seed(rank)
        train, _ = load_data_fashion_mnist(8, rank=rank, **kw)
        train.sampler.set_epoch(2)
        shards.append(list(train.sampler))
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(40))
    one, _ = load_data_fashion_mnist(8, resize=None, subset=40,
                                     num_workers=0, seed=4)
    fast, _ = load_data_fashion_mnist(8, fast=True, device="cpu",
                                      subset=40, seed=4)
    one.sampler.set_epoch(2)
    fast.set_epoch(2)
    order = list(one.sampler)
    assert [i for pair in zip(*shards, strict=True) for i in pair] == order
    ys = torch.cat([y for _, y in fast])
    labels = torch.tensor([one.dataset[i][1] for i in order])
    assert torch.equal(ys, labels)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be None or an int"):
        _loader(seed=seed)


def test_without_seed_the_global_rng_orders_as_in_the_book():
    """seed=None: torch.randperm from the global RNG, so
    torch.manual_seed fixes the order as for the book's DataLoader."""
    torch.manual_seed(0)
    expected = torch.randperm(60).tolist()
    torch.manual_seed(0)
    assert _pass(_loader()) == expected


# --- several processes: one fetches, the others wait ------------------------

#: Ranks 0 and 1 of a gloo group load Fashion-MNIST where no place holds
#: it; the download (faked: after a second it copies the files, already
#: decompressed, into torchvision's layout) is logged, and so is each
#: rank's search. First the download fails, then
#: it works (in the same group: a failure agreed on leaves it usable).
_TWO_LOADERS = r"""
import dataclasses, datetime, json, os, shutil, sys, time
from pathlib import Path
import torch.distributed as dist
from d2l_densenet import data as D

rank = int(os.environ["RANK"])
tmp = Path(sys.argv[1])
work = tmp / f"work{rank}" / "cwd"          # ../data: tmp/work{rank}/data
work.mkdir(parents=True)
os.chdir(work)
# one shared folder for the download, as on one machine
os.symlink(tmp / "data", work.parent / "data", target_is_directory=True)
D.DEBIAN_DIR = tmp / "no-debian"
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
log = []
fail = [True]


def fetch(folder):
    log.append(("fetch", time.time()))
    time.sleep(1)
    if fail[0]:
        raise OSError("planted: no network")
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in D.FASHION_MNIST_MD5:
        shutil.copy(Path(sys.argv[2]) / name, raw)
    log.append(("fetched", time.time()))


D.FILES = dataclasses.replace(D.FILES, fetch=fetch)
find = D.find_fashion_mnist


def logged_find(*args, **kwargs):
    log.append(("find", time.time()))
    return find(*args, **kwargs)


D.find_fashion_mnist = logged_find
for attempt in ("fails", "works"):
    fail[0] = attempt == "fails"
    log.clear()
    record = dict(attempt=attempt, rank=rank)
    try:
        train, test = D.load_data_fashion_mnist(
            64, fast=True, device="cpu", subset=100, test_subset=50,
            rank=rank, world_size=2)
        record["examples"] = sum(len(y) for _, y in train)
    except Exception as e:
        record.update(error=type(e).__name__, message=str(e))
    record["log"] = log[:]
    print(json.dumps(record), flush=True)
"""


def test_one_process_downloads_while_the_other_waits(tmp_path):
    """Two processes, no data anywhere: rank 0 downloads, rank 1 waits
    and searches only after rank 0's download has finished (finding its
    files); when the download fails, rank 1 stops with a RankFailedError
    naming rank 0 and why, without downloading itself."""
    import json
    import socket
    import subprocess
    import sys

    from _cli_runs import env
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "data").mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in D.FASHION_MNIST_MD5:
        with gzip.open(DEBIAN_DIR / (name + ".gz"), "rb") as f:
            (plain / name).write_bytes(f.read())
    script = tmp_path / "two_loaders.py"
    script.write_text(_TWO_LOADERS)
    base = {k: v for k, v in env().items() if k != "D2L_DENSENET_DATA"}
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(plain)],
        env=dict(base, RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=str(port),
                 D2L_DENSENET_CACHE=str(tmp_path / "cache")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    records = {}
    for r, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, err[-3000:]
        for line in out.splitlines():
            rec = json.loads(line)
            records[rec["attempt"], r] = rec
    zero, one = records["fails", 0], records["fails", 1]
    assert zero["error"] == "DataNotFoundError"
    assert "failed (OSError: planted: no network)" in zero["message"]
    assert one["error"] == "RankFailedError"
    assert one["message"].startswith(
        "process 0 of 2 failed (DataNotFoundError): Fashion-MNIST not found")
    assert [e for e, _ in one["log"]] == []     # rank 1 did not search
    zero, one = records["works", 0], records["works", 1]
    assert zero["examples"] == one["examples"] == 50
    # each searches twice: once for the data, once loading it from there
    assert [e for e, _ in zero["log"]] == ["find", "fetch", "fetched",
                                           "find"]
    assert [e for e, _ in one["log"]] == ["find", "find"]   # no fetch
    assert one["log"][0][1] >= zero["log"][2][1]  # after the download
