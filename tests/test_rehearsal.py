"""The GPU-mode rehearsal on the CPU (``D2L_DENSENET_MODE=gpu-rehearsal``,
``make run MODE=gpu-rehearsal``): the settings it picks and refuses, its
banner, the device calls answered on the CPU, the folder standing in for
Google Drive, and a synthetic notebook rehearsed through
``tools/run_notebooks.py`` (its GPU branch runs; a second run resumes
from its checkpoints)."""
import os
import re
import sys
import types

import nbformat
import pytest
import run_notebooks as rn
import torch

from d2l_densenet import checkpoint_folders, devices, messages, plots
from d2l_densenet import settings as st
from d2l_densenet.checkpoint_folders import DRIVE_ENV, checkpoint_folder

REHEARSAL = "gpu-rehearsal"
S = {"gpu": dict(lr=0.1, batch_size=256, num_epochs=10, subset=None,
                 optimizer="sgd"),
     "cpu": dict(lr=0.1, batch_size=128, num_epochs=3, subset=30000,
                 optimizer="adam"),
     "smoke": dict(lr=0.1, batch_size=64, num_epochs=1, subset=320,
                   optimizer="adam")}
SIZES = ("num_epochs", "subset")
RECIPE = ("batch_size", "optimizer")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """An English reader, no mode set; what choose() sets is undone."""
    monkeypatch.setenv(messages.LANG_ENV, "en")
    monkeypatch.delenv(st.ENV, raising=False)
    monkeypatch.delenv(DRIVE_ENV, raising=False)
    monkeypatch.setattr(plots, "_told", False)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(devices, "default_device",
                        lambda: torch.device("cpu"))


# --- the settings ---------------------------------------------------------

def test_rehearsal_is_gpu_mode_on_the_cpu_at_smoke_size(no_gpu, capsys):
    mode, device, chosen = st.choose(S, REHEARSAL, rehearse=SIZES,
                                     keep=RECIPE)
    assert (mode, device) == ("gpu", torch.device("cpu"))
    assert chosen == dict(lr=0.1, batch_size=256, num_epochs=1, subset=320,
                          optimizer="sgd")
    # what devices and the commands a notebook starts read
    assert os.environ[st.ENV] == REHEARSAL and devices.rehearsing()
    assert st.run_mode() == REHEARSAL


def test_a_gpu_rehearsal_dict_gives_values_of_its_own(no_gpu):
    settings = {**S, REHEARSAL: dict(num_epochs=2)}
    _, _, chosen = st.choose(settings, REHEARSAL, rehearse=("subset",),
                             keep=RECIPE)
    assert chosen["num_epochs"] == 2 and chosen["subset"] == 320
    assert chosen["batch_size"] == 256


def test_rehearsal_on_a_gpu_machine_still_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(devices, "default_device",
                        lambda: torch.device("cuda"))
    mode, device, _ = st.choose(S, REHEARSAL, rehearse=SIZES, keep=RECIPE)
    assert (mode, device.type) == ("gpu", "cpu")


def test_the_mode_comes_from_the_environment(no_gpu, monkeypatch):
    monkeypatch.setenv(st.ENV, " GPU-Rehearsal ")
    assert st.run_mode() == REHEARSAL            # no GPU needed
    mode, device, _ = st.choose(S, rehearse=SIZES, keep=RECIPE)
    assert (mode, device.type) == ("gpu", "cpu")
    with pytest.raises(ValueError, match="gpu-rehearsal"):
        st.run_mode("gpu-rehersal")              # the modes are named


def test_another_mode_chosen_ends_the_rehearsal(no_gpu, monkeypatch):
    monkeypatch.setenv(st.ENV, REHEARSAL)
    st.choose(S, "smoke")
    assert not devices.rehearsing()


@pytest.mark.parametrize("kwargs,message", [
    (dict(), "cannot tell whether batch_size, num_epochs, subset, "
             "optimizer"),
    (dict(rehearse=("num_epochs",), keep=("batch_size", "optimizer")),
     "cannot tell whether subset "),
    (dict(rehearse=("subset",), keep=("num_epochs", *RECIPE)),
     "refused: the GPU-mode rehearsal would run num_epochs=10, GPU mode's "
     "size, on the CPU \\(smoke mode: 1\\)"),
    (dict(rehearse=SIZES, keep=("subset", *RECIPE)), "subset named more"),
    (dict(rehearse=(*SIZES, "nope"), keep=RECIPE), "nope not in GPU"),
])
def test_a_forgotten_or_wrong_key_is_refused(no_gpu, kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.choose(S, REHEARSAL, **kwargs)


def test_rehearse_true_takes_every_other_difference(no_gpu):
    """For a notebook whose settings are all sizes (but ``keep`` and the
    ``gpu-rehearsal`` dict); one name may be a plain string."""
    settings = {**S, REHEARSAL: dict(subset=100)}
    _, _, chosen = st.choose(settings, REHEARSAL, rehearse=True,
                             keep="optimizer")
    assert chosen == dict(lr=0.1, batch_size=64, num_epochs=1, subset=100,
                          optimizer="sgd")
    gpu_only = {**S, "gpu": {**S["gpu"], "amp": "bf16"}}
    with pytest.raises(ValueError, match="cannot tell whether amp "):
        st.choose(gpu_only, REHEARSAL, rehearse=True)


def test_a_size_nested_in_a_kept_dict_is_refused(no_gpu):
    nested = {"gpu": dict(train=dict(num_epochs=10, lr=0.1)),
              "cpu": dict(train=None),
              "smoke": dict(train=dict(num_epochs=1, lr=0.1))}
    with pytest.raises(ValueError, match="train.num_epochs=10"):
        st.choose(nested, REHEARSAL, keep=("train",))
    _, _, chosen = st.choose(nested, REHEARSAL, rehearse=("train",))
    assert chosen["train"] == dict(num_epochs=1, lr=0.1)


def test_a_size_given_at_gpu_size_is_refused(no_gpu):
    settings = {**S, REHEARSAL: dict(subset=None)}
    with pytest.raises(ValueError, match="subset=None"):
        st.choose(settings, REHEARSAL, rehearse=("num_epochs",),
                  keep=RECIPE)


def test_declarations_are_checked_in_every_mode(no_gpu):
    """A key added to one mode and forgotten in rehearse=/keep= fails in
    smoke mode too (the notebook tests), not only in the rehearsal."""
    st.choose(S, "smoke", rehearse=SIZES, keep=RECIPE)
    with pytest.raises(ValueError, match="cannot tell whether optimizer"):
        st.choose(S, "smoke", rehearse=SIZES, keep=("batch_size",))
    st.choose(S, "smoke")          # a notebook that declares nothing yet


def test_unknown_mode_dict_is_refused(no_gpu):
    with pytest.raises(ValueError, match="unknown mode"):
        st.choose({**S, "gpu-rehersal": {}}, "smoke")


# --- the banner -------------------------------------------------------------

def test_banner_says_rehearsal_in_english(no_gpu, capsys):
    st.choose(S, REHEARSAL, rehearse=SIZES, keep=RECIPE)
    out = capsys.readouterr().out
    assert out.startswith(
        "GPU mode REHEARSED on cpu: lr=0.1, batch_size=256, num_epochs=1, "
        "subset=320, optimizer=sgd\n(a rehearsal, not a GPU run: GPU "
        "mode's code runs on the CPU at smoke mode's size (num_epochs=1, "
        "subset=320); it checks the GPU paths' logic, not their speed or "
        "memory figures)")
    assert "the book's settings" not in out


def test_banner_says_rehearsal_in_chinese(no_gpu, capsys):
    st.choose(S, REHEARSAL, lang="zh", rehearse=SIZES, keep=RECIPE)
    out = capsys.readouterr().out
    assert out.startswith(
        "在cpu上预演GPU模式：lr=0.1, batch_size=256, num_epochs=1, "
        "subset=320, optimizer=sgd\n（这是预演，不是在GPU上运行：GPU模式的"
        "代码按smoke模式的规模（num_epochs=1, subset=320）在CPU上运行，"
        "只检验GPU分支的逻辑，速度和内存读数都不代表GPU）")
    with pytest.raises(ValueError, match="无法判断optimizer"):
        st.choose(S, REHEARSAL, lang="zh", rehearse=SIZES,
                  keep=("batch_size",))


# --- the device calls -------------------------------------------------------

CPU = torch.device("cpu")
READINGS = ("memory_allocated", "max_memory_allocated", "memory_reserved",
            "max_memory_reserved", "mem_get_info", "reset_peak_memory")


def test_outside_the_rehearsal_the_cpu_does_not_pretend():
    assert not devices.gpu_path(CPU)
    for name in READINGS:
        with pytest.raises(ValueError, match="GPU-mode rehearsal"):
            getattr(devices, name)(CPU)
    devices.empty_cache(CPU)       # nothing to release but the heap
    devices.synchronize(CPU)       # nothing to wait for
    assert devices.device_count() == torch.cuda.device_count()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the counters' reset needs /proc (Linux)")
def test_in_the_rehearsal_the_cpu_answers_with_its_counters(monkeypatch):
    monkeypatch.setenv(st.ENV, REHEARSAL)
    assert devices.gpu_path(CPU) and devices.gpu_path("cuda")
    assert devices.device_count() == devices.REHEARSAL_PROCESSES
    MiB = 2 ** 20
    devices.empty_cache(CPU)
    devices.reset_peak_memory(CPU)
    low = devices.max_memory_reserved(CPU)
    big = torch.ones(64 * MiB // 4)            # 64 MiB, touched
    high = devices.max_memory_allocated(CPU)
    assert devices.memory_allocated(CPU) >= big.nbytes
    assert high - low > 48 * MiB               # the mark saw it
    del big
    devices.empty_cache(CPU)
    devices.reset_peak_memory(CPU)
    after = devices.max_memory_reserved(CPU)
    assert after < high - 48 * MiB             # and was reset
    assert devices.memory_reserved(CPU) <= after
    free, total = devices.mem_get_info(CPU)
    assert 0 < free <= total


def test_on_cuda_each_call_is_torch_cudas(monkeypatch):
    """No GPU here: torch.cuda's functions are replaced by recorders."""
    calls = []
    names = {"memory_allocated": 1, "max_memory_allocated": 2,
             "memory_reserved": 3, "max_memory_reserved": 4,
             "mem_get_info": (5, 6), "reset_peak_memory_stats": None,
             "empty_cache": None, "synchronize": None}
    for name, value in names.items():
        def fake(*args, name=name, value=value):
            calls.append((name, args))
            return value
        monkeypatch.setattr(torch.cuda, name, fake)
    gpu = torch.device("cuda", 1)
    assert devices.memory_allocated(gpu) == 1
    assert devices.max_memory_allocated(gpu) == 2
    assert devices.memory_reserved(gpu) == 3
    assert devices.max_memory_reserved(gpu) == 4
    assert devices.mem_get_info(gpu) == (5, 6)
    devices.reset_peak_memory(gpu)
    devices.empty_cache(gpu)
    devices.synchronize(gpu)
    assert [c[0] for c in calls] == list(names)
    assert all(args in ((gpu,), ()) for _, args in calls)
    assert devices.gpu_path(gpu)


def test_mps_has_no_peak_counter():
    for name in ("max_memory_allocated", "max_memory_reserved",
                 "reset_peak_memory"):
        with pytest.raises(ValueError, match="not offered on mps"):
            getattr(devices, name)("mps")


# --- the folder standing in for Google Drive --------------------------------

def test_rehearsal_folder_is_local_and_said(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(st.ENV, REHEARSAL)
    monkeypatch.setenv(DRIVE_ENV, str(tmp_path / "drive"))
    folder = checkpoint_folder("04_avg_vs_max/run1", "gpu")
    assert folder == str(tmp_path / "drive" / "04_avg_vs_max" / "run1")
    assert os.path.isdir(folder)
    assert capsys.readouterr().out == (
        f"checkpoints in {folder} (the rehearsal's local stand-in for "
        f"Google Drive; a second run resumes from them)\n")
    monkeypatch.setenv(messages.LANG_ENV, "zh")
    checkpoint_folder("04_avg_vs_max/run1", "gpu")
    assert capsys.readouterr().out.startswith(f"检查点保存在{folder}（预演中")
    monkeypatch.delenv(DRIVE_ENV)
    monkeypatch.chdir(tmp_path)
    assert checkpoint_folder("x", "gpu") == os.path.join(
        "checkpoints", "rehearsal-drive", "x")


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A fake Colab: ``google.colab.drive.mount`` records its calls; the
    Drive folder is under ``tmp_path``."""
    mounts = []
    drive = types.SimpleNamespace(mount=mounts.append)
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(checkpoint_folders, "DRIVE_FOLDER",
                        str(tmp_path / "MyDrive" / "d2l_densenet"))
    return mounts


def test_gpu_mode_on_colab_mounts_drive(colab, tmp_path):
    folder = checkpoint_folder("02_parameters/model1", "gpu")
    assert colab == ["/content/drive"]
    assert folder == str(tmp_path / "MyDrive" / "d2l_densenet" /
                         "02_parameters" / "model1")


def test_the_rehearsal_never_mounts_drive(colab, monkeypatch, tmp_path):
    monkeypatch.setenv(st.ENV, REHEARSAL)
    monkeypatch.setenv(DRIVE_ENV, str(tmp_path / "stand-in"))
    folder = checkpoint_folder("01", "gpu")
    assert colab == [] and folder.startswith(str(tmp_path / "stand-in"))


def test_other_modes_folders(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert checkpoint_folder("01", "gpu") == os.path.join("checkpoints",
                                                          "01")
    assert checkpoint_folder("01", "cpu") is None
    smoke = checkpoint_folder("01", "smoke")
    assert os.path.isdir(smoke) and not smoke.startswith("checkpoints")
    out = capsys.readouterr().out
    assert "no checkpoints in cpu mode" in out and "temporary" in out


@pytest.mark.parametrize("name", ["", "/abs", "../up", "a/../../b"])
def test_bad_folder_names_are_refused(name):
    with pytest.raises(ValueError, match="relative path without '..'"):
        checkpoint_folder(name, "gpu")
    with pytest.raises(ValueError, match="mode must be one of"):
        checkpoint_folder("x", REHEARSAL)    # choose() returns "gpu"


# --- the tool's checks, on fake runs ----------------------------------------

def _printed(text):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text=text)]
    nb.cells = [cell]
    return nb


BANNER = messages.text("settings.rehearsal", "en", where="cpu", shown="",
                       sizes="")


def _fake_runs(monkeypatch, second):
    """``rn.execute`` replaced: the first run prints the banner and writes
    a checkpoint into the stand-in Drive; the second does ``second``."""
    runs = []

    def execute(path, mode, progress=False, env=None, **kwargs):
        assert mode == REHEARSAL
        drive = env[DRIVE_ENV]
        runs.append(drive)
        ckpt = os.path.join(drive, "a", "epoch-0001.pt")
        if len(runs) == 1:
            os.makedirs(os.path.dirname(ckpt))
            with open(ckpt, "w") as f:
                f.write("1")
            return _printed(BANNER)
        return _printed(second(ckpt))
    monkeypatch.setattr(rn, "execute", execute)
    return runs


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "src" / "01_fake.ipynb"
    path.parent.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def _resuming(ckpt, lang="en"):
    return messages.text("checkpoint.resuming", lang, path=ckpt, done=1,
                         total=1) + "\n"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_second_run_that_resumes_passes(monkeypatch, source, tmp_path,
                                          lang):
    runs = _fake_runs(monkeypatch, lambda ckpt: BANNER + _resuming(
        ckpt, lang))
    target, _, _ = rn.rehearse(source, tmp_path / "out", progress=False)
    assert len(runs) == 2 and runs[0].endswith(os.path.join(
        "out", "drive", "01_fake"))
    assert target.exists()
    assert (tmp_path / "out" / "resumed" / "01_fake.ipynb").exists()
    assert rn.run_info(target)["mode"] == REHEARSAL


def test_a_second_run_that_trains_again_fails(monkeypatch, source,
                                              tmp_path):
    def retrain(ckpt):
        with open(ckpt, "w") as f:
            f.write("22")
        return BANNER + _resuming(ckpt)
    _fake_runs(monkeypatch, retrain)
    with pytest.raises(rn.RehearsalError, match="wrote checkpoints again "
                                                r"\(a/epoch-0001.pt\)"):
        rn.rehearse(source, tmp_path / "out", progress=False)


def test_a_second_run_that_does_not_resume_fails(monkeypatch, source,
                                                 tmp_path):
    _fake_runs(monkeypatch, lambda ckpt: BANNER + _resuming(
        ckpt.replace(os.sep + "a" + os.sep, os.sep + "b" + os.sep)))
    with pytest.raises(rn.RehearsalError, match="did not resume from a"):
        rn.rehearse(source, tmp_path / "out", progress=False)


def test_a_run_without_the_banner_fails(monkeypatch, source, tmp_path):
    monkeypatch.setattr(rn, "execute", lambda *a, **k: _printed(
        "GPU mode on cpu: lr=0.1\n"))
    with pytest.raises(rn.RehearsalError, match="did not run as a "
                                                "rehearsal"):
        rn.rehearse(source, tmp_path / "out", progress=False)


def test_the_drive_stand_in_is_emptied_first(monkeypatch, source,
                                             tmp_path):
    old = tmp_path / "out" / "drive" / "01_fake" / "old" / "epoch-0009.pt"
    old.parent.mkdir(parents=True)
    old.write_text("stale")
    _fake_runs(monkeypatch, lambda ckpt: BANNER + _resuming(ckpt))
    rn.rehearse(source, tmp_path / "out", progress=False)
    assert not old.exists()


# --- a synthetic notebook, rehearsed for real -------------------------------

SETTINGS_CELL = '''\
import torch
import d2l_densenet as dd
from d2l_densenet.settings import choose

MODE, device, S = choose({
    "gpu": dict(lr=0.5, num_epochs=3, subset=None, batch_size=256),
    "cpu": dict(lr=0.5, num_epochs=2, subset=64, batch_size=16),
    "smoke": dict(lr=0.5, num_epochs=2, subset=32, batch_size=16),
}, lang=LANG%s)
'''
GPU_CELLS = ['''\
if MODE == "gpu":
    print("GPU branch taken on", device, "with", S)
''', '''\
if dd.devices.gpu_path(device):
    dd.devices.empty_cache(device)
    dd.devices.reset_peak_memory(device)
    free, total = dd.devices.mem_get_info(device)
    peak = dd.devices.max_memory_reserved(device)
    assert 0 < free <= total and peak > 0
    print(f"GPU memory path: {dd.devices.device_count()} devices")
''', '''\
folder = dd.checkpoint_folder("synthetic", MODE)
torch.manual_seed(0)
X = torch.randn(S["subset"], 4)
y = (X[:, 0] > 0).long()
B = S["batch_size"]
batches = [(X[i:i + B], y[i:i + B]) for i in range(0, len(X), B)]
net = torch.nn.Sequential(torch.nn.Linear(4, 2))
history = dd.train_ch6(net, batches, batches, S["num_epochs"], S["lr"],
                       device, seed=0, progress="print",
                       checkpoint_dir=folder, resume=True)
print("trained", len(history["epoch"]), "epochs")
''']


def _synthetic(path, lang="en", declare=True):
    nb = nbformat.v4.new_notebook()
    declared = (', rehearse=("num_epochs", "subset"), keep=("batch_size",)'
                if declare else "")
    nb.cells = [nbformat.v4.new_code_cell(f"LANG = {lang!r}"),
                nbformat.v4.new_code_cell(SETTINGS_CELL % declared),
                *map(nbformat.v4.new_code_cell, GPU_CELLS)]
    nbformat.write(nb, path)
    return path


@pytest.mark.notebook
def test_a_synthetic_notebook_is_rehearsed(tmp_path, capsys):
    """Through the command line: the GPU branches run on the CPU at smoke
    size, the second run resumes from the first's checkpoints; a notebook
    that declares nothing is refused (the tool goes on, then fails)."""
    good = _synthetic(tmp_path / "01_synthetic.ipynb", lang="zh")
    bad = _synthetic(tmp_path / "02_undeclared.ipynb", declare=False)
    out = tmp_path / "out"
    rc = rn.main(["--mode", REHEARSAL, "--out", str(out), "--lang", "en",
                  str(good), str(bad)])
    said = capsys.readouterr()
    assert rc == 1 and "1 notebook(s) failed: 02_undeclared" in said.err
    assert "A REHEARSAL of GPU mode on the CPU, not a GPU run" in said.out
    assert "01_synthetic.ipynb: resumed from 1 checkpoint folder(s)" in \
        said.out

    first = rn.printed(nbformat.read(out / good.name, as_version=4))
    assert first.startswith("在cpu上预演GPU模式：lr=0.5, num_epochs=2, "
                            "subset=32, batch_size=256\n")
    assert "GPU branch taken on cpu with {'lr': 0.5, 'num_epochs': 2" in \
        first
    assert "GPU memory path: 2 devices" in first
    assert "trained 2 epochs" in first and "预演中代替Google" in first
    second = rn.printed(nbformat.read(out / "resumed" / good.name,
                                      as_version=4))
    assert re.search(r"从\S+epoch-0002.pt继续训练：2个迭代周期中已完成2个",
                     second)
    assert "trained 2 epochs" in second   # the history, from the checkpoint
    assert sorted(p.name for p in (out / "drive" / "01_synthetic")
                  .rglob("*.pt")) == ["epoch-0001.pt", "epoch-0002.pt"]
    assert rn.run_info(out / good.name)["mode"] == REHEARSAL
    assert ("FAILED 02_undeclared.ipynb: CellExecutionError: ValueError: "
            "the GPU-mode rehearsal cannot tell whether num_epochs, subset, "
            "batch_size") in said.out


def test_ci_and_make_run_the_rehearsal_for_both_editions():
    root = rn.ROOT
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    assert "for edition in en zh; do" in ci
    assert 'make run MODE=gpu-rehearsal EDITION="$edition"' in ci
    make = (root / "Makefile").read_text(encoding="utf-8")
    assert "run_notebooks.py --edition $(EDITION) $(if $(MODE),--mode " \
        "$(MODE))" in make
    assert REHEARSAL in rn.RUN_MODES and rn.run_dir(REHEARSAL, "zh") == (
        root / "build" / "run" / REHEARSAL / "zh")
