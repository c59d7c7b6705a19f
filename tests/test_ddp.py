"""Several processes: sharded loaders, SyncBatchNorm on the CPU, one
rank's failure stopping every rank, and
``torchrun -m d2l_densenet`` against one process."""
import json
import re
import socket
import subprocess
import sys
import time

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


def _two_processes(script: str, tmp_path, *args, timeout=240):
    """Run ``script`` as ranks 0 and 1 of a gloo group (env://, a free
    port); return ``[(returncode, stdout, stderr)]`` per rank and the
    wall time."""
    from _cli_runs import env
    with socket.socket() as s:  # a free port (bind, no connection)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "script.py"
    path.write_text(script)
    start = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, str(path), *map(str, args)],
        env=dict(env(), RANK=str(r), WORLD_SIZE="2",
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.perf_counter() - start
    return [(p.returncode, *o) for p, o in zip(procs, outs, strict=True)], \
        wall


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
    ranks, wall = _two_processes(_ONE_RANK_FAILS, tmp_path,
                                 tmp_path / "ckpt")
    print(f"both processes exited after {wall:.1f} s (with imports)")
    stopped = []
    outs = [(out, err) for _, out, err in ranks]
    for r, (code, out, err) in enumerate(ranks):
        print(out.strip())
        assert code == 1, err
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


# --- one process of two fails mid-epoch --------------------------------

#: Ranks 0 and 1 train a tiny DenseNet for 3 epochs of 4 steps, once per
#: scenario in argv[3:], a fresh model each time, in one process group
#: (a failure agreed on leaves it usable). In rank 1 the scenario plants
#: a failure at epoch 2, batch 2 (0-based: 1, 1). Each rank prints one
#: JSON line per scenario: what it raised, the wall time it stopped and,
#: in rank 1, the wall time of the planted failure. ``buffers``: no
#: failure, each rank prints a digest of its buffers after training.
#: The group's timeout is argv[2] seconds: a rank left waiting would
#: stop only then. ``backward`` fails inside DDP's gradient all-reduce
#: (not agreed on) and then, per argv[4], exits or stays alive.
_SCENARIOS = r"""
import datetime, gc, hashlib, json, os, sys, time
from pathlib import Path
import torch, torch.distributed as dist
from d2l_densenet import densenet, train_ch6

rank = int(os.environ["RANK"])
# imports done in both processes: then the group's short timeout counts
ready = Path(sys.argv[1])
(ready / f"ready{rank}").touch()
while not (ready / f"ready{1 - rank}").exists():
    time.sleep(0.05)
dist.init_process_group(
    "gloo", timeout=datetime.timedelta(seconds=float(sys.argv[2])))
g = torch.Generator().manual_seed(rank)       # each rank its own data
X, y = torch.rand(32, 1, 32, 32, generator=g), torch.arange(32) % 10
EPOCH, BATCH = 1, 1
fault = {}


class Loader:
    batch_size = 8

    def __init__(self, plant=None):
        self.plant, self.epoch = plant, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __iter__(self):
        for i in range(4):
            Xb = X[8 * i:8 * i + 8].clone()
            if self.plant and rank == 1:
                Xb = self.plant(self.epoch, i, Xb)
            yield Xb, y[8 * i:8 * i + 8]


def at_fault(epoch, i):
    if rank == 1 and (epoch, i) == (EPOCH, BATCH):
        fault["time"] = time.time()
        return True
    return False


def nan_batch(epoch, i, Xb):
    if at_fault(epoch, i):
        Xb[0, 0, 0, 0] = float("nan")
    return Xb


def broken_loader(epoch, i, Xb):
    if at_fault(epoch, i):
        raise OSError("planted: the batch could not be read")
    return Xb


class Eval(Loader):
    def __iter__(self):
        if rank == 1 and self.epoch_seen() == EPOCH:
            fault["time"] = time.time()
            raise OSError("planted: the test batch could not be read")
        return super().__iter__()

    def epoch_seen(self):
        self.calls = getattr(self, "calls", -1) + 1
        return self.calls


def fail_in_forward(error):
    calls = []

    def hook(module, inputs):
        if module.training:
            calls.append(1)
            if at_fault(*divmod(len(calls) - 1, 4)):
                raise error
    return hook


def fail_in_backward(module, inputs, output):
    if module.training:
        module.calls = getattr(module, "calls", -1) + 1
        if at_fault(*divmod(module.calls, 4)):
            def hook(grad):
                raise RuntimeError("planted: failure in the backward pass")
            output.register_hook(hook)


def run(scenario):
    fault.clear()
    net = densenet(arch=(1, 1), growth_rate=4, num_channels=4)
    train, test = Loader(), Loader()
    if scenario == "forward":
        net.b1.register_forward_pre_hook(fail_in_forward(
            RuntimeError("planted: failure in the forward pass")))
    elif scenario == "oom":
        net.b1.register_forward_pre_hook(fail_in_forward(
            torch.OutOfMemoryError("planted: CPU out of memory")))
    elif scenario == "nan":
        train = Loader(nan_batch)
    elif scenario == "loader":
        train = Loader(broken_loader)
    elif scenario == "eval":
        test = Eval()
    elif scenario == "backward":
        net.last.register_forward_hook(fail_in_backward)
    record = dict(scenario=scenario, rank=rank)
    try:
        train_ch6(net, train, test, 3, 0.1, "cpu", progress="none", seed=0)
    except Exception as e:
        record.update(error=type(e).__name__, message=str(e),
                      failed_rank=getattr(e, "rank", None))
    record.update(stopped=time.time(), fault=fault.get("time"))
    if scenario == "buffers":
        blob = b"".join(b.detach().numpy().tobytes() for b in net.buffers())
        record["buffers"] = hashlib.sha1(blob).hexdigest()
    print(json.dumps(record), flush=True)


for scenario in sys.argv[3].split(","):
    run(scenario)
    gc.collect()
if rank == 1 and sys.argv[4:] == ["stay"]:
    time.sleep(float(sys.argv[2]) + 10)   # a notebook kernel stays alive
"""

AGREED = ("forward", "oom", "nan", "loader", "eval", "buffers")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both ranks' records of every scenario in AGREED and then of
    ``backward`` (which leaves the group unusable: last; then rank 1
    exits), from one pair of processes whose group times out after
    60 s."""
    tmp = tmp_path_factory.mktemp("two_ranks")
    ranks, wall = _two_processes(_SCENARIOS, tmp, tmp, 60,
                                 ",".join([*AGREED, "backward"]))
    print(f"{len(AGREED) + 1} scenarios in {wall:.1f} s (with imports)")
    records = {}
    for r, (code, out, err) in enumerate(ranks):
        assert code == 0, err[-3000:]
        for line in out.splitlines():
            if not line.startswith("{"):
                continue    # what rank 0 prints while training
            rec = json.loads(line)
            records[rec["scenario"], r] = rec
    return records


@pytest.mark.parametrize("scenario,kind,what", [
    ("forward", "RuntimeError", "planted: failure in the forward pass"),
    ("oom", "OutOfMemoryError", "planted: CPU out of memory"),
    ("loader", "OSError", "planted: the batch could not be read"),
    ("eval", "OSError", "planted: the test batch could not be read"),
])
def test_a_failure_in_one_rank_stops_both_within_seconds(two_ranks,
                                                         scenario, kind,
                                                         what):
    """Rank 1 fails mid-epoch (forward pass, out of memory, loading a
    batch, evaluating): it raises its own error, rank 0 a RankFailedError
    naming rank 1 and the error, within seconds of the failure (the
    group would time out after 60 s)."""
    zero, one = two_ranks[scenario, 0], two_ranks[scenario, 1]
    assert (one["error"], one["message"]) == (kind, what)
    assert zero["error"] == "RankFailedError"
    assert zero["failed_rank"] == 1
    assert zero["message"] == f"process 1 of 2 failed ({kind}): {what}"
    assert zero["stopped"] - one["fault"] < 10


def test_a_nan_in_one_rank_stops_both_at_the_same_step(two_ranks):
    """Only rank 1's batch holds a NaN: both ranks stop with the NaN's
    error, naming rank 1, epoch and batch, before that step."""
    zero, one = two_ranks["nan", 0], two_ranks["nan", 1]
    for rec in (zero, one):
        assert rec["error"] == "NonFiniteLossError", rec
        assert rec["message"].startswith(
            "the training loss became nan in process 1 of 2 at epoch 2, "
            "batch 2 of 4; training stopped before that step")
    assert zero["stopped"] - one["fault"] < 10


def test_broadcast_buffers_gives_every_rank_rank0s_statistics(two_ranks):
    """Without SyncBatchNorm each rank's running statistics follow its own
    batches (DDP does not sync them before every forward pass); before
    each evaluation every rank takes rank 0's: after training both ranks
    hold the same buffers."""
    zero, one = two_ranks["buffers", 0], two_ranks["buffers", 1]
    assert "error" not in zero and "error" not in one
    assert zero["buffers"] == one["buffers"]


def _named_after_backward(zero, one, bound):
    assert one["error"] == "RuntimeError", one
    assert zero["error"] == "RankFailedError", zero
    assert zero["failed_rank"] == 1
    assert zero["message"] == ("process 1 of 2 failed (RuntimeError): "
                               "planted: failure in the backward pass")
    waited = zero["stopped"] - one["fault"]
    print(f"rank 0 stopped {waited:.1f} s after the failure")
    assert waited < bound
    return waited


def test_a_failure_in_the_backward_pass_is_named(two_ranks):
    """Rank 1 fails inside the backward pass, where rank 0 already waits in
    DDP's gradient all-reduce: not agreed on. Rank 1 records its error
    in the group's store and exits; rank 0's all-reduce fails when rank
    1's process has gone (gloo: "Connection closed by peer"), long
    before the group's 60 s timeout (the wait is the exit of a process
    holding torch: 6 s on a loaded machine), and rank 0 raises a
    RankFailedError naming rank 1 and its error."""
    _named_after_backward(two_ranks["backward", 0],
                          two_ranks["backward", 1], 30)


@pytest.mark.slow
def test_a_failure_in_the_backward_pass_of_a_live_rank_is_named(tmp_path):
    """As above, but rank 1 stays alive (a notebook kernel): rank 0 waits
    for the group's timeout (8 s here), then names rank 1."""
    ranks, _ = _two_processes(_SCENARIOS, tmp_path, tmp_path, 8,
                              "backward", "stay")
    assert [code for code, _, _ in ranks] == [0, 0]
    zero, one = (json.loads(out.splitlines()[-1]) for _, out, _ in ranks)
    assert _named_after_backward(zero, one, 30) > 7


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
