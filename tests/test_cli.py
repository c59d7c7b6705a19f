"""The command line, ``python -m d2l_densenet``."""
import os
import re
import subprocess
import sys

import pytest
import torch

from d2l_densenet import cli


@pytest.mark.slow
def test_cli_recipe_and_overrides(capsys):
    h = cli.train(["--epochs", "1", "--subset", "500", "--test-subset",
                  "100", "--batch-size", "100", "--resize", "32",
                  "--progress", "none"])
    out = capsys.readouterr().out
    assert "CPU recipe on cpu: {'epochs': 1, 'lr': 0.1, 'batch_size': 100," \
           " 'resize': 32}" in out
    assert "results differ from the book" in out
    assert re.search(r"final test accuracy 0\.\d{4} on 100 Fashion-MNIST "
                     r"test images", out)
    assert len(h["test_acc"]) == 1


@pytest.fixture
def captured(monkeypatch):
    """Run ``cli.main`` without data or training; record what the loader
    and the trainer were given."""
    seen = {}

    def loader(batch_size, resize=None, **kwargs):
        seen["loader"] = dict(batch_size=batch_size, resize=resize, **kwargs)
        X = torch.rand(2, 1, resize or 28, resize or 28)
        return [(X, torch.tensor([0, 1]))], [(X, torch.tensor([0, 1]))]

    def trainer(net, train_iter, test_iter, num_epochs, lr, device,
                **kwargs):
        seen["train"] = dict(net=net, num_epochs=num_epochs, lr=lr,
                             device=device, **kwargs)
        return {"test_acc": [0.5], "test_examples": 2}

    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    monkeypatch.setattr(cli, "train_ch6", trainer)
    return seen


def test_gpu_recipe_is_the_books(captured, capsys):
    """The chapter trains with lr 0.1, 10 epochs, batch 256 at 96x96."""
    cli.train(["--recipe", "gpu", "--device", "cpu"])
    assert captured["loader"]["batch_size"] == 256
    assert captured["loader"]["resize"] == 96
    assert (captured["train"]["num_epochs"], captured["train"]["lr"]) == (
        10, 0.1)
    assert captured["train"]["optimizer"] == "sgd"
    assert "GPU recipe on cpu" in capsys.readouterr().out


def test_auto_recipe_follows_the_device_and_options_win(captured):
    cli.train(["--lr", "0.05", "--resize", "40"])
    assert captured["train"]["device"].type == "cpu"
    assert captured["train"]["lr"] == 0.05
    assert captured["loader"]["resize"] == 40
    # the CPU recipe is smaller than the book's
    assert captured["train"]["num_epochs"] < 10


def test_head_and_transition_pools_reach_the_model(captured):
    cli.train(["--head-pool", "max", "--transition-pool", "max"])
    net = captured["train"]["net"]
    assert isinstance(net.last[2], torch.nn.AdaptiveMaxPool2d)
    assert isinstance(net.tran_blk1[-1], torch.nn.MaxPool2d)


def test_cli_rejects_small_images_before_training(captured):
    with pytest.raises(ValueError, match="28x28.*at least 29x29"):
        cli.train(["--resize", "0"])
    assert "train" not in captured and "loader" not in captured


def test_checkpoint_and_ddp_options_reach_the_trainer(captured, tmp_path):
    cli.train(["--checkpoint-dir", str(tmp_path), "--resume", "--sync-bn",
              "--arch", "2,2", "--growth-rate", "8", "--num-channels",
              "16"])
    options = captured["train"]
    assert options["checkpoint_dir"] == str(tmp_path)
    assert options["resume"] and options["sync_bn"]
    assert options["config"]["resize"] == 32  # the CPU recipe's
    assert options["net"].dense_blk1.out_channels == 16 + 2 * 8
    assert (captured["loader"]["rank"],
            captured["loader"]["world_size"]) == (0, 1)


def test_global_batch_is_split_over_torchrun_processes(captured,
                                                       monkeypatch):
    monkeypatch.setattr(cli.dist, "init_process_group",
                        lambda *a, **k: None)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    cli.train(["--batch-size", "256", "--device", "cpu"])
    assert captured["loader"]["batch_size"] == 256
    assert (captured["loader"]["rank"],
            captured["loader"]["world_size"]) == (2, 4)


def test_python_m_gives_one_line_and_no_traceback():
    """``python -m d2l_densenet`` with a bad value: exit code, one line."""
    r = subprocess.run([sys.executable, "-m", "d2l_densenet", "--resize",
                        "0", "--subset", "100", "--test-subset", "100",
                        "--epochs", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert re.fullmatch(r"error: --resize 0: images of 28x28 .*\n",
                        r.stderr)


# Each bad input, refused in one line naming the option and the value,
# before any data is loaded (the ``no_data`` fixture fails otherwise).
BAD_INPUT = [
    (["--epochs", "0"], "argument --epochs: expected a positive int, "
                        "got '0'"),
    (["--epochs", "-3"], "argument --epochs: expected a positive int"),
    (["--epochs", "two"], "argument --epochs: expected a positive int, "
                          "got 'two'"),
    (["--epochs", "1.5"], "got '1.5'"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0 (the "
                      "book uses 0.1), got 'nan'"),
    (["--lr", "inf"], "got 'inf'"),
    (["--lr", "-0.1"], "got '-0.1'"),
    (["--lr", "0"], "argument --lr: expected a finite number > 0"),
    (["--lr", "fast"], "got 'fast'"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive "
                            "int, got '0'"),
    (["--batch-size", "1e3"], "got '1e3'"),
    (["--resize", "-1"], "argument --resize: expected an image side in "
                         "pixels (0 keeps 28), got '-1'"),
    (["--resize", "0"], "--resize 0: images of 28x28 (0 keeps 28x28) are "
                        "too small, DenseNet needs at least 29x29"),
    (["--resize", "16"], "--resize 16: images of 16x16"),
    (["--subset", "0"], "argument --subset: expected a positive int"),
    (["--subset", "5"], "--subset 5: expected an int from 10 (one image "
                        "per class) to 60000 (the whole set)"),
    (["--subset", "60001"], "--subset 60001: expected an int from 10"),
    (["--test-subset", "10001"], "--test-subset 10001: expected an int "
                                 "from 10 (one image per class) to 10000"),
    (["--test-subset", "x"], "argument --test-subset: expected a positive "
                             "int, got 'x'"),
    (["--seed", "-1"], "argument --seed: expected an int from 0 to "
                       "4294967295, got '-1'"),
    (["--seed", "4294967296"], "got '4294967296'"),
    (["--seed", "1.5"], "got '1.5'"),
    (["--device", "cuda"], "--device cuda: no CUDA GPU is visible to "
                           "PyTorch (torch.cuda.is_available() is False); "
                           "use --device cpu or auto"),
    (["--device", "cuda:7"], "--device cuda:7: no CUDA GPU is visible"),
    (["--device", "tpu"], "--device 'tpu' is not one of auto, cpu, cuda, "
                          "cuda:N, mps or xpu"),
    (["--device", "mps"], "--device mps: PyTorch sees no mps device here"),
    (["--device", "gpu"], "--device 'gpu' is not one of"),
    (["--device", "cpu:0"], "--device 'cpu:0' is not one of"),
    (["--amp", "fp16"], "--amp fp16 needs a CUDA device; use --amp bf16 "
                        "on the CPU"),
    (["--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    (["--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice"),
    (["--loader", "pil"], "argument --loader: invalid choice: 'pil'"),
    (["--progress", "bar"], "argument --progress: invalid choice: 'bar'"),
    (["--recipe", "tpu"], "argument --recipe: invalid choice: 'tpu'"),
    (["--head-pool", "sum"], "argument --head-pool: invalid choice"),
    (["--arch", "4,0"], "argument --arch: expected convs per dense block "
                        "as positive ints separated by commas (the book: "
                        "4,4,4,4), got '4,0'"),
    (["--arch", ""], "argument --arch: expected convs per dense block"),
    (["--growth-rate", "0"], "argument --growth-rate: expected a positive "
                             "int, got '0'"),
    (["--num-channels", "-8"], "argument --num-channels: expected a "
                               "positive int"),
    (["--model", "resnet18", "--arch", "1,1"],
     "--arch applies to --model densenet only, not resnet18"),
    (["--data-root", "/nonexistent"], "--data-root /nonexistent: no such "
                                      "directory"),
    (["--checkpoint-dir", __file__], "is a file, not a directory"),
    (["--resume"], "--resume needs --checkpoint-dir DIR"),
    (["--epochs"], "argument --epochs: expected one argument"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.fixture
def no_data(monkeypatch):
    """No GPU, and loading data is an error: validation comes first."""
    def loader(*args, **kwargs):
        raise AssertionError("data was loaded before the input was checked")
    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("argv,message", BAD_INPUT,
                         ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(no_data, capsys, argv, message):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and out == ""


def test_missing_gpu_index_is_named(no_data, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert cli.main(["--device", "cuda:7"]) == 2
    assert capsys.readouterr().err == (
        "error: --device cuda:7: only 1 GPU(s) are visible (cuda:0 to "
        "cuda:0)\n")


def test_torchrun_needs_a_global_batch_it_can_split(no_data, monkeypatch,
                                                    capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["--batch-size", "65", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        "[rank 1] error: --batch-size 65 is the global batch and must be a "
        "multiple of the 2 processes\n")


def test_a_nan_loss_stops_with_one_line_and_exit_1(monkeypatch, capsys):
    """A loss that becomes NaN stops training at once: the epoch, the
    batch and a hint, in one line; a failure while running, not bad
    input, so exit status 1."""
    def loader(batch_size, resize=None, **kwargs):
        X = torch.full((4, 1, 32, 32), float("nan"))
        y = torch.tensor([0, 1, 2, 3])
        return [(X, y)], [(X, y)]

    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    assert cli.main(["--arch", "1", "--growth-rate", "4", "--num-channels",
                    "4", "--progress", "none", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err == ("error: the training loss became nan at epoch 1, batch 1 "
                   "of 1; training stopped before that step (no checkpoint "
                   "was saved). Lower the learning rate (lr=0.1; try "
                   "0.01)\n")


# --- exit statuses, help, resume and precision ------------------------

TINY_NET = ["--arch", "1", "--growth-rate", "4", "--num-channels", "4",
            "--progress", "none", "--device", "cpu", "--resize", "32",
            "--batch-size", "16"]


@pytest.fixture
def tiny_data(monkeypatch):
    """32 random 32x32 images in batches of 16 instead of Fashion-MNIST."""
    def loader(batch_size, resize=None, **kwargs):
        g = torch.Generator().manual_seed(0)
        X = torch.rand(32, 1, resize, resize, generator=g)
        ds = torch.utils.data.TensorDataset(X, torch.arange(32) % 10)
        return (torch.utils.data.DataLoader(ds, batch_size, shuffle=True),
                torch.utils.data.DataLoader(ds, batch_size))
    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)


def test_an_exploding_loss_stops_with_exit_1(tiny_data, capsys):
    """--lr 1e9: the loss stays finite but explodes; the run stops with
    the NaN's message instead of training on to chance accuracy."""
    assert cli.main([*TINY_NET, "--lr", "1e9", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: the training loss became \S+, above 230 "
                        r"\(100 x ln 10 classes\) at epoch \d, batch \d of "
                        r"2; .* Lower the learning rate \(lr=1e\+09; try "
                        r"1e\+08\)\n", err), err


def test_an_internal_error_is_exit_1_and_debug_shows_the_traceback(
        tiny_data, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("boom")
    monkeypatch.setattr(cli, "train_ch6", broken)
    assert cli.main(TINY_NET) == 1
    err = capsys.readouterr().err
    assert err == ("error: internal error, KeyError: 'boom' (run again "
                   "with --debug for the traceback)\n")
    assert cli.main([*TINY_NET, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "KeyError: 'boom'" in err


def test_out_of_memory_is_exit_1_with_a_hint(tiny_data, monkeypatch,
                                             capsys):
    oom = getattr(torch, "OutOfMemoryError", RuntimeError)

    def full(*args, **kwargs):
        raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(cli, "train_ch6", full)
    assert cli.main(TINY_NET) == 1
    assert capsys.readouterr().err == (
        "error: out of memory (CUDA out of memory. Tried to allocate 2.00 "
        "GiB); lower --batch-size or --resize, or try --amp bf16\n")


def test_help_describes_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parser().parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for action in cli.parser()._actions:
        assert action.help, action.option_strings
    assert "--model {densenet,resnet18}" in text
    assert "(default: densenet)" in text and "(default: sgd)" in text
    assert "(default: 0)" in text      # --seed
    assert "(default: None)" not in text
    assert "torchrun --standalone --nproc_per_node=2 -m d2l_densenet" in text
    assert "exit status: 0 done, 1 failed while running, 2 bad input" in text
    assert "animator" not in text      # a notebook widget, not a CLI option


def test_main_is_the_console_script_entry_point():
    """``d2l-densenet = "d2l_densenet.cli:main"``: main() takes no
    argument and returns the exit status (an int)."""
    assert cli.main(["--epochs", "0"]) == 2
    assert cli.main(["--help"]) == 0


def _flip_measurement(monkeypatch, choices):
    """Each CPU measurement says the next of ``choices`` ("bf16" or None);
    the CPU's bf16 support is patched (this CPU has no native bf16)."""
    from d2l_densenet import amp
    monkeypatch.delenv(amp.AMP_ENV, raising=False)
    monkeypatch.setattr(amp, "cpu_bf16_support", lambda: (True, "patched"))
    calls = []

    def measure(*args, **kwargs):
        ratio = 2.0 if choices[len(calls)] == "bf16" else 0.25
        calls.append(1)
        return amp.AmpTiming(0.01, 0.01 / ratio, (ratio,) * 7)
    monkeypatch.setattr(amp, "measure_amp", measure)
    amp.cpu_amp_choice.cache_clear()
    return calls


def _new_process():
    """What a new command does: measure again (the cache is per
    process)."""
    from d2l_densenet import amp
    amp.cpu_amp_choice.cache_clear()


def test_resume_keeps_the_checkpoints_precision(tiny_data, monkeypatch,
                                                tmp_path, capsys):
    """The first run measures bf16; a resumed run whose measurement would
    say fp32 resumes in bf16 without measuring (the review's failure:
    "amp 'bf16' (this run: None)")."""
    calls = _flip_measurement(monkeypatch, ["bf16", None])
    folder = ["--checkpoint-dir", str(tmp_path)]
    h = cli.train([*TINY_NET, *folder, "--epochs", "1"])
    assert h["epoch"] == [1] and calls == [1]
    _new_process()
    capsys.readouterr()
    h = cli.train([*TINY_NET, *folder, "--epochs", "2", "--resume"])
    out = capsys.readouterr().out
    assert h["epoch"] == [1, 2] and calls == [1]  # not measured again
    assert (f"amp=bf16: the precision {tmp_path / 'epoch-0001.pt'} was "
            f"trained in (--resume keeps it; not measured again)") in out
    from d2l_densenet.checkpoints import checkpoint_files, load_checkpoint
    assert load_checkpoint(checkpoint_files(tmp_path)[-1])[
        "settings"]["amp"] == "bf16"


def test_resume_with_another_amp_is_refused(tiny_data, monkeypatch,
                                            tmp_path, capsys):
    _flip_measurement(monkeypatch, ["bf16"])
    folder = ["--checkpoint-dir", str(tmp_path)]
    cli.train([*TINY_NET, *folder, "--epochs", "1"])
    capsys.readouterr()
    assert cli.main([*TINY_NET, *folder, "--epochs", "2", "--resume",
                     "--amp", "none"]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot resume from {tmp_path / 'epoch-0001.pt'}: it was "
        f"trained with amp bf16, this run asks --amp none; leave --amp out "
        f"to continue in bf16, or use another --checkpoint-dir\n")
    assert cli.main([*TINY_NET, *folder, "--epochs", "2", "--resume",
                     "--amp", "bf16"]) == 0


def test_a_chosen_bf16_is_what_the_model_runs_in(tiny_data, monkeypatch):
    """The CPU recipe's amp=auto, measured (patched) bf16: the first
    convolution computes in bf16 during training."""
    _flip_measurement(monkeypatch, ["bf16"])
    real_build = cli._build
    dtypes = set()

    def build(args):
        net = real_build(args)
        net.b1[0].register_forward_hook(
            lambda m, i, out: dtypes.add(out.dtype) if m.training else None)
        return net
    monkeypatch.setattr(cli, "_build", build)
    cli.train([*TINY_NET, "--epochs", "1"])
    assert dtypes == {torch.bfloat16}


# --- the installed console script, and an interrupt --------------------

def _console_script() -> str:
    """``d2l-densenet`` as pip installed it next to this Python."""
    import shutil
    from pathlib import Path
    found = shutil.which("d2l-densenet",
                         path=str(Path(sys.executable).parent))
    assert found, (f"d2l-densenet is not installed next to "
                   f"{sys.executable}: pip install -e . installs it")
    return found


def test_the_installed_console_script_helps_and_refuses_bad_input():
    """The command a pip user types: ``--help`` (exit 0, the options and
    the exit statuses) and a bad value (exit 2, one line naming the
    option and the value, no traceback)."""
    from _cli_runs import env
    script = _console_script()
    r = subprocess.run([script, "--help"], env=env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "--checkpoint-dir" in r.stdout and "--resume" in r.stdout
    assert "exit status: 0 done, 1 failed while running, 2 bad input, " \
           "130 interrupted" in r.stdout
    r = subprocess.run([script, "--epochs", "0"], env=env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == ("error: argument --epochs: expected a positive int, "
                        "got '0' (see python -m d2l_densenet --help)\n")


def test_an_interrupt_while_training_exits_130_in_one_line(tmp_path):
    """Ctrl-C (SIGINT) in the middle of training: exit status 130 and
    one line, no traceback; the checkpoint of the finished epoch is
    kept."""
    import signal

    from _cli_runs import TINY, command, env
    folder = tmp_path / "ckpt"
    # A shell that starts jobs in the background (`make test &`, nohup)
    # hands them SIGINT ignored, and Python then keeps it ignored: the
    # child gets Ctrl-C's default back, as in a terminal.
    child = subprocess.Popen(
        command(*TINY, "--epochs", "50", "--checkpoint-dir", folder),
        env=env(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=(lambda: signal.signal(
            signal.SIGINT, signal.SIG_DFL)) if os.name == "posix" else None)
    try:
        for line in child.stdout:       # "epoch 1/50" comes after its save
            if line.startswith("epoch 1/50"):
                child.send_signal(signal.SIGINT)
                break
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert err == "interrupted\n"
    assert (folder / "epoch-0001.pt").is_file()


def test_torchrun_processes_wait_a_bounded_time(captured, monkeypatch):
    """Under torchrun the process group times out after 300 s (a process
    that hangs, or fails inside a collective, does not hold the others
    for gloo's 30 min); $D2L_DENSENET_TIMEOUT changes it, a bad value is
    refused before anything starts."""
    from datetime import timedelta
    calls = []
    monkeypatch.setattr(cli.dist, "init_process_group",
                        lambda *a, **k: calls.append((a, k)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    cli.train(["--device", "cpu", "--batch-size", "64"])
    assert calls[-1] == (("gloo",), {"timeout": timedelta(seconds=300)})
    monkeypatch.setenv("D2L_DENSENET_TIMEOUT", "12.5")
    cli.train(["--device", "cpu", "--batch-size", "64"])
    assert calls[-1][1] == {"timeout": timedelta(seconds=12.5)}
    monkeypatch.setenv("D2L_DENSENET_TIMEOUT", "soon")
    with pytest.raises(cli.UsageError, match="D2L_DENSENET_TIMEOUT must be "
                       "a number of seconds > 0, got 'soon'"):
        cli.train(["--device", "cpu", "--batch-size", "64"])
    assert len(calls) == 2


def test_a_failure_in_another_process_is_exit_1_said_once(tiny_data,
                                                          monkeypatch,
                                                          capsys):
    """RankFailedError (another process failed): exit status 1 in every
    process; rank 0 says it in one line, the others stay quiet (the
    failed process says its own error)."""
    from d2l_densenet.distributed import RankFailedError
    monkeypatch.setattr(cli.dist, "init_process_group",
                        lambda *a, **k: None)
    monkeypatch.setenv("WORLD_SIZE", "2")

    def failed(*args, **kwargs):
        raise RankFailedError("process 1 of 2 failed (OSError): disk gone",
                              rank=1)
    monkeypatch.setattr(cli, "train_ch6", failed)
    for rank, said in (("0", "[rank 0] error: process 1 of 2 failed "
                             "(OSError): disk gone\n"), ("1", "")):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(TINY_NET) == 1
        assert capsys.readouterr().err == said


def test_contact_lost_with_no_process_named_is_said_by_every_rank(
        tiny_data, monkeypatch, capsys):
    """Where no process recorded a failure (e.g. rank 0 was killed),
    every surviving rank says what it saw."""
    from d2l_densenet.distributed import RankFailedError
    monkeypatch.setattr(cli.dist, "init_process_group",
                        lambda *a, **k: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")

    def lost(*args, **kwargs):
        raise RankFailedError("lost contact with the other processes (...)")
    monkeypatch.setattr(cli, "train_ch6", lost)
    assert cli.main(TINY_NET) == 1
    assert capsys.readouterr().err == (
        "[rank 1] error: lost contact with the other processes (...)\n")
