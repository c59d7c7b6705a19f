"""Measurement helpers on cases whose answers are known by hand."""
import pytest
import torch
from torch import nn

from d2l_densenet import (
    count_parameters,
    densenet,
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
