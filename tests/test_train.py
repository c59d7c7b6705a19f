import re

import pytest
import torch

from d2l_densenet import densenet, load_data_fashion_mnist, train_ch6
from d2l_densenet.train import NonFiniteLossError, checkpoint_files


@pytest.mark.slow
def test_short_real_training_beats_chance(capsys):
    """One pass over 10k real Fashion-MNIST images at 32x32 on CPU must
    beat chance (0.10) by a wide margin on 2,000 real test images. Adam:
    after only 79 SGD steps at the book's lr 0.1 the BatchNorm running
    statistics are still too noisy for a stable eval-mode accuracy
    (0.37-0.66 over seeds 0-2), Adam gave 0.77-0.83."""
    train_iter, test_iter = load_data_fashion_mnist(
        128, resize=32, fast=True, device="cpu", subset=10_000,
        test_subset=2_000)
    history = train_ch6(densenet(), train_iter, test_iter, 1, 0.001,
                        "cpu", optimizer="adam", seed=0, progress="none")
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "training on cpu"
    assert re.fullmatch(r"loss \d+\.\d{3}, train acc \d\.\d{3}, "
                        r"test acc \d\.\d{3}", out[-2])
    assert re.fullmatch(r"\d+\.\d examples/sec on cpu", out[-1])
    assert history["epoch"] == [1]
    assert history["test_acc"][0] >= 0.70
    assert f"test acc {history['test_acc'][0]:.3f}" in out[-2]
    assert history["seconds"][0] > 0 and history["examples_per_sec"] > 0


def _tiny_iters(n=64):
    torch.manual_seed(0)
    X = torch.rand(n, 1, 32, 32)
    y = torch.randint(0, 10, (n,))
    ds = torch.utils.data.TensorDataset(X, y)
    return (torch.utils.data.DataLoader(ds, 16, shuffle=True),
            torch.utils.data.DataLoader(ds, 32))


def _small_net():
    return densenet(arch=(1, 1), growth_rate=8, num_channels=8)


def test_seed_makes_runs_identical():
    """The seed fixes every parameter and the data order, whatever the
    RNG state was when the model was built."""
    runs = []
    for first_seed in (1, 2):
        torch.manual_seed(first_seed)
        net = _small_net()
        train_iter, test_iter = _tiny_iters()
        h = train_ch6(net, train_iter, test_iter, 2, 0.05, "cpu", seed=3,
                      progress="none")
        runs.append((h["train_loss"], net.last[-1].weight.detach()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("options", [dict(optimizer="adam"),
                                     dict(amp="bf16"),
                                     dict(channels_last=True)])
def test_options_train(options):
    train_iter, test_iter = _tiny_iters()
    h = train_ch6(_small_net(), train_iter, test_iter, 2, 0.01, "cpu",
                  seed=0, progress="print", **options)
    assert len(h["train_loss"]) == 2
    assert all(0 <= a <= 1 for a in h["test_acc"])
    assert all(l == l for l in h["train_loss"])   # no NaN


def test_init_false_keeps_weights():
    net = _small_net()
    before = net.last[-1].weight.detach().clone()
    train_iter, test_iter = _tiny_iters()
    train_ch6(net, train_iter, test_iter, 1, 0.0, "cpu", init=False,
              progress="none")
    assert torch.equal(before, net.last[-1].weight)


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizer="rmsprop"), "optimizer must be one of"),
    (dict(amp="fp8"), "amp must be None or one of"),
    (dict(amp="fp16"), "needs a CUDA device"),
    (dict(progress="bar"), "progress must be one of"),
    (dict(num_epochs=0), "num_epochs must be a positive int, got 0"),
    (dict(lr=float("nan")), "lr must be a finite number >= 0, got nan"),
    (dict(lr=-0.1), "lr must be a finite number >= 0, got -0.1"),
    (dict(resume=True), "resume=True needs checkpoint_dir"),
])
def test_bad_options(kwargs, match):
    train_iter, test_iter = _tiny_iters()
    args = dict(num_epochs=1, lr=0.1)
    args.update((k, kwargs.pop(k)) for k in list(kwargs) if k in args)
    with pytest.raises(ValueError, match=match):
        train_ch6(_small_net(), train_iter, test_iter, args["num_epochs"],
                  args["lr"], "cpu", **kwargs)


class _PoisonedEpoch:
    """Four batches per epoch; in epoch ``epoch`` batch 3 holds a NaN."""

    def __init__(self, epoch: int) -> None:
        self.batches, _ = _tiny_iters()
        self.bad, self.epoch = epoch, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.epoch += 1
        for i, (X, y) in enumerate(self.batches):
            if self.epoch == self.bad and i == 2:
                X = X.clone()
                X[0, 0, 0, 0] = float("nan")
            yield X, y


def test_nan_loss_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    net = _small_net()
    _, test_iter = _tiny_iters()
    with pytest.raises(NonFiniteLossError) as e:
        train_ch6(net, _PoisonedEpoch(2), test_iter, 3, 0.05, "cpu", seed=0,
                  progress="none", checkpoint_dir=tmp_path)
    last = tmp_path / "epoch-0001.pt"
    assert str(e.value) == (
        f"the training loss became nan at epoch 2, batch 3 of 4; training "
        f"stopped before that step (the last good checkpoint {last} is "
        f"kept). Lower the learning rate (lr=0.05; try 0.005)")
    assert checkpoint_files(tmp_path) == [last]
    assert all(torch.isfinite(p).all() for p in net.parameters())
