"""The precision choice (``amp.py``): bf16 on the CPU is decided by a
measurement that a busy machine moves little, and a resumed run keeps
the precision its checkpoint was trained in.

This machine's CPU lacks native bf16 arithmetic, so every bf16 decision
below is made with the CPU's support report and the measurement patched
(``amp_probe``) or its clock faked; only
``test_real_measurement_reports_the_steps_it_timed`` times real steps.
"""
import functools
import statistics
import time

import pytest
import torch
from _fakes import FakeClock

from d2l_densenet import amp
from d2l_densenet.messages import Message

REAL_MEASURE = amp.measure_amp


@pytest.fixture
def amp_probe(monkeypatch):
    """Fake the CPU's bf16 report and the measurement: ``fake(supported,
    ratios)`` makes each measurement return the next per-pair ratios
    (fp32 time / bf16 time); ``calls`` counts measurements."""
    monkeypatch.delenv(amp.AMP_ENV, raising=False)
    calls = []

    def fake(supported, *ratios_per_call):
        note = Message("amp.bf16_not_reported", cpu="FAKE")
        monkeypatch.setattr(amp, "cpu_bf16_support",
                            lambda: (supported, note))

        def measure(*args, **kwargs):
            ratios = ratios_per_call[min(len(calls),
                                         len(ratios_per_call) - 1)]
            calls.append(1)
            return amp.AmpTiming(0.010, 0.010 / ratios[0], tuple(ratios))
        monkeypatch.setattr(amp, "measure_amp", measure)
        amp.cpu_amp_choice.cache_clear()

    amp.cpu_amp_choice.cache_clear()
    yield fake, calls
    amp.cpu_amp_choice.cache_clear()


def test_cpu_without_bf16_keeps_fp32_without_measuring(amp_probe):
    fake, calls = amp_probe
    fake(False, (10.0,))  # the measurement would say bf16
    assert amp.cpu_amp() is None
    assert calls == []
    assert amp.cpu_amp_choice().text("en") == (
        "CPU FAKE, bf16 support not reported; fp32")


@pytest.mark.parametrize("ratio", [0.3, 1.0, 1.11])
def test_bf16_not_clearly_faster_keeps_fp32(amp_probe, ratio):
    """Slower, equal, or only 11% faster (< AMP_MIN_SPEEDUP): fp32."""
    fake, calls = amp_probe
    fake(True, (ratio,) * 5)
    choice = amp.cpu_amp_choice()
    assert choice.amp is None and calls == [1]
    assert f"{ratio:.2f}x" in choice.text("en")
    assert choice.fp32_ms == pytest.approx(10.0)


def test_bf16_clearly_faster_is_chosen_once(amp_probe):
    fake, calls = amp_probe
    fake(True, (2.5,) * 5)
    assert amp.cpu_amp() == "bf16"
    assert amp.cpu_amp() == "bf16"
    assert calls == [1]   # measured once per process
    assert "2.50x faster" in amp.cpu_amp_choice().text("en")
    assert not amp.cpu_amp_choice().close


def test_a_burst_of_load_does_not_move_the_decision(amp_probe):
    """Two of seven pairs disturbed by another process (bf16 steps 10x
    slower): their mean ratio (1.0) would keep fp32; the median of the
    pairs (1.5) still chooses bf16."""
    fake, _ = amp_probe
    ratios = (1.5, 1.5, 0.15, 1.5, 0.15, 1.5, 1.5)
    assert sum(ratios) / len(ratios) < amp.AMP_MIN_SPEEDUP
    fake(True, ratios)
    choice = amp.cpu_amp_choice()
    assert choice.amp == "bf16"
    assert "median of 7 alternating pairs, 0.15x to 1.50x" in \
        choice.text("en")


@pytest.mark.parametrize("ratio,expected", [(1.25, "bf16"), (1.1, None)])
def test_a_close_call_is_said(amp_probe, ratio, expected):
    fake, _ = amp_probe
    fake(True, (ratio,) * 7)
    choice = amp.cpu_amp_choice()
    assert choice.amp == expected and choice.close
    assert "a close call (within 15% of the 1.2x threshold)" in \
        choice.text("en")
    assert "结果接近阈值（与1.2倍相差不到15%）" in choice.text("zh")


@pytest.mark.parametrize("value,expected", [("none", None),
                                            ("BF16", "bf16")])
def test_environment_overrides_measurement(amp_probe, monkeypatch, value,
                                           expected):
    fake, calls = amp_probe
    fake(True, (10.0,))
    monkeypatch.setenv(amp.AMP_ENV, value)
    assert amp.cpu_amp() == expected and calls == []


def test_bad_environment_value(amp_probe, monkeypatch):
    monkeypatch.setenv(amp.AMP_ENV, "fp8")
    with pytest.raises(ValueError, match="must be bf16 or none, got 'fp8'"):
        amp.cpu_amp()


def test_resolve_amp(amp_probe):
    fake, _ = amp_probe
    fake(True, (2.0,) * 7)
    assert amp.resolve_amp("auto", "cpu")[0] == "bf16"
    fp32 = (Message("amp.fp32"),)
    assert amp.resolve_amp("none", "cpu") == (None, fp32)
    assert amp.resolve_amp(None, "cpu") == (None, fp32)
    assert amp.resolve_amp("bf16", "cpu") == ("bf16",
                                               (Message("amp.as_asked"),))
    with pytest.raises(ValueError, match="amp must be one of"):
        amp.resolve_amp("fp8", "cpu")


class _SpyClock:
    """The real clock, recording the duration of each timed step (every
    second ``perf_counter`` call ends one)."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self._start = None

    def perf_counter(self) -> float:
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        else:
            self.steps.append(now - self._start)
            self._start = None
        return now


def test_real_measurement_reports_the_steps_it_timed(monkeypatch):
    """The measurement on the real CPU (not its speed): after one warm-up
    pair (not counted), pair 1 runs fp32 then bf16, pair 2 bf16 then
    fp32; the times are the medians of the steps actually timed and each
    ratio is that pair's fp32 time over its bf16 time."""
    clock = _SpyClock()
    monkeypatch.setattr(amp, "time", clock)
    timing = amp.measure_amp(pairs=2, warmup=1)
    assert len(clock.steps) == 6
    fp32 = [clock.steps[2], clock.steps[5]]
    bf16 = [clock.steps[3], clock.steps[4]]
    assert timing.fp32_s == pytest.approx(statistics.median(fp32))
    assert timing.bf16_s == pytest.approx(statistics.median(bf16))
    assert timing.ratios == pytest.approx(
        tuple(a / b for a, b in zip(fp32, bf16, strict=True)))
    assert timing.speedup == pytest.approx(statistics.median(
        timing.ratios))


@pytest.mark.parametrize("fp32,bf16,expected", [
    (0.2, 0.1, "bf16"),     # 2x faster
    (0.2, 0.18, None),      # 1.11x: not clearly faster
    (0.1, 0.4, None),       # 4x slower
])
def test_the_decision_follows_the_measured_steps(amp_probe, monkeypatch,
                                                 fp32, bf16, expected):
    """The real measurement (3 pairs after 1 warm-up pair, to be quick)
    and decision, with a fake clock: each timed fp32 step lasts ``fp32``
    s, each bf16 step ``bf16`` s; the choice and the ratio it reports
    follow."""
    fake, _ = amp_probe
    fake(True, (1.0,))
    monkeypatch.setattr(amp, "measure_amp", functools.partial(
        REAL_MEASURE, pairs=3, warmup=1))
    durations = []
    for i in range(1 + 3):              # 1 warm-up pair, then 3
        first_fp32 = i < 1 or (i - 1) % 2 == 0
        durations += [fp32, bf16] if first_fp32 else [bf16, fp32]
    monkeypatch.setattr(amp, "time", FakeClock(durations))
    choice = amp.cpu_amp_choice()
    assert choice.amp == expected
    reason = choice.text("en")
    assert f"{fp32 / bf16:.2f}x" in reason
    assert "median of 3 alternating pairs" in reason
    assert choice.fp32_ms == pytest.approx(fp32 * 1e3)
    assert choice.bf16_ms == pytest.approx(bf16 * 1e3)


def test_measurement_alternates_which_precision_goes_first(monkeypatch):
    """Pair 1 runs fp32 then bf16, pair 2 bf16 then fp32 (so a slowdown
    that grows over time does not always hit the same one)."""
    order = []
    real = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kwargs):
        order.append("bf16" if enabled else "fp32")
        return real(device_type, dtype=dtype, enabled=enabled, **kwargs)
    monkeypatch.setattr(amp.torch, "autocast", spy)
    amp.measure_amp(pairs=3, warmup=1)
    assert order == ["fp32", "bf16",            # warm-up
                     "fp32", "bf16", "bf16", "fp32", "fp32", "bf16"]



def test_measurement_takes_medians_of_alternating_pairs(monkeypatch):
    """Warm-up fp32, bf16 (slow: must not count), then pairs fp32-bf16,
    bf16-fp32, fp32-bf16. The times are medians, the speed-up the median
    of the per-pair ratios (not best-of, first, last or mean)."""
    clock = FakeClock([9.0, 9.0,        # warm-up
                    0.4, 0.2,        # pair 1: fp32, bf16   ratio 2
                    0.1, 0.5,        # pair 2: bf16, fp32   ratio 5
                    0.3, 0.3])       # pair 3: fp32, bf16   ratio 1
    monkeypatch.setattr(amp, "time", clock)
    timing = amp.measure_amp(pairs=3, warmup=1)
    assert timing.fp32_s == pytest.approx(0.4)
    assert timing.bf16_s == pytest.approx(0.2)
    assert timing.ratios == pytest.approx((2.0, 5.0, 1.0))
    assert timing.speedup == pytest.approx(2.0)
    assert clock.durations == []


def test_measurement_gives_up_when_bf16_is_far_slower(monkeypatch):
    """bf16 4x slower (a CPU without bf16): three pairs, not seven."""
    clock = FakeClock([1.0, 1.0] + [0.1, 0.4, 0.4, 0.1, 0.1, 0.4] + [0.1] * 8)
    monkeypatch.setattr(amp, "time", clock)
    timing = amp.measure_amp(pairs=7, warmup=1, give_up=3.0)
    assert len(timing.ratios) == 3 and timing.speedup == pytest.approx(0.25)
    assert len(clock.durations) == 8            # pairs 4 to 7 not run
