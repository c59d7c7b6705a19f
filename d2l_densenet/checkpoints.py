"""Saved training state: what ``train_ch6(checkpoint_dir=...)`` writes
after every epoch and ``resume=True`` reads back.

A checkpoint holds the model, optimizer, scheduler, gradient scaler,
RNG states, epoch, history and the run's settings (model layout,
optimizer, lr, the resolved precision ``amp``, the scheduler and its
shape, e.g. a cosine's horizon, batch size and what the caller adds).
It is written atomically (temporary file, fsync, rename), and a resume
with other settings is refused, naming each difference; only the
schedule's shape may change (``ADJUSTABLE``: ``train_ch6`` then replays
this run's schedule).

(Not to be confused with activation checkpointing, recompute instead of
store, which is ``memory_efficient.py``.)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .distributed import (
    agreed,
    decided_by_rank0,
    say,
    sum_over_ranks,
    world,
)
from .messages import text

__all__ = ["CHECKPOINT_FORMAT", "KEEP", "CheckpointError",
           "checkpoint_files", "save_checkpoint", "load_checkpoint",
           "latest_settings", "Checkpoints"]

CHECKPOINT_FORMAT = "d2l_densenet-checkpoint-1"
_KEYS = ("format", "epoch", "model", "optimizer", "scheduler", "scaler",
         "rng", "history", "settings")
#: Checkpoints kept in the directory: the latest and the one before it.
KEEP = 2
#: Settings a resumed run may change; the caller adapts to them (the
#: learning-rate schedule's shape: ``train_ch6`` replays this run's).
ADJUSTABLE = ("schedule",)


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, or made by another run."""


def checkpoint_files(directory) -> list[Path]:
    """The checkpoints in ``directory`` (``epoch-NNNN.pt``), oldest first."""
    files = Path(directory).glob("epoch-[0-9]*.pt")
    return sorted(files, key=lambda p: int(p.stem.split("-")[1]))


def save_checkpoint(state: dict, path) -> None:
    """``torch.save(state, path)`` atomically: write a temporary file in
    the same directory, fsync it, then ``os.replace`` it onto ``path``;
    a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by ``train_ch6``; a truncated, corrupt or
    foreign file raises :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"{path} is truncated or corrupt and was not loaded "
            f"({type(e).__name__}: {reason})") from e
    if not isinstance(state, dict) or state.get(
            "format") != CHECKPOINT_FORMAT or not set(_KEYS) <= set(state):
        raise CheckpointError(
            f"{path} is not a checkpoint written by d2l_densenet's "
            f"train_ch6 (format {CHECKPOINT_FORMAT})")
    return state


def latest_settings(directory) -> tuple[Path, dict] | None:
    """``(path, settings)`` of the latest readable checkpoint in
    ``directory``, or None (no directory, no checkpoint, or the latest
    unreadable: resuming then reports why). Read by rank 0 and broadcast,
    so every process decides alike."""
    def read():
        files = checkpoint_files(directory) if directory is not None \
            and Path(directory).is_dir() else []
        if not files:
            return None
        try:
            return files[-1], load_checkpoint(files[-1])["settings"]
        except CheckpointError:
            return None
    return decided_by_rank0(read)


def _rng_state(device: torch.device) -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"name": name,
                       "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": pos, "has_gauss": has_gauss,
                       "cached_gaussian": gauss}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    s = state["numpy"]
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32),
                         s["pos"], s["has_gauss"], s["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def describe(net: nn.Module) -> str:
    """The model as a checkpoint compares it: class, size, and a digest of
    its parameter and buffer names and shapes."""
    layout = repr([(k, tuple(v.shape)) for k, v in net.state_dict().items()])
    digest = hashlib.sha1(layout.encode()).hexdigest()[:8]
    n = sum(p.numel() for p in net.parameters())
    return f"{type(net).__name__}, {n:,} parameters, layout {digest}"


class Checkpoints:
    """Where ``train_ch6`` saves and resumes: rank 0 writes, every rank
    reads; a failure in any rank stops every rank (no rank is left
    waiting in a collective)."""

    def __init__(self, directory, settings: dict, parts: dict,
                 device: torch.device) -> None:
        self.dir, self.settings = Path(directory), settings
        self.parts, self.device = parts, device
        if self.dir.exists() and not self.dir.is_dir():
            raise CheckpointError(f"checkpoint_dir {self.dir} is a file, "
                                  f"not a directory")
        self.last_saved: Path | None = None
        #: The settings of the checkpoint resumed from ({} if none).
        self.found: dict = {}

    def resume(self, resume: bool, history: dict,
               num_epochs: int | None = None) -> int:
        """Load the latest checkpoint if ``resume``; return the number of
        epochs already done (the same in every rank, or an error in
        every rank) and say so (rank 0)."""
        with agreed():
            done = self._resume(resume, history)
        s1, s2 = sum_over_ranks([done, done * done], self.device)
        if s2 * world()[1] != s1 * s1:  # the epochs found differ
            raise CheckpointError(
                f"the processes found different checkpoints in "
                f"{self.dir}; it must be one folder shared by all")
        if done:
            say(text("checkpoint.resuming", path=self.last_saved,
                     done=done, total=num_epochs))
        return done

    def _resume(self, resume: bool, history: dict) -> int:
        files = checkpoint_files(self.dir) if self.dir.is_dir() else []
        if not resume:
            if files:
                raise CheckpointError(
                    f"{self.dir} already holds checkpoints (latest "
                    f"{files[-1].name}); resume=True (--resume) continues "
                    f"that run, or use another checkpoint directory")
            return 0
        if not files:
            return 0
        path = files[-1]
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            older = (f" The previous checkpoint {files[-2]} is kept: "
                     f"delete {path.name} and resume again to continue "
                     f"from it." if len(files) > 1 else "")
            raise CheckpointError(f"{e}.{older}") from e
        diff = [f"{k} {state['settings'].get(k)!r} (this run: "
                f"{self.settings.get(k)!r})"
                for k in sorted(set(state["settings"]) | set(self.settings))
                if k not in ADJUSTABLE
                and state["settings"].get(k) != self.settings.get(k)]
        if diff:
            raise CheckpointError(
                f"cannot resume from {path}: it was made with other "
                f"settings: {'; '.join(diff)}. Resume with the same "
                f"settings or use another checkpoint directory")
        for name, obj in self.parts.items():
            if obj is not None:
                obj.load_state_dict(state[name])
        _set_rng_state(state["rng"], self.device)
        history.update(state["history"])
        self.last_saved = path
        self.found = state["settings"]
        return state["epoch"]

    def save(self, epoch: int, history: dict) -> None:
        """Rank 0 writes ``epoch-NNNN.pt`` and removes all but the last
        ``KEEP``; every rank waits until it is written (or failed)."""
        path = self.dir / f"epoch-{epoch:04d}.pt"
        rank, size = world()
        with agreed():
            if rank == 0:
                state = {"format": CHECKPOINT_FORMAT, "epoch": epoch,
                         "rng": _rng_state(self.device),
                         "history": history, "settings": self.settings,
                         "info": {"world_size": size,
                                  "device": str(self.device),
                                  "torch": str(torch.__version__)}}
                for name, obj in self.parts.items():
                    state[name] = None if obj is None else obj.state_dict()
                save_checkpoint(state, path)
                for old in checkpoint_files(self.dir)[:-KEEP]:
                    old.unlink()
                for tmp in self.dir.glob(".epoch-*.tmp"):  # a killed run
                    tmp.unlink()
        self.last_saved = path
