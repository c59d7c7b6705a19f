"""Measurement helpers on cases whose answers are known by hand."""
import copy

import pytest
import torch
from torch import nn

from d2l_densenet import (
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


def test_densenet_needs_more_activation_memory_than_resnet():
    """Exercise 3's claim, on CPU at 96x96: fewer parameters, more
    activations."""
    X = torch.rand(8, 1, 96, 96)
    y = torch.randint(0, 10, (8,))
    d = peak_memory(densenet(), X, y)
    r = peak_memory(resnet18(), X, y)
    assert d.param_bytes < r.param_bytes / 10
    assert d.extra - 2 * d.param_bytes > r.extra - 2 * r.param_bytes


def test_step_time_is_positive_median():
    net = nn.Linear(10, 2)
    t = step_time(net, torch.randn(4, 10), warmup=1, repeats=3)
    assert 0 < t < 1
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
                              ref.state_dict().items()):
        assert torch.equal(a, b), k     # incl. running stats, batch count
    for a, b in zip(net.parameters(), ref.parameters()):
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
    for a, b in zip(net.parameters(), ref.parameters()):
        b.grad = a.grad.clone()        # deepcopy leaves gradients behind
    params = list(net.parameters())
    peak_memory(net, X, y, optimizer=opt)
    step_time(net, X, y, optimizer=opt, warmup=1, repeats=2)
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"],
                                      params))
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


def test_cuda_counter_syncs_its_device_and_counts_from_step_start(
        monkeypatch):
    """The same procedure with the CUDA counter, on fake ``torch.cuda``
    functions: each reading synchronizes the measured device, the peak
    is relative to what was allocated at the step's start (which here
    includes other models), the baseline only what the measurement
    owns."""
    gpu = torch.device("cuda", 1)
    calls, allocated = [], [10 * 2 ** 30]      # other models: 10 GiB

    def fake(name, result=lambda: None):
        def fn(device=None):
            calls.append((name, device))
            return result()
        monkeypatch.setattr(torch.cuda, name, fn)

    def grow():
        allocated[0] += 1000                   # moves between steps
        return allocated[0]

    fake("synchronize")
    fake("reset_peak_memory_stats")
    fake("memory_allocated", grow)
    fake("max_memory_allocated", lambda: allocated[0] + 123)
    monkeypatch.setattr(measure, "_device_of", lambda X: gpu)
    net = nn.Linear(10, 2)
    X = torch.randn(4, 10)
    rep = peak_memory(net, X)
    assert (rep.device, rep.method) == ("cuda:1", "cuda max_memory_allocated")
    assert rep.extra == 123 and rep.rss_extra is None
    assert rep.baseline == tensor_bytes([*net.parameters(), X])
    assert calls == [("synchronize", gpu), ("reset_peak_memory_stats", gpu),
                     ("memory_allocated", gpu), ("synchronize", gpu),
                     ("max_memory_allocated", gpu)]
    calls.clear()
    step_time(net, X, warmup=1, repeats=3)
    assert calls == [("synchronize", gpu)] * 6
