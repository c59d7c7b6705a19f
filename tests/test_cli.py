"""The command line, ``python -m d2l_densenet``."""
import re
import subprocess
import sys

import pytest
import torch

from d2l_densenet import cli


@pytest.mark.slow
def test_cli_recipe_and_overrides(capsys):
    h = cli.main(["--epochs", "1", "--subset", "500", "--test-subset",
                  "100", "--batch-size", "100", "--resize", "32",
                  "--progress", "none"])
    out = capsys.readouterr().out
    assert "CPU recipe on cpu: {'epochs': 1, 'lr': 0.1, 'batch_size': 100," \
           " 'resize': 32}" in out
    assert "results differ from the book" in out
    assert re.search(r"final test accuracy 0\.\d{4} on the Fashion-MNIST "
                     r"test set", out)
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
        return {"test_acc": [0.5]}

    monkeypatch.setattr(cli.data, "load_data_fashion_mnist", loader)
    monkeypatch.setattr(cli, "train_ch6", trainer)
    return seen


def test_gpu_recipe_is_the_books(captured, capsys):
    """The chapter trains with lr 0.1, 10 epochs, batch 256 at 96x96."""
    cli.main(["--recipe", "gpu", "--device", "cpu"])
    assert captured["loader"]["batch_size"] == 256
    assert captured["loader"]["resize"] == 96
    assert (captured["train"]["num_epochs"], captured["train"]["lr"]) == (
        10, 0.1)
    assert captured["train"]["optimizer"] == "sgd"
    assert "GPU recipe on cpu" in capsys.readouterr().out


def test_auto_recipe_follows_the_device_and_options_win(captured):
    cli.main(["--lr", "0.05", "--resize", "40"])
    assert captured["train"]["device"].type == "cpu"
    assert captured["train"]["lr"] == 0.05
    assert captured["loader"]["resize"] == 40
    # the CPU recipe is smaller than the book's
    assert captured["train"]["num_epochs"] < 10


def test_head_and_transition_pools_reach_the_model(captured):
    cli.main(["--head-pool", "max", "--transition-pool", "max"])
    net = captured["train"]["net"]
    assert isinstance(net.last[2], torch.nn.AdaptiveMaxPool2d)
    assert isinstance(net.tran_blk1[-1], torch.nn.MaxPool2d)


def test_cli_rejects_small_images_before_training(captured):
    with pytest.raises(ValueError, match="28x28.*at least 29x29"):
        cli.main(["--resize", "0"])
    assert "train" not in captured


def test_python_m_gives_one_line_and_no_traceback():
    """``python -m d2l_densenet`` with a bad value: exit code, one line."""
    r = subprocess.run([sys.executable, "-m", "d2l_densenet", "--resize",
                        "0", "--subset", "100", "--test-subset", "100",
                        "--epochs", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert re.fullmatch(r"error: Input images are 28x28, .*\n", r.stderr)
