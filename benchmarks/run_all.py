"""Run the benchmark suite and merge the results into one JSON file.

    python benchmarks/run_all.py [--out build/benchmarks.json]
        [--only speed scaling ...] [--speed "--epochs 2"] ...

Each benchmark is a module here with ``main(argv) -> dict``; they run in
turn in this process, each timed; one that is missing is skipped with a
note, one that fails is recorded with its error and the suite goes on.
At the end the headline ratios are printed side by side and everything
is written to ``--out`` (``make benchmark``).

The speed benchmark runs twice: on this CPU as it is ("speed") and, in
a subprocess, held to the AVX2 class of most laptops ("speed_avx2":
oneDNN, ATen and MKL limited to AVX2 by ``AVX2_ENV``, so bf16 is
unsupported there, as on such a laptop; skipped on a CPU without
AVX-512, which is of that class already). ``--speed-avx2`` arguments
default to ``--speed``'s. The summary puts both classes side by side.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
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
     "96x96, achieved GFLOP/s vs the matmul rate, on this CPU"),
    ("speed_avx2", "bench_speed",
     "the same with the CPU held to the AVX2 class (a subprocess)"),
)

#: What holds a faster CPU to the AVX2 class (as bench_speed.AVX2_ENV).
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: Benchmarks run in a subprocess with these environment variables.
CLASS_ENV = {"speed_avx2": AVX2_ENV}
#: A benchmark whose arguments default to another's.
SAME_ARGS = {"speed_avx2": "speed"}


def _cpu_flags() -> set[str]:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def held_class_skip(name: str) -> str | None:
    """Why ``name`` (a held class) need not run here, or None."""
    if name != "speed_avx2":
        return None
    flags = _cpu_flags()
    if "avx2" not in flags:
        return "this CPU has no AVX2 (or does not say): no AVX2 class to hold"
    if "avx512f" not in flags:
        return ("this CPU is of the AVX2 class already: the speed "
                "benchmark measured it")
    return None


#: The speed benchmark's runs, one per CPU class, side by side.
SPEED_CLASSES = ("speed", "speed_avx2")


def _speed_lines(r: dict) -> list[str]:
    """One speed run's headlines: where, training ratio and accuracy,
    the step table, the loaders, achieved rate and the bound."""
    cls = r.get("cpu_class", {})
    lines = [f"{cls.get('name', r.get('device', '?'))} class, "
             f"{r.get('cpu', '?')}, {r.get('threads', '?')} threads, load "
             f"{r.get('load_before')} -> {r.get('load_after')}"]
    if "ratios" in r:
        t, s = r["training"], r["settings"]
        lines.append(
            f"training ({s['epochs']} epoch(s), {s['resize']}x{s['resize']}"
            f", batch {s['batch_size']}): ours/book wall-clock "
            f"{r['ratios']['wall']:.2f}x "
            f"({t['ours']['wall_examples_per_sec']:,.0f} vs "
            f"{t['book']['wall_examples_per_sec']:,.0f} examples/s), "
            f"step-only {r['ratios']['step']:.2f}x; test acc "
            f"{t['ours']['test_acc']:.3f} vs {t['book']['test_acc']:.3f} "
            f"(ours amp={r['options']['amp'] or 'none'})")
    for row in r.get("steps", {}).get("rows", []):
        lines.append(f"step: {row['variant']}: {row['ms_per_step']:.0f} "
                     f"ms, {row['speedup_vs_book_layout']:.2f}x the book's "
                     f"layout")
    if "loader" in r:
        ld = r["loader"]
        lines.append(f"loader at {ld['resize']}x{ld['resize']}: tensor/"
                     f"torchvision {ld['ratio']:.2f}x ({ld['tensor']:,.0f} "
                     f"vs {ld['torchvision']:,.0f} examples/s)")
    if "achieved" in r:
        a = r["achieved"]
        lines.append(f"achieved GFLOP/s / fp32 matmul rate: ours "
                     f"{a['ours']['of_fp32']:.0%}, book "
                     f"{a['book']['of_fp32']:.0%}; bound at 100%: "
                     f"{r['bound']['vs_book_step']:.2f}x the book's "
                     f"step-only rate")
    bound = r.get("profile", {}).get("bound", {})
    if "vs_book_step" in bound:
        lines.append(f"bound that remains (convolutions at the matmul rate, "
                     f"the rest as profiled): a step {bound['speedup']:.2f}x "
                     f"faster, ours/book step-only at most "
                     f"{bound['vs_book_step']:.2f}x")
    return lines


def _headlines(results: dict) -> list[str]:
    """The ratios worth a line each, from whatever the benchmarks
    returned: the speed benchmark's known keys, one block per CPU class,
    then any number whose key names a ratio, exponent or fraction."""
    lines = []
    for name in SPEED_CLASSES:
        r = results.get(name)
        if isinstance(r, dict) and not {"skipped", "error"} & set(r):
            first, *rest = _speed_lines(r)
            lines += [f"{name}: {first}", *(f"  {line}" for line in rest)]

    def walk(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            key = prefix.rsplit(".", 1)[-1].lower()
            if any(w in key for w in ("ratio", "exponent", "fraction")):
                lines.append(f"{prefix}: {obj:.3g}")

    for name, _, _ in SUITE:
        if name not in SPEED_CLASSES and isinstance(results.get(name), dict):
            walk(name, results[name])
    return lines


def run_held(name: str, module: str, argv: list[str], env: dict) -> dict:
    """``benchmarks/<module>.py argv`` in a subprocess with ``env`` added
    to the environment (its output shown as it comes); its results are
    read back from the JSON it writes."""
    child = dict(os.environ, **env)
    root = str(HERE.parent)
    child["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"(in a subprocess with {shown})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        rc = subprocess.run([sys.executable, str(HERE / f"{module}.py"),
                             *argv, "--json", str(out)], env=child).returncode
        if rc != 0:
            return {"error": f"exited with {rc}"}
        res = json.loads(out.read_text())
    res["env"] = env
    return res


def run(name: str, module: str, argv: list[str]) -> dict:
    """Import ``benchmarks/<module>.py`` and return its ``main(argv)``,
    or a dict saying why there is none."""
    if not (HERE / f"{module}.py").is_file():
        return {"skipped": f"benchmarks/{module}.py is not present"}
    if name in CLASS_ENV:
        why = held_class_skip(name)
        if why:
            return {"skipped": why}
        return run_held(name, module, argv, CLASS_ENV[name])
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
        text = getattr(args, f"args_{name}")
        if not text and name in SAME_ARGS:
            text = getattr(args, f"args_{SAME_ARGS[name]}", "")
        bench_argv = shlex.split(text)
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
