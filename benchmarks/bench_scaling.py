"""How the memory of one dense block grows with its depth L, per
``memory_efficient`` level, with the fitted growth exponent.

    python benchmarks/bench_scaling.py [--depths 8 16 32 64]
        [--block bc|chapter] [--growth-rate 12] [--batch-size 8]
        [--size 32] [--device cpu|cuda] [--json build/benchmarks.json]

For each depth L one dense block (DenseNet-BC layers by default; the
chapter's conv blocks with ``--block chapter``) with ``2 * growth_rate``
input channels runs one training step (loss: sum of the output) at
every level, measured with ``d2l_densenet.peak_memory``. Activation
memory is the step's memory minus the parameter gradients it allocates
(those grow with L^2 at any level, as the weights do). The exponent b of
activations ~ L^b comes from a least-squares line through
(log L, log activations) (``scipy.stats.linregress``): about 2 for the
standard block, where layer i stores the concatenation of all i earlier
outputs, and about 1 for the memory-efficient levels, which keep a fixed
amount per layer (Pleiss et al., 2017).

``main(argv)`` returns the rows and exponents and merges them into
``--json`` under "scaling" (``benchmarks/run_all.py`` calls it).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from scipy import stats

from d2l_densenet import (
    MEMORY_EFFICIENT_LEVELS,
    DenseBlock,
    DenseBlockBC,
    peak_memory,
)
from d2l_densenet.measure import MiB

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory_efficient import JSON, merge_json  # noqa: E402

LEVELS = (False, *MEMORY_EFFICIENT_LEVELS)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64],
                   help="layers per block (at least two depths)")
    p.add_argument("--block", choices=("bc", "chapter"), default="bc")
    p.add_argument("--growth-rate", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=32,
                   help="feature-map height = width")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available()
                   else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=str(JSON),
                   help="merge the results into this file ('' = don't)")
    return p


def block(kind: str, depth: int, growth_rate: int, level):
    torch.manual_seed(0)
    if kind == "bc":
        return DenseBlockBC(depth, 2 * growth_rate, growth_rate,
                            memory_efficient=level)
    return DenseBlock(depth, 2 * growth_rate, growth_rate,
                      memory_efficient=level)


def fit_exponent(depths, values) -> dict:
    """Slope (and its standard error, r^2) of log(values) against
    log(depths) over all depths, and the slope between the two deepest."""
    if min(values) <= 0:   # too small to see: nothing to fit
        return {"exponent": math.nan, "stderr": math.nan, "r2": math.nan,
                "deepest_exponent": math.nan}
    fit = stats.linregress([math.log(d) for d in depths],
                           [math.log(v) for v in values])
    deepest = (math.log(values[-1] / values[-2])
               / math.log(depths[-1] / depths[-2]))
    return {"exponent": fit.slope, "stderr": fit.stderr,
            "r2": fit.rvalue ** 2, "deepest_exponent": deepest}


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    depths = sorted(set(args.depths))
    if len(depths) < 2 or depths[0] < 1:
        raise ValueError(f"--depths needs at least two positive depths, "
                         f"got {args.depths}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    k = args.growth_rate
    g = torch.Generator().manual_seed(1)
    X = torch.randn(args.batch_size, 2 * k, args.size, args.size,
                    generator=g).to(device)
    names = ["standard" if lv is False else lv for lv in LEVELS]
    print(f"One dense block ({args.block}, growth rate {k}, {2 * k} input "
          f"channels), batch {args.batch_size}, {args.size}x{args.size}, "
          f"{device}: activation MiB (step memory - parameter gradients)",
          flush=True)
    print(f"{'L':>4}" + "".join(f"{n:>12}" for n in names) + f"{'s':>6}",
          flush=True)
    rows = []
    for depth in depths:
        start = time.perf_counter()
        row = {"depth": depth}
        for name, level in zip(names, LEVELS, strict=True):
            net = block(args.block, depth, k, level).to(device).train()
            m = peak_memory(net, X)
            grads = sum(p.numel() * p.element_size()
                        for p in net.parameters())
            row[name] = {"activations_mib": (m.extra - grads) / MiB,
                         "step_mib": m.extra / MiB, "peak_mib": m.peak / MiB}
            del net
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        print(f"{depth:>4}" + "".join(
            f"{row[n]['activations_mib']:>12.1f}" for n in names)
            + f"{time.perf_counter() - start:>6.0f}", flush=True)
    exponents = {n: fit_exponent(depths, [r[n]["activations_mib"]
                                          for r in rows]) for n in names}
    print(f"{'b':>4}" + "".join(f"{exponents[n]['exponent']:>12.2f}"
                                for n in names)
          + "  <- b of activations ~ L^b, fitted over all L")
    print(f"{'b*':>4}" + "".join(
        f"{exponents[n]['deepest_exponent']:>12.2f}" for n in names)
        + f"  <- b between L = {depths[-2]} and {depths[-1]}")
    print("The standard block keeps a*L + c*L^2 (each layer its own "
          "bottleneck, BN\noutputs, and the concatenation of all earlier "
          "outputs), so its slope rises\ntoward 2 with depth; the "
          "memory-efficient levels keep a fixed amount per layer:\n"
          "slope 1, linear in depth.")
    res = dict(block=args.block, growth_rate=k, input_channels=2 * k,
               batch_size=args.batch_size, size=args.size,
               device=str(device), threads=torch.get_num_threads(),
               torch=torch.__version__, depths=depths, rows=rows,
               exponents=exponents)
    merge_json(args.json, "scaling", res)
    return res


if __name__ == "__main__":
    main()
