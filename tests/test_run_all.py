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


def test_held_class_runs_in_a_subprocess_with_its_environment(
        tmp_path, monkeypatch):
    """"speed_avx2" runs its module in a subprocess with the AVX2
    variables set, with "speed"'s arguments unless given its own, and
    its JSON is read back."""
    run_all = _load("run_all")
    (tmp_path / "bench_env.py").write_text(
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "out = args[args.index('--json') + 1]\n"
        "names = ('ONEDNN_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY',\n"
        "         'MKL_ENABLE_INSTRUCTIONS')\n"
        "json.dump({'argv': args[:-2],\n"
        "           'env': {n: os.environ.get(n) for n in names}},\n"
        "          open(out, 'w'))\n")
    (tmp_path / "bench_a.py").write_text(
        "import os\n"
        "def main(argv):\n"
        "    return {'argv': argv,\n"
        "            'isa': os.environ.get('ONEDNN_MAX_CPU_ISA')}\n")
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "SUITE", (
        ("speed", "bench_a", "this CPU"),
        ("speed_avx2", "bench_env", "held")))
    monkeypatch.setattr(run_all, "held_class_skip", lambda name: None)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    out = tmp_path / "r.json"
    try:
        res = run_all.main(["--out", str(out), "--speed", "--epochs 2"])
        assert res["speed"]["argv"] == ["--epochs", "2"]
        assert res["speed"]["isa"] is None          # in this process
        held = res["speed_avx2"]
        assert held["argv"] == ["--epochs", "2"]
        assert held["env"] == run_all.AVX2_ENV == {
            "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
        res = run_all.main(["--out", str(out), "--speed", "--epochs 2",
                            "--speed-avx2", "--epochs 3"])
        assert res["speed_avx2"]["argv"] == ["--epochs", "3"]
    finally:
        sys.modules.pop("bench_a", None)


def test_held_class_skipped_where_the_cpu_is_of_that_class(monkeypatch):
    run_all = _load("run_all")
    for flags, why in (({"avx2", "fma"}, "AVX2 class already"),
                       ({"neon"}, "no AVX2"),
                       ({"avx2", "avx512f"}, None)):
        monkeypatch.setattr(run_all, "_cpu_flags", lambda flags=flags: flags)
        got = run_all.held_class_skip("speed_avx2")
        assert (got is None) if why is None else why in got
    assert run_all.held_class_skip("speed") is None


def test_fast_path_ablation_turns_each_path_off(monkeypatch):
    """The speed benchmark's "fast paths, one at a time" table: each
    patch it applies does turn its path off (the path's function is no
    longer called; it is called with every path on), and the model
    still computes the same output."""
    from unittest import mock

    import torch

    import d2l_densenet as dd
    from d2l_densenet import fast
    bench = _load("bench_speed")
    marker = {"transition": "pointwise_conv2d",
              "SMALL_PIXELS": "small_conv2d",
              "POINTWISE_PIXELS": "pointwise_conv2d"}
    assert {attr for _, attr, _ in bench.FAST_PIECES} == set(marker)
    calls = dict.fromkeys(marker.values(), 0)
    for name in calls:
        real = getattr(fast, name)

        def spy(*args, real=real, name=name):
            calls[name] += 1
            return real(*args)
        monkeypatch.setattr(fast, name, spy)
    torch.manual_seed(0)
    net = dd.densenet().to(memory_format=torch.channels_last)
    X = torch.rand(4, 1, 32, 32).contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        expected = net(X)

    def forward():
        calls.update(dict.fromkeys(calls, 0))
        with torch.no_grad(), fast.fast_paths():
            torch.testing.assert_close(net(X), expected)
        return dict(calls)
    on = forward()
    for label, attr, off in bench.FAST_PIECES:
        assert on[marker[attr]] > 0, label
        with mock.patch.object(fast, attr, off):
            assert forward()[marker[attr]] == 0, label


@pytest.mark.slow
def test_reduced_speed_benchmark_on_both_classes(tmp_path, capsys):
    """The real speed benchmark, shrunk to seconds: both CPU classes
    measured, the AVX2 class held (ATen at AVX2, oneDNN without bf16,
    so fp32), every table naming class and CPU, the book's loop and
    ours side by side in the summary. No timing is judged."""
    run_all = _load("run_all")
    if run_all.held_class_skip("speed_avx2"):
        pytest.skip(run_all.held_class_skip("speed_avx2"))
    out = tmp_path / "benchmarks.json"
    args = ("--subset 640 --test-subset 100 --batch-size 64 "
            "--loader-batches 0 --profile-steps 1 --step-rounds 1 "
            "--step-batches 1 --threads 1 --progress none")
    try:
        res = run_all.main(["--out", str(out), "--only", "speed",
                            "speed_avx2", "--speed", args])
    finally:
        sys.modules.pop("bench_speed", None)
    saved = json.loads(out.read_text())
    native, held = saved["speed"], saved["speed_avx2"]
    assert held["cpu_class"]["aten"] == "AVX2"
    assert held["cpu_class"]["onednn_bf16"] is False
    assert held["options"]["amp"] is None
    assert held["cpu_class"]["held"] == run_all.AVX2_ENV
    assert native["cpu_class"]["held"] == {}
    assert native["cpu_class"]["aten"] != "AVX2"
    for r in (native, held):
        assert r["training"]["book"]["examples"] == 640
        assert r["ratios"]["wall"] > 0
        labels = [row["variant"] for row in r["steps"]["rows"]]
        assert labels[:3] == ["book layout: NCHW, fp32",
                              "channels-last, fp32",
                              "channels-last + fast paths, fp32"]
        fast_rows = [row["variant"] for row in r["fast_steps"]["rows"]]
        assert len(fast_rows) == 2 + len(_load("bench_speed").FAST_PIECES)
        assert fast_rows[0] == "all fast paths"
        assert all(row["ms_per_step"] > 0
                   for row in r["fast_steps"]["rows"])
    assert not any("bf16" in row["variant"]
                   for row in held["steps"]["rows"])
    text = capsys.readouterr().out
    summary = text[text.index("Summary"):]
    assert f"speed: {native['cpu_class']['name']} class" in summary
    assert f"speed_avx2: {held['cpu_class']['name']} class" in summary
    assert summary.count("ours/book wall-clock") == 2
    assert res["speed_avx2"]["env"] == run_all.AVX2_ENV
