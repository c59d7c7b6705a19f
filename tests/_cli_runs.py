"""The command line as a subprocess, on a small real Fashion-MNIST subset
with a tiny DenseNet, for the DDP and checkpoint tests.

Every run uses one thread per process (as torchrun sets it), so runs of
the same settings are bitwise comparable. ``reference(...)`` is an
uninterrupted single-process run, made once per settings and session.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import d2l_densenet

#: 1,024 training images in 16 steps of 64 per epoch, 101 test images
#: (odd, so two processes get shards of 51 and 50), 3 epochs, a DenseNet
#: with one conv per block (1,986 parameters). float32 and the book's
#: constant learning rate: the CPU recipe's bf16 (when measured faster)
#: would round differently in one and two processes.
TINY = ["--arch", "1,1", "--growth-rate", "8", "--num-channels", "8",
        "--subset", "1024", "--test-subset", "101", "--batch-size", "64",
        "--resize", "32", "--epochs", "3", "--lr", "0.1", "--seed", "0",
        "--progress", "print", "--device", "cpu", "--amp", "none",
        "--no-channels-last", "--lr-schedule", "constant"]
TIMEOUT = 300


def env() -> dict:
    """This package first on the path, one thread per process."""
    root = str(Path(d2l_densenet.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH"))
                           if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")


def command(*args, nproc: int = 1) -> list[str]:
    """``python -m d2l_densenet ARGS``, under torchrun if ``nproc`` > 1
    (``--standalone`` picks a free port on localhost)."""
    if nproc == 1:
        return [sys.executable, "-m", "d2l_densenet", *map(str, args)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "d2l_densenet",
            *map(str, args)]


def run(*args, nproc: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args, nproc=nproc), env=env(),
                          capture_output=True, text=True, timeout=TIMEOUT)


def final_state(directory) -> dict:
    """The last checkpoint in ``directory``."""
    files = sorted(Path(directory).glob("epoch-*.pt"))
    return torch.load(files[-1], map_location="cpu", weights_only=True)


@functools.cache
def reference(*extra: str) -> Path:
    """Checkpoint folder of one uninterrupted single-process run of
    ``TINY`` (``extra`` options override it)."""
    folder = Path(tempfile.mkdtemp(prefix="d2l_densenet_reference_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    r = run(*TINY, *extra, "--checkpoint-dir", folder)
    assert r.returncode == 0, r.stderr
    return folder
