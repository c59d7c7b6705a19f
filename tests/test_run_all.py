"""benchmarks/run_all.py: merging, skipping and surviving failures (with
stand-in benchmarks; the real ones are timed work, not tests)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def suite(tmp_path, monkeypatch):
    run_all = _load("run_all")
    (tmp_path / "bench_a.py").write_text(
        "def main(argv):\n    return {'argv': argv, 'x_ratio': 1.5}\n")
    (tmp_path / "bench_b.py").write_text(
        "def main(argv):\n    raise RuntimeError('boom')\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "SUITE", (
        ("a", "bench_a", "stand-in"), ("b", "bench_b", "fails"),
        ("c", "bench_c", "missing")))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield run_all
    for m in ("bench_a", "bench_b"):
        sys.modules.pop(m, None)


def test_merges_skips_and_survives(suite, tmp_path, capsys):
    out = tmp_path / "build" / "benchmarks.json"
    res = suite.main(["--out", str(out), "--a", "--epochs 2"])
    saved = json.loads(out.read_text())
    assert saved["a"] == {"argv": ["--epochs", "2"], "x_ratio": 1.5}
    assert saved["b"] == {"error": "RuntimeError: boom"}
    assert "not present" in saved["c"]["skipped"]
    assert set(saved["meta"]["seconds"]) == {"a", "b", "c"}
    assert res["a"]["x_ratio"] == 1.5
    text = capsys.readouterr().out
    assert "a.x_ratio: 1.5" in text and "b: RuntimeError: boom" in text


def test_only(suite, tmp_path):
    res = suite.main(["--out", str(tmp_path / "r.json"), "--only", "a"])
    assert "a" in res and "b" not in res and "c" not in res


def test_book_output_turns_figures_into_dots():
    """d2l's Animator prints figure reprs into a terminal; the speed
    benchmark shows one dot each and keeps the text for parsing."""
    import io
    bench = _load("bench_speed")
    screen = io.StringIO()
    out = bench._BookOutput(screen)
    out.write("training on cpu\n\x1b[2K\rFigure(350x250)\n")
    out.write("\x1b[2K\rFigure(350x250)\nloss 0.5, train acc 0.8, ")
    out.write("test acc 0.7\n12.5 examples/sec on cpu")
    text = out.getvalue()
    assert screen.getvalue() == ("training on cpu\n..\nloss 0.5, train "
                                 "acc 0.8, test acc 0.7\n12.5 examples/"
                                 "sec on cpu\n")
    assert "12.5 examples/sec" in text


def test_remaining_bound_is_amdahl():
    """Convolutions at the matmul rate, the rest as profiled."""
    bench = _load("bench_speed")
    prof = dict(ms_per_step=200.0, conv=dict(
        forward=dict(gflop_per_step=4.0, ms_per_step=40.0),
        backward=dict(gflop_per_step=8.0, ms_per_step=100.0)))
    b = bench.remaining_bound(prof, rate=120.0)  # 12 GFLOP -> 100 ms
    assert b["conv_ms"] == pytest.approx(140.0)
    assert b["conv_ms_at_matmul_rate"] == pytest.approx(100.0)
    assert b["other_ms"] == pytest.approx(60.0)
    assert b["speedup"] == pytest.approx(200.0 / 160.0)


def test_profile_counts_every_convolution_flop():
    """The profile's forward and backward conv FLOPs add up to the
    model's training FLOPs (all but the tiny linear head)."""
    import argparse

    import torch
    bench = _load("bench_speed")
    args = argparse.Namespace(seed=0, batch_size=4, resize=32, lr=0.1)
    options = dict(amp=None, channels_last=False)
    prof = bench.op_profile(args, torch.device("cpu"), options, steps=1)
    conv = prof["conv"]
    assert conv["forward"]["ms_per_step"] > 0
    assert conv["backward"]["ms_per_step"] > 0
    # backward: grad of inputs and weights, about twice the forward
    ratio = conv["backward"]["gflop_per_step"] / \
        conv["forward"]["gflop_per_step"]
    assert 1.5 < ratio <= 2.0
    total = sum(c["gflop_per_step"] for c in conv.values()) * 1e9
    expected = bench.flops_per_image(32) * args.batch_size
    assert 0.99 * expected < total <= expected
