import pytest
import torch

from d2l_densenet import settings

S = {"gpu": dict(lr=0.1, num_epochs=10), "cpu": dict(lr=0.1, num_epochs=2),
     "smoke": dict(lr=0.1, num_epochs=1)}


def test_mode_from_environment(monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_MODE", "Smoke")
    assert settings.run_mode() == "smoke"
    monkeypatch.delenv("D2L_DENSENET_MODE")
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert settings.run_mode() == expected


def test_bad_mode(monkeypatch):
    monkeypatch.setenv("D2L_DENSENET_MODE", "fast")
    with pytest.raises(ValueError, match="must be one of .*'fast'"):
        settings.run_mode()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only check")
def test_gpu_mode_without_gpu():
    with pytest.raises(ValueError, match="no CUDA device"):
        settings.run_mode("gpu")


def test_choose_prints_reduced_settings(capsys):
    mode, device, chosen = settings.choose(S, "cpu")
    out = capsys.readouterr().out
    assert (mode, chosen) == ("cpu", S["cpu"])
    assert "CPU mode on" in out and "num_epochs=2" in out
    assert "reduced from the GPU settings (lr=0.1, num_epochs=10)" in out
    assert isinstance(device, torch.device)


def test_choose_needs_every_mode():
    with pytest.raises(ValueError, match=r"\['smoke'\] are missing"):
        settings.choose({"gpu": {}, "cpu": {}}, "cpu")


def test_setup_plots_adds_a_chinese_fallback_after_the_latin_font(
        monkeypatch):
    import matplotlib
    from matplotlib import font_manager

    fake = font_manager.FontEntry(fname="/x/wqy.ttc",
                                  name="WenQuanYi Micro Hei")
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [*font_manager.fontManager.ttflist, fake])
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        assert settings.setup_plots() == "WenQuanYi Micro Hei"
        assert matplotlib.rcParams["font.family"] == [
            "sans-serif", "WenQuanYi Micro Hei"]
        settings.setup_plots()       # a second call adds nothing
        assert len(matplotlib.rcParams["font.family"]) == 2


def test_setup_plots_without_chinese_fonts_changes_nothing(monkeypatch):
    import matplotlib
    from matplotlib import font_manager

    latin = [f for f in font_manager.fontManager.ttflist
             if f.name not in settings.CJK_FONTS]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [])
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        assert settings.setup_plots() is None
        assert matplotlib.rcParams["font.family"] == ["sans-serif"]


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


def test_real_timing_runs():
    """The measurement itself (not its speed): two positive times."""
    fp32, bf16 = settings._time_amp(repeats=1)
    assert 0 < fp32 < 60 and 0 < bf16 < 600
