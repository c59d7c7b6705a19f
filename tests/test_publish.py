"""publish.toml is the one place that says where the series is published:
every Colab badge, every Colab install cell and the READMEs agree with
it, and changing it once (``make publish``) changes all of them."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import publish
import publishing
import pytest

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("notebooks", "README.md", "README.zh.md", "publish.toml",
          "pyproject.toml")


@pytest.fixture
def repo_copy(tmp_path):
    """The files publish.py rewrites, copied; publish.toml pointed at the
    placeholder the files may still name, then published."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        else:
            shutil.copy(src, tmp_path / name)
    return tmp_path


def _colab_links(root):
    return {p.relative_to(root).as_posix(): [m[0] for m in
                                             publish.COLAB.finditer(
                                                 p.read_text("utf-8"))]
            for p in publish.files(root)}


def test_every_badge_and_install_cell_agrees_with_publish_toml():
    """Fails until `make publish` has run after publish.toml changed."""
    bad = publish.disagreements(ROOT)
    assert not bad, (f"{len(bad)} place(s) disagree with publish.toml; run "
                     f"`make publish`:\n" + "\n".join(bad))


def test_scans_every_edition_and_both_readmes():
    names = {p.relative_to(ROOT).as_posix() for p in publish.files(ROOT)}
    series = [p for p in names if re.match(r"notebooks/\d\d_", p)]
    zh = [p for p in names if re.match(r"notebooks/zh/\d\d_", p)]
    masters = [p for p in names
               if re.match(r"notebooks/classroom/[^/]+\.ipynb$", p)]
    assert len(series) == len(zh) == 7
    assert len(masters) >= 6
    assert {"README.md", "README.zh.md"} <= names


def _install_cell(path):
    cells = json.loads(path.read_text("utf-8"))["cells"]
    found = [("".join(c["source"]), i) for i, c in enumerate(cells)
             if c["cell_type"] == "code"
             and publish.COLAB_TEST in "".join(c["source"])
             and "PACKAGE = " in "".join(c["source"])]
    assert len(found) == 1, f"{path.name}: {len(found)} install cells"
    return found[0]


def test_changing_the_setting_once_changes_every_badge_and_install_cell(
        repo_copy):
    before = _colab_links(repo_copy)
    n_badges = sum(map(len, before.values()))
    assert n_badges >= 20 + 7   # 20 notebooks, the zh README's table
    rc = publish.main(["--root", str(repo_copy), "--repo", "alice/dn-fork",
                       "--branch", "spring-2027", "--version", "9.8.7"])
    assert rc == 0
    assert publishing.settings(repo_copy / "publish.toml") == {
        "repo": "alice/dn-fork", "branch": "spring-2027",
        "version": "9.8.7", "tag": "v9.8.7"}
    pyproject = (repo_copy / "pyproject.toml").read_text("utf-8")
    assert '\nversion = "9.8.7"\n' in pyproject
    assert ('Changelog = "https://github.com/alice/dn-fork/blob/'
            'spring-2027/CHANGELOG.md"') in pyproject
    after = _colab_links(repo_copy)
    assert sum(map(len, after.values())) == n_badges
    for name, links in after.items():
        for link in links:
            assert link.startswith("https://colab.research.google.com/github"
                                   "/alice/dn-fork/blob/spring-2027/"), name
    old = publishing.settings(ROOT / "publish.toml")["repo"]
    for path in publish.files(repo_copy):
        text = path.read_text("utf-8")
        if old != "alice/dn-fork":
            assert not re.search(rf"github\.com/{re.escape(old)}"
                                 r"(?![A-Za-z0-9_.-])", text), path
        assert set(re.findall(r"d2l-densenet==\d[\w.]*", text)) <= {
            "d2l-densenet==9.8.7"}, path
        if path.suffix != ".ipynb":
            continue
        cell, _ = _install_cell(path)
        assert '\nPACKAGE = "d2l-densenet==9.8.7"' in cell
        if publish.edition(path) != "classroom":
            # how to install from the git tag before the PyPI release
            assert ('# PACKAGE = "git+https://github.com/alice/dn-fork@'
                    'v9.8.7"\n') in cell
        for line in cell.splitlines():
            assert len(line) <= 79
    assert publish.disagreements(repo_copy) == []
    # a second run changes nothing
    assert publish.publish(repo_copy) == []


def test_install_cells_take_a_mirror_and_the_zh_cell_names_one():
    s = publishing.settings(ROOT / "publish.toml")
    for kind in ("en", "zh"):
        cell = publish.install_cell(kind, s)
        assert '\nMIRROR = ""\n' in cell
        assert '["--index-url", MIRROR] if MIRROR else []' in cell
    zh = publish.install_cell("zh", s)
    assert "https://pypi.tuna.tsinghua.edu.cn/simple" in zh
    assert "中国大陆" in zh


def test_a_stale_install_cell_is_named(repo_copy):
    assert publish.disagreements(repo_copy) == []
    nb = repo_copy / "notebooks" / "zh" / "03_memory_vs_resnet.ipynb"
    s = publishing.settings(repo_copy / "publish.toml")
    text = nb.read_text("utf-8")
    nb.write_text(text.replace("pip未能安装", "pip没能安装"), "utf-8")
    bad = publish.disagreements(repo_copy)
    assert len(bad) == 1 and bad[0].startswith(
        "notebooks/zh/03_memory_vs_resnet.ipynb: cell 1, the install cell"
        ), bad
    # publish.toml's version moved on without make publish: every
    # notebook's cell, the READMEs' pins and pyproject disagree
    publish.write_settings(repo_copy / "publish.toml", version="9.0.0")
    bad = publish.disagreements(repo_copy)
    assert any(b.startswith("pyproject.toml: version ") for b in bad)
    assert sum("the install cell" in b for b in bad) == 20
    publish.publish(repo_copy)
    assert publish.disagreements(repo_copy) == []
    assert 'PACKAGE = "d2l-densenet==9.0.0"' in _install_cell(nb)[0]
    assert s["version"] != "9.0.0"


def test_a_disagreeing_badge_is_named(repo_copy):
    publish.publish(repo_copy)
    assert publish.disagreements(repo_copy) == []
    zh = repo_copy / "notebooks" / "zh" / "04_avg_vs_max_pooling.ipynb"
    s = publishing.settings(repo_copy / "publish.toml")
    text = zh.read_text("utf-8")
    old = f"github/{s['repo']}/blob/{s['branch']}/notebooks/zh/04"
    assert old in text
    zh.write_text(text.replace(old, "github/bob/x/blob/main/notebooks/zh/"
                               "04"), encoding="utf-8")
    bad = publish.disagreements(repo_copy)
    assert len(bad) == 1 and bad[0].startswith(
        "notebooks/zh/04_avg_vs_max_pooling.ipynb:"), bad
    assert "bob/x@main" in bad[0]


def test_check_command_exit_status(repo_copy):
    publish.publish(repo_copy)
    tool = [sys.executable, str(ROOT / "tools" / "publish.py"), "--root",
            str(repo_copy), "--check"]
    ok = subprocess.run(tool, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    readme = repo_copy / "README.zh.md"
    readme.write_text(readme.read_text("utf-8").replace(
        "/blob/", "/blob/old-", 1), encoding="utf-8")
    bad = subprocess.run(tool, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "README.zh.md:" in bad.stdout and "make publish" in bad.stdout


@pytest.mark.parametrize("args, message", [
    (["--repo", "no-slash"], "owner/name"),
    (["--tag", 'v1"'], "without quotes"),
    (["--check", "--repo", "a/b"], "--check takes no"),
    (["--version", "latest"], "PEP 440"),
])
def test_bad_setting_is_refused_before_writing(repo_copy, capsys, args,
                                               message):
    toml = (repo_copy / "publish.toml").read_text("utf-8")
    assert publish.main(["--root", str(repo_copy)] + args) == 2
    assert message in capsys.readouterr().err
    assert (repo_copy / "publish.toml").read_text("utf-8") == toml


def test_write_settings_keeps_comments(tmp_path):
    toml = tmp_path / "publish.toml"
    shutil.copy(ROOT / "publish.toml", toml)
    comments = [x for x in toml.read_text("utf-8").splitlines()
                if x.startswith("#")]
    publish.write_settings(toml, branch="gh-pages")
    text = toml.read_text("utf-8")
    assert [x for x in text.splitlines() if x.startswith("#")] == comments
    assert text.endswith("\n")
    assert publishing.settings(toml)["branch"] == "gh-pages"
