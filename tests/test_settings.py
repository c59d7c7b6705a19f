import re
from types import SimpleNamespace

import pytest
import torch

from d2l_densenet import amp, devices, messages, plots, settings
from d2l_densenet.messages import Message

S = {"gpu": dict(lr=0.1, num_epochs=10), "cpu": dict(lr=0.1, num_epochs=2),
     "smoke": dict(lr=0.1, num_epochs=1)}


@pytest.fixture(autouse=True)
def english(monkeypatch):
    """Each test starts with an English reader; ``choose(lang=...)``
    changes the reader's language ($D2L_DENSENET_LANG) only for its
    test."""
    monkeypatch.setenv(messages.LANG_ENV, "en")
    monkeypatch.setattr(plots, "_told", False)


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_MODE", "Smoke")
    assert settings.run_mode() == "smoke"
    monkeypatch.delenv("D2L_DENSENET_MODE")
    for device, mode in (("cpu", "cpu"), ("cuda", "gpu"), ("mps", "gpu")):
        monkeypatch.setattr(devices, "default_device",
                            lambda d=device: torch.device(d))
        assert settings.run_mode() == mode


def _machine(monkeypatch, accelerator=None, cuda=False, has_api=True):
    """Patch what PyTorch reports: ``torch.accelerator`` (missing when
    ``has_api`` is False, as before torch 2.6; ``accelerator``: the
    available one's type, or None) and ``torch.cuda.is_available``."""
    if has_api:
        monkeypatch.setattr(torch, "accelerator", SimpleNamespace(
            is_available=lambda: accelerator is not None,
            current_accelerator=lambda: torch.device(accelerator or "cuda")))
    else:
        monkeypatch.delattr(torch, "accelerator", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)


@pytest.mark.parametrize("machine,expected", [
    (dict(accelerator="mps"), "mps"),
    (dict(accelerator="xpu"), "xpu"),
    (dict(accelerator="cuda", cuda=True), "cuda"),
    (dict(accelerator=None), "cpu"),
    (dict(accelerator="mtia"), "cpu"),           # not one we support
    (dict(has_api=False, cuda=True), "cuda"),     # torch < 2.6
    (dict(has_api=False), "cpu"),
])
def test_default_device_prefers_the_accelerator(monkeypatch, machine,
                                                expected):
    _machine(monkeypatch, **machine)
    assert devices.default_device() == torch.device(expected)


def test_gpu_mode_on_any_accelerator_and_named_in_the_banner(monkeypatch,
                                                             capsys):
    _machine(monkeypatch, accelerator="mps")
    mode, device, _ = settings.choose(S, "gpu")
    assert (mode, device) == ("gpu", torch.device("mps"))
    assert capsys.readouterr().out.startswith(
        "GPU mode on mps (Apple GPU): lr=0.1, num_epochs=10\n"
        "(the book's settings)")
    settings.choose(S, "gpu", lang="zh")
    assert capsys.readouterr().out.startswith(
        "GPU模式，设备mps（Apple GPU）：lr=0.1, num_epochs=10\n（书中的设置）")


def test_device_description_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name",
                        lambda device=None: "Fake GPU 80GB")
    assert devices.device_description("cuda") == "cuda (Fake GPU 80GB)"
    assert devices.device_description(torch.device("cpu")) == "cpu"
    assert devices.device_description("mps") == "mps (Apple GPU)"
    monkeypatch.setattr(torch.cuda, "get_device_name", _raises)
    assert devices.device_description("cuda:1") == "cuda:1"


def _raises(*args, **kwargs):
    raise RuntimeError("no GPU")


def test_bad_mode(monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_MODE", "fast")
    with pytest.raises(ValueError, match="must be one of .*'fast'"):
        settings.run_mode()


def test_gpu_mode_without_gpu(monkeypatch):
    _machine(monkeypatch, accelerator=None)
    with pytest.raises(ValueError, match="gpu but no GPU is available .*"
                                         "cuda, mps, xpu"):
        settings.run_mode("gpu")


def test_choose_prints_reduced_settings(capsys):
    mode, device, chosen = settings.choose(S, "cpu")
    out = capsys.readouterr().out
    assert (mode, chosen) == ("cpu", S["cpu"])
    assert "CPU mode on" in out and "num_epochs=2" in out
    assert "reduced from the GPU settings (lr=0.1, num_epochs=10)" in out
    assert isinstance(device, torch.device)


def test_choose_in_chinese(monkeypatch, capsys):
    _machine(monkeypatch, accelerator=None)
    settings.choose(S, "cpu", lang="zh")
    out = capsys.readouterr().out
    assert out.startswith("CPU模式，设备cpu：lr=0.1, num_epochs=2\n"
                          "（由GPU设置（lr=0.1, num_epochs=10）缩减而来，"
                          "结果与书中不同）")
    assert messages.language() == "zh"        # what the CLI would print in
    with pytest.raises(ValueError, match="lang must be one of"):
        settings.choose(S, "cpu", lang="cn")


def test_choose_needs_every_mode():
    with pytest.raises(ValueError, match=r"\['smoke'\] are missing"):
        settings.choose({"gpu": {}, "cpu": {}}, "cpu")


# --- amp="auto", resolved by amp.py (its own tests: tests/test_amp.py) ---

@pytest.fixture
def amp_probe(monkeypatch):
    """Fake the CPU's bf16 report (on CPU "FAKE") and amp.py's
    measurement (every pair gives the ratio fp32 / bf16); count
    measurements."""
    monkeypatch.delenv(amp.AMP_ENV, raising=False)
    amp.cpu_amp_choice.cache_clear()
    calls = []

    def fake(supported, fp32=0.010, bf16=0.010):
        note = Message("amp.onednn_bf16" if supported else
                       "amp.onednn_no_bf16", cpu="FAKE")
        monkeypatch.setattr(amp, "cpu_bf16_support",
                            lambda: (supported, note))

        def measure(*args, **kwargs):
            calls.append(1)
            return amp.AmpTiming(fp32, bf16, (fp32 / bf16,) * 7)
        monkeypatch.setattr(amp, "measure_amp", measure)
        amp.cpu_amp_choice.cache_clear()

    yield fake, calls
    amp.cpu_amp_choice.cache_clear()


def test_train_options_resolve_and_print(amp_probe, capsys):
    fake, _ = amp_probe
    fake(False)
    opts = settings.train_options("cpu", "cpu")
    out = capsys.readouterr().out
    assert opts == dict(amp=None, channels_last=True, lr_schedule="cosine")
    assert "amp=none, channels_last=True, lr_schedule=cosine" in out
    assert "(amp: oneDNN reports no bf16 support (CPU FAKE); fp32)" in out
    opts = settings.train_options("cpu", "cpu", amp="bf16",
                                  channels_last=None, lr_schedule="constant")
    assert opts == dict(amp="bf16", channels_last=True,   # None: recipe's
                        lr_schedule="constant")
    assert settings.train_options("gpu", "cpu") == dict(
        amp=None, channels_last=False, lr_schedule="constant")


@pytest.mark.parametrize("kwargs,match", [
    (dict(amp="fp8"), "amp must be one of"),
    (dict(lr_schedule="step"), "lr_schedule must be one of"),
    (dict(optimizer="sgd"), r"unknown option\(s\) \['optimizer'\]"),
])
def test_train_options_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        settings.train_options("gpu", "cpu", **kwargs)


def test_choose_resolves_amp_auto(amp_probe, capsys):
    fake, _ = amp_probe
    fake(True, fp32=0.010, bf16=0.004)
    S2 = {m: dict(s, amp="auto") for m, s in S.items()}
    _, _, chosen = settings.choose(S2, "cpu")
    assert chosen["amp"] == "bf16" and S2["cpu"]["amp"] == "auto"
    assert ("amp=auto -> bf16: oneDNN reports bf16 support (CPU FAKE); "
            "measured bf16 2.50x") in capsys.readouterr().out
    settings.choose(S2, "cpu", lang="zh")
    assert ("amp=auto -> bf16：oneDNN报告支持bf16（CPU：FAKE）；"
            "实测bf16的速度是fp32的2.50倍") in capsys.readouterr().out


#: English words of resolve_amp's reasons; none may be left in Chinese.
ENGLISH = re.compile(r"measured|faster|speed|needs|reports|support|set by|"
                     r"the GPU|decision|has no|not reported|median|close")


def _reasons(amp_probe, monkeypatch):
    """Every reason ``resolve_amp("auto", ...)`` gives, from the code
    itself (so a new reason shows up here)."""
    fake, _ = amp_probe
    for support in ("amp.onednn_bf16", "amp.onednn_no_bf16",
                    "amp.bf16_not_reported", "amp.no_onednn"):
        note = Message(support, cpu="AVX512")
        for ok, bf16 in ((True, 0.004), (True, 0.0085), (False, 0.004)):
            fake(ok, fp32=0.010, bf16=bf16)
            monkeypatch.setattr(amp, "cpu_bf16_support",
                                lambda ok=ok, note=note: (ok, note))
            yield amp.resolve_amp("auto", "cpu")[1]
    monkeypatch.setenv(amp.AMP_ENV, "bf16")
    amp.cpu_amp_choice.cache_clear()
    yield amp.resolve_amp("auto", "cpu")[1]
    for bf16 in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda bf16=bf16: bf16)
        yield amp.resolve_amp("auto", "cuda")[1]
    yield amp.resolve_amp("auto", "mps")[1]
    yield amp.resolve_amp("bf16", "cpu")[1]
    yield amp.resolve_amp("none", "cpu")[1]


def test_every_amp_reason_is_a_code_said_in_chinese(amp_probe,
                                                    monkeypatch):
    """resolve_amp gives message codes, not English sentences; each is
    said in Chinese from the message table, with no English left (the
    measured ratio 0.010 / 0.0085 = 1.18 is a close call)."""
    reasons = list(_reasons(amp_probe, monkeypatch))
    assert len(set(reasons)) == len(reasons) == 18
    codes = {part.code for reason in reasons for part in reason}
    assert codes == {c for c in messages.MESSAGES if c.startswith("amp.")
                     and c != "amp.none_fp32"}
    for reason in reasons:
        en, zh = messages.join(reason, "en"), messages.join(reason, "zh")
        assert ENGLISH.search(en) or en in ("fp32", "as asked"), en
        assert not ENGLISH.search(zh), (en, zh)
    assert messages.join(reasons[0], "zh") == (
        "oneDNN报告支持bf16（CPU：AVX512）；实测bf16的速度是fp32的2.50倍；"
        "取7对交替测量的中位数（各对为2.50～2.50倍）")
    assert messages.join(reasons[1], "en") == (
        "oneDNN reports bf16 support (CPU AVX512); measured bf16 at 1.18x "
        "fp32's speed (needs >= 1.2x); median of 7 alternating pairs, 1.18x "
        "to 1.18x; a close call (within 15% of the 1.2x threshold): another "
        "run may choose otherwise, set D2L_DENSENET_CPU_AMP or --amp to fix "
        "it")


def test_cosine_schedule_steps_per_epoch():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = settings.lr_scheduler("cosine", 3)(opt)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.075, 0.025])
    assert settings.lr_scheduler("constant", 3) is None


def test_cosine_schedule_steps_per_batch():
    """Given the batches per epoch, cosine decays over every step, from
    lr to 0 after the last one, and says it is stepped per batch."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    factory = settings.lr_scheduler("cosine", 2, num_batches=2)
    assert factory.interval == "batch"
    assert not hasattr(settings.lr_scheduler("cosine", 2), "interval")
    sched = factory(opt)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1 * (1 + 2 ** -0.5) / 2, 0.05,
                                 0.1 * (1 - 2 ** -0.5) / 2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_batches must be"):
            settings.lr_scheduler("cosine", 2, num_batches=bad)
