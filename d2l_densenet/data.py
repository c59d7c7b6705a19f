"""Fashion-MNIST: find (or download) the data, verify it, and load it.

Two loaders give the same batches (float32 in [0, 1], shape (B, 1, H, W),
int64 labels):

* the book's path: torchvision's ``FashionMNIST`` + ``DataLoader`` with a
  PIL ``Resize`` per image;
* a fast path for GPUs (``fast=True``): the whole set kept as one uint8
  tensor on the target device, shuffled per epoch and converted/resized per
  batch there, with no per-image PIL work.

Where the data comes from, first match wins:

1. ``root=`` or the ``D2L_DENSENET_DATA`` environment variable: only
   that folder, which must exist;
2. d2l's default ``../data``;
3. Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
4. the package's cache (``~/.cache/d2l_densenet/fashion-mnist``);
5. torchvision's download into ``root`` or ``../data`` (online users).

Every file is checked against the md5 of the original (decompressed) file.
Under ``torchrun`` (``world_size`` > 1 with an initialised process group)
one process per machine finds or downloads the data while the others
wait, then the others find its copy (``distributed.one_per_machine``):
the processes never download it at the same time.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils import data

from .devices import default_device
from .distributed import one_per_machine, world
from .files import CorruptFileError, DataFiles, MissingDataError

__all__ = ["load_data_fashion_mnist", "fashion_mnist_datasets",
           "find_fashion_mnist", "balanced_indices", "TensorLoader",
           "get_fashion_mnist_labels", "DEBIAN_DIR", "FASHION_MNIST_MD5",
           "DataNotFoundError", "CorruptDataError"]

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "D2L_DENSENET_DATA"
D2L_DEFAULT_ROOT = Path("../data")
#: md5 of the decompressed IDX files (identical upstream and in Debian).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
TEXT_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
               "shirt", "sneaker", "bag", "ankle boot"]
HOW_TO_GET = (
    "To get Fashion-MNIST offline: on Debian/Ubuntu run "
    "`sudo apt-get install dataset-fashion-mnist` (files land in "
    f"{DEBIAN_DIR}), or put the four IDX files "
    f"({', '.join(FASHION_MNIST_MD5)}, each optionally .gz) into a folder "
    "and pass root=FOLDER or set D2L_DENSENET_DATA=FOLDER. Online, "
    "torchvision downloads them into ../data.")


class DataNotFoundError(MissingDataError):
    """Fashion-MNIST is nowhere to be found and could not be downloaded."""


class CorruptDataError(CorruptFileError):
    """A Fashion-MNIST file exists but is not the original file."""


def get_fashion_mnist_labels(labels) -> list[str]:
    """Text labels for numeric Fashion-MNIST labels (the book's helper)."""
    return [TEXT_LABELS[int(i)] for i in labels]


def _cache_dir() -> Path:
    base = os.environ.get("D2L_DENSENET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "d2l_densenet")
    return Path(base)


def cache_root() -> Path:
    """The package's own copy: ``<cache>/fashion-mnist`` (a torchvision
    root), where gzipped or flat files are decompressed to."""
    return _cache_dir() / "fashion-mnist"


def _fetch(target: Path) -> None:
    import torchvision  # imported where needed: it takes seconds

    for train in (True, False):
        torchvision.datasets.FashionMNIST(root=str(target), train=train,
                                          download=True)


FILES = DataFiles(
    title="Fashion-MNIST",
    # torchvision's layout FashionMNIST/raw or flat, plain or .gz
    names={name: [f"FashionMNIST/raw/{name}", f"FashionMNIST/raw/{name}.gz",
                  name, f"{name}.gz"] for name in FASHION_MNIST_MD5},
    hashes=FASHION_MNIST_MD5, algorithm="md5", env_var=DATA_ENV,
    places=lambda: [D2L_DEFAULT_ROOT, DEBIAN_DIR, cache_root()],
    how_to_get=HOW_TO_GET, fetch=_fetch,
    missing=DataNotFoundError, corrupt=CorruptDataError)


def _materialise(found: dict[str, Path]) -> Path:
    """A torchvision root whose ``FashionMNIST/raw`` holds the four
    verified, uncompressed files: where they are if laid out so, else a
    decompressed copy in :func:`cache_root`."""
    raw_dirs = {p.parent for p in found.values()}
    plain = all(p.name == name for name, p in found.items())
    if plain and len(raw_dirs) == 1:
        raw = raw_dirs.pop()
        if raw.name == "raw" and raw.parent.name == "FashionMNIST":
            for name, p in found.items():
                FILES.verify(name, p)
            return raw.parent.parent
    raw = cache_root() / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, src in found.items():
        FILES.copy(name, src, raw / name)
    return cache_root()


def find_fashion_mnist(root: str | os.PathLike | None = None,
                       download: bool = True) -> Path:
    """Return a torchvision root holding verified Fashion-MNIST files.

    Looks in ``root`` (or ``$D2L_DENSENET_DATA``) only, if given (it must
    exist); otherwise in ``../data``, Debian's package folder and the
    package's cache. Downloads with torchvision (into ``root`` or
    ``../data``) as a last resort when ``download`` is true.
    """
    return _materialise(FILES.find(root, download))


def _raw_datasets(root, download):
    import torchvision

    tv_root = str(find_fashion_mnist(root, download))
    return tuple(torchvision.datasets.FashionMNIST(
        root=tv_root, train=train, download=False) for train in (True, False))


def fashion_mnist_datasets(resize=None, root=None, download: bool = True):
    """The book's datasets: ``(mnist_train, mnist_test)`` with ToTensor and,
    if ``resize`` is given, a PIL Resize first."""
    from torchvision import transforms

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    train, test = _raw_datasets(root, download)
    train.transform = test.transform = trans
    return train, test


def balanced_indices(labels: torch.Tensor, n: int) -> torch.Tensor:
    """A fixed, class-balanced slice: the first ``n // C`` examples of each
    of the C classes (the first ``n % C`` classes get one more), in
    dataset order."""
    classes = torch.unique(labels)
    if isinstance(n, bool) or not isinstance(n, int) or not (
            len(classes) <= n <= len(labels)):
        raise ValueError(
            f"subset must be an int between {len(classes)} (one per class) "
            f"and {len(labels)} (all examples), got {n!r}")
    per, extra = divmod(n, len(classes))
    picks = []
    for k, c in enumerate(classes):
        idx = torch.nonzero(labels == c).flatten()
        take = per + (k < extra)
        if take > len(idx):
            raise ValueError(
                f"subset={n} needs {take} examples of class {int(c)}, "
                f"which has only {len(idx)}")
        picks.append(idx[:take])
    return torch.sort(torch.cat(picks)).values


#: Seeds are ints in [0, SEED_LIMIT).
SEED_LIMIT = 2**63


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) \
            or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be None or an int in [0, 2**63), "
                         f"got {seed!r}")
    return seed


def _base_seed(seed: int) -> int:
    """A 32-bit hash of ``seed``: epoch ``e`` seeds the generator with
    ``_base_seed(seed) + e``. (torch's CPU generator keeps only the low
    32 bits of a seed, and the plain ``seed + e`` of a
    ``DistributedSampler`` would give seed 0's epoch 1 the order of seed
    1's epoch 0.)"""
    digest = hashlib.blake2b(seed.to_bytes(8, "little"), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


def _epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of ``epoch``, as a ``DistributedSampler`` with
    ``seed=_base_seed(seed)`` computes it."""
    return _base_seed(seed) + epoch


class TensorLoader:
    """Iterate over (X, y) batches of a uint8 image tensor kept on
    ``device``: shuffled per epoch, converted to float in [0, 1] and
    resized per batch on the device.

    The order of epoch ``e`` is a permutation drawn from the loader's own
    ``torch.Generator``, seeded from ``(seed, e)``: nothing else that
    draws random numbers (dropout, augmentation, another loader) changes
    it, and it is the order a torchvision loader with a
    ``DistributedSampler`` of the same seed gives. Each pass moves on to
    the next epoch; ``set_epoch(e)`` picks the epoch of the next pass (the
    training loop calls it, as for a ``DistributedSampler``). With
    ``seed=None`` each pass draws the permutation from the global RNG
    instead (``torch.manual_seed`` fixes the order, as in the book):
    then every process of a run must have drawn exactly the same random
    numbers before, so give several processes a ``seed``.

    With ``world_size`` > 1 (one process of several, e.g. under
    ``torchrun``) the loader yields only shard ``rank``: every rank draws
    the same permutation and takes every ``world_size``-th example of it,
    so batch k of all ranks together is batch k of one process with
    ``world_size`` times the batch size. When shuffling (training) the
    permutation is cut to a multiple of ``world_size`` so every rank runs
    the same number of steps; without shuffling (evaluation) nothing is
    dropped or repeated, the shards differ by at most one example."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 batch_size: int, shuffle: bool = False, resize=None,
                 device: str | torch.device | None = None, *,
                 rank: int = 0, world_size: int = 1,
                 seed: int | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 3:
            raise ValueError(
                f"images must be a uint8 tensor (N, H, W), got "
                f"{images.dtype} {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1 = "
                             f"{world_size - 1}, got {rank}")
        self.rank, self.world_size = rank, world_size
        self.seed = _check_seed(seed)
        self.epoch = 0
        self.generator = torch.Generator()
        if device is None:
            device = default_device()
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        if isinstance(resize, int):
            resize = (resize, resize)
        self.resize = tuple(resize) if resize else None

    def set_epoch(self, epoch: int) -> None:
        """The next pass yields epoch ``epoch``'s order (as
        ``DistributedSampler.set_epoch``)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) \
                or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        epoch, self.epoch = self.epoch, self.epoch + 1
        if not self.shuffle:
            return torch.arange(n)
        if self.seed is None:   # the book's way: the global RNG
            return torch.randperm(n)
        self.generator.manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(n, generator=self.generator)

    def _shard(self, order: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            order = order[:len(order) - len(order) % self.world_size]
        return order[self.rank::self.world_size]

    def __len__(self) -> int:
        n = len(self.labels)
        if self.shuffle:
            n -= n % self.world_size
        n = math.ceil((n - self.rank) / self.world_size)
        return math.ceil(n / self.batch_size)

    def __iter__(self):
        order = self._shard(self._order()).to(self.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            X = self.images[idx].unsqueeze(1).float().div_(255)
            if self.resize and tuple(X.shape[-2:]) != self.resize:
                # antialias=True uses PIL's filter, as transforms.Resize does
                X = F.interpolate(X, size=self.resize, mode="bilinear",
                                  align_corners=False, antialias=True)
                X.clamp_(0, 1)
            yield X, self.labels[idx]


def _resolve_workers(num_workers):
    if num_workers is None:
        return min(4, os.cpu_count() or 1)
    return num_workers


def load_data_fashion_mnist(batch_size: int, resize=None, *, root=None,
                            download: bool = True, fast: bool = False,
                            device=None, subset: int | None = None,
                            test_subset: int | None = None,
                            num_workers: int | None = None,
                            rank: int = 0, world_size: int = 1,
                            seed: int | None = None):
    """Return ``(train_iter, test_iter)`` over Fashion-MNIST, as the book.

    ``fast=True`` keeps the data on ``device`` (default: CUDA if present)
    and returns :class:`TensorLoader` s; otherwise torchvision DataLoaders.
    ``subset`` / ``test_subset`` take a fixed class-balanced slice.

    ``world_size`` > 1 gives process ``rank`` its shard (DDP): each rank
    gets ``batch_size // world_size`` examples per step, so
    ``batch_size`` stays the global batch. In an initialised process
    group of ``world_size`` processes every rank calls it together: one
    process per machine finds (or downloads) the data first, the others
    wait and then find its copy, and a failure in any stops them all.
    Training: every rank shards the same per-epoch order (torchvision: a
    ``DistributedSampler``, whose ``set_epoch`` the training loop
    calls); test: every ``world_size``-th example, none repeated.

    ``seed`` fixes the training order of every epoch, whatever else
    draws from the global RNG: epoch ``e``'s order comes from
    ``(seed, e)`` alone, the same on both paths and on every rank (pass
    the same ``seed`` to every process). ``seed=None``: the global RNG
    shuffles, as in the book (``torch.manual_seed`` fixes the order),
    except that several processes' torchvision samplers use seed 0, an
    explicit seed shared by every rank.
    """
    seed = _check_seed(seed)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got "
                         f"{batch_size!r}")
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} (the global batch) must "
                         f"be a multiple of the {world_size} processes")
    shard = dict(rank=rank, world_size=world_size)
    batch_size //= world_size
    if world_size > 1 and world() == (rank, world_size):
        # one of several processes: one per machine fetches, the others
        # wait, then find its copy
        root = one_per_machine(lambda: find_fashion_mnist(root, download))
    if fast:
        raw = _raw_datasets(root, download)
    else:
        raw = fashion_mnist_datasets(resize, root, download)
    iters = []
    for ds, n, train in ((raw[0], subset, True), (raw[1], test_subset, False)):
        idx = None if n is None else balanced_indices(ds.targets, n)
        if fast:
            images, labels = ds.data, ds.targets
            if idx is not None:
                images, labels = images[idx], labels[idx]
            iters.append(TensorLoader(images, labels, batch_size,
                                      shuffle=train, resize=resize,
                                      device=device, seed=seed, **shard))
        else:
            if idx is not None:
                ds = data.Subset(ds, idx.tolist())
            sampler = None
            if train and (world_size > 1 or seed is not None):
                # Its epoch e uses seed + e: the TensorLoader's
                # _epoch_seed(seed, e), so both paths shuffle alike.
                sampler = data.DistributedSampler(
                    ds, world_size, rank, shuffle=True, drop_last=True,
                    seed=_base_seed(seed or 0))
            elif world_size > 1:
                ds = data.Subset(ds, range(rank, len(ds), world_size))
            iters.append(data.DataLoader(
                ds, batch_size, shuffle=train and sampler is None,
                sampler=sampler, num_workers=_resolve_workers(num_workers)))
    return tuple(iters)
