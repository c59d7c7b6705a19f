"""Where a notebook keeps its training checkpoints, one call per
notebook: ``folder = dd.checkpoint_folder("04_avg_vs_max", MODE)``.

* GPU mode on Colab: Google Drive is mounted and the folder is
  ``/content/drive/MyDrive/d2l_densenet/<name>``, so a disconnect costs
  at most the epoch in progress (run the notebook again: it resumes).
* GPU mode elsewhere: ``checkpoints/<name>`` beside the notebook
  (``checkpoints/`` is ignored by git).
* The GPU-mode rehearsal (``devices.rehearsing()``): a local folder
  stands in for Drive, ``$D2L_DENSENET_DRIVE/<name>`` (``make run
  MODE=gpu-rehearsal`` points it into ``build/rehearsal/drive/``, empties
  it first and runs a notebook that wrote checkpoints a second time,
  which must resume from them), else ``checkpoints/rehearsal-drive/<name>``.
  Drive is never mounted in the rehearsal, not even on Colab.
* Smoke mode: a fresh temporary folder, removed when Python exits (so
  the tests save and resume too).
* CPU mode: None, no checkpoints (its runs take minutes).

The folder is created and said on screen in the reader's language. It
imports only leaves (``devices``, ``messages``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath

from . import devices
from .messages import text

__all__ = ["DRIVE_ENV", "DRIVE_MOUNT", "DRIVE_FOLDER", "LOCAL_FOLDER",
           "REHEARSAL_FOLDER", "checkpoint_folder", "on_colab"]

#: The folder that stands in for Google Drive in the rehearsal.
DRIVE_ENV = "D2L_DENSENET_DRIVE"
#: Where Colab mounts Google Drive, and this package's folder on it.
DRIVE_MOUNT = "/content/drive"
DRIVE_FOLDER = f"{DRIVE_MOUNT}/MyDrive/d2l_densenet"
#: GPU mode off Colab, relative to the working directory (the notebook's).
LOCAL_FOLDER = "checkpoints"
#: The rehearsal's stand-in for Drive when ``$D2L_DENSENET_DRIVE`` is unset.
REHEARSAL_FOLDER = os.path.join(LOCAL_FOLDER, "rehearsal-drive")
MODES = ("gpu", "cpu", "smoke")


def on_colab() -> bool:
    """True in a Google Colab runtime."""
    return "google.colab" in sys.modules


def _check_name(name: str) -> str:
    parts = PurePosixPath(str(name).replace("\\", "/")).parts
    if (not parts or PurePosixPath(str(name)).is_absolute()
            or os.path.isabs(str(name)) or ".." in parts):
        raise ValueError(text("folders.bad_name", name=name))
    return os.path.join(*parts)


def checkpoint_folder(name: str, mode: str) -> str | None:
    """The folder for ``name``'s checkpoints in ``mode`` (what
    ``settings.choose`` returned: ``"gpu"`` also in the rehearsal), made
    and printed; None in CPU mode. ``name``: a relative path such as
    ``"02_parameters/model1"``. See the module's docstring."""
    if mode not in MODES:
        raise ValueError(text("folders.bad_mode", mode=mode, modes=MODES))
    name = _check_name(name)
    if mode == "cpu":
        print(text("folders.none", mode=mode))
        return None
    if mode == "smoke":
        folder = tempfile.mkdtemp(prefix="d2l_densenet_")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        folder = os.path.join(folder, name)
        code = "folders.temporary"
    elif devices.rehearsing():
        root = os.environ.get(DRIVE_ENV, "").strip() or REHEARSAL_FOLDER
        folder, code = os.path.join(root, name), "folders.rehearsal"
    elif on_colab():
        from google.colab import drive

        drive.mount(DRIVE_MOUNT)
        folder, code = f"{DRIVE_FOLDER}/{Path(name).as_posix()}", \
            "folders.drive"
    else:
        folder, code = os.path.join(LOCAL_FOLDER, name), "folders.local"
    os.makedirs(folder, exist_ok=True)
    print(text(code, folder=folder))
    return folder
