"""Training speed: our recipe vs the book's loop, side by side in one run.

    python benchmarks/bench_speed.py [--device cpu|cuda] [--epochs 1]
        [--batch-size N] [--resize N] [--subset N] [--json PATH]

Rows, all measured in this run on this machine, each labelled with the
CPU and its class (``cpu_class``: the instruction set ATen uses and
whether oneDNN has bf16; ``run_all.py`` runs this file a second time
with the CPU held to the AVX2 class, as on most laptops):

* training step, variant by variant (``--step-rounds``): the book's
  layout (NCHW, fp32), channels-last, the fast paths (``fast.py``),
  bf16 where oneDNN supports it, ``torch.compile`` with ``--compile``
  (its compile time shown), measured alternately in one process; what
  the loop's per-step host reads (``float(loss)``, ``accuracy``) cost;
  and why a pre-allocated feature buffer does not pay (BatchNorm on a
  slice of it against the ``torch.cat`` it would save);
* the fast paths one at a time (on a CPU): the recipe's step with each
  path in ``FAST_PIECES`` turned off alone, then all of them, so each
  one is kept on a measurement in both classes;
* matmul rate: a big ``torch.matmul`` in fp32 and bf16 (GFLOP/s), the
  yardstick for everything below;
* FLOPs of one training image (forward + backward) from
  ``torch.utils.flop_counter``;
* training: the book's ``d2l.train_ch6`` with ``d2l.load_data_fashion_mnist``
  (4 worker processes, PIL resize) vs our ``train_ch6`` with the tensor
  loader and the recipe's options (``settings.train_options``: bf16
  autocast where measured faster, channels-last, the cosine schedule
  stepped per batch, the fast paths), same model, batch size, image
  size, epochs and seed; the book's loop at the book's learning rate
  (0.1) unless ``--lr`` sets both. Two rates for each:
  *step-only* (the book's own figure: its timer covers only the
  training step) and *wall-clock* (training examples / seconds of the
  whole call: data loading, steps, per-epoch test evaluation and
  progress display). Wall-clock is what a user waits for; the 2x target
  is judged on it;
* achieved GFLOP/s (FLOPs per image x step-only rate) as a fraction of
  the measured matmul rates, and the ceiling that leaves: the rate at
  100% of the matmul rate, as a multiple of the book's;
* where the time goes: a profile of our training step by operator, the
  GFLOP/s its convolutions achieve (forward and backward), and the
  bound that remains: the step with every convolution at the matmul
  rate and everything else as profiled (Amdahl);
* loaders at 96x96, batch 256: our tensor loader vs torchvision's
  DataLoader as the book builds it (examples/s, worker start-up
  included, batches moved to the device).

``main(argv)`` returns everything as a dict (``benchmarks/run_all.py``
merges it into ``build/benchmarks.json``).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import functools
import inspect
import io
import json
import os
import platform
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

os.environ.setdefault("MPLBACKEND", "Agg")  # d2l's Animator, headless

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils import data as tud  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import (  # noqa: E402
    FlopCounterMode,
    flop_registry,
)

from d2l_densenet import amp, data, devices, models, settings  # noqa: E402
from d2l_densenet import fast as fast_module  # noqa: E402
from d2l_densenet.amp import AMP_DTYPES  # noqa: E402
from d2l_densenet.fast import fast_paths  # noqa: E402
from d2l_densenet.train import accuracy, train_ch6  # noqa: E402

GIGA = 1e9
# Noise from running the book's code as it is: its 4 loader workers on a
# machine with fewer cores (said once in the book row instead), and
# its Animator's first x-limits.
warnings.filterwarnings("ignore", message="This DataLoader will create")
warnings.filterwarnings("ignore", message="Attempting to set identical")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _load() -> float | None:
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return None


#: What holds a faster CPU to the AVX2 class of most laptops: oneDNN's
#: kernels (convolutions), ATen's own kernels, MKL's (matmul).
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def _cpu_flags() -> set[str]:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_class() -> dict:
    """This process's CPU class: the instruction set ATen's kernels use,
    whether oneDNN reports bf16, what the CPU itself has, and the
    variables holding it to a lower class (``AVX2_ENV``)."""
    cap = torch.backends.cpu.get_cpu_capability()
    bf16, note = amp.cpu_bf16_support()
    flags = _cpu_flags()
    held = {k: os.environ[k] for k in AVX2_ENV if k in os.environ}
    native = ("AVX-512 + AMX" if "amx_bf16" in flags else
              "AVX-512" if "avx512f" in flags else
              "AVX2" if "avx2" in flags else cap)
    name = ("AVX-512 + AMX" if cap.startswith("AVX512") and bf16
            and "amx_bf16" in flags else
            "AVX-512" if cap.startswith("AVX512") else cap)
    if held and name != native:
        name = f"{name} (held on an {native} CPU)"
    return dict(name=name, aten=cap, onednn_bf16=bf16, bf16_note=str(note),
                native=native, held=held, cpu=_cpu_name())


# --- yardsticks ------------------------------------------------------------

def matmul_rate(dtype: torch.dtype, device: torch.device, n: int,
                repeats: int = 3) -> float:
    """GFLOP/s of an n x n by n x n ``torch.matmul`` (best of
    ``repeats`` after one warm-up)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    torch.matmul(a, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / GIGA


def flops_per_image(resize: int, batch: int = 4) -> float:
    """FLOPs of one training image (forward + backward) through the
    chapter's DenseNet at ``resize`` x ``resize``."""
    net = models.densenet()
    X = torch.rand(batch, 1, resize, resize)
    y = torch.zeros(batch, dtype=torch.int64)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(net(X), y).backward()
    return counter.get_total_flops() / batch


# --- the book's loop and loader --------------------------------------------

def _d2l():
    from d2l import torch as d2l
    return d2l


def book_loaders(batch_size: int, resize: int | None, root=None,
                 subset: int | None = None,
                 test_subset: int | None = None):
    """``d2l.load_data_fashion_mnist(batch_size, resize)`` itself, reading
    the data we found (it looks in ``../data``: we run it from a
    temporary folder whose ``../data`` points there). ``subset`` keeps a
    class-balanced slice, loaded exactly as d2l loads the whole set."""
    d2l = _d2l()
    tv_root = data.find_fashion_mnist(root, download=False)
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(tv_root.resolve(), Path(tmp) / "data")
        (Path(tmp) / "cwd").mkdir()
        os.chdir(Path(tmp) / "cwd")
        try:
            train_iter, test_iter = d2l.load_data_fashion_mnist(
                batch_size, resize=resize)
        finally:
            os.chdir(here)
    iters = []
    for it, n, shuffle in ((train_iter, subset, True),
                           (test_iter, test_subset, False)):
        if n is not None:
            idx = data.balanced_indices(it.dataset.targets, n).tolist()
            it = tud.DataLoader(tud.Subset(it.dataset, idx), batch_size,
                                shuffle=shuffle,
                                num_workers=d2l.get_dataloader_workers())
        iters.append(it)
    return tuple(iters)


class _BookOutput(io.TextIOBase):
    """Pass d2l's printed lines through, turning the Animator's figures
    (drawn into a terminal as ``Figure(...)`` lines, after an ANSI
    clear-line) into one progress dot each; keep everything for
    parsing."""

    def __init__(self, out) -> None:
        self.out, self.text, self.buf, self.dots = out, [], "", False

    def write(self, s: str) -> int:
        self.text.append(s)
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self._line(line)
        return len(s)

    def _line(self, line: str) -> None:
        line = line.replace("\x1b[2K", "").replace("\r", "").strip()
        if line.startswith(("Figure(", "<Figure")):
            self.out.write(".")
            self.dots = True
        elif line:
            self.out.write(("\n" if self.dots else "") + line + "\n")
            self.dots = False
        self.out.flush()

    def getvalue(self) -> str:
        self._line(self.buf)
        self.buf = ""
        return "".join(self.text)


def run_book(args, device: torch.device) -> dict:
    """The book's ``d2l.train_ch6`` with d2l's loader."""
    d2l = _d2l()
    train_iter, test_iter = book_loaders(
        args.batch_size, args.resize, args.data_root, args.subset,
        args.test_subset)
    torch.manual_seed(args.seed)
    net = models.densenet()
    workers = d2l.get_dataloader_workers()
    print(f"book: d2l.train_ch6 + d2l.load_data_fashion_mnist "
          f"({workers} worker processes on {os.cpu_count()} CPUs), "
          f"lr {args.book_lr}, "
          f"{len(train_iter)} batches/epoch", flush=True)
    out = _BookOutput(sys.stdout)
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        d2l.train_ch6(net, train_iter, test_iter, args.epochs,
                      args.book_lr, device)
    seconds = time.perf_counter() - start
    text = out.getvalue()
    print(flush=True)
    step = float(re.findall(r"([\d.]+) examples/sec", text)[-1])
    acc = float(re.findall(r"test acc ([\d.]+)", text)[-1])
    n = len(train_iter.dataset) * args.epochs
    return dict(step_examples_per_sec=step, wall_examples_per_sec=n /
                seconds, seconds=seconds, test_acc=acc, examples=n)


def run_ours(args, device: torch.device, options: dict) -> dict:
    """Our ``train_ch6`` with the tensor loader and the recipe's options."""
    train_iter, test_iter = data.load_data_fashion_mnist(
        args.batch_size, resize=args.resize, root=args.data_root,
        fast=True, device=device, subset=args.subset,
        test_subset=args.test_subset)
    torch.manual_seed(args.seed)
    net = models.densenet()
    if args.compile:
        net = torch.compile(net)
    kwargs = dict(amp=options["amp"], channels_last=options["channels_last"])
    params = inspect.signature(train_ch6).parameters
    if "scheduler" in params:
        kwargs["scheduler"] = settings.lr_scheduler(
            options["lr_schedule"], args.epochs,
            num_batches=len(train_iter))
    if "fast" in params:
        kwargs["fast"] = options.get("fast", True)
    shown = ", ".join(f"{k}={v}" for k, v in options.items())
    print(f"ours: train_ch6 + tensor loader, lr {args.lr}, {shown}"
          f"{', torch.compile' if args.compile else ''}, "
          f"{len(train_iter)} batches/epoch", flush=True)
    start = time.perf_counter()
    history = train_ch6(net, train_iter, test_iter, args.epochs, args.lr,
                        device, seed=args.seed, progress=args.progress,
                        **kwargs)
    _sync(device)
    seconds = time.perf_counter() - start
    n = len(train_iter.labels) * args.epochs
    return dict(step_examples_per_sec=history["examples_per_sec"],
                wall_examples_per_sec=n / seconds, seconds=seconds,
                test_acc=history["test_acc"][-1], examples=n)


# --- where the time goes ---------------------------------------------------

_GROUPS = (("conv", ("conv",)), ("matmul", ("aten::mm", "aten::addmm")),
           ("batch norm", ("batch_norm",)),
           ("relu", ("relu", "threshold", "clamp_min")),
           ("concat", ("cat",)), ("pool", ("pool",)),
           ("optimizer", ("sgd", "optimizer", "add_", "_foreach")))


class OpFlops(TorchDispatchMode):
    """FLOPs by aten op (``torch.utils.flop_counter``'s formulas) of
    whatever runs inside, without ``FlopCounterMode``'s module hooks
    (which would switch the fast paths off)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.counts[str(packet)] += flop_registry[packet](
                *args, **kwargs, out_val=out)
        return out


def recipe_step(args, device: torch.device, options: dict, fast: bool):
    """One training step (forward, loss, backward, SGD) of the chapter's
    DenseNet on a fixed random batch, in the recipe's layout and
    precision, with or without the fast paths, as a closure."""
    torch.manual_seed(args.seed)
    fmt = (torch.channels_last if options["channels_last"]
           else torch.contiguous_format)
    net = models.densenet().to(device, memory_format=fmt)
    g = torch.Generator().manual_seed(args.seed)
    X = torch.rand(args.batch_size, 1, args.resize, args.resize,
                   generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    return train_step(net, net, X, y, args.lr, options["amp"], fast)


def train_step(model, net, X, y, lr: float, amp_: str | None, fast: bool):
    """A closure: one SGD step of ``model`` (``net``, or ``net``
    compiled) on ``(X, y)`` under ``amp_`` (None: fp32), with or without
    the fast paths (``step(fast=...)`` overrides ``fast``)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr)

    def step(fast=fast):
        opt.zero_grad()
        with fast_paths(fast), torch.autocast(
                X.device.type, dtype=AMP_DTYPES.get(amp_),
                enabled=amp_ is not None):
            loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
    return step


def op_profile(args, device: torch.device, options: dict, steps: int = 3,
               top: int = 12) -> dict:
    """Self time by operator over ``steps`` training steps of our
    recipe (after one warm-up), and the same grouped by kind. With
    ``options["fast"]`` the fast paths run: some convolutions are then
    matrix products, counted with the convolutions ("conv work")."""
    from torch.profiler import ProfilerActivity, profile

    fast = options.get("fast", False)
    step = recipe_step(args, device, options, fast)
    step()
    _sync(device)
    acts = [ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    attr = ("self_device_time_total" if device.type == "cuda"
            else "self_cpu_time_total")
    events = [e for e in prof.key_averages()
              if getattr(e, attr, 0) > 0 and not e.key.startswith(
                  ("ProfilerStep", "autograd::engine", "Optimizer.step"))]
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    rows = [dict(op=e.key, ms_per_step=getattr(e, attr) / 1e3 / steps,
                 share=getattr(e, attr) / total) for e in events[:top]]
    groups = {name: 0.0 for name, _ in _GROUPS}
    groups["other"] = 0.0
    for e in events:
        key = e.key.lower()
        name = next((n for n, pats in _GROUPS
                     if any(p in key for p in pats)), "other")
        groups[name] += getattr(e, attr) / total
    # FLOPs of the convolutions in one step, forward and backward, and
    # their self time: the rate each achieves (the fast paths' matrix
    # products, forward and backward together, as a third kind).
    with OpFlops() as counter:
        step()
    counts = dict(counter.counts)
    conv = {}
    kinds = [("forward", lambda k: "convolution" in k and "backward" not in k),
             ("backward", lambda k: "convolution_backward" in k)]
    if fast:
        kinds.append(("matmul", lambda k: k in ("aten.mm", "aten.addmm",
                                                "aten::mm", "aten::addmm")))
    for kind, is_kind in kinds:
        ms = sum(getattr(e, attr) for e in events
                 if is_kind(e.key.lower())) / 1e3 / steps
        flops = sum(v for k, v in counts.items() if is_kind(k.lower()))
        conv[kind] = dict(gflop_per_step=flops / GIGA, ms_per_step=ms,
                          gflops=flops / GIGA / (ms / 1e3) if ms else 0.0)
    return dict(clock=attr.replace("_total", ""), steps=steps,
                ms_per_step=total / 1e3 / steps, top=rows, groups=groups,
                conv=conv)


def remaining_bound(prof: dict, rate: float) -> dict:
    """Amdahl's bound on our step: every convolution (forward and
    backward) at the matmul ``rate`` (GFLOP/s), everything else as
    profiled. Returns the step's speed-up at that bound."""
    conv = prof["conv"]
    conv_ms = sum(c["ms_per_step"] for c in conv.values())
    ideal_ms = sum(c["gflop_per_step"] for c in conv.values()) / rate * 1e3
    other_ms = prof["ms_per_step"] - conv_ms
    return dict(conv_ms=conv_ms, conv_ms_at_matmul_rate=ideal_ms,
                other_ms=other_ms,
                speedup=prof["ms_per_step"] / (other_ms + ideal_ms))


# --- the training step, variant by variant --------------------------------

#: (label, channels_last, fast paths, amp): the book's layout first, then
#: one change at a time towards the recipe.
STEP_VARIANTS = (
    ("book layout: NCHW, fp32", False, False, None),
    ("channels-last, fp32", True, False, None),
    ("channels-last + fast paths, fp32", True, True, None),
    ("channels-last, bf16", True, False, "bf16"),
    ("channels-last + fast paths, bf16", True, True, "bf16"),
)


def step_variants(bf16: bool, compile_: bool = False) -> list[tuple]:
    """The variants this CPU can run: bf16 ones only where oneDNN has
    bf16 (emulated bf16 is many times slower and not a choice);
    ``torch.compile`` of the fastest eager one with ``compile_``."""
    rows = [v for v in STEP_VARIANTS if v[3] is None or bf16]
    if compile_:
        label, cl, fast, amp_ = rows[-1]
        rows.append((f"{label}, torch.compile", cl, fast, amp_, True))
    return [v if len(v) == 5 else (*v, False) for v in rows]


def host_read_cost(batch_size: int, num_classes: int = 10,
                   repeats: int = 200) -> float:
    """Seconds per step of what the loop reads on the host every step:
    ``float(loss)`` and ``accuracy(y_hat, y)``."""
    g = torch.Generator().manual_seed(0)
    y_hat = torch.randn(batch_size, num_classes, generator=g)
    y = torch.randint(0, num_classes, (batch_size,), generator=g)
    loss = nn.functional.cross_entropy(y_hat, y)
    start = time.perf_counter()
    for _ in range(repeats):
        float(loss.detach())
        accuracy(y_hat, y)
    return (time.perf_counter() - start) / repeats


def _medians(times: dict) -> dict:
    """The median round of each label (the upper one of an even count)."""
    return {label: sorted(t)[len(t) // 2] for label, t in times.items()}


def alternate(runs: dict, rounds: int, steps: int,
              device: torch.device) -> dict:
    """Seconds per call of each function in ``runs``, ``steps`` calls a
    round, ``rounds`` rounds in alternating order (reversed every other
    round); a line of milliseconds per round."""
    times = {label: [] for label in runs}
    for k in range(rounds):
        order = list(runs) if k % 2 == 0 else list(runs)[::-1]
        for label in order:
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                runs[label]()
            _sync(device)
            times[label].append((time.perf_counter() - start) / steps)
        print(f"  step round {k + 1}/{rounds}: " + ", ".join(
            f"{times[label][-1] * 1e3:.0f}" for label in runs)
            + " ms", flush=True)
    return times


def step_times(args, device: torch.device, variants: list[tuple],
               rounds: int, steps: int) -> dict:
    """Milliseconds per training step (forward, loss, backward, SGD) of
    each variant on the same model, batch and weights, measured
    ``rounds`` times alternately (the order reversed every round) after
    two warm-up steps each; the median round counts. A compiled
    variant's compile time (its first step) is reported apart."""
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    base = models.densenet()
    X0 = torch.rand(args.batch_size, 1, args.resize, args.resize,
                    generator=g)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    runs, compile_s = {}, {}
    for label, cl, fast, amp_, compiled in variants:
        fmt = torch.channels_last if cl else torch.contiguous_format
        net = copy.deepcopy(base).to(device, memory_format=fmt)
        model = torch.compile(net) if compiled else net
        X = X0.to(device).contiguous(memory_format=fmt)
        step = train_step(model, net, X, y, args.lr, amp_, fast)
        start = time.perf_counter()
        step()
        _sync(device)
        if compiled:
            compile_s[label] = time.perf_counter() - start
        step()
        runs[label] = step
    times = alternate(runs, rounds, steps, device)
    med = _medians(times)
    first = next(iter(med))
    rows = [dict(variant=label, ms_per_step=med[label] * 1e3,
                 speedup_vs_book_layout=med[first] / med[label],
                 rounds_ms=[t * 1e3 for t in times[label]])
            for label in med]
    host = host_read_cost(args.batch_size)
    return dict(rows=rows, rounds=rounds, steps=steps,
                batch_size=args.batch_size, resize=args.resize,
                compile_seconds=compile_s, host_reads_us=host * 1e6,
                host_reads_share=host / med[rows[-1]["variant"]])


#: Each fast path (``fast.py``) and how to turn it off alone: the
#: attribute of ``fast`` to patch and the value that disables it.
FAST_PIECES = (
    ("transitions pool before the 1x1 conv", "transition",
     lambda blk, X: None),
    ("2x2 and 1x1 convs as one matrix product", "SMALL_PIXELS", 0),
    ("small 1x1 convs as matrix products", "POINTWISE_PIXELS", 0),
)


def fast_step_ablation(args, device: torch.device, options: dict,
                       rounds: int, steps: int) -> dict:
    """Milliseconds per training step of the recipe (its layout and
    precision) with every fast path on, and with each one turned off
    alone, alternating; the median round counts. What each path saves
    is measured here, on this CPU class, not assumed."""
    step = recipe_step(args, device, options, True)

    def without(attr, off):
        with mock.patch.object(fast_module, attr, off):
            step()
    variants = {"all fast paths": step}
    variants.update({f"without: {label}": functools.partial(without, *piece)
                     for label, *piece in FAST_PIECES})
    variants["no fast paths"] = functools.partial(step, fast=False)
    for run in variants.values():
        run()
        run()
    times = alternate(variants, rounds, steps, device)
    med = {label: ms * 1e3 for label, ms in _medians(times).items()}
    base = med["all fast paths"]
    rows = [dict(variant=label, ms_per_step=ms, vs_all=ms / base)
            for label, ms in med.items()]
    return dict(rows=rows, rounds=rounds, steps=steps,
                amp=options["amp"] or "fp32",
                channels_last=options["channels_last"])


def _print_rows(rows: list, width: int, ratio: str, title: str) -> None:
    """A step table: each variant, its ms/step and its ``ratio``."""
    print(f"  {'variant':<{width}}{'ms/step':>9}{title:>{len(title) + 2}}")
    for row in rows:
        print(f"  {row['variant']:<{width}}{row['ms_per_step']:>9.1f}"
              f"{row[ratio]:>{len(title) + 1}.2f}x")


def print_fast_steps(res: dict, where: str) -> None:
    fs = res["fast_steps"]
    print(f"\nFast paths, one at a time ({where}, {fs['amp']}, "
          f"{'channels-last' if fs['channels_last'] else 'NCHW'}, median "
          f"of {fs['rounds']} alternating rounds of {fs['steps']} steps):")
    _print_rows(fs["rows"], 52, "vs_all", "vs all on")
    print("  (above 1.00x: turning that path off makes the step slower, "
          "so it pays)", flush=True)


def buffer_check(args, device: torch.device, repeats: int = 5) -> dict:
    """The pre-allocated feature buffer (each dense layer writing its
    output into one tensor instead of concatenating), tested where it
    would pay most: dense block 1's last layer (160 of 192 channels).
    Milliseconds of BatchNorm forward + backward on a channels-last
    slice of such a buffer, on a contiguous tensor (what ``torch.cat``
    gives) and of the ``torch.cat`` itself, medians of ``repeats``."""
    side = max(args.resize // 4, 1)
    n, c_in, total = args.batch_size, 160, 192
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last
    bn = nn.BatchNorm2d(c_in).to(device)
    buf = torch.randn(n, total, side, side, generator=g).to(device)
    buf = buf.contiguous(memory_format=fmt)
    parts = [buf[:, :128].contiguous(memory_format=fmt).requires_grad_(),
             buf[:, 128:c_in].contiguous(memory_format=fmt).requires_grad_()]
    view = buf[:, :c_in].requires_grad_()
    whole = buf[:, :c_in].contiguous(memory_format=fmt).requires_grad_()
    G = torch.randn(n, c_in, side, side, generator=g).to(device)
    G = G.contiguous(memory_format=fmt)
    cases = {"bn_on_buffer_slice": lambda: bn(view).backward(G),
             "bn_on_contiguous": lambda: bn(whole).backward(G),
             "cat": lambda: torch.cat(parts, 1).backward(G)}
    out = {}
    for name, f in cases.items():
        f()
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            f()
            _sync(device)
            times.append(time.perf_counter() - start)
        out[name] = sorted(times)[len(times) // 2] * 1e3
    out["shape"] = [n, c_in, side, side]
    return out


def print_steps(res: dict, where: str) -> None:
    st = res["steps"]
    print(f"\nTraining step at batch {st['batch_size']}, "
          f"{st['resize']}x{st['resize']}, {where} (median of "
          f"{st['rounds']} alternating rounds of {st['steps']} steps):")
    _print_rows(st["rows"], 46, "speedup_vs_book_layout", "vs book layout")
    for label, sec in st["compile_seconds"].items():
        print(f"  {label}: compiling took {sec:.1f} s (its first step)")
    print(f"  the loop's host reads per step (float(loss), accuracy): "
          f"{st['host_reads_us']:.0f} us = {st['host_reads_share']:.2%} of "
          f"the last variant's step", flush=True)
    b = res.get("buffer")
    if b:
        print(f"  a pre-allocated feature buffer instead of torch.cat "
              f"(not kept): BatchNorm fwd+bwd on its channels-last slice "
              f"{b['bn_on_buffer_slice']:.1f} ms vs "
              f"{b['bn_on_contiguous']:.1f} ms on a contiguous tensor; "
              f"the cat it saves: {b['cat']:.1f} ms (shape "
              f"{tuple(b['shape'])})", flush=True)


# --- loaders ---------------------------------------------------------------

def loader_rate(args, device: torch.device, batches: int,
                resize: int = 96, batch_size: int = 256) -> dict:
    """Examples/s of our tensor loader and the book's DataLoader at
    ``resize``: from ``iter()`` (worker start-up included) to the
    ``batches``-th batch on ``device``."""
    out = {}
    tensor_iter, _ = data.load_data_fashion_mnist(
        batch_size, resize=resize, root=args.data_root, fast=True,
        device=device)
    book_iter, _ = book_loaders(batch_size, resize, args.data_root)
    for name, it in (("tensor", tensor_iter), ("torchvision", book_iter)):
        n = 0
        start = time.perf_counter()
        for i, (X, y) in enumerate(it):
            X, y = X.to(device), y.to(device)
            n += len(y)
            if i + 1 == batches:
                break
        _sync(device)
        out[name] = n / (time.perf_counter() - start)
        print(f"  loader {name:<11} at {resize}x{resize}: "
              f"{out[name]:,.0f} examples/s", flush=True)
    out["ratio"] = out["tensor"] / out["torchvision"]
    out.update(resize=resize, batch_size=batch_size, batches=batches)
    return out


# --- the command -----------------------------------------------------------

def _precision(options: dict) -> str:
    """Which matmul rate the recipe's step is measured against."""
    return "bf16" if options["amp"] == "bf16" else "fp32"


def compare(args, device: torch.device, options: dict,
            res: dict) -> dict:
    """Train the loops in ``args.loops`` (``args.rounds`` times,
    alternating which goes first); the best round of each counts. With
    both loops: the ratios, achieved GFLOP/s and the ceiling."""
    loops = [who for who in ("book", "ours") if who in args.loops]
    runs = {who: [] for who in loops}
    for k in range(args.rounds):
        for who in loops if k % 2 == 0 else loops[::-1]:
            print(f"[round {k + 1}/{args.rounds}] {who}", flush=True)
            runs[who].append(run_book(args, device) if who == "book"
                             else run_ours(args, device, options))
    best = {who: max(rs, key=lambda r: r["wall_examples_per_sec"])
            for who, rs in runs.items()}
    out = {"training": dict(best, rounds=runs)}
    if len(loops) == 1:
        (who, r), = best.items()
        print(f"\n{who}: step-only {r['step_examples_per_sec']:,.0f}, "
              f"wall-clock {r['wall_examples_per_sec']:,.0f} examples/s, "
              f"{r['seconds']:.1f} s, test acc {r['test_acc']:.3f}",
              flush=True)
        return out
    rates, fpi = res["matmul_gflops"], res["flops_per_image"]
    out["ratios"] = {k: best["ours"][f"{k}_examples_per_sec"]
                     / best["book"][f"{k}_examples_per_sec"]
                     for k in ("step", "wall")}
    out["achieved"] = {}
    for who, r in best.items():
        g = fpi * r["step_examples_per_sec"] / GIGA
        out["achieved"][who] = dict(gflops=g, of_fp32=g / rates["fp32"],
                                    of_bf16=g / rates["bf16"])
    precision = _precision(options)
    ceiling = rates[precision] * GIGA / fpi
    out["bound"] = dict(
        precision=precision, step_examples_per_sec_at_matmul_rate=ceiling,
        vs_book_step=ceiling / best["book"]["step_examples_per_sec"])
    print_table(dict(res, **out))
    ach = out["achieved"]
    print(f"  achieved: book {ach['book']['gflops']:,.0f} GFLOP/s = "
          f"{ach['book']['of_fp32']:.0%} of the fp32 matmul rate; ours "
          f"{ach['ours']['gflops']:,.0f} GFLOP/s = "
          f"{ach['ours'][f'of_{precision}']:.0%} of the {precision} rate")
    print(f"  ceiling: at 100% of the {precision} matmul rate a step "
          f"would do {ceiling:,.0f} examples/s = "
          f"{out['bound']['vs_book_step']:.2f}x the book's step-only "
          f"rate", flush=True)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto",
                   help="auto (cuda if available), cpu, cuda or cuda:N")
    p.add_argument("--recipe", choices=["auto", *settings.RECIPES],
                   default="auto",
                   help="batch size, lr, image size and options from "
                        "settings.RECIPES / TRAIN_OPTIONS (auto: by device)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--resize", type=int)
    p.add_argument("--amp", choices=amp.AMP_CHOICES,
                   help="ours: override the recipe's amp")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   default=None, help="ours: override the recipe's layout")
    p.add_argument("--compile", action="store_true",
                   help="ours: torch.compile the model (compile time "
                        "counts in wall-clock); the step table adds a "
                        "compiled variant")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="ours: train_ch6's fast paths (fast.py)")
    p.add_argument("--subset", type=int,
                   help="class-balanced training subset (both loops)")
    p.add_argument("--test-subset", type=int)
    p.add_argument("--rounds", type=int, default=1,
                   help="train both loops this many times, alternating "
                        "which goes first; the best round of each counts")
    p.add_argument("--step-rounds", type=int, default=5,
                   help="rounds of the step table, variants alternating "
                        "(0 skips)")
    p.add_argument("--step-batches", type=int, default=4,
                   help="training steps per variant and round")
    p.add_argument("--loader-batches", type=int, default=40,
                   help="batches per loader at 96x96 (0 skips)")
    p.add_argument("--profile-steps", type=int, default=3,
                   help="steps profiled by operator (0 skips)")
    p.add_argument("--loops", nargs="+", choices=["book", "ours"],
                   default=["book", "ours"],
                   help="training loops to run (both: side by side)")
    p.add_argument("--no-train", action="store_true",
                   help="skip the training comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--data-root", help="folder with Fashion-MNIST")
    p.add_argument("--progress", default="auto",
                   help="our loop's progress display")
    p.add_argument("--json", help="also write the results to this file")
    return p


def _where(res: dict) -> str:
    """Device, CPU class and CPU, threads: said on every table."""
    if res["device"] != "cpu":
        return f"{res['device']} ({res.get('gpu', '')})"
    return (f"cpu, {res['cpu_class']['name']} class, {res['cpu']}, "
            f"{res['threads']} threads")


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def print_table(res: dict) -> None:
    book, ours = res["training"]["book"], res["training"]["ours"]
    r = res["ratios"]
    print(f"\nTraining, {res['settings']} on {_where(res)}:")
    print(f"  {'':<28}{'book (d2l)':>12}{'ours':>12}{'ours/book':>11}")
    for label, key, ratio in (
            ("step-only examples/s", "step_examples_per_sec", r["step"]),
            ("wall-clock examples/s", "wall_examples_per_sec", r["wall"])):
        print(f"  {label:<28}{book[key]:>12,.0f}{ours[key]:>12,.0f}"
              f"{ratio:>10.2f}x")
    print(f"  {'seconds (whole call)':<28}{book['seconds']:>12.1f}"
          f"{ours['seconds']:>12.1f}")
    print(f"  {'test accuracy':<28}{book['test_acc']:>12.3f}"
          f"{ours['test_acc']:>12.3f}")
    print("  The 2x target is judged on wall-clock examples/s (what a "
          "user waits for).")


def main(argv: list[str] | None = None) -> dict:
    """Run the speed benchmark; print tables; return the results."""
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = (devices.default_device() if args.device == "auto"
              else torch.device(args.device))
    name = args.recipe if args.recipe != "auto" else (
        "gpu" if device.type == "cuda" else "cpu")
    recipe = settings.RECIPES[name]
    # The book's loop trains at the book's learning rate (d2l-zh 2.x,
    # 0.1) unless --lr sets both; ours at its recipe's.
    args.book_lr = args.lr or settings.RECIPES["gpu"]["lr"]
    for key in ("batch_size", "lr", "resize"):
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
    n_train = args.subset or 60_000
    if n_train < 5 * args.batch_size:
        raise ValueError(
            f"--subset {n_train} gives fewer than 5 batches of "
            f"{args.batch_size}; d2l.train_ch6 needs at least 5")
    load_before = _load()
    res = dict(device=str(device), threads=torch.get_num_threads(),
               cpu=_cpu_name(), torch=torch.__version__,
               cpu_count=os.cpu_count(), load_before=load_before,
               settings=dict(recipe=name, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr,
                             book_lr=args.book_lr,
                             resize=args.resize, subset=args.subset,
                             test_subset=args.test_subset, seed=args.seed))
    if args.step_rounds < 0 or args.step_batches < 1:
        raise ValueError("--step-rounds must be >= 0 and --step-batches "
                         ">= 1")
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
    res["cpu_class"] = cls = cpu_class()
    print(f"Speed benchmark on {_where(res)}, torch {torch.__version__}, "
          f"load average {load_before}", flush=True)
    held = ", ".join(f"{k}={v}" for k, v in cls["held"].items())
    print(f"  CPU class: ATen kernels {cls['aten']}, {cls['bf16_note']}"
          + (f"; held by {held}" if held else ""), flush=True)
    if load_before and device.type == "cpu" and \
            load_before > (os.cpu_count() or 1):
        print(f"  note: load average {load_before:.1f} exceeds the "
              f"{os.cpu_count()} CPUs; rates are depressed and noisy, "
              f"ratios measured side by side still compare", flush=True)
    options = settings.train_options(name, device, amp=args.amp,
                                     channels_last=args.channels_last)
    options["fast"] = args.fast
    res["options"] = dict(options, compile=args.compile)
    if options["amp"] is None and device.type == "cpu":
        res["cpu_amp"] = str(amp.cpu_amp_choice())

    # yardsticks
    n = 8192 if device.type == "cuda" else 2048
    bf16_ok = device.type == "cuda" or amp.cpu_bf16_support()[0]
    rates = {"fp32": matmul_rate(torch.float32, device, n)}
    # Without native bf16 a CPU's bf16 matmul is orders of magnitude
    # slower: a smaller one tells the same story in a second.
    bf16_n = n if bf16_ok else 256
    rates["bf16"] = matmul_rate(torch.bfloat16, device, bf16_n)
    res["matmul_gflops"] = dict(rates, n=n, bf16_n=bf16_n)
    res["flops_per_image"] = flops_per_image(args.resize)
    print(f"  matmul {n}x{n}: fp32 {rates['fp32']:,.0f} GFLOP/s, bf16 "
          f"{rates['bf16']:,.0f} GFLOP/s"
          + ("" if bf16_ok else f" (at {bf16_n}x{bf16_n}: this CPU has "
             f"no native bf16)")
          + f"; one training image at {args.resize}x{args.resize}: "
            f"{res['flops_per_image'] / GIGA:.4f} GFLOP", flush=True)

    if args.step_rounds:
        bf16_native = device.type == "cuda" or cls["onednn_bf16"]
        res["steps"] = step_times(
            args, device, step_variants(bf16_native, args.compile),
            args.step_rounds, args.step_batches)
        res["buffer"] = buffer_check(args, device)
        print_steps(res, _where(res))
        if args.fast and device.type == "cpu":
            res["fast_steps"] = fast_step_ablation(
                args, device, options, args.step_rounds, args.step_batches)
            print_fast_steps(res, _where(res))

    if not args.no_train:
        res.update(compare(args, device, options, res))

    if args.profile_steps:
        prof = op_profile(args, device, options, args.profile_steps)
        res["profile"] = prof
        print(f"\nWhere our step's time goes ({_where(res)}, "
              f"{prof['clock']}, {prof['ms_per_step']:.1f} ms/step, batch "
              f"{args.batch_size}): "
              + ", ".join(f"{k} {v:.0%}" for k, v in prof["groups"].items()
                          if v >= 0.005))
        for row in prof["top"]:
            print(f"  {row['op']:<44}{row['ms_per_step']:>9.1f} ms"
                  f"{row['share']:>7.1%}")
        precision = _precision(options)
        rate = rates[precision]
        for kind, c in prof["conv"].items():
            what = ("fast paths' matmuls" if kind == "matmul"
                    else f"conv {kind}")
            print(f"  {what}: {c['gflop_per_step']:.2f} GFLOP in "
                  f"{c['ms_per_step']:.1f} ms = {c['gflops']:,.0f} GFLOP/s "
                  f"({c['gflops'] / rate:.0%} of the {precision} matmul "
                  f"rate)")
        bound = remaining_bound(prof, rate)
        prof["bound"] = bound
        line = (f"  bound that remains: every convolution at the "
                f"{precision} matmul rate ({bound['conv_ms']:.0f} -> "
                f"{bound['conv_ms_at_matmul_rate']:.0f} ms), the other "
                f"{bound['other_ms']:.0f} ms as measured: a step "
                f"{bound['speedup']:.2f}x faster")
        if "ratios" in res:
            bound["vs_book_step"] = res["ratios"]["step"] * bound["speedup"]
            line += (f", ours/book step-only at most "
                     f"{bound['vs_book_step']:.2f}x")
        print(line, flush=True)

    if args.loader_batches:
        print("\nLoaders (batch 256, the book's GPU batch size):",
              flush=True)
        res["loader"] = loader_rate(args, device, args.loader_batches)
        print(f"  tensor/torchvision: {res['loader']['ratio']:.2f}x")

    res["load_after"] = _load()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
        print(f"wrote {args.json}")
    return res


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
