"""Memory-efficient DenseNet-121: peak memory and step time of every
``memory_efficient`` level, ours vs torchvision, on the same input in one
run.

    python benchmarks/bench_memory_efficient.py [--batch-size 16]
        [--size 224] [--rounds 3] [--device cpu|cuda] [--threads N]
        [--json build/benchmarks.json]

Models with the same weights: ours standard, ours at each level of
``d2l_densenet.MEMORY_EFFICIENT_LEVELS`` ("bottleneck" is
``memory_efficient=True``), torchvision standard and torchvision
``memory_efficient=True``. One training step each (forward,
cross-entropy, backward; no optimizer), measured with
``d2l_densenet.peak_memory`` (CUDA: ``max_memory_allocated``; CPU: the
allocator events of ``torch.profiler``, with the resident-memory
high-water mark as a second reading). Step times are taken in
interleaved rounds (one step of each model per round; median over
``--rounds``), so a busy machine slows all models alike. Ratios are
against ours standard; the goal of issue 10 is a level with peak
<= 0.40x at step time <= 1.25x.

``main(argv)`` returns the rows and merges them into ``--json`` under
"memory_efficient" (``benchmarks/run_all.py`` calls it).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import re
import statistics
import time
from pathlib import Path

import torch
import torchvision

from d2l_densenet import (
    MEMORY_EFFICIENT_LEVELS,
    densenet121,
    peak_memory,
    step_time,
)
from d2l_densenet.measure import MiB

#: Issue 10's goal for the best level: peak and step time vs standard.
GOAL = {"peak_max": 0.40, "time_max": 1.25}
JSON = Path(__file__).resolve().parent.parent / "build" / "benchmarks.json"


def merge_json(path, key: str, value: dict) -> None:
    """Write ``value`` under ``key`` into the JSON file at ``path``,
    keeping the other keys already there."""
    if not path:
        return
    path = Path(path)
    results = {}
    if path.is_file():
        try:
            results = json.loads(path.read_text())
        except ValueError:
            results = {}
    results[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path} [{key!r}]")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224,
                   help="image height = width (>= 29)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timed rounds, one step per model each (median)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available()
                   else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (CPU)")
    p.add_argument("--json", default=str(JSON),
                   help="merge the results into this file ('' = don't)")
    return p


def build_models() -> dict:
    """name -> (model, level) with one set of weights."""
    torch.manual_seed(0)
    ours = densenet121()
    models = {"ours standard": (ours, False)}
    for level in MEMORY_EFFICIENT_LEVELS:
        net = copy.deepcopy(ours)
        net.memory_efficient = level
        name = "ours True (bottleneck)" if level == "bottleneck" else (
            f"ours {level}")
        models[name] = (net, level)
    for eff in (False, True):
        tv = torchvision.models.densenet121(weights=None,
                                            memory_efficient=eff)
        tv.load_state_dict(ours.state_dict(), strict=True)
        models[f"torchvision {'True' if eff else 'standard'}"] = (tv, eff)
    return models


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = build_models()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(args.batch_size, 3, args.size, args.size,
                    generator=g).to(device)
    y = torch.randint(0, 1000, (args.batch_size,), generator=g).to(device)
    res = dict(model="densenet121", batch_size=args.batch_size,
               size=args.size, device=str(device),
               threads=torch.get_num_threads(), torch=torch.__version__,
               torchvision=torchvision.__version__,
               cpu=platform.processor() or platform.machine(),
               goal=GOAL, rounds=args.rounds)
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
    print(f"DenseNet-121, batch {args.batch_size}, {args.size}x{args.size},"
          f" {device} ({torch.get_num_threads()} CPU threads), torch "
          f"{torch.__version__}, torchvision {torchvision.__version__}",
          flush=True)

    # Memory: one model on the device at a time.
    mem = {}
    for name, (net, _) in models.items():
        start = time.perf_counter()
        net.to(device).train()
        mem[name] = peak_memory(net, X, y)
        net.cpu()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"  memory {name}: {mem[name]} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    # Time: all models on the device, one step of each per round.
    times = {name: [] for name in models}
    for r in range(args.rounds):
        start = time.perf_counter()
        for name, (net, _) in models.items():
            net.to(device)
            times[name].append(step_time(net, X, y, warmup=0, repeats=1))
            if device.type == "cuda":
                net.cpu()
        print(f"  time round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {t[-1]:.2f} s" for n, t in times.items())
            + f" ({time.perf_counter() - start:.0f} s)", flush=True)

    base = mem["ours standard"]
    base_s = statistics.median(times["ours standard"])
    rows = []
    for name, (_, level) in models.items():
        m, s = mem[name], statistics.median(times[name])
        rows.append(dict(
            name=name, level=level, step_mib=m.extra / MiB,
            peak_mib=m.peak / MiB, step_ratio=m.extra / base.extra,
            peak_ratio=m.peak / base.peak,
            rss_mib=None if m.rss_extra is None else m.rss_extra / MiB,
            rss_ratio=(m.rss_extra / base.rss_extra
                       if m.rss_extra and base.rss_extra else None),
            step_s=s, time_ratio=s / base_s, times=times[name]))
    res["rows"] = rows
    print_table(rows)
    met = [r["name"] for r in rows
           if r["peak_ratio"] <= GOAL["peak_max"]
           and r["time_ratio"] <= GOAL["time_max"]]
    res["goal_met_by"] = met
    print(f"\ngoal (peak <= {GOAL['peak_max']}x at time <= "
          f"{GOAL['time_max']}x): "
          + (", ".join(met) if met else "not met in this run"))
    res["headline"] = {re.sub(r"\W+", "_", r["name"]).strip("_"): {
        "peak_ratio": round(r["peak_ratio"], 3),
        "time_ratio": round(r["time_ratio"], 3)}
        for r in rows if r["name"] != "ours standard"}
    merge_json(args.json, "memory_efficient", res)
    return res


def print_table(rows: list[dict]) -> None:
    head = (f"{'model':<26}{'step MiB':>9}{'peak MiB':>9}{'x peak':>7}"
            f"{'x step':>7}{'x RSS':>7}{'step s':>8}{'x time':>7}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = "" if r["rss_ratio"] is None else f"{r['rss_ratio']:.2f}"
        print(f"{r['name']:<26}{r['step_mib']:>9.0f}{r['peak_mib']:>9.0f}"
              f"{r['peak_ratio']:>7.2f}{r['step_ratio']:>7.2f}{rss:>7}"
              f"{r['step_s']:>8.2f}{r['time_ratio']:>7.2f}")
    print("\nstep MiB: what one training step allocates on top of the "
          "model and input\n(activations, gradients); peak MiB: that + "
          "parameters, buffers, input; x RSS:\nthe process's "
          "resident-memory high-water mark during the step (CPU). "
          "Ratios:\nto ours standard, measured side by side in this run.")


if __name__ == "__main__":
    main()
