"""The message table (messages.py) and the reader's language setting."""
import pickle
import re
import subprocess
import sys

import get_data
import pytest
import run_notebooks
from _cli_runs import env

from d2l_densenet import messages, settings
from d2l_densenet.messages import LANG_ENV, Message, placeholders

#: Every table of user-facing messages: the package's and the tools'.
TABLES = {"messages.MESSAGES": messages.MESSAGES,
          "get_data.MESSAGES": get_data.MESSAGES,
          "run_notebooks.MESSAGES": run_notebooks.MESSAGES}
ENTRIES = [(table, code) for table, entries in TABLES.items()
           for code in entries]
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def problems(entry: dict) -> list[str]:
    """What is wrong with one entry: a missing language, placeholders
    that differ, Chinese that is English or writes sizes with "x"."""
    found = [f"no {lang} text" for lang in messages.LANGUAGES
             if not entry.get(lang)]
    if found:
        return found
    en, zh = entry["en"], entry["zh"]
    if placeholders(en) != placeholders(zh):
        found.append(f"placeholders {sorted(placeholders(en))} (en) vs "
                     f"{sorted(placeholders(zh))} (zh)")
    if en == zh:
        found.append("zh is the English text")
    elif not CJK.search(zh) and re.search(r"[A-Za-z]{3}",
                                          re.sub(r"\{[^}]*\}", "", zh)):
        found.append("zh has no Chinese")
    if re.search(r"\d ?x ?\d|\}x\{", zh):
        found.append('zh writes a size with "x", not "×"')
    return found


@pytest.mark.parametrize("table,code", ENTRIES,
                         ids=[f"{t}[{c}]" for t, c in ENTRIES])
def test_every_message_has_english_and_chinese(table, code):
    assert problems(TABLES[table][code]) == []


def test_message_check_can_fail():
    assert problems({"en": "{a} of {b}"}) == ["no zh text"]
    assert problems({"en": "{n:,} images", "zh": "{m:,}张图像"}) == [
        "placeholders ['n'] (en) vs ['m'] (zh)"]
    assert problems({"en": "out of memory", "zh": "out of memory"}) == [
        "zh is the English text"]
    assert problems({"en": "{n} left", "zh": "{n} remaining"}) == [
        "zh has no Chinese"]
    assert problems({"en": "{side}x{side} images",
                     "zh": "{side}x{side}的图像"}) == [
        'zh writes a size with "x", not "×"']


def test_text_formats_in_the_language_given_else_the_setting(monkeypatch):
    monkeypatch.delenv(LANG_ENV)
    assert messages.language() == "en"
    assert messages.text("stats.all_equal") == (
        "no test: the differences are all equal")
    monkeypatch.setenv(LANG_ENV, " zh ")
    assert messages.language() == "zh"
    assert messages.text("cli.final_saved", acc=0.5, minutes=1.25) == (
        "最终测试精度0.5000（取自检查点），用时1.2分钟")
    assert messages.text("cli.final_saved", "en", acc=0.5, minutes=1) == (
        "final test accuracy 0.5000 (from the checkpoint) after 1.0 min")


@pytest.mark.parametrize("value", ["fr", "EN", "chinese"])
def test_a_bad_language_setting_is_named(monkeypatch, value):
    monkeypatch.setenv(LANG_ENV, value)
    with pytest.raises(ValueError, match=f"D2L_DENSENET_LANG must be one "
                                         f"of en, zh, got '{value}'"):
        messages.text("cli.interrupted")
    with pytest.raises(ValueError, match="lang must be one of en, zh, got "
                                         "'cn'"):
        messages.language("cn")


def test_using_sets_the_language_for_a_block(monkeypatch):
    monkeypatch.delenv(LANG_ENV)
    with messages.using("zh") as lang:
        assert lang == "zh" and messages.text("cli.interrupted") == "已中断"
    assert LANG_ENV not in __import__("os").environ
    monkeypatch.setenv(LANG_ENV, "zh")
    with messages.using(None):
        assert messages.language() == "zh"
    with messages.using("en"):
        assert messages.text("cli.interrupted") == "interrupted"
    assert messages.language() == "zh"


def test_messages_are_codes_that_travel_and_compare():
    """A reason is broadcast to every rank (pickled) and compared."""
    m = Message("amp.faster", speedup=2.5)
    assert pickle.loads(pickle.dumps(m)) == m
    assert m != Message("amp.faster", speedup=2.4)
    assert repr(m) == "Message('amp.faster', speedup=2.5)"
    assert messages.join([m, Message("amp.fp32")], "zh") == (
        "实测bf16的速度是fp32的2.50倍；使用fp32")
    with pytest.raises(KeyError, match="no message 'amp.fastest'"):
        Message("amp.fastest")


def test_choose_sets_the_language_of_the_commands_it_starts(capsys):
    """07's settings cell: after ``choose(..., lang="zh")`` a command the
    notebook starts (the CLI, here refusing a bad option before any
    data is loaded) speaks Chinese."""
    S = {m: dict(lr=0.1) for m in ("gpu", "cpu", "smoke")}
    settings.choose(S, "smoke", lang="zh")
    r = subprocess.run([sys.executable, "-m", "d2l_densenet", "--epochs",
                        "0"], env=env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    assert r.stderr.startswith("错误：argument --epochs: expected a "
                               "positive int, got '0'（见python -m "
                               "d2l_densenet --help）")
    settings.choose(S, "smoke", lang="en")
    r = subprocess.run([sys.executable, "-m", "d2l_densenet", "--epochs",
                        "0"], env=env(), capture_output=True, text=True,
                       timeout=300)
    assert r.stderr.startswith("error: argument --epochs")


def test_run_notebooks_speaks_the_readers_language(monkeypatch, capsys):
    """``make run EDITION=zh`` (D2L_DENSENET_LANG=zh) or ``--lang zh``:
    the tool's own lines are Chinese; a bad language is refused."""
    monkeypatch.delenv("D2L_DENSENET_MODE", raising=False)
    monkeypatch.setattr("d2l_densenet.devices.default_device",
                        lambda: __import__("torch").device("cpu"))
    assert run_notebooks.main(["--lang", "zh", "--mode", "gpu"]) == 2
    assert capsys.readouterr().err == (
        "错误：D2L_DENSENET_MODE=gpu，但PyTorch找不到GPU（查找了cuda, mps, "
        "xpu）；请改用cpu或smoke\n")
    monkeypatch.setenv(LANG_ENV, "zh")
    with messages.using(None):
        hook = run_notebooks._cell_progress("01_x", 5)
        hook({"cell_type": "code", "source": "print(1)"}, 2)
    assert capsys.readouterr().out.startswith(
        "    01_x 第3/5个单元格（")
    monkeypatch.setenv(LANG_ENV, "xx")
    assert run_notebooks.main([]) == 2
    assert "D2L_DENSENET_LANG must be one of en, zh, got 'xx'" in \
        capsys.readouterr().err


def test_model_errors_and_weight_warnings_follow_the_language(monkeypatch):
    """What notebooks 01 and 05 show a Chinese reader: the input-size
    error and the pretrained-weights warning (class names stay
    English)."""
    import torch

    import d2l_densenet as dd

    monkeypatch.setenv(LANG_ENV, "zh")
    net = dd.densenet()
    with pytest.raises(ValueError, match="^输入图像为28×28，但DenseNet至少"
                                         "需要29×29"):
        net(torch.zeros(1, 1, 28, 28))
    sd = dd.densenet121(num_classes=1000).state_dict()
    with pytest.warns(UserWarning, match="^权重中的分类器有1000个类别，"
                                         "模型有10个"):
        dd.load_weights(dd.densenet121(num_classes=10), sd)
    with pytest.warns(UserWarning, match=r"^权重中的起始模块"):
        dd.load_weights(dd.densenet121(in_channels=1), sd)
    monkeypatch.setenv(LANG_ENV, "en")
    with pytest.raises(ValueError, match="^Input images are 28x28, but "
                                         "DenseNet needs at least 29x29"):
        net(torch.zeros(1, 1, 28, 28))
