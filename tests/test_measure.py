"""Measurement helpers on cases whose answers are known by hand."""
import copy
from types import SimpleNamespace

import pytest
import torch
from _fakes import FakeClock
from torch import nn

from d2l_densenet import (
    MemoryReport,
    count_parameters,
    densenet,
    measure,
    parameter_table,
    peak_memory,
    resnet18,
    saved_tensor_bytes,
    step_time,
    tensor_bytes,
)


def test_single_conv_parameters_by_hand():
    conv = nn.Conv2d(3, 8, kernel_size=3)
    assert count_parameters(conv) == 8 * 3 * 3 * 3 + 8


def test_parameter_table_sums_to_total():
    for net in (densenet(), resnet18()):
        rows = parameter_table(net)
        assert rows[-1] == ("total", count_parameters(net))
        assert sum(n for _, n in rows[:-1]) == rows[-1][1]
    rows = dict(parameter_table(densenet()))
    # stem: 7x7 conv 1->64 with bias, BN(64)
    assert rows["b1"] == 64 * 49 + 64 + 2 * 64
    # head: BN(248) + Linear(248, 10)
    assert rows["last"] == 2 * 248 + 248 * 10 + 10


def test_saved_activation_bytes_by_hand():
    """conv -> relu saves the conv input (for the weight grad) and the
    relu output: 4*3*16*16 + 4*8*16*16 floats (parameters excluded)."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    X = torch.randn(4, 3, 16, 16)
    assert saved_tensor_bytes(net, X) == 4 * (4 * 3 * 16 * 16
                                              + 4 * 8 * 16 * 16)


def test_tensor_bytes_counts_shared_storage_once():
    t = torch.zeros(10)
    assert tensor_bytes([t, t[:5], torch.zeros(3, dtype=torch.float64)]) \
        == 40 + 24


def test_cpu_peak_memory_by_hand():
    """Linear(1000 -> 1000, no bias) on 256 inputs, loss = sum: the step
    must at least allocate the output (256x1000 floats) and the weight
    gradient (1000x1000 floats); nothing else is big."""
    net = nn.Linear(1000, 1000, bias=False)
    X = torch.randn(256, 1000)
    rep = peak_memory(net, X)
    known = 4 * (256 * 1000 + 1000 * 1000)
    assert known <= rep.extra <= 1.6 * known
    assert rep.baseline == 4 * (1000 * 1000 + 256 * 1000)
    assert rep.param_bytes == 4 * 1000 * 1000
    assert rep.peak == rep.baseline + rep.extra
    assert all(p.grad is None for p in net.parameters())


def test_cpu_peak_memory_grows_with_batch_and_rss_agrees():
    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 16, 3, padding=1))
    small = peak_memory(net, torch.randn(8, 16, 64, 64)).extra
    big = peak_memory(net, torch.randn(32, 16, 64, 64))
    assert 3 * small < big.extra < 5 * small
    if big.rss_extra is not None:    # Linux: the OS sees the same order
        assert 0.5 * big.extra < big.rss_extra < 2 * big.extra


def test_peak_memory_without_rss_runs_one_step_fewer():
    """rss=False: the same allocator reading, no OS-level reading, and
    one forward pass fewer (warm-up and the counted step only)."""
    net = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
    calls = []
    net.register_forward_hook(lambda *args: calls.append(1))
    X = torch.randn(2, 4, 16, 16)
    full = peak_memory(net, X)
    n_full = len(calls)
    calls.clear()
    lean = peak_memory(net, X, rss=False)
    assert lean.extra == full.extra and lean.rss_extra is None
    assert len(calls) == n_full - 1 == 2


def test_densenet_needs_more_activation_memory_than_resnet():
    """Exercise 3's claim, on CPU at 96x96: fewer parameters, more
    activations."""
    X = torch.rand(8, 1, 96, 96)
    y = torch.randint(0, 10, (8,))
    d = peak_memory(densenet(), X, y)
    r = peak_memory(resnet18(), X, y)
    assert d.param_bytes < r.param_bytes / 10
    assert d.extra - 2 * d.param_bytes > r.extra - 2 * r.param_bytes



@pytest.mark.parametrize("durations,median", [
    ([0.5, 0.1, 0.3, 0.9, 0.2], 0.3),   # mean 0.4, min 0.1, last 0.2
    ([0.4, 0.1, 0.3, 0.9], 0.35),       # even count: the middle two
])
def test_step_time_is_the_median_of_the_timed_steps(monkeypatch,
                                                    durations, median):
    """Warm-up steps are not timed: exactly ``repeats`` steps use the
    clock."""
    clock = FakeClock(durations)
    monkeypatch.setattr(measure, "time", clock)
    t = step_time(nn.Linear(10, 2), torch.randn(4, 10), warmup=2,
                  repeats=len(durations))
    assert t == pytest.approx(median)
    assert clock.durations == [] and clock.calls == 2 * len(durations)


def test_step_time_bad_input():
    net = nn.Linear(10, 2)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        step_time(net, torch.randn(4, 10), repeats=0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        step_time(net, torch.randn(4, 10), warmup=-1)


def _bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


def _bn_data():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(16, 3, 8, 8, generator=g),
            torch.randint(0, 10, (16,), generator=g))


def _train_step(net, opt, X, y):
    opt.zero_grad()
    nn.functional.cross_entropy(net(X), y).backward()
    opt.step()


def test_adam_state_is_in_the_baseline_not_in_the_step():
    """Adam keeps two moments per parameter, created by the first
    ``step``: the warm-up creates them, the baseline counts them, the
    measured step is not charged for them. Eight equal layers, so Adam's
    per-parameter temporaries stay far below 2x the parameters."""
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(256, 256) for _ in range(8)])
    X = torch.randn(64, 256)
    sgd = peak_memory(net, X, optimizer=torch.optim.SGD(net.parameters(),
                                                        lr=0.1))
    opt = torch.optim.Adam(net.parameters())
    adam = peak_memory(net, X, optimizer=opt)
    n, P = len(list(net.parameters())), adam.param_bytes
    # exp_avg + exp_avg_sq, plus one scalar ``step`` per parameter
    assert 2 * P <= adam.baseline - sgd.baseline <= 2 * P + 8 * n
    assert sgd.extra <= adam.extra < sgd.extra + P / 2
    assert not opt.state     # the optimizer is left as it was: unused


def test_other_live_models_are_not_charged():
    """Measuring B while a large model A (weights, gradients, Adam state)
    is alive gives the same report as measuring B alone."""
    net = _bn_net()
    X, y = _bn_data()
    opt = torch.optim.Adam(net.parameters())
    alone = peak_memory(net, X, y, optimizer=opt)
    big = nn.Linear(2048, 2048)                  # 16 MiB, x4 with Adam
    big_opt = torch.optim.Adam(big.parameters())
    _train_step(big, big_opt, torch.randn(8, 2048), torch.zeros(8).long())
    peak_memory(big, torch.randn(8, 2048), optimizer=big_opt)
    beside = peak_memory(net, X, y, optimizer=opt)
    assert beside.baseline == alone.baseline
    assert abs(beside.extra - alone.extra) <= 0.02 * alone.extra


def _assert_same_state(net, opt, ref, ref_opt):
    for (k, a), (_, b) in zip(net.state_dict().items(),
                              ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), k     # incl. running stats, batch count
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None)
        assert a.grad is None or torch.equal(a.grad, b.grad)
    got, want = opt.state_dict(), ref_opt.state_dict()
    assert got["param_groups"] == want["param_groups"]
    assert got["state"].keys() == want["state"].keys()
    for i, state in want["state"].items():
        assert state.keys() == got["state"][i].keys()
        for k, v in state.items():
            assert torch.equal(got["state"][i][k], v), (i, k)


def test_measuring_leaves_model_and_optimizer_as_they_were():
    """A notebook measures, then trains: parameters, BatchNorm statistics,
    gradients and Adam's state must be untouched by the measurement."""
    net = _bn_net()
    X, y = _bn_data()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    _train_step(net, opt, X, y)        # state, grads and BN stats exist
    ref, ref_opt = copy.deepcopy((net, opt))
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        b.grad = a.grad.clone()        # deepcopy leaves gradients behind
    params = list(net.parameters())
    peak_memory(net, X, y, optimizer=opt)
    step_time(net, X, y, optimizer=opt, warmup=1, repeats=2)
    assert all(a is b for a, b in zip(net.parameters(), params, strict=True))
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"],
                                      params, strict=True))
    _assert_same_state(net, opt, ref, ref_opt)
    for m, o in ((net, opt), (ref, ref_opt)):   # training goes on alike
        _train_step(m, o, X, y)
    _assert_same_state(net, opt, ref, ref_opt)


def test_first_measurement_carries_no_one_time_allocations():
    """Measure with a fresh Adam, train a step, measure again (and once
    more): the same baseline and extra every time."""
    net = _bn_net()
    X, y = _bn_data()
    opt = torch.optim.Adam(net.parameters())
    first = peak_memory(net, X, y, optimizer=opt)
    _train_step(net, opt, X, y)
    reps = [peak_memory(net, X, y, optimizer=opt) for _ in range(2)]
    for rep in reps:
        assert rep.baseline == first.baseline
        assert abs(rep.extra - first.extra) <= 0.02 * first.extra


GiB = 2 ** 30


class FakeGpu:
    """A device with a caching allocator's counters, asynchronous like a
    GPU: work queued by a step (a temporary buffer, some seconds) happens
    only when the host synchronizes. Every counter must be read for the
    measured device."""

    def __init__(self, device, allocated):
        self.device = device
        self.allocated = self.peak = allocated    # other models, too
        self.now = 0.0
        self.queue = []

    def _check(self, device):
        assert torch.device(device) == self.device, device

    def synchronize(self, device=None):
        self._check(device)
        for nbytes, seconds in self.queue:
            self.peak = max(self.peak, self.allocated + nbytes)
            self.now += seconds
        self.queue.clear()

    def reset_peak_memory_stats(self, device=None):
        self._check(device)
        self.peak = self.allocated

    def memory_allocated(self, device=None):
        self._check(device)
        return self.allocated

    def max_memory_allocated(self, device=None):
        self._check(device)
        return self.peak


class Kernel(nn.Module):
    """Queues a temporary buffer of ``nbytes`` and ``seconds`` of work
    on ``gpu`` at every forward."""

    def __init__(self, gpu, nbytes, seconds):
        super().__init__()
        self.gpu, self.nbytes, self.seconds = gpu, nbytes, seconds

    def forward(self, X):
        self.gpu.queue.append((self.nbytes, self.seconds))
        return X * 1


@pytest.mark.parametrize("kind", ["cuda", "xpu"])
def test_gpu_peak_is_the_step_peak_above_its_start(monkeypatch, kind):
    """On a fake GPU holding 10 GiB of other models, whose earlier peak
    was 20 GiB, a step whose one temporary is 1 MiB reads extra = 1 MiB:
    relative to the step's start (other models not charged), after a
    reset (the old peak not charged) and after synchronizing (the queued
    work counted). The baseline is only what the measurement owns."""
    device = torch.device(kind, 1)
    gpu = FakeGpu(device, allocated=10 * GiB)
    gpu.peak = 20 * GiB
    for name in ("synchronize", "reset_peak_memory_stats",
                 "memory_allocated", "max_memory_allocated"):
        monkeypatch.setattr(getattr(torch, kind), name, getattr(gpu, name))
    monkeypatch.setattr(measure, "_device_of", lambda X: device)
    net = nn.Sequential(nn.Linear(10, 2), Kernel(gpu, 2 ** 20, 0.25))
    X = torch.randn(4, 10)
    rep = peak_memory(net, X)
    assert (rep.device, rep.method.text("en")) == (
        f"{kind}:1", f"{kind} max_memory_allocated")
    assert rep.method.text("zh") == (
        f"由torch.{kind}.max_memory_allocated测得")
    assert rep.extra == 2 ** 20 and rep.rss_extra is None
    assert rep.baseline == tensor_bytes([*net.parameters(), X])


def test_gpu_step_time_waits_for_the_device(monkeypatch):
    """A step queues 0.25 s of GPU work: timed between synchronizations
    it takes 0.25 s (not 0: unsynchronized end; not 0.5: the warm-up's
    work still queued at the start)."""
    device = torch.device("cuda", 1)
    gpu = FakeGpu(device, allocated=0)
    monkeypatch.setattr(torch.cuda, "synchronize", gpu.synchronize)
    monkeypatch.setattr(measure, "time",
                        SimpleNamespace(perf_counter=lambda: gpu.now))
    monkeypatch.setattr(measure, "_device_of", lambda X: device)
    net = nn.Sequential(nn.Linear(10, 2), Kernel(gpu, 0, 0.25))
    assert step_time(net, torch.randn(4, 10), warmup=1, repeats=1) == 0.25


class FakeMps:
    """``torch.mps``'s counter: bytes of live tensors, nothing more."""

    def __init__(self, allocated):
        self.allocated = allocated
        self.reads = 0

    def current_allocated_memory(self):
        self.reads += 1
        return self.allocated

    def synchronize(self):
        pass


class OnBackward(nn.Module):
    """Identity whose ``forward`` runs ``forward_action`` and whose
    output's gradient runs ``backward_action`` (model allocations)."""

    def __init__(self, forward_action=None, backward_action=None):
        super().__init__()
        self.forward_action = forward_action or (lambda: None)
        self.backward_action = backward_action or (lambda: None)

    def forward(self, X):
        self.forward_action()
        out = X * 1
        out.register_hook(lambda grad: self.backward_action())
        return out


def _mps(monkeypatch, allocated):
    mps = FakeMps(allocated)
    monkeypatch.setattr(torch.mps, "current_allocated_memory",
                        mps.current_allocated_memory)
    monkeypatch.setattr(torch.mps, "synchronize", mps.synchronize)
    monkeypatch.setattr(measure, "_device_of",
                        lambda X: torch.device("mps"))
    return mps


def test_mps_peak_samples_inside_the_forward_pass(monkeypatch):
    """MPS has no peak counter: 3 MiB held from a module's forward until
    its backward (activations), 10 GiB of other models: extra = 3 MiB,
    seen only by sampling inside the step (start and end read 10 GiB)."""
    mps = _mps(monkeypatch, allocated=10 * GiB)

    def hold():
        mps.allocated += 3 * 2 ** 20

    def free():
        mps.allocated -= 3 * 2 ** 20

    net = nn.Sequential(nn.Linear(10, 2), OnBackward(hold, free))
    rep = peak_memory(net, torch.randn(4, 10))
    assert rep.extra == 3 * 2 ** 20 and mps.allocated == 10 * GiB
    assert rep.method.text("en") == "mps current_allocated_memory, sampled"
    reads = mps.reads
    net(torch.randn(4, 10)).sum().backward()    # the hooks are removed
    assert mps.reads == reads


def test_mps_peak_samples_inside_the_backward_pass(monkeypatch):
    """A buffer alive only during backward (made when the later module's
    gradient is computed, freed at the earlier one's) is counted."""
    mps = _mps(monkeypatch, allocated=0)

    def grow():
        mps.allocated += 5000

    def shrink():
        mps.allocated -= 5000

    net = nn.Sequential(nn.Linear(10, 2), OnBackward(None, shrink),
                        OnBackward(None, grow))
    assert peak_memory(net, torch.randn(4, 10)).extra == 5000
    assert mps.allocated == 0


def test_memory_report_speaks_the_readers_language(monkeypatch):
    """The report and its method name in the language passed in, else
    the reader's language setting (``$D2L_DENSENET_LANG``)."""
    rep = MemoryReport("cpu", measure._CpuAllocatorPeak.method,
                       baseline=2 * 2 ** 20, extra=2 ** 20,
                       param_bytes=2 ** 20, rss_extra=3 * 2 ** 20)
    english = ("cpu: peak 3.0 MiB = baseline 2.0 MiB + step 1.0 MiB "
               "(torch.profiler CPU allocator); RSS high-water +3.0 MiB")
    chinese = ("cpu：峰值3.0 MiB = 基线2.0 MiB + 单步新增1.0 MiB"
               "（由torch.profiler记录的CPU分配器测得）；进程常驻内存"
               "（RSS）最高水位增长3.0 MiB")
    assert rep.text(lang="en") == str(rep) == english
    assert rep.text(lang="zh") == chinese
    monkeypatch.setenv("D2L_DENSENET_LANG", "zh")
    assert str(rep) == chinese and rep.text(lang="en") == english


class _CostClock:
    """A fake ``time`` module whose clock only moves when a timed
    callable runs: each call adds its own cost."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_time_ratio_alternates_and_times_each_call(monkeypatch):
    """f and g run in alternating order after the warm-up, each call is
    timed on its own, and the ratios are g's over f's, pair by pair."""
    clock = _CostClock()
    monkeypatch.setattr(measure, "time", clock)
    calls = []
    g_costs = iter([9.0, 3.0, 2.0, 5.0, 4.0, 2.5])   # first: warm-up

    def f():
        calls.append("f")
        clock.now += 2.0

    def g():
        calls.append("g")
        clock.now += next(g_costs)

    r = measure.time_ratio(f, g, pairs=5, warmup=1)
    assert calls == ["f", "g"] + ["f", "g", "g", "f"] * 2 + ["f", "g"]
    assert r.f_seconds == [2.0] * 5
    assert r.g_seconds == [3.0, 2.0, 5.0, 4.0, 2.5]
    assert r.ratios == [1.5, 1.0, 2.5, 2.0, 1.25]
    assert (r.median, r.low, r.high, r.pairs) == (1.5, 1.0, 2.5, 5)


def test_time_ratio_speaks_the_readers_language():
    r = measure.TimeRatio([2.0] * 5, [3.0, 2.0, 5.0, 4.0, 2.5])
    assert r.text(lang="en") == "1.50x (1.00-2.50 over 5 alternating pairs)"
    assert r.text(lang="zh") == "1.50倍（5对交替测量，范围1.00～2.50）"


@pytest.mark.parametrize("kwargs, message", [
    (dict(pairs=4), r"pairs must be an integer >= 5 .* got 4"),
    (dict(pairs=5.0), r"pairs must be an integer >= 5 .* got 5.0"),
    (dict(warmup=-1), r"warmup must be an integer >= 0, got -1"),
])
def test_time_ratio_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure.time_ratio(lambda: None, lambda: None, **kwargs)
