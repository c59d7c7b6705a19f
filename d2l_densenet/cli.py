"""The command line: ``python -m d2l_densenet`` trains the chapter's
DenseNet (or ResNet-18) on Fashion-MNIST with the book's recipe on a GPU
or a reduced one on a CPU (``settings.RECIPES``).

The same command under ``torchrun`` trains on several processes with
DistributedDataParallel (NCCL on GPUs, gloo on the CPU)::

    torchrun --standalone --nproc_per_node=4 -m d2l_densenet --sync-bn

``--batch-size`` is the global batch (the book's 256 stays 256, split over
the processes). ``--checkpoint-dir DIR`` saves every epoch and
``--resume`` continues from the latest checkpoint there.

Exit status: 0 done; 2 bad input, refused before any data is loaded in
one line naming the option, the value and what is accepted; 1 a failure
while running (a diverged loss, a checkpoint that cannot be used, a full
disk, out of memory, an internal error), also in one line, with
``--debug`` showing the traceback; 130 interrupted. The console script
``d2l-densenet`` is :func:`main`.

What it prints is in the reader's language: ``--lang en|zh``, else
``$D2L_DENSENET_LANG`` (which the Chinese notebooks' ``choose(...,
lang="zh")`` sets), else English; the book's per-epoch lines of
``train_ch6`` stay as the book prints them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import sys
import textwrap
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from . import checkpoints, data, devices, models, settings
from .amp import AMP_CHOICES
from .checkpoints import CheckpointError
from .distributed import RankFailedError, agreed, failures_named, timeout
from .messages import LANG_ENV, LANGUAGES, language, text, using
from .train import OPTIMIZERS, DivergedError, train_ch6

__all__ = ["main", "parser", "train", "UsageError"]

PROG = "python -m d2l_densenet"
#: Fashion-MNIST: examples in the training and test sets, classes.
TRAIN_SIZE, TEST_SIZE, NUM_CLASSES = 60_000, 10_000, 10
MAX_SEED = 2**32 - 1
#: ``--progress`` on the command line (the Animator is for notebooks).
PROGRESS = ("auto", "tqdm", "print", "none")
#: ``torch.OutOfMemoryError`` from torch 2.5, ``torch.cuda``'s before.
_OOM = (getattr(torch, "OutOfMemoryError", None)
        or getattr(torch.cuda, "OutOfMemoryError", None))
#: Failures while running that are explained in one line (exit 1).
KNOWN_FAILURES = (DivergedError, CheckpointError, RankFailedError, ValueError,
                  OSError)


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def _checked(convert, ok, accepted: str):
    """An argparse ``type``: ``convert(text)`` must work and pass ``ok``;
    otherwise argparse reports the option, ``accepted`` and the text."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(
                f"expected {accepted}, got {text!r}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive int")
_resize = _checked(int, lambda v: v >= 0,
                   "an image side in pixels (0 keeps 28)")
_learning_rate = _checked(float, lambda v: math.isfinite(v) and v > 0,
                          "a finite number > 0 (the book uses 0.1)")
_seed = _checked(int, lambda v: 0 <= v <= MAX_SEED,
                 f"an int from 0 to {MAX_SEED}")
_arch = _checked(lambda text: tuple(int(n) for n in text.split(",")),
                 lambda arch: min(arch) >= 1,
                 "convs per dense block as positive ints separated by "
                 "commas (the book: 4,4,4,4)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, no usage block: the option, the value, what is
        accepted."""
        self.exit(2, text("cli.usage", message=message, prog=PROG) + "\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter,
                 argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where there is none (the
    recipe decides: the help says so)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


EPILOG = f"""\
examples:
  a quick CPU run:
    {PROG} --epochs 1 --subset 6000
  save every epoch, then continue (in the same precision):
    {PROG} --checkpoint-dir runs/a
    {PROG} --checkpoint-dir runs/a --resume
  two processes (CPU: gloo; GPU: NCCL, one process per GPU):
    torchrun --standalone --nproc_per_node=2 -m d2l_densenet --sync-bn

exit status: 0 done, 1 failed while running, 2 bad input, 130 interrupted
"""


def parser() -> argparse.ArgumentParser:
    gpu, cpu = settings.RECIPES["gpu"], settings.RECIPES["cpu"]
    p = _Parser(
        prog=PROG, formatter_class=_Formatter, epilog=EPILOG,
        description=textwrap.fill(
            "Train the chapter's DenseNet (or ResNet-18) on Fashion-MNIST. "
            f"Unset options come from the recipe: GPU {gpu}, CPU {cpu}. "
            "Under torchrun it trains with DistributedDataParallel on "
            "every process.", 79))
    p.add_argument("--model", choices=["densenet", "resnet18"],
                   default="densenet",
                   help="the chapter's DenseNet or the book's ResNet-18 "
                        "(to compare)")
    p.add_argument("--recipe", choices=["auto", *settings.RECIPES],
                   default="auto",
                   help="settings to start from (auto: gpu on CUDA, else "
                        "cpu)")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, mps or xpu (under "
                        "torchrun: auto, cpu or cuda, each process takes "
                        "cuda:LOCAL_RANK)")
    p.add_argument("--epochs", type=_positive_int,
                   help="passes over the training set (default: the "
                        "recipe's)")
    p.add_argument("--lr", type=_learning_rate,
                   help="learning rate (default: the recipe's, 0.1)")
    p.add_argument("--batch-size", type=_positive_int,
                   help="the global batch, split over torchrun's processes "
                        "(default: the recipe's)")
    p.add_argument("--resize", type=_resize,
                   help="image side; 0 keeps 28 (too small for DenseNet) "
                        "(default: the recipe's)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                   help="sgd as the book, or adam")
    p.add_argument("--amp", choices=list(AMP_CHOICES),
                   help="mixed precision (default: the recipe's; CPU: "
                        "auto = bf16 where measured faster; --resume keeps "
                        "the checkpoint's)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="channels-last layout (default: the recipe's)")
    p.add_argument("--lr-schedule", choices=list(settings.LR_SCHEDULES),
                   help="default: the recipe's (GPU constant, CPU cosine)")
    p.add_argument("--loader", choices=["tensor", "torchvision"],
                   default="tensor",
                   help="tensor: whole set on the device (fast); "
                        "torchvision: the book's DataLoader")
    p.add_argument("--subset", type=_positive_int,
                   help=f"class-balanced training subset size "
                        f"({NUM_CLASSES}..{TRAIN_SIZE}; default: all)")
    p.add_argument("--test-subset", type=_positive_int,
                   help=f"class-balanced test subset size "
                        f"({NUM_CLASSES}..{TEST_SIZE}; default: all)")
    p.add_argument("--transition-pool", choices=["avg", "max"],
                   default="avg",
                   help="the transition layers' pooling: avg (the book, "
                        "the paper) or max (exercise)")
    p.add_argument("--head-pool", choices=sorted(models.HEAD_POOLS),
                   default="avg",
                   help="the head's global pooling: avg (d2l 1.0, the "
                        "paper) or max (d2l-en v0.14.0-v0.17.3, d2l-zh "
                        "2.0.0-alpha0..beta0)")
    p.add_argument("--arch", type=_arch,
                   help="densenet: convs per dense block (default 4,4,4,4)")
    p.add_argument("--growth-rate", type=_positive_int,
                   help="densenet: channels each conv adds (default 32)")
    p.add_argument("--num-channels", type=_positive_int,
                   help="densenet: stem channels (default 64)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="fixes initialisation and data order")
    p.add_argument("--data-root",
                   help="folder with Fashion-MNIST (default: found or "
                        "downloaded)")
    p.add_argument("--progress", choices=PROGRESS, default="auto",
                   help="a tqdm bar, a line per epoch, or nothing (auto: "
                        "tqdm on a terminal, else print)")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: batch statistics over the global "
                        "batch (SyncBatchNorm)")
    p.add_argument("--checkpoint-dir",
                   help="save the training state here after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in "
                        "--checkpoint-dir")
    p.add_argument("--lang", choices=LANGUAGES,
                   help=f"language of what is printed: en or zh (default: "
                        f"${LANG_ENV}, else en); the per-epoch lines stay "
                        f"as the book prints them")
    p.add_argument("--debug", action="store_true",
                   help="on a failure, show the traceback")
    return p


def _lang_option(argv: list[str]) -> str | None:
    """``--lang``'s value if ``argv`` gives a valid one, before the whole
    command line is parsed (so that even a usage error is said in it)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--lang")
    with contextlib.suppress(SystemExit):
        lang = p.parse_known_args(argv)[0].lang
        return lang if lang in LANGUAGES else None
    return None


def _torchrun() -> tuple[int, int, int, int]:
    """``(rank, world_size, local_rank, local_world_size)`` from the
    variables torchrun sets; ``(0, 1, 0, 1)`` without torchrun."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    defaults = ("0", "1", "0", os.environ.get("WORLD_SIZE", "1"))
    try:
        return tuple(int(os.environ.get(name, default))
                     for name, default in zip(names, defaults, strict=True))
    except ValueError:
        raise ValueError(
            "the torchrun variables " + ", ".join(
                f"{n}={os.environ.get(n)!r}" for n in names)
            + " must be ints; start the command with torchrun") from None


def _device(text: str, local_rank: int, local_world: int,
            world: int) -> torch.device:
    """``--device`` as a torch.device, checked against what is there."""
    spec = text.strip().lower()
    if spec == "auto":
        spec = devices.default_device().type
    m = re.fullmatch(r"cpu|mps|xpu|cuda(?::(\d+))?", spec)
    if not m:
        raise ValueError(f"--device {text!r} is not one of auto, cpu, "
                         f"cuda, cuda:N, mps or xpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec in ("mps", "xpu"):  # one device, one process (untested here)
        if devices.default_device().type != spec:
            raise ValueError(f"--device {spec}: PyTorch sees no {spec} "
                             f"device here; use --device cpu or auto")
        if world > 1:
            raise ValueError(f"--device {spec} runs one process; torchrun "
                             f"needs cuda or cpu")
        return torch.device(spec)
    if not torch.cuda.is_available():
        raise ValueError(f"--device {text}: no CUDA GPU is visible to "
                         f"PyTorch (torch.cuda.is_available() is False); "
                         f"use --device cpu or auto")
    count = torch.cuda.device_count()
    if world > 1:
        if m.group(1) is not None:
            raise ValueError(f"--device {text} under torchrun: each process "
                             f"uses cuda:LOCAL_RANK; pass --device cuda or "
                             f"auto")
        if local_world > count:
            raise ValueError(
                f"torchrun starts {local_world} processes on this node but "
                f"only {count} GPU(s) are visible; use --nproc_per_node="
                f"{count} or --device cpu")
        return torch.device("cuda", local_rank)
    index = int(m.group(1) or 0)
    if index >= count:
        raise ValueError(f"--device {text}: only {count} GPU(s) are "
                         f"visible (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)


def _check(args, world: int) -> None:
    """Refuse combinations and paths that cannot work, before any data
    is loaded."""
    for name, value, size in (("--subset", args.subset, TRAIN_SIZE),
                              ("--test-subset", args.test_subset,
                               TEST_SIZE)):
        if value is not None and not NUM_CLASSES <= value <= size:
            raise ValueError(
                f"{name} {value}: expected an int from {NUM_CLASSES} (one "
                f"image per class) to {size} (the whole set)")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        raise ValueError(f"--data-root {args.data_root}: no such directory "
                         f"(it should hold the Fashion-MNIST files)")
    if args.checkpoint_dir is not None and Path(
            args.checkpoint_dir).exists() and not Path(
            args.checkpoint_dir).is_dir():
        raise ValueError(f"--checkpoint-dir {args.checkpoint_dir} is a "
                         f"file, not a directory")
    if args.resume and args.checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir DIR (the folder "
                         "holding the checkpoints)")
    if args.model != "densenet":
        for name in ("arch", "growth_rate", "num_channels"):
            if getattr(args, name) is not None:
                raise ValueError(f"--{name.replace('_', '-')} applies to "
                                 f"--model densenet only, not "
                                 f"{args.model}")


def _build(args) -> torch.nn.Module:
    if args.model != "densenet":
        return models.resnet18()
    sizes = {k: getattr(args, k) for k in ("arch", "growth_rate",
                                           "num_channels")
             if getattr(args, k) is not None}
    return models.densenet(transition_pool=args.transition_pool,
                           head_pool=args.head_pool, **sizes)


def _check_resize(net, resize: int) -> None:
    side, need = resize or 28, net.min_input_size()
    if side < need:
        raise ValueError(text("cli.too_small", resize=resize, side=side,
                              model=type(net).__name__, need=need,
                              use=max(need, 32)))


def _recipe(args, device: torch.device, world: int) -> tuple[str, dict]:
    name = args.recipe
    if name == "auto":
        name = "cpu" if device.type == "cpu" else "gpu"
    recipe = dict(settings.RECIPES[name])
    for key in recipe:
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    if recipe["batch_size"] % world:
        raise ValueError(
            f"--batch-size {recipe['batch_size']} is the global batch and "
            f"must be a multiple of the {world} processes")
    if args.amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 "
                         "on the CPU")
    return name, recipe


def _amp(args) -> str | None:
    """``--amp`` for this run. On ``--resume`` the precision is the
    checkpoint's (it was measured, or asked for, when the run began):
    not measured again; an ``--amp`` that differs from it is refused."""
    found = (checkpoints.latest_settings(args.checkpoint_dir)
             if args.resume else None)
    if found is None or "amp" not in found[1]:
        return args.amp  # None: the recipe's, resolved by train_options
    path, saved = found[0], found[1]["amp"] or "none"
    if args.amp in (None, "auto"):
        print(text("cli.amp_resumed", amp=saved, path=path))
        return saved
    if args.amp != saved:
        raise CheckpointError(
            f"cannot resume from {path}: it was trained with amp {saved}, "
            f"this run asks --amp {args.amp}; leave --amp out to continue "
            f"in {saved}, or use another --checkpoint-dir")
    return args.amp


def train(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, train, print the final test accuracy and return
    the history. Bad input raises :class:`UsageError` before any data
    is loaded. What it prints is in ``--lang`` (else
    ``$D2L_DENSENET_LANG``, else English)."""
    args = parser().parse_args(argv)
    try:
        lang = language(args.lang)
    except ValueError as e:
        raise UsageError(str(e)) from e
    with using(lang):
        try:
            rank, world, local_rank, local_world = _torchrun()
            device = _device(args.device, local_rank, local_world, world)
            _check(args, world)
            name, recipe = _recipe(args, device, world)
            net = _build(args)
            _check_resize(net, recipe["resize"])
            wait = timeout()
        except ValueError as e:
            raise UsageError(str(e)) from e
        # Only rank 0 prints; the others' output would repeat it.
        quiet = (contextlib.redirect_stdout(io.StringIO()) if rank
                 else contextlib.nullcontext())
        with quiet:
            return _train(args, device, name, recipe, net, rank, world,
                          wait)


def _train(args, device, name, recipe, net, rank, world, wait) -> dict:
    note = "" if name == "gpu" else text("cli.reduced",
                                         book=settings.RECIPES["gpu"])
    print(text("cli.recipe", name=name.upper(), device=device,
               recipe=recipe) + note)
    if world > 1:
        print(text("cli.processes", world=world,
                   each=recipe["batch_size"] // world))
    elif args.sync_bn:
        print(text("cli.sync_bn_alone"))
    if world > 1:
        # A bounded wait in every collective: what the processes cannot
        # agree on (one hangs, or fails inside a collective) ends after
        # it, if torchrun has not ended the job before.
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device, timeout=wait)
        else:
            dist.init_process_group("gloo", timeout=wait)
    try:
        with failures_named():
            return _run(args, device, name, recipe, net, rank, world)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run(args, device, name, recipe, net, rank, world) -> dict:
    """Load the data, train, say the final accuracy."""
    with agreed():  # data missing in one process stops them all
        torch.manual_seed(args.seed)
        train_iter, test_iter = data.load_data_fashion_mnist(
            recipe["batch_size"], resize=recipe["resize"] or None,
            root=args.data_root, fast=(args.loader == "tensor"),
            device=device, subset=args.subset,
            test_subset=args.test_subset, rank=rank, world_size=world,
            seed=args.seed)  # the data order: never the global RNG
    config = {k: getattr(args, k) for k in (
        "resize", "subset", "test_subset", "loader", "seed", "head_pool",
        "transition_pool")}
    config["resize"] = recipe["resize"]
    options = settings.train_options(
        name, device, amp=_amp(args), channels_last=args.channels_last,
        lr_schedule=args.lr_schedule)
    start = time.perf_counter()
    history = train_ch6(
        net, train_iter, test_iter, recipe["epochs"], recipe["lr"],
        device, optimizer=args.optimizer, amp=options["amp"],
        channels_last=options["channels_last"],
        scheduler=settings.lr_scheduler(options["lr_schedule"],
                                        recipe["epochs"],
                                        num_batches=len(train_iter)),
        progress=args.progress,
        seed=args.seed, sync_bn=args.sync_bn,
        checkpoint_dir=args.checkpoint_dir, resume=args.resume,
        config=config)
    minutes = (time.perf_counter() - start) / 60
    if history["test_examples"]:
        print(text("cli.final_tested", acc=history["test_acc"][-1],
                   n=history["test_examples"], minutes=minutes))
    else:
        print(text("cli.final_saved", acc=history["test_acc"][-1],
                   minutes=minutes))
    return history


def _is_oom(e: BaseException) -> bool:
    return (_OOM is not None and isinstance(e, _OOM)) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e))


def main(argv: list[str] | None = None) -> int:
    """The shell's entry point (``d2l-densenet``, ``python -m
    d2l_densenet``): train, and return the exit status: 0 done, 2 bad
    input, 1 a failure while running, 130 interrupted. Failures are one
    line on stderr; ``--debug`` adds the traceback."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug = "--debug" in argv
    rank, world = os.environ.get("RANK", "0"), os.environ.get(
        "WORLD_SIZE", "1")
    who = f"[rank {rank}] " if world not in ("", "1") else ""
    try:
        lang = language(_lang_option(argv))
    except ValueError as e:  # a bad $D2L_DENSENET_LANG: said in English
        print(who + text("cli.error", "en", message=e), file=sys.stderr)
        return 2
    with using(lang):
        return _main(argv, debug, rank, who)


def _main(argv: list[str], debug: bool, rank: str, who: str) -> int:
    try:
        train(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        print(who + text("cli.interrupted"), file=sys.stderr)
        return 130
    except UsageError as e:
        print(who + text("cli.error", message=e), file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            traceback.print_exc()
        if _is_oom(e):
            first = (str(e).splitlines() or [""])[0]
            message = text("cli.out_of_memory", first=first)
        elif isinstance(e, KNOWN_FAILURES):
            message = str(e)
        else:
            message = text("cli.internal", kind=type(e).__name__, error=e)
        # another process's failure is said by rank 0 (and by the failed
        # process itself); contact lost with no process named, by each
        if not (isinstance(e, RankFailedError) and e.rank is not None
                and rank != "0"):
            print(who + text("cli.error", message=message), file=sys.stderr)
        return 1
    return 0
