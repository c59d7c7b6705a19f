"""Checkpoints: atomic saves, resume, and what is refused."""
import re
import signal
import subprocess
import time

import pytest
import torch
from _cli_runs import TIMEOUT, TINY, command, env, final_state, reference
from test_train import _small_net, _tiny_iters

from d2l_densenet import checkpoints
from d2l_densenet.checkpoints import (
    CheckpointError,
    checkpoint_files,
    load_checkpoint,
)
from d2l_densenet.train import train_ch6


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model gains nothing from more threads, and on a shared
    2-core machine two threads can be many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(folder, epochs=2, resume=False, net=None, batch=16, **kwargs):
    torch.manual_seed(0)
    train_iter, test_iter = _tiny_iters()
    if batch != 16:
        train_iter = torch.utils.data.DataLoader(train_iter.dataset, batch,
                                                 shuffle=True)
    options = dict(seed=0, progress="none", optimizer="adam",
                   checkpoint_dir=folder, resume=resume)
    options.update(kwargs)
    net = net if net is not None else _small_net()
    history = train_ch6(net, train_iter, test_iter, epochs, 0.01, "cpu",
                        **options)
    return net, history


def _step_lr(opt):
    return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)


def test_resume_continues_exactly(tmp_path):
    """Two epochs in one go equal one epoch, then a resumed second one:
    weights, Adam's moments, the scheduler, the shuffled data order (RNG)
    and the history all come back."""
    whole, h_whole = _train(tmp_path / "a", scheduler=_step_lr)
    _train(tmp_path / "b", epochs=1, scheduler=_step_lr)
    parts, h_parts = _train(tmp_path / "b", resume=True,
                            scheduler=_step_lr)
    for (name, a), b in zip(whole.state_dict().items(),
                            parts.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for key in ("epoch", "train_loss", "train_acc", "test_acc"):
        assert h_whole[key] == h_parts[key]
    state = load_checkpoint(checkpoint_files(tmp_path / "b")[-1])
    assert state["epoch"] == 2
    assert state["scheduler"]["last_epoch"] == 2
    assert state["optimizer"]["state"]  # Adam's moments were saved
    assert set(state["rng"]) >= {"torch", "python", "numpy"}


def test_only_the_last_two_checkpoints_are_kept(tmp_path):
    _train(tmp_path, epochs=3)
    assert [p.name for p in checkpoint_files(tmp_path)] == [
        "epoch-0002.pt", "epoch-0003.pt"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_checkpoint_is_refused_and_the_older_kept(tmp_path,
                                                            damage):
    _train(tmp_path, epochs=2)
    older, latest = checkpoint_files(tmp_path)
    blob = latest.read_bytes()
    latest.write_bytes(blob[:len(blob) // 2] if damage == "truncate"
                       else b"not a checkpoint" * 100)
    with pytest.raises(CheckpointError) as e:
        _train(tmp_path, epochs=3, resume=True)
    message = str(e.value)
    assert f"{latest} is truncated or corrupt" in message
    assert f"previous checkpoint {older} is kept" in message
    assert older.exists() and load_checkpoint(older)["epoch"] == 1
    latest.unlink()  # as the message says: resume from the older one
    _, history = _train(tmp_path, epochs=2, resume=True)
    assert history["epoch"] == [1, 2]


def test_a_crash_while_writing_keeps_the_last_checkpoint(tmp_path,
                                                        monkeypatch):
    _train(tmp_path, epochs=1)
    before = checkpoint_files(tmp_path)
    real_save = torch.save

    def crash(obj, f):
        real_save(obj, f)
        f.truncate(100)  # half-written file, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _train(tmp_path, epochs=2, resume=True)
    assert checkpoint_files(tmp_path) == before
    assert not list(tmp_path.glob(".*.tmp"))
    assert load_checkpoint(before[-1])["epoch"] == 1


@pytest.mark.parametrize("change,named", [
    (dict(batch=32), "batch_size 16 (this run: 32)"),
    (dict(net=torch.nn.Sequential(torch.nn.Flatten(),
                                  torch.nn.Linear(1024, 10))),
     "model 'DenseNet, "),
    (dict(optimizer="sgd"), "optimizer 'adam' (this run: 'sgd')"),
    (dict(config={"resize": 64}), "resize None (this run: 64)"),
])
def test_resume_with_other_settings_is_refused(tmp_path, change, named):
    _train(tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="other settings") as e:
        _train(tmp_path, epochs=2, resume=True, **change)
    assert named in str(e.value)
    assert len(checkpoint_files(tmp_path)) == 1


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    _train(tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="resume=True"):
        _train(tmp_path, epochs=1)


def test_resume_without_a_checkpoint_starts_from_the_first_epoch(tmp_path):
    _, history = _train(tmp_path / "new", epochs=1, resume=True)
    assert history["epoch"] == [1]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL during epoch 2 of 3, then ``--resume``: the same final
    weights and history as an uninterrupted run, and only the epoch in
    progress is lost."""
    t0 = time.perf_counter()
    expected = final_state(reference())
    t1 = time.perf_counter()
    folder = tmp_path / "ckpt"
    args = [*TINY, "--checkpoint-dir", folder]
    child = subprocess.Popen(command(*args), env=env(), text=True,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    try:
        printed = []
        for line in child.stdout:  # "epoch 1/3" comes after its save
            printed.append(line)
            if line.startswith("epoch 1/3"):
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    t2 = time.perf_counter()
    assert child.returncode == -signal.SIGKILL, "".join(printed)
    saved = [p.name for p in checkpoint_files(folder)]
    assert saved in (["epoch-0001.pt"], ["epoch-0001.pt", "epoch-0002.pt"])
    r = subprocess.run(command(*args, "--resume"), env=env(),
                       capture_output=True, text=True, timeout=TIMEOUT)
    t3 = time.perf_counter()
    assert r.returncode == 0, r.stderr
    done = len(saved)
    assert f"resuming from {folder / saved[-1]}: epoch {done} of 3 done" \
        in r.stdout
    assert re.findall(r"^epoch (\d)/3", r.stdout, re.M) == [
        str(e) for e in range(done + 1, 4)]
    got = final_state(folder)
    for name, value in expected["model"].items():
        assert torch.equal(value, got["model"][name]), name
    assert got["history"]["train_loss"] == expected["history"]["train_loss"]
    assert got["history"]["test_acc"] == expected["history"]["test_acc"]
    print(f"reference run {t1 - t0:.1f} s, run killed after "
          f"{t2 - t1:.1f} s in epoch {done + 1}, resumed run "
          f"{t3 - t2:.1f} s")


class _LrLoader:
    """The tiny training batches; records the learning rate each epoch
    trains at (the optimizer is caught when the scheduler is built)."""

    def __init__(self, seen: list) -> None:
        self.batches, _ = _tiny_iters()
        self.batch_size, self.seen, self.opt = 16, seen, None

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.seen.append(self.opt.param_groups[0]["lr"])
        return iter(self.batches)


def _cosine_run(folder, epochs, resume=False, horizon=None,
                per_batch=False):
    """Train ``epochs`` with the CPU recipe's cosine over ``horizon``
    epochs (default: ``epochs``, as the CLI builds it), stepped per
    epoch or (``per_batch``) per batch; return the learning rate each
    epoch starts at."""
    from d2l_densenet.settings import lr_scheduler
    seen: list[float] = []
    loader = _LrLoader(seen)
    build = lr_scheduler("cosine", horizon or epochs, num_batches=len(
        loader) if per_batch else None)

    def scheduler(opt):
        loader.opt = opt
        return build(opt)
    scheduler.interval = getattr(build, "interval", "epoch")
    _, test_iter = _tiny_iters()
    train_ch6(_small_net(), loader, test_iter, epochs, 0.1, "cpu", seed=0,
              progress="none", scheduler=scheduler, checkpoint_dir=folder,
              resume=resume)
    return seen


def test_resume_with_more_epochs_follows_the_longer_cosine(tmp_path,
                                                           capsys):
    """A 3-epoch cosine run (lr 0.1, 0.075, 0.025) resumed with 6 epochs
    trains epochs 4-6 at the 6-epoch cosine's rates (0.05, 0.025,
    0.0067), those of an uninterrupted 6-epoch run, not at the 3-epoch
    cosine's continuation (0, 0.025, 0.075), and says so; the checkpoint
    records the horizon."""
    whole = _cosine_run(tmp_path / "whole", 6)
    assert whole == pytest.approx([0.1, 0.0933013, 0.075, 0.05, 0.025,
                                   0.0066987], abs=1e-6)
    first = _cosine_run(tmp_path / "run", 3)
    assert first == pytest.approx([0.1, 0.075, 0.025])
    state = load_checkpoint(checkpoint_files(tmp_path / "run")[-1])
    assert state["settings"]["scheduler"] == "CosineAnnealingLR"
    assert state["settings"]["schedule"]["T_max"] == 3
    capsys.readouterr()
    rest = _cosine_run(tmp_path / "run", 6, resume=True)
    assert rest == pytest.approx(whole[3:], abs=1e-12)
    out = capsys.readouterr().out
    assert ("the learning-rate schedule is this run's (CosineAnnealingLR, "
            "T_max 3 -> 6): epochs 4-6 take the rates of a 6-epoch run "
            "(lr 0.05 in epoch 4)") in out
    state = load_checkpoint(checkpoint_files(tmp_path / "run")[-1])
    assert state["settings"]["schedule"]["T_max"] == 6
    assert state["scheduler"]["T_max"] == 6


def test_resume_with_more_epochs_replays_a_per_batch_cosine(tmp_path):
    """The CLI's cosine steps after every batch: resumed with more epochs,
    it is replayed batch by batch, so epochs 4-6 start at the rates of
    an uninterrupted 6-epoch run (replaying one step per epoch would
    start epoch 4 near lr 0.1)."""
    whole = _cosine_run(tmp_path / "whole", 6, per_batch=True)
    assert whole[0] == 0.1 and whole == sorted(whole, reverse=True)
    _cosine_run(tmp_path / "run", 3, per_batch=True)
    rest = _cosine_run(tmp_path / "run", 6, resume=True, per_batch=True)
    assert rest == pytest.approx(whole[3:], abs=1e-12)


def test_resume_with_the_same_horizon_keeps_the_schedule(tmp_path, capsys):
    """Stopped after epoch 2 of a 4-epoch cosine and resumed with 4: the
    rates of an uninterrupted 4-epoch run, bit for bit, and nothing
    said about the schedule."""
    whole = _cosine_run(tmp_path / "whole", 4)
    first = _cosine_run(tmp_path / "run", 2, horizon=4)
    capsys.readouterr()
    rest = _cosine_run(tmp_path / "run", 4, resume=True)
    assert first + rest == whole
    assert "schedule" not in capsys.readouterr().out
