"""Memory-efficient DenseNet-121: peak memory and step time, ours vs
torchvision, on the same input in one run.

    python benchmarks/bench_memory_efficient.py [--batch-size 16]
        [--size 224] [--repeats 3] [--device cpu|cuda]

Four models with the same weights: ours standard, ours
``memory_efficient=True``, torchvision standard and torchvision
``memory_efficient=True``. One training step each (forward, cross-entropy,
backward; no optimizer) measured with ``d2l_densenet.peak_memory`` (CUDA:
``max_memory_allocated``; CPU: the allocator events of ``torch.profiler``)
and ``d2l_densenet.step_time`` (median of ``--repeats``). Ratios are
against ours standard.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time

import torch
import torchvision

from d2l_densenet import densenet121, peak_memory, step_time
from d2l_densenet.measure import MiB


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224,
                   help="image height = width (>= 29)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed steps per model (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available()
                   else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (CPU)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    ours = densenet121()
    tv = torchvision.models.densenet121(weights=None)
    tv.load_state_dict(ours.state_dict(), strict=True)   # same weights
    tv_eff = torchvision.models.densenet121(weights=None,
                                            memory_efficient=True)
    tv_eff.load_state_dict(ours.state_dict(), strict=True)
    ours_eff = copy.deepcopy(ours)
    ours_eff.memory_efficient = True
    models = {"ours standard": ours,
              "ours memory_efficient": ours_eff,
              "torchvision standard": tv,
              "torchvision memory_efficient": tv_eff}

    g = torch.Generator().manual_seed(1)
    X = torch.randn(args.batch_size, 3, args.size, args.size,
                    generator=g).to(device)
    y = torch.randint(0, 1000, (args.batch_size,), generator=g).to(device)
    print(f"DenseNet-121, batch {args.batch_size}, {args.size}x{args.size}, "
          f"device {device} ({torch.get_num_threads()} CPU threads), "
          f"torch {torch.__version__}, torchvision "
          f"{torchvision.__version__}, {platform.processor() or ''}"
          .rstrip(", "), flush=True)

    rows = {}
    for name, net in models.items():
        net.to(device).train()
        start = time.perf_counter()
        mem = peak_memory(net, X, y)
        seconds = step_time(net, X, y, warmup=args.warmup,
                            repeats=args.repeats)
        rows[name] = (mem, seconds)
        print(f"  measured {name}: {mem}; step {seconds:.2f} s "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        net.cpu()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    base_mem, base_s = rows["ours standard"][0].extra, rows["ours standard"][1]
    head = (f"{'model':<30}{'step MiB':>10}{'peak MiB':>10}{'x mem':>7}"
            f"{'step s':>8}{'x time':>8}")
    print()
    print(head)
    print("-" * len(head))
    for name, (mem, seconds) in rows.items():
        print(f"{name:<30}{mem.extra / MiB:>10.0f}{mem.peak / MiB:>10.0f}"
              f"{mem.extra / base_mem:>7.2f}{seconds:>8.2f}"
              f"{seconds / base_s:>8.2f}")
    print("\nstep MiB: memory one training step allocates on top of the "
          "model and input\n(activations, gradients); peak = that + "
          "parameters, buffers, input. x mem, x time: ratio to ours "
          "standard.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
