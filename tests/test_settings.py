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
