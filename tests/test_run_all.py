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
