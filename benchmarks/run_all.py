"""Run the benchmark suite and merge the results into one JSON file.

    python benchmarks/run_all.py [--out build/benchmarks.json]
        [--only speed scaling ...] [--speed "--epochs 2"] ...

Each benchmark is a module here with ``main(argv) -> dict``; they run in
turn in this process, each timed; one that is missing is skipped with a
note, one that fails is recorded with its error and the suite goes on.
At the end the headline ratios are printed side by side and everything
is written to ``--out`` (``make benchmark``).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (name in the JSON, module in benchmarks/, what it measures)
SUITE = (
    ("memory_efficient", "bench_memory_efficient",
     "memory-efficient levels vs torchvision"),
    ("scaling", "bench_scaling", "memory scaling exponent"),
    ("speed", "bench_speed",
     "training examples/s ours vs the book's loop and loader, loaders at "
     "96x96, achieved GFLOP/s vs the matmul rate"),
)


def _headlines(results: dict) -> list[str]:
    """The ratios worth a line each, from whatever the benchmarks
    returned: the speed benchmark's known keys, then any number whose key
    names a ratio, exponent or fraction."""
    lines = []
    speed = results.get("speed", {})
    if "ratios" in speed:
        t = speed["training"]
        s = speed["settings"]
        lines.append(
            f"training ({s['epochs']} epoch(s), {s['resize']}x{s['resize']}, "
            f"batch {s['batch_size']}, {speed['device']}): ours/book "
            f"wall-clock {speed['ratios']['wall']:.2f}x "
            f"({t['ours']['wall_examples_per_sec']:,.0f} vs "
            f"{t['book']['wall_examples_per_sec']:,.0f} examples/s), "
            f"step-only {speed['ratios']['step']:.2f}x; test acc "
            f"{t['ours']['test_acc']:.3f} vs {t['book']['test_acc']:.3f}")
    if "loader" in speed:
        ld = speed["loader"]
        lines.append(f"loader at {ld['resize']}x{ld['resize']}: tensor/"
                     f"torchvision {ld['ratio']:.2f}x ({ld['tensor']:,.0f} "
                     f"vs {ld['torchvision']:,.0f} examples/s)")
    if "achieved" in speed:
        a = speed["achieved"]
        lines.append(f"achieved GFLOP/s / fp32 matmul rate: ours "
                     f"{a['ours']['of_fp32']:.0%}, book "
                     f"{a['book']['of_fp32']:.0%}; bound at 100%: "
                     f"{speed['bound']['vs_book_step']:.2f}x the book's "
                     f"step-only rate")
    bound = speed.get("profile", {}).get("bound", {})
    if "vs_book_step" in bound:
        lines.append(f"bound that remains (convolutions at the matmul rate, "
                     f"the rest as profiled): a step {bound['speedup']:.2f}x "
                     f"faster, ours/book step-only at most "
                     f"{bound['vs_book_step']:.2f}x")

    def walk(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            key = prefix.rsplit(".", 1)[-1].lower()
            if any(w in key for w in ("ratio", "exponent", "fraction")):
                lines.append(f"{prefix}: {obj:.3g}")

    for name, _, _ in SUITE:
        if name != "speed" and isinstance(results.get(name), dict):
            walk(name, results[name])
    return lines


def run(name: str, module: str, argv: list[str]) -> dict:
    """Import ``benchmarks/<module>.py`` and return its ``main(argv)``,
    or a dict saying why there is none."""
    if not (HERE / f"{module}.py").is_file():
        return {"skipped": f"benchmarks/{module}.py is not present"}
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    try:
        mod = importlib.import_module(module)
        if not hasattr(mod, "main"):
            return {"skipped": f"benchmarks/{module}.py has no main()"}
        out = mod.main(argv)
    except SystemExit as e:  # argparse errors, sys.exit in main
        return {"error": f"exited with {e.code}"}
    except Exception as e:
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}
    return out if isinstance(out, dict) else {"returned": out}


def main(argv: list[str] | None = None) -> dict:
    names = [name for name, _, _ in SUITE]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path,
                   default=HERE.parent / "build" / "benchmarks.json")
    p.add_argument("--only", nargs="+", choices=names,
                   help="run only these benchmarks")
    for name in names:
        p.add_argument(f"--{name.replace('_', '-')}", default="",
                       metavar="ARGS", dest=f"args_{name}",
                       help=f"arguments for the {name} benchmark "
                            f"(one quoted string)")
    args = p.parse_args(argv)
    results = {"meta": dict(
        started=datetime.datetime.now().isoformat(timespec="seconds"),
        python=platform.python_version(), host=platform.node())}
    timings = {}
    for name, module, what in SUITE:
        if args.only and name not in args.only:
            continue
        bench_argv = shlex.split(getattr(args, f"args_{name}"))
        print(f"\n=== {name}: {what} "
              f"(benchmarks/{module}.py {' '.join(bench_argv)})".rstrip()
              + " ===", flush=True)
        start = time.perf_counter()
        results[name] = run(name, module, bench_argv)
        timings[name] = time.perf_counter() - start
        status = next((f"{k}: {results[name][k]}" for k in
                       ("skipped", "error") if k in results[name]), "done")
        print(f"=== {name}: {status} ({timings[name]:.0f} s) ===",
              flush=True)
    results["meta"]["seconds"] = timings
    try:
        import torch
        results["meta"]["torch"] = torch.__version__
    except ImportError:
        pass

    print("\nSummary (each ratio measured side by side in this run):")
    for line in _headlines(results) or ["(no ratios: nothing ran)"]:
        print(f"  {line}")
    for name, _, _ in SUITE:
        r = results.get(name, {})
        if "skipped" in r or "error" in r:
            print(f"  {name}: {r.get('skipped') or r.get('error')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
