import math
import re
import sys

import pytest
import torch

from d2l_densenet import densenet, load_data_fashion_mnist, train_ch6
from d2l_densenet.checkpoints import checkpoint_files
from d2l_densenet.train import NonFiniteLossError


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


def _conv_inputs_and_outputs(net):
    """Record, for every Conv2d, its input and output during training."""
    seen = []

    def hook(module, inputs, output):
        if module.training:
            seen.append((inputs[0], output))
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    return seen


@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16),
                                       (None, torch.float32)])
def test_amp_sets_the_dtype_the_convolutions_compute_in(amp, dtype):
    """With amp="bf16" every convolution runs under bf16 autocast (its
    output is bf16); without it, fp32. On this AVX2/AVX512 CPU bf16 runs
    emulated (slowly) but runs: the dtype is what is checked."""
    net = _small_net()
    seen = _conv_inputs_and_outputs(net)
    train_iter, test_iter = _tiny_iters()
    train_ch6(net, train_iter, test_iter, 1, 0.01, "cpu", seed=0,
              progress="none", amp=amp)
    assert seen and {out.dtype for _, out in seen} == {dtype}


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_reaches_the_convolutions(channels_last):
    """Every convolution with more than one input channel sees a
    channels-last tensor with channels_last=True and a plain (NCHW) one
    without. One-channel inputs are both at once, so they are skipped."""
    net = _small_net()
    seen = _conv_inputs_and_outputs(net)
    train_iter, test_iter = _tiny_iters()
    train_ch6(net, train_iter, test_iter, 1, 0.01, "cpu", seed=0,
              progress="none", channels_last=channels_last)
    layouts = {(x.is_contiguous(memory_format=torch.channels_last),
                x.is_contiguous())
               for x, _ in seen if x.shape[1] > 1 and x.shape[-1] > 1}
    assert layouts == {(True, False)} if channels_last else {(False, True)}


def test_adam_is_the_optimizer_that_steps(tmp_path):
    """optimizer="adam" saves Adam's moments; "sgd" has none."""
    from d2l_densenet.checkpoints import load_checkpoint
    for name in ("adam", "sgd"):
        train_iter, test_iter = _tiny_iters()
        train_ch6(_small_net(), train_iter, test_iter, 1, 0.01, "cpu",
                  seed=0, progress="none", optimizer=name,
                  checkpoint_dir=tmp_path / name)
        state = load_checkpoint(checkpoint_files(tmp_path / name)[-1])
        moments = [s for s in state["optimizer"]["state"].values()
                   if "exp_avg" in s]
        assert bool(moments) == (name == "adam"), name


class _EpochLoader:
    """Tiny batches; records each ``set_epoch`` call."""

    def __init__(self) -> None:
        self.batches, _ = _tiny_iters()
        self.epochs: list[int] = []
        self.batch_size = 16

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def test_set_epoch_is_called_every_epoch_also_after_resume(tmp_path):
    """The loader reshuffles per epoch by ``set_epoch``: epochs 0 and 1,
    and after a resume from epoch 2 of 3, epoch 2 only."""
    _, test_iter = _tiny_iters()
    loader = _EpochLoader()
    train_ch6(_small_net(), loader, test_iter, 2, 0.05, "cpu", seed=0,
              progress="none", checkpoint_dir=tmp_path)
    assert loader.epochs == [0, 1]
    loader = _EpochLoader()
    train_ch6(_small_net(), loader, test_iter, 3, 0.05, "cpu", seed=0,
              progress="none", checkpoint_dir=tmp_path, resume=True)
    assert loader.epochs == [2]


def test_set_epoch_reaches_a_distributed_sampler():
    """A DataLoader with a DistributedSampler: the sampler's epoch is
    the last epoch trained (it starts at 0 and stays there otherwise)."""
    train_iter, test_iter = _tiny_iters()
    sampler = torch.utils.data.DistributedSampler(
        train_iter.dataset, num_replicas=1, rank=0, shuffle=True)
    loader = torch.utils.data.DataLoader(train_iter.dataset, 16,
                                         sampler=sampler)
    train_ch6(_small_net(), loader, test_iter, 3, 0.05, "cpu", seed=0,
              progress="none")
    assert sampler.epoch == 2


def test_an_exploding_loss_stops_like_a_nan(tmp_path):
    """lr 1e9: the loss stays finite but leaves any learning range; the
    run stops at the bound (100 x ln 10 = 230 for 10 classes) with the
    NaN message, before the step, keeping the last good checkpoint."""
    from d2l_densenet.train import DivergedError, loss_bound
    assert loss_bound(10) == pytest.approx(100 * math.log(10))
    train_iter, test_iter = _tiny_iters()
    with pytest.raises(DivergedError) as e:
        train_ch6(_small_net(), train_iter, test_iter, 3, 1e9, "cpu",
                  seed=0, progress="none", checkpoint_dir=tmp_path)
    message = str(e.value)
    assert re.fullmatch(
        r"the training loss became [0-9.e+]+, above 230 \(100 x ln 10 "
        r"classes\) at epoch \d, batch \d of 4; training stopped before "
        r"that step \((no checkpoint was saved|the last good checkpoint "
        r".* is kept)\)\. Lower the learning rate \(lr=1e\+09; try "
        r"1e\+08\)", message), message
    assert not isinstance(e.value, NonFiniteLossError)


def test_init_false_keeps_weights():
    net = _small_net()
    before = net.last[-1].weight.detach().clone()
    train_iter, test_iter = _tiny_iters()
    train_ch6(net, train_iter, test_iter, 1, 0.0, "cpu", init=False,
              progress="none")
    assert torch.equal(before, net.last[-1].weight)


def _params(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _tiny_bc():
    from d2l_densenet.family import DenseNetBC
    return DenseNetBC(growth_rate=4, block_config=(1, 1),
                      num_init_features=8, num_classes=10, in_channels=1)


def test_default_init_keeps_loaded_weights_of_a_densenet_bc(capsys):
    """Weights loaded into a DenseNet-BC (as ``load_weights`` does with
    pretrained ones; its BatchNorm scales are not 1) survive
    ``train_ch6(..., seed=0)`` with the default ``init`` (lr 0: nothing
    else changes them), with a line saying so; ``init=True`` asked for
    explicitly still re-initialises them."""
    from d2l_densenet.family import load_weights
    torch.manual_seed(1)
    source = _tiny_bc()
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    train_iter, test_iter = _tiny_iters()
    for init, kept in ((None, True), (True, False)):
        net = load_weights(_tiny_bc(), source.state_dict())
        loaded = _params(net)
        asked = {} if init is None else {"init": init}  # None: default
        train_ch6(net, train_iter, test_iter, 1, 0.0, "cpu", seed=0,
                  progress="none", **asked)
        same = [torch.equal(loaded[k], v) for k, v in _params(net).items()]
        assert all(same) if kept else not any(same), init
        out = capsys.readouterr().out
        assert ("keeping the model's weights (its BatchNorm2d scales and "
                "shifts are not the 1s and 0s a constructor sets: trained "
                "or loaded weights); init=True re-initialises them" in out
                ) == kept


def test_default_init_initialises_a_new_model_as_the_book(capsys):
    """A model as its constructor made it, even after the book's shape
    check (a forward pass in training mode moves BatchNorm's running
    statistics), gets the Xavier weights of ``init=True``; a model
    train_ch6 has trained keeps its weights on the next call."""
    train_iter, test_iter = _tiny_iters()
    weights = []
    for init in (True, None):
        net = _small_net()
        net(torch.rand(2, 1, 32, 32))       # the shape check
        train_ch6(net, train_iter, test_iter, 1, 0.0, "cpu", seed=0,
                  progress="none", init=init)
        weights.append(_params(net))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert "keeping" not in capsys.readouterr().out
    net = _small_net()
    train_ch6(net, train_iter, test_iter, 1, 0.05, "cpu", seed=0,
              progress="none")
    trained = _params(net)
    train_ch6(net, train_iter, test_iter, 1, 0.0, "cpu", seed=0,
              progress="none")
    assert all(torch.equal(trained[k], v) for k, v in _params(net).items())
    assert "keeping the model's weights (train_ch6 has trained it before)" \
        in capsys.readouterr().out


def test_progress_falls_back_to_tqdm_without_d2l(monkeypatch):
    """In a notebook "auto" draws with d2l's Animator; where d2l is not
    installed (a pip user of the package) it shows a tqdm bar instead,
    and asking for the Animator says what to install."""
    from d2l_densenet import progress
    monkeypatch.setitem(sys.modules, "d2l", None)   # import d2l fails
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    bar = progress.Progress("auto", 2, 3)
    try:
        assert bar.kind == "tqdm" and bar.bar is not None
        assert bar.animator is None
    finally:
        bar.close()
    with pytest.raises(ModuleNotFoundError,
                       match=r"pip install d2l==1\.0\.3 --no-deps"):
        progress.Progress("animator", 2, 3)
    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress.Progress("auto", 2, 3).kind == "print"


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


@pytest.mark.parametrize("interval", ["batch", "epoch"])
def test_a_per_batch_scheduler_steps_after_every_batch(interval):
    """A scheduler function with interval="batch" is stepped after each
    of the 4 batches of 2 epochs; one without it once per epoch."""
    made = []

    def factory(opt):
        made.append(torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5))
        return made[-1]
    if interval == "batch":
        factory.interval = "batch"
    train_iter, test_iter = _tiny_iters()
    train_ch6(_small_net(), train_iter, test_iter, 2, 0.08, "cpu", seed=0,
              progress="none", scheduler=factory)
    steps = 8 if interval == "batch" else 2
    assert made[0].last_epoch == steps
    assert made[0].get_last_lr() == [0.08 * 0.5 ** steps]
