"""The command line in the reader's language: ``--lang zh`` or
``D2L_DENSENET_LANG=zh`` (what the Chinese notebooks' ``choose`` sets).
The book's per-epoch lines of ``train_ch6`` stay as the book prints
them."""
import re
import subprocess

import pytest
import torch
from _cli_runs import TIMEOUT, TINY, command, env

from d2l_densenet import amp, cli, settings
from d2l_densenet.messages import LANG_ENV, Message

#: English words of the CLI's own lines; none may be left in Chinese.
ENGLISH = re.compile(r"recipe|reduced|results differ|final test|accuracy|"
                     r"measured|faster|median|training options|resuming|"
                     r"nothing to train|error:|min\b")


@pytest.fixture
def no_training(monkeypatch):
    """``cli.train`` without data or training (a test accuracy of 0.5 on
    2 images); the CPU's bf16 measured (patched) 2x faster."""
    def loader(batch_size, resize=None, **kwargs):
        X = torch.rand(2, 1, resize or 28, resize or 28)
        return [(X, torch.tensor([0, 1]))], [(X, torch.tensor([0, 1]))]

    def trainer(*args, **kwargs):
        return {"test_acc": [0.5], "test_examples": 2}

    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    monkeypatch.setattr(cli, "train_ch6", trainer)
    monkeypatch.delenv(amp.AMP_ENV, raising=False)
    monkeypatch.setattr(amp, "cpu_bf16_support", lambda: (
        True, Message("amp.onednn_bf16", cpu="AVX512")))
    monkeypatch.setattr(amp, "measure_amp", lambda *a, **k: amp.AmpTiming(
        0.02, 0.01, (2.0,) * 7))
    amp.cpu_amp_choice.cache_clear()
    yield
    amp.cpu_amp_choice.cache_clear()


CHINESE = [f"CPU训练方案，设备cpu：{settings.RECIPES['cpu']}（由书中的设置",
           "（数值精度：oneDNN报告支持bf16（CPU：AVX512）；实测bf16的速度是"
           "fp32的"
           "2.00倍；取7对交替测量的中位数（各对为2.00～2.00倍））",
           "最终测试精度0.5000（2张Fashion-MNIST测试图像），用时"]


@pytest.mark.parametrize("how", ["--lang", "env"])
def test_lines_and_amp_reasons_in_chinese(no_training, monkeypatch, capsys,
                                          how):
    if how == "env":
        monkeypatch.setenv(LANG_ENV, "zh")
        cli.train(["--device", "cpu"])
    else:
        cli.train(["--device", "cpu", "--lang", "zh"])
    out = capsys.readouterr().out
    for line in CHINESE:
        assert line in out, out
    assert not ENGLISH.search(out), out


def test_lang_option_wins_over_the_environment(no_training, monkeypatch,
                                               capsys):
    monkeypatch.setenv(LANG_ENV, "zh")
    cli.train(["--device", "cpu", "--lang", "en"])
    out = capsys.readouterr().out
    assert "CPU recipe on cpu" in out
    assert ("(amp: oneDNN reports bf16 support (CPU AVX512); measured bf16 "
            "2.00x faster than fp32") in out
    assert "final test accuracy 0.5000 on 2 Fashion-MNIST test images" in out


def test_errors_in_chinese(no_training, monkeypatch, capsys):
    monkeypatch.setenv(LANG_ENV, "zh")
    assert cli.main(["--resize", "16"]) == 2
    assert capsys.readouterr().err == (
        "错误：--resize 16：16×16的图像（0表示保持28×28）太小，DenseNet至少"
        "需要29×29（更小的图像经过下采样会缩得一个像素都不剩）；请用"
        "--resize 32或更大的值（书中用96）\n")
    assert cli.main(["--lang", "en", "--resize", "16"]) == 2
    assert capsys.readouterr().err.startswith("error: --resize 16: images "
                                              "of 16x16")


@pytest.mark.parametrize("argv,env_value,message", [
    (["--lang", "fr"], None,
     "error: argument --lang: invalid choice: 'fr' (choose from 'en', "
     "'zh') (see python -m d2l_densenet --help)\n"),
    ([], "fr", "error: D2L_DENSENET_LANG must be one of en, zh, got 'fr' "
               "(语言只能是en或zh)\n"),
    (["--lang", "zh"], "fr", None),     # --lang wins: the env is not read
])
def test_a_bad_language_is_a_usage_error(no_training, monkeypatch, capsys,
                                         argv, env_value, message):
    if env_value is not None:
        monkeypatch.setenv(LANG_ENV, env_value)
    code = cli.main([*argv, "--device", "cpu"])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0 and err == ""
    else:
        assert code == 2 and err == message


def test_a_bad_language_is_refused_by_train_too(no_training, monkeypatch):
    monkeypatch.setenv(LANG_ENV, "cn")
    with pytest.raises(cli.UsageError, match="D2L_DENSENET_LANG must be "
                                             "one of en, zh, got 'cn'"):
        cli.train(["--device", "cpu"])


def test_a_short_run_in_chinese(tmp_path):
    """Two real runs as 07 starts them: the first with
    D2L_DENSENET_LANG=zh (the Chinese settings cell sets it), the second
    resuming it with ``--lang zh`` under an English environment. The
    epoch lines stay the book's; everything else is Chinese."""
    at = TINY.index("--epochs")
    tiny = [*TINY[:at], "--epochs", "1", *TINY[at + 2:],
            "--checkpoint-dir", tmp_path]
    first = subprocess.run(command(*tiny),
                           env=dict(env(), **{LANG_ENV: "zh"}),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr
    assert "CPU训练方案，设备cpu：" in first.stdout
    assert "（数值精度：使用fp32）" in first.stdout     # --amp none
    assert re.search(r"\nepoch 1/1: loss \d\.\d{3}, train acc", first.stdout)
    assert re.search(r"最终测试精度0\.\d{4}（101张Fashion-MNIST测试图像），"
                     r"用时\d+\.\d分钟", first.stdout)
    second = subprocess.run(command(*tiny, "--resume", "--lang", "zh"),
                            env=dict(env(), **{LANG_ENV: "en"}),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert second.returncode == 0, second.stderr
    saved = tmp_path / "epoch-0001.pt"
    assert f"从{saved}继续训练：1个迭代周期中已完成1个" in second.stdout
    assert "无需训练：检查点中已完成第1个迭代周期（共1个）" in second.stdout
    assert "（取自检查点）" in second.stdout
    chinese_lines = [line for line in second.stdout.splitlines()
                     if not line.startswith(("training on", "loss "))]
    assert not ENGLISH.search("\n".join(chinese_lines)), second.stdout
