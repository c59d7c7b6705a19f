import re
from types import SimpleNamespace

import pytest
import torch

from d2l_densenet import plots, settings

S = {"gpu": dict(lr=0.1, num_epochs=10), "cpu": dict(lr=0.1, num_epochs=2),
     "smoke": dict(lr=0.1, num_epochs=1)}


@pytest.fixture(autouse=True)
def english(monkeypatch):
    """Each test starts with an English reader; ``choose(lang=...)``
    changes the package-wide language only for its test."""
    monkeypatch.setattr(plots, "_language", "en")
    monkeypatch.setattr(plots, "_told", False)


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_MODE", "Smoke")
    assert settings.run_mode() == "smoke"
    monkeypatch.delenv("D2L_DENSENET_MODE")
    for device, mode in (("cpu", "cpu"), ("cuda", "gpu"), ("mps", "gpu")):
        monkeypatch.setattr(settings, "default_device",
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
    assert settings.default_device() == torch.device(expected)


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
    assert settings.device_description("cuda") == "cuda (Fake GPU 80GB)"
    assert settings.device_description(torch.device("cpu")) == "cpu"


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
    assert plots.language() == "zh"
    with pytest.raises(ValueError, match="lang must be one of"):
        settings.choose(S, "cpu", lang="cn")


def test_choose_needs_every_mode():
    with pytest.raises(ValueError, match=r"\['smoke'\] are missing"):
        settings.choose({"gpu": {}, "cpu": {}}, "cpu")


# --- bf16 on the CPU, decided by measuring (timings monkeypatched) --------

@pytest.fixture
def amp_probe(monkeypatch):
    """Fake the CPU's bf16 report and the timing; count timing calls."""
    monkeypatch.delenv(settings.AMP_ENV, raising=False)
    settings.cpu_amp_choice.cache_clear()
    calls = []

    def fake(supported, fp32=0.010, bf16=0.010):
        monkeypatch.setattr(settings, "_cpu_bf16_support",
                            lambda: (supported, "fake CPU"))

        def timing(*args, **kwargs):
            calls.append(1)
            return fp32, bf16
        monkeypatch.setattr(settings, "_time_amp", timing)
        settings.cpu_amp_choice.cache_clear()

    yield fake, calls
    settings.cpu_amp_choice.cache_clear()


def test_cpu_without_bf16_keeps_fp32_without_timing(amp_probe):
    fake, calls = amp_probe
    fake(False, fp32=0.010, bf16=0.001)  # timing would say bf16
    assert settings.cpu_amp() is None
    assert calls == []
    assert "fake CPU" in settings.cpu_amp_choice().reason


@pytest.mark.parametrize("bf16", [0.030, 0.010, 0.009])
def test_bf16_not_clearly_faster_keeps_fp32(amp_probe, bf16):
    """Slower, equal, or only 11% faster (< AMP_MIN_SPEEDUP): fp32."""
    fake, calls = amp_probe
    fake(True, fp32=0.010, bf16=bf16)
    choice = settings.cpu_amp_choice()
    assert choice.amp is None and calls == [1]
    assert f"{0.010 / bf16:.2f}x" in choice.reason
    assert choice.fp32_ms == pytest.approx(10.0)


def test_bf16_clearly_faster_is_chosen_once(amp_probe):
    fake, calls = amp_probe
    fake(True, fp32=0.010, bf16=0.004)
    assert settings.cpu_amp() == "bf16"
    assert settings.cpu_amp() == "bf16"
    assert calls == [1]   # measured once per process
    assert "2.50x faster" in settings.cpu_amp_choice().reason


@pytest.mark.parametrize("value,expected", [("none", None),
                                            ("BF16", "bf16")])
def test_environment_overrides_measurement(amp_probe, monkeypatch, value,
                                           expected):
    fake, calls = amp_probe
    fake(True, fp32=0.010, bf16=0.001)
    monkeypatch.setenv(settings.AMP_ENV, value)
    assert settings.cpu_amp() == expected and calls == []


def test_bad_environment_value(amp_probe, monkeypatch):
    monkeypatch.setenv(settings.AMP_ENV, "fp8")
    with pytest.raises(ValueError, match="must be bf16 or none, got 'fp8'"):
        settings.cpu_amp()


def test_train_options_resolve_and_print(amp_probe, capsys):
    fake, _ = amp_probe
    fake(False)
    opts = settings.train_options("cpu", "cpu")
    out = capsys.readouterr().out
    assert opts == dict(amp=None, channels_last=True, lr_schedule="cosine")
    assert "amp=none, channels_last=True, lr_schedule=cosine" in out
    assert "fake CPU" in out
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
    assert "amp=auto -> bf16: fake CPU; measured bf16 2.50x" in \
        capsys.readouterr().out
    settings.choose(S2, "cpu", lang="zh")
    assert "amp=auto -> bf16：fake CPU；实测bf16的速度是fp32的2.50倍" in \
        capsys.readouterr().out


#: English words of resolve_amp's reasons; none may be left in Chinese.
ENGLISH = re.compile(r"measured|faster|speed|needs|reports|support|set by|"
                     r"the GPU|decision|has no|not reported")


def _reasons(amp_probe, monkeypatch):
    """Every reason ``resolve_amp("auto", ...)`` gives, from the code
    itself (so a reworded reason shows up here)."""
    fake, _ = amp_probe
    notes = ["oneDNN reports bf16 support (CPU AVX512)",
             "oneDNN reports no bf16 support (CPU AVX2)",
             "CPU AVX2, bf16 support not reported",
             "this PyTorch has no oneDNN (CPU: DEFAULT)"]
    for note in notes:
        for ok, bf16 in ((True, 0.004), (True, 0.009), (False, 0.004)):
            fake(ok, fp32=0.010, bf16=bf16)
            monkeypatch.setattr(settings, "_cpu_bf16_support",
                                lambda ok=ok, note=note: (ok, note))
            yield settings.resolve_amp("auto", "cpu")[1]
    monkeypatch.setenv(settings.AMP_ENV, "bf16")
    settings.cpu_amp_choice.cache_clear()
    yield settings.resolve_amp("auto", "cpu")[1]
    for bf16 in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda bf16=bf16: bf16)
        yield settings.resolve_amp("auto", "cuda")[1]
    yield settings.resolve_amp("auto", "mps")[1]


def test_every_amp_reason_has_a_chinese_translation(amp_probe,
                                                    monkeypatch):
    reasons = list(_reasons(amp_probe, monkeypatch))
    assert len(set(reasons)) == len(reasons) == 16
    for reason in reasons:
        assert ENGLISH.search(reason), reason        # the check can fail
        zh = settings._amp_reason_zh(reason)
        assert not ENGLISH.search(zh), (reason, zh)
    assert settings._amp_reason_zh(reasons[0]) == \
        "oneDNN报告支持bf16（CPU：AVX512）；实测bf16的速度是fp32的2.50倍"


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


class _Clock:
    """A fake ``time`` module: each timed step (two ``perf_counter``
    calls) lasts the next of ``durations``; records what it reported."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now, self.calls = 0.0, 0

    def perf_counter(self):
        if self.calls % 2:              # the end of a step
            self.now += self.durations.pop(0)
        self.calls += 1
        return self.now


def test_amp_timing_is_best_of_repeats_after_warmup(monkeypatch):
    """Steps run fp32, bf16, fp32, bf16, ...: two warm-up steps (slow:
    must not count), then three of each; the best of each is returned
    (not the first, last or mean)."""
    clock = _Clock([9.0, 9.0, 0.5, 0.9, 0.3, 0.2, 0.4, 0.7])
    monkeypatch.setattr(settings, "time", clock)
    assert settings._time_amp(repeats=3) == pytest.approx((0.3, 0.2))
    assert clock.durations == [] and clock.calls == 16


def test_amp_timing_gives_up_when_bf16_is_far_slower(monkeypatch):
    clock = _Clock([1.0, 1.0, 0.1, 0.5, 0.1, 0.1])
    monkeypatch.setattr(settings, "time", clock)
    assert settings._time_amp(repeats=2, give_up=3.0) == \
        pytest.approx((0.1, 0.5))
    assert clock.durations == [0.1, 0.1]      # the second round not run


def test_real_timing_runs(monkeypatch):
    """The real steps (BatchNorm, ReLU, conv; fp32 and bf16 autocast) run
    on this CPU and the returned times are the best real durations."""
    import time

    durations = []

    class Recorder:
        @staticmethod
        def perf_counter():
            t = time.perf_counter()
            if Recorder.start is None:
                Recorder.start = t
            else:
                durations.append(t - Recorder.start)
                Recorder.start = None
            return t
        start = None

    monkeypatch.setattr(settings, "time", Recorder)
    fp32, bf16 = settings._time_amp(repeats=2, give_up=1e9)
    assert len(durations) == 2 + 2 * 2
    assert (fp32, bf16) == (min(durations[2::2]), min(durations[3::2]))
    assert fp32 > 0 and bf16 > 0
