"""The command line, ``python -m d2l_densenet``."""
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
    (["--device", "tpu"], "--device 'tpu' is not one of auto, cpu, cuda "
                          "or cuda:N"),
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


def test_a_nan_loss_stops_with_one_line(monkeypatch, capsys):
    """A loss that becomes NaN stops training at once: the epoch, the
    batch and a hint, in one line."""
    def loader(batch_size, resize=None, **kwargs):
        X = torch.full((4, 1, 32, 32), float("nan"))
        y = torch.tensor([0, 1, 2, 3])
        return [(X, y)], [(X, y)]

    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    assert cli.main(["--arch", "1", "--growth-rate", "4", "--num-channels",
                    "4", "--progress", "none", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: the training loss became nan at epoch 1, batch 1 "
                   "of 1; training stopped before that step (no checkpoint "
                   "was saved). Lower the learning rate (lr=0.1; try "
                   "0.01)\n")
