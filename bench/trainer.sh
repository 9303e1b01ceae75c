#!/usr/bin/env bash
# Measures student-trainer's training throughput (samples/s) on the 784-800-800-10 MLP with
# AdamW, batch 128, one epoch of MNIST, side by side with numpy (and, with --torch, PyTorch CPU)
# doing the same step on the same machine, interleaved over several rounds in one invocation;
# prints medians, ranges and ratios.
#
# usage: bench/trainer.sh [--release] [--torch] [--rounds N]
#   --release  build the trainer in release mode (default: the dev profile, whose dependencies
#              and trainer crate are optimised like release)
#   --torch    also run bench/trainer_torch_step.py; uses $TORCH_PYTHON if set, else creates
#              .deps/torch-venv (pip install torch numpy pyarrow: ~5 GB with its CUDA wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
IDX=${MNIST_IDX_DIR:-.deps/mnist}
WORK=${BENCH_DIR:-target/bench-trainer}
PROFILE=debug
CARGO_FLAGS=()
TORCH=0
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --release) PROFILE=release; CARGO_FLAGS=(--release); shift ;;
    --torch) TORCH=1; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
TORCH_PY=""
if [ "$TORCH" = 1 ]; then
  TORCH_PY=${TORCH_PYTHON:-.deps/torch-venv/bin/python}
  if ! "$TORCH_PY" -c "import torch, numpy, pyarrow" 2>/dev/null; then
    echo "[bench] installing PyTorch into .deps/torch-venv"
    python3 -m venv .deps/torch-venv
    .deps/torch-venv/bin/pip install -q torch numpy pyarrow
    TORCH_PY=.deps/torch-venv/bin/python
  fi
fi

mkdir -p "$WORK"
cargo build -q -p student-trainer -p label-client "${CARGO_FLAGS[@]}"
"target/$PROFILE/distill-label" import-mnist --idx-dir "$IDX" --out "$WORK"
BIN=target/$PROFILE/student-trainer
DATA=$WORK/mnist-train.parquet

cat > "$WORK/bench.toml" <<TOML
[data]
train = "$DATA"
input = "pixels"
label = "label"
[student]
arch = "mlp"
hidden = [800, 800]
[[loss]]
kind = "ce"
[train]
epochs = 1
batch_size = 128
lr = 1e-3
seed = 0

[train.optimizer]
kind = "adamw"
TOML
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/run"
  "$BIN" train --config "$WORK/bench.toml" --out "$WORK/run" --quiet --no-onnx > "$WORK/summary.out"
  echo "{\"system\":\"student-trainer ($PROFILE)\",\"samples_per_s\":$("$PY" -c "import json; print(json.load(open('$WORK/run/summary.json'))['samples_per_s'])")}" >> "$RESULTS"
  "$PY" bench/trainer_numpy_step.py "$DATA" 300 | "$PY" -c "import json,sys; d=json.load(sys.stdin); d['system']='numpy float32'; print(json.dumps(d))" >> "$RESULTS"
  if [ -n "$TORCH_PY" ]; then
    "$TORCH_PY" -W ignore bench/trainer_torch_step.py "$DATA" 300 | "$PY" -c "import json,sys; d=json.load(sys.stdin); d['system']='PyTorch '+d['torch']+' CPU, '+str(d['threads'])+' threads'; print(json.dumps(d))" >> "$RESULTS"
  fi
  echo "[bench] round $r done"
done
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores; load average before / after: $LOAD_BEFORE / $(cut -d" " -f1-3 /proc/loadavg)"
"$PY" - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["system"], []).append(r["samples_per_s"])
med = {k: statistics.median(v) for k, v in by.items()}
print("| system | median samples/s | min - max | steps/s (median) | rounds |")
print("|---|---:|---:|---:|---:|")
for k, v in by.items():
    print(f"| {k} | {med[k]:,.0f} | {min(v):,.0f} - {max(v):,.0f} | {med[k] / 128:.1f} | {len(v)} |")
trainer = next(k for k in med if k.startswith("student-trainer"))
for k in med:
    if k != trainer:
        print(f"ratio student-trainer / {k}: {med[trainer] / med[k]:.2f}")
PY
