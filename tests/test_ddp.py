"""Several processes: sharded loaders, SyncBatchNorm on the CPU, one
rank's failure stopping every rank, and
``torchrun -m d2l_densenet`` against one process."""
import re

import pytest
import torch
from _cli_runs import TINY, final_state, reference, run
from torch import nn

from d2l_densenet import load_data_fashion_mnist
from d2l_densenet.data import TensorLoader
from d2l_densenet.distributed import CpuSyncBatchNorm, convert_sync_batchnorm

#: 256 real images, 2 epochs of 4 steps: two processes x 32 images per
#: step against one process x 64.
SHORT = ("--subset", "256", "--epochs", "2")
#: Largest absolute difference allowed between the weights and buffers of
#: the two runs. Measured: 7e-6 with --sync-bn (float32 sums in another
#: order), 0.14 without it (each process normalises its own 32 images).
#: Rounding differences grow with every SGD step at lr 0.1 (2e-3 after
#: 16 steps), hence so few steps; in float64 16 steps agree to 1e-14.
TOLERANCE = 1e-4


def _loader(n, batch, shuffle, rank=0, world_size=1):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(
        n, 2, 2).contiguous()
    return TensorLoader(images, torch.arange(n), batch, shuffle=shuffle,
                        device="cpu", rank=rank, world_size=world_size)


def _epoch(loader, seed):
    torch.manual_seed(seed)
    return [y.tolist() for _, y in loader]


@pytest.mark.parametrize("n", [64, 67])
def test_train_shards_together_are_the_one_process_batches(n):
    """Batch k of rank 0 and rank 1 together is batch k of one process
    with twice the batch, from the same per-epoch permutation; every rank
    runs the same number of steps."""
    one = _epoch(_loader(n, 8, True), seed=5)
    ranks = [_epoch(_loader(n, 4, True, r, 2), seed=5) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(_loader(n, 4, True, 1, 2))
    together = [sorted(a + b) for a, b in zip(*ranks, strict=True)]
    cut = n - n % 2  # at most world_size - 1 examples wait an epoch
    flat = [i for batch in one for i in batch][:cut]
    assert together == [sorted(flat[k:k + 8]) for k in range(0, cut, 8)]
    assert not set(sum(ranks[0], [])) & set(sum(ranks[1], []))
    assert _epoch(_loader(n, 4, True, 0, 2), seed=6) != ranks[0]


def test_test_shards_cover_every_example_once():
    shards = [sum(_epoch(_loader(101, 16, False, r, 2), 0), [])
              for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(101))
    assert [len(_loader(101, 16, False, r, 2)) for r in (0, 1)] == [4, 4]


def test_torchvision_loader_uses_a_distributed_sampler():
    kw = dict(resize=None, subset=40, test_subset=21, num_workers=0,
              world_size=2)
    tr0, te0 = load_data_fashion_mnist(8, rank=0, **kw)
    tr1, te1 = load_data_fashion_mnist(8, rank=1, **kw)
    assert tr0.batch_size == 4 and tr0.sampler.num_replicas == 2
    tr0.sampler.set_epoch(0)
    first = list(tr0.sampler)
    tr0.sampler.set_epoch(1)
    assert list(tr0.sampler) != first
    assert len(te0.dataset) + len(te1.dataset) == 21
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        load_data_fashion_mnist(7, rank=0, **kw)


def test_cpu_sync_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    X = torch.randn(8, 1, 6, 6)
    expected = net(X)
    keys = list(net.state_dict())
    converted = convert_sync_batchnorm(net, "cpu")
    assert type(converted[1]) is CpuSyncBatchNorm
    assert list(converted.state_dict()) == keys
    assert torch.allclose(converted(X), expected)
    assert type(convert_sync_batchnorm(
        nn.Sequential(nn.BatchNorm2d(3)), "cuda")[0]) is nn.SyncBatchNorm


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes, SyncBatchNorm and the global batch of
    64 ends with the weights of 1 process with batch 64 (the same data
    order: each rank takes its shard of the same permutation); only rank
    0 prints, and the 101 test images are counted once across ranks."""
    r = run(*TINY, *SHORT, "--sync-bn", "--checkpoint-dir", tmp_path,
            nproc=2)
    assert r.returncode == 0, r.stderr
    assert "training on 2 processes (cpu, gloo)" in r.stdout
    assert r.stdout.count("epoch 2/2:") == 1
    assert r.stdout.count("final test accuracy") == 1
    assert r.stdout.count("training options on") == 1
    assert "on 101 Fashion-MNIST test images" in r.stdout
    one, two = final_state(reference(*SHORT)), final_state(tmp_path)
    assert two["info"]["world_size"] == 2
    diff = {k: (one["model"][k].double() - v.double()).abs().max().item()
            for k, v in two["model"].items()}
    worst = max(diff, key=diff.get)
    print(f"largest difference {diff[worst]:.2e} ({worst}); tolerance "
          f"{TOLERANCE:.0e}")
    assert diff[worst] <= TOLERANCE
    assert one["history"]["test_acc"] == two["history"]["test_acc"]
    assert one["history"]["train_loss"] == pytest.approx(
        two["history"]["train_loss"], abs=1e-5)


#: One process of two. First the precision: each rank's (patched) bf16
#: measurement says something else, rank 0's answer must win in both.
#: Then rank 1 finds an unreadable checkpoint in its folder, rank 0 none
#: in its own; each prints how long train_ch6 took to stop. The process
#: group's timeout is 60 s: a rank left waiting in a collective would
#: fail only after it.
_ONE_RANK_FAILS = """
import datetime, os, sys, time
import torch, torch.distributed as dist
from d2l_densenet import amp, densenet, train_ch6
rank = int(os.environ["RANK"])
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
amp.cpu_bf16_support = lambda: (True, "patched")
ratio = 2.0 if rank == 0 else 0.5
amp.measure_amp = lambda: amp.AmpTiming(0.01, 0.01 / ratio, (ratio,) * 7)
print(f"rank {rank} amp {amp.resolve_amp('auto', 'cpu')[0]}", flush=True)
folder = os.path.join(sys.argv[1], f"rank{rank}")
os.makedirs(folder)
if rank == 1:
    with open(os.path.join(folder, "epoch-0001.pt"), "wb") as f:
        f.write(b"not a checkpoint")
X, y = torch.rand(16, 1, 32, 32), torch.arange(16) % 10
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(X, y), 8)
net = densenet(arch=(1, 1), growth_rate=4, num_channels=4)
start = time.perf_counter()
try:
    train_ch6(net, loader, loader, 1, 0.1, "cpu", progress="none",
              checkpoint_dir=folder, resume=True)
except Exception as e:
    print(f"rank {rank} stopped after {time.perf_counter() - start:.2f} s"
          f" with {type(e).__name__}: {e}", flush=True)
    sys.exit(1)
print(f"rank {rank} finished")
"""


def test_one_rank_failing_stops_every_rank_within_seconds(tmp_path):
    """A checkpoint only rank 1 cannot read: both ranks stop with the
    error (rank 0 naming rank 1 and its reason) within seconds, none
    waits for the 60 s collective timeout. Before that, the precision
    measured by rank 0 is the one both ranks use."""
    import socket
    import subprocess
    import sys
    import time

    from _cli_runs import env

    with socket.socket() as s:  # a free port (bind, no connection)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "one_rank_fails.py"
    script.write_text(_ONE_RANK_FAILS)
    start = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "ckpt")],
        env=dict(env(), RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.perf_counter() - start
    print(f"both processes exited after {wall:.1f} s (with imports)")
    stopped = []
    for r, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        print(out.strip())
        assert p.returncode == 1, err
        m = re.search(rf"^rank {r} stopped after ([\d.]+) s with (\w+): ",
                      out, re.M)
        assert m, out + err
        stopped.append((float(m.group(1)), m.group(2)))
    for r, (out, _) in enumerate(outs):
        assert f"rank {r} amp bf16" in out  # rank 1 measured fp32
    assert stopped[1][1] == "CheckpointError"
    assert stopped[0][1] == "RankFailedError"
    assert "process 1 of 2 failed (CheckpointError)" in outs[0][0]
    assert "is truncated or corrupt" in outs[0][0]
    assert max(t for t, _ in stopped) < 20


#: Rank 0 also trains one process's copy (plain BatchNorm, the whole
#: batch) and prints how far apart the two end, relative to the weights.
_FLOAT64 = """
import os, torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from d2l_densenet import densenet
from d2l_densenet.distributed import convert_sync_batchnorm
rank = int(os.environ["RANK"])
dist.init_process_group("gloo")
def build():
    torch.manual_seed(0)
    return densenet(arch=(1, 1), growth_rate=8, num_channels=8).double()
def train(model, X, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(X), y).backward()
        opt.step()
torch.manual_seed(1)
X, y = torch.rand(16, 1, 32, 32, dtype=torch.float64), torch.arange(16) % 10
two = convert_sync_batchnorm(build(), "cpu")
train(DistributedDataParallel(two), X[rank::2], y[rank::2])
if rank == 0:
    one = build()
    train(one, X, y)
    a, b = (torch.cat([v.flatten() for v in m.state_dict().values()
                       if v.is_floating_point()]) for m in (one, two))
    print(f"relative difference {((a - b).norm() / a.norm()).item():.1e}")
"""


def test_two_processes_match_one_in_float64(tmp_path):
    """In float64, two processes (DDP, the package's CpuSyncBatchNorm,
    half the batch each) end two SGD steps with the weights and running
    statistics of one process on the whole batch, to float64's rounding:
    what remains in float32 (notebook 07's step check) is rounding."""
    import socket
    import subprocess
    import sys

    from _cli_runs import env

    with socket.socket() as s:  # a free port (bind, no connection)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "float64.py"
    script.write_text(_FLOAT64)
    procs = [subprocess.Popen(
        [sys.executable, str(script)],
        env=dict(env(), RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    m = re.search(r"relative difference (\S+)", outs[0][0])
    assert m, outs[0]
    print(m.group(0))
    assert float(m.group(1)) < 1e-12
