#!/usr/bin/env bash
# `make demo`: the whole offline loop on real MNIST.
#   teacher (hard labels) -> ONNX -> teacher-server -> Arrow IPC labelling -> Parquet label store
#   -> student from scratch and distilled student (same budget) -> ONNX -> report table.
# Writes runs/demo/REPORT.md. Idempotent inputs (deps, data); runs are redone each time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
DEMO=${DEMO_CONFIGS:-examples/demo}
OUT=runs/demo
BIN=$ROOT/target/debug
QUIET=${DEMO_QUIET:+--quiet}

step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

step "fetching dependencies (venv, ONNX Runtime library, MNIST)"
scripts/fetch_deps.sh

step "building (cargo build --workspace --bins)"
cargo build --workspace --bins

step "importing MNIST into Parquet"
"$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data/

rm -rf "$OUT" data/labels
mkdir -p "$OUT"

step "training the teacher on hard labels"
"$BIN/student-trainer" train --config "$DEMO/teacher.toml" --out "$OUT/teacher" $QUIET

step "serving the teacher ONNX with teacher-server"
LOG=$OUT/teacher-server.log
"$BIN/teacher-server" serve --model "$OUT/teacher/student.onnx" --data-dir data/labels \
  --output logits=logits --bind 127.0.0.1:0 --ep auto >"$LOG.stdout" 2>"$LOG" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q 'listening on' "$LOG.stdout" 2>/dev/null && break
  kill -0 $SERVER_PID 2>/dev/null || { cat "$LOG"; echo "teacher-server exited"; exit 1; }
  sleep 0.2
done
URL=$(grep -o 'http://[0-9.:]*' "$LOG.stdout" | head -1)
echo "teacher-server at $URL"

step "labelling the 60k training images and the 10k test images through HTTP (Arrow IPC)"
"$BIN/distill-label" label --server "$URL" --data data/mnist-train.parquet --dataset mnist-train \
  --columns label --seal $QUIET
"$BIN/distill-label" label --server "$URL" --data data/mnist-test.parquet --dataset mnist-test \
  --columns label --seal $QUIET
curl -sf "$URL/v1/model" >"$OUT/teacher-model.json" || true
kill -TERM $SERVER_PID; wait $SERVER_PID || true
trap - EXIT

step "training the student from scratch (hard labels only)"
"$BIN/student-trainer" train --config "$DEMO/scratch.toml" --out "$OUT/scratch" $QUIET

step "training the distilled student (KD from the stored teacher logits)"
"$BIN/student-trainer" train --config "$DEMO/distilled.toml" --out "$OUT/distilled" $QUIET

step "report"
"$BIN/student-trainer" report --title "distill demo: MNIST, teacher -> students" \
  --run "teacher=$OUT/teacher" --run "scratch student=$OUT/scratch" \
  --run "distilled student=$OUT/distilled" --eval data/labels/mnist-test \
  --teacher-column logits --elapsed-s "$(( $(date +%s) - START ))" --out "$OUT/REPORT.md" >/dev/null
cat "$OUT/REPORT.md"
