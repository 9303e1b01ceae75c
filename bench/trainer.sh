#!/usr/bin/env bash
# Measures student-trainer's training throughput (samples/s) on the 784-800-800-10 MLP with
# AdamW, batch 128, one epoch of MNIST, side by side with a numpy implementation of the same
# step on the same machine in the same invocation, and prints the ratio.
#
# usage: bench/trainer.sh [--release]   (default: the dev profile, whose dependencies are
#        built at opt-level 3 like release; --release builds the trainer in release mode)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
IDX=${MNIST_IDX_DIR:-.deps/mnist}
WORK=${BENCH_DIR:-target/bench-trainer}
PROFILE=debug
CARGO_FLAGS=()
if [[ "${1:-}" == "--release" ]]; then PROFILE=release; CARGO_FLAGS=(--release); fi

mkdir -p "$WORK"
cargo build -q -p student-trainer -p label-client "${CARGO_FLAGS[@]}"
"target/$PROFILE/distill-label" import-mnist --idx-dir "$IDX" --out "$WORK"
BIN=target/$PROFILE/student-trainer

cat > "$WORK/bench.toml" <<TOML
[data]
train = "$WORK/mnist-train.parquet"
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
optimizer = "adamw"
lr = 1e-3
seed = 0
TOML
rm -rf "$WORK/run"
"$BIN" train --config "$WORK/bench.toml" --out "$WORK/run" --quiet --no-onnx > "$WORK/summary.out"
RUST=$("$PY" -c "import json; print(json.load(open('$WORK/run/summary.json'))['samples_per_s'])")
NUMPY=$("$PY" bench/trainer_numpy_step.py "$WORK/mnist-train.parquet" 300 | "$PY" -c "import json,sys; print(json.load(sys.stdin)['samples_per_s'])")
"$PY" - "$RUST" "$NUMPY" "$PROFILE" <<'PY'
import sys
rust, numpy, profile = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"student-trainer ({profile}): {rust:9.0f} samples/s  ({rust/128:6.1f} steps/s)")
print(f"numpy float32:          {numpy:9.0f} samples/s  ({numpy/128:6.1f} steps/s)")
print(f"ratio trainer/numpy:    {rust/numpy:9.2f}")
PY
