#!/usr/bin/env bash
# GPU checks for d2l-densenet: one script, at most ~8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine
#   BUDGET_S=470 OUT=build/gpu_check bash benchmarks/gpu_check.sh
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh  # plumbing, CPU, tiny
#
# Sections, in order; each is timed, runs under its own time limit (cut
# to what is left of BUDGET_S), logs to $OUT/<section>.log, and a failure
# does not stop the others. A summary closes the run.
#   setup      python, torch, CUDA; installs what is missing (below)
#   data       Fashion-MNIST: $D2L_DENSENET_DATA, else .gpu-data/ in the
#              repository if present, else the usual places
#   speed      the book's recipe (10 epochs, 96x96, batch 256, lr 0.1):
#              our train_ch6 + tensor loader vs d2l.train_ch6 + d2l's
#              loader, examples/s (step-only and wall-clock) and test
#              accuracy for each; loaders at 96x96; profile by operator
#   memory     peak memory of one training step, DenseNet vs ResNet-18 at
#              96x96 and 224x224, batch 256, beside the forum's nvidia-smi
#              figures (batch 256, 96x96: DenseNet 3161 MiB, ResNet 2725)
#   memeff     benchmarks/bench_memory_efficient.py --device cuda
#   notebooks  notebooks 01 and 03 in GPU mode (tools/run_notebooks.py)
#   bf16       ours again with bf16 autocast + channels-last (if time left)
#
# Without a usable environment (import d2l_densenet or d2l fails) it makes
# .gpu-venv (reusing the system's packages, e.g. its torch) and installs
# requirements.txt and d2l==1.0.3 --no-deps into it; with no network, put
# wheels into .gpu-data/wheels (pip download -d .gpu-data/wheels ...) and
# they are installed from there. The package itself is used from this
# checkout (PYTHONPATH), never from an install.
#
# Offline data: copy the four Fashion-MNIST files (.gz or not), e.g.
#   mkdir -p .gpu-data && cp /usr/share/datasets/fashion-mnist/* .gpu-data/
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$ROOT/build/gpu_check}
BUDGET_S=${BUDGET_S:-470}
SMOKE=${GPU_CHECK_SMOKE:-0}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -z "${D2L_DENSENET_DATA:-}" ] && [ -d "$ROOT/.gpu-data" ]; then
    export D2L_DENSENET_DATA="$ROOT/.gpu-data"
fi
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
elif [ -x "$ROOT/.gpu-venv/bin/python" ]; then PY="$ROOT/.gpu-venv/bin/python"
else PY=$(command -v python3 || command -v python); fi

if [ "$SMOKE" = 1 ]; then
    DEV=cpu; EPOCHS=1
    SPEED_ARGS=(--device cpu --recipe cpu --epochs 1 --subset 640
                --test-subset 500 --loader-batches 2 --profile-steps 1)
    MEM_SIZES="32:2"; MEMEFF_ARGS=(--device cpu --batch-size 2 --size 64)
    NB_MODE=smoke
else
    DEV=cuda; EPOCHS=10
    SPEED_ARGS=(--device cuda --recipe gpu --epochs 10 --loader-batches 40
                --profile-steps 3)
    MEM_SIZES="96:256 224:256"; MEMEFF_ARGS=(--device cuda)
    NB_MODE=gpu
fi

T0=$(date +%s)
SUMMARY=()
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }

# section NAME LIMIT_S COMMAND...: run under min(LIMIT, budget left).
section() {
    local name=$1 limit=$2; shift 2
    local rest; rest=$(left)
    if [ "$rest" -lt 20 ]; then
        echo "=== [$name] skipped: only ${rest}s of the ${BUDGET_S}s budget left"
        SUMMARY+=("$(printf '%-10s SKIPPED (budget)' "$name")")
        return
    fi
    [ "$limit" -gt "$rest" ] && limit=$rest
    echo
    echo "=== [$name] $(date +%T), limit ${limit}s: $*"
    local start rc; start=$(date +%s)
    timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 \
        | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    local took=$(( $(date +%s) - start ))
    local what=ok
    case $rc in
        0) ;;
        124) what="TIMED OUT" ;;
        137) what="KILLED (time limit or memory)" ;;
        *) what="FAILED (exit $rc)" ;;
    esac
    echo "=== [$name] $what after ${took}s"
    SUMMARY+=("$(printf '%-10s %-18s %4ss  %s' "$name" "$what" "$took" "$OUT/$name.log")")
}

# --- setup ---------------------------------------------------------------
need_install() {
    "$PY" - <<'EOF' 2>/dev/null
import importlib, sys
for m in ("torch", "torchvision", "torchinfo", "matplotlib", "pandas",
          "scipy", "nbclient", "nbformat", "ipykernel", "d2l.torch",
          "d2l_densenet"):
    importlib.import_module(m)
EOF
    [ $? -ne 0 ]
}
install_env() {
    echo "missing packages for $PY: installing into .gpu-venv"
    if [ ! -x "$ROOT/.gpu-venv/bin/python" ]; then
        "$PY" -m venv --system-site-packages "$ROOT/.gpu-venv" || return 1
    fi
    local vpy="$ROOT/.gpu-venv/bin/python"
    local pipopts=(--disable-pip-version-check -q)
    if [ -d "$ROOT/.gpu-data/wheels" ]; then
        pipopts+=(--no-index --find-links "$ROOT/.gpu-data/wheels")
    fi
    "$vpy" -m pip install "${pipopts[@]}" -r requirements-dev.txt \
        || echo "warning: pip install -r requirements-dev.txt failed"
    "$vpy" -m pip install "${pipopts[@]}" --no-deps d2l==1.0.3 \
        || echo "warning: pip install d2l==1.0.3 failed"
}
show_env() {
    echo "python: $PY ($("$PY" --version 2>&1))"
    "$PY" - "$DEV" <<'EOF'
import sys
import torch
import d2l_densenet
print("torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| available", torch.cuda.is_available(), "| d2l_densenet from",
      d2l_densenet.__file__)
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA device visible to torch"
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.0f} GiB")
EOF
    local rc=$?
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total \
            --format=csv
    fi
    return $rc
}
# Sections run under `timeout`, which runs programs, not functions: the
# functions and what they read go to the child bash through the
# environment.
export ROOT DEV MEM_SIZES PY
export -f need_install install_env show_env
if need_install; then
    section install 240 bash -c install_env
    if [ -x "$ROOT/.gpu-venv/bin/python" ]; then
        PY="$ROOT/.gpu-venv/bin/python"
    fi
fi
export PY
section setup 60 bash -c show_env

# --- data ----------------------------------------------------------------
find_data() {
    "$PY" -c "from d2l_densenet.data import find_fashion_mnist as f; print('Fashion-MNIST:', f(download=False))" && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "trying apt-get install dataset-fashion-mnist"
        timeout 60 apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1
    fi
    "$PY" -c "from d2l_densenet.data import find_fashion_mnist as f; print('Fashion-MNIST:', f())"
}
export -f find_data
section data 90 bash -c find_data

# --- speed: the book's recipe, ours vs the book's loop ---------------------
section speed 240 "$PY" benchmarks/bench_speed.py "${SPEED_ARGS[@]}" \
    --json "$OUT/speed.json"

# --- memory: DenseNet vs ResNet-18 beside the forum's figures --------------
memory() {
    local item
    for item in $MEM_SIZES; do
        for model in densenet resnet18; do
            "$PY" - "$model" "${item%%:*}" "${item##*:}" "$DEV" <<'EOF' || echo "  $model ${item} failed"
import os, subprocess, sys
import torch
from d2l_densenet import densenet, peak_memory, resnet18
model, size, batch, dev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
FORUM = {"densenet": 3161, "resnet18": 2725}  # MiB, nvidia-smi, 96x96, batch 256
MiB = 2 ** 20
device = torch.device(dev)
torch.manual_seed(0)
net = (densenet if model == "densenet" else resnet18)().to(device)
X = torch.rand(batch, 1, size, size, device=device)
y = torch.randint(0, 10, (batch,), device=device)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
rep = peak_memory(net, X, y, optimizer=opt)
line = f"  {model:<9}{size:>4}x{size:<4}batch {batch}: peak allocated {rep.peak / MiB:8.0f} MiB"
if device.type == "cuda":
    free, total = torch.cuda.mem_get_info(device)
    line += (f", peak reserved {torch.cuda.max_memory_reserved(device) / MiB:.0f} MiB"
             f", device in use {(total - free) / MiB:.0f} MiB (nvidia-smi's figure)")
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10).stdout
        mine = [l.split(",")[1].strip() for l in out.splitlines()
                if l.split(",")[0].strip() == str(os.getpid())]
        if mine:
            line += f", this process {mine[0]} MiB"
    except Exception:
        pass
if size == 96 and batch == 256:
    line += f"; forum (nvidia-smi, older GPU/CUDA): {FORUM[model]} MiB"
print(line, flush=True)
EOF
        done
    done
    echo "  forum ratio DenseNet/ResNet at 96x96: $(awk 'BEGIN{printf "%.2f", 3161/2725}')"
}
export -f memory
section memory 90 bash -c memory

# --- memory-efficient levels ------------------------------------------------
if [ -f benchmarks/bench_memory_efficient.py ]; then
    section memeff 90 "$PY" benchmarks/bench_memory_efficient.py \
        "${MEMEFF_ARGS[@]}"
else
    SUMMARY+=("$(printf '%-10s %s' memeff 'SKIPPED (benchmarks/bench_memory_efficient.py not present)')")
fi

# --- notebooks 01 and 03 in GPU mode ----------------------------------------
section notebooks 200 "$PY" tools/run_notebooks.py --mode "$NB_MODE" \
    --out "$OUT/notebooks" notebooks/01_densenet_from_scratch.ipynb \
    notebooks/03_memory_vs_resnet.ipynb

# --- bf16 + channels-last, ours only ----------------------------------------
if [ "$SMOKE" != 1 ]; then
    section bf16 90 "$PY" benchmarks/bench_speed.py --device cuda \
        --recipe gpu --epochs "$EPOCHS" --loops ours --amp bf16 \
        --channels-last --loader-batches 0 --profile-steps 0 \
        --json "$OUT/speed_bf16.json"
fi

# --- summary -----------------------------------------------------------------
echo
echo "=== summary ($(( $(date +%s) - T0 ))s of a ${BUDGET_S}s budget; logs in $OUT)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
for f in "$OUT/speed.log" "$OUT/bf16.log"; do
    [ -f "$f" ] && grep -E "^  (step-only|wall-clock|seconds|test accuracy|achieved|ceiling|tensor/torchvision)|^(book|ours): step-only" "$f" | sed 's/^/  /'
done
[ -f "$OUT/memory.log" ] && grep -E "^  (densenet|resnet18|forum)" "$OUT/memory.log"
[ -f "$OUT/memeff.log" ] && grep -iE "ratio|x torchvision|vs " "$OUT/memeff.log" | tail -n 8 | sed 's/^/  /'
[ -f "$OUT/notebooks.log" ] && grep -E "==> |FAILED" "$OUT/notebooks.log" | sed 's/^/  /'
true
