#!/usr/bin/env bash
# `make demo`: the whole offline loop on real MNIST.
#   teacher (hard labels) -> ONNX -> teacher-server -> Arrow IPC labelling -> Parquet label store
#   -> student from scratch and distilled student (same budget) -> ONNX -> report table.
# Writes runs/demo/REPORT.md, REPORT.html and charts/. Idempotent inputs (deps, data); runs are redone each time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
DEMO=${DEMO_CONFIGS:-examples/demo}
OUT=runs/demo
QUIET=${DEMO_QUIET:+--quiet}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
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
start_server "$OUT/teacher/student.onnx" data/labels "$OUT/teacher-server.log" --output logits=logits
trap stop_server EXIT

step "labelling the 60k training images and the 10k test images through HTTP (Arrow IPC)"
label "$URL" data/mnist-train.parquet mnist-train
label "$URL" data/mnist-test.parquet mnist-test
curl -sf "$URL/v1/model" >"$OUT/teacher-model.json" || true
stop_server
trap - EXIT

step "training the student from scratch (hard labels only)"
"$BIN/student-trainer" train --config "$DEMO/scratch.toml" --out "$OUT/scratch" $QUIET

step "training the distilled student (KD from the stored teacher logits)"
"$BIN/student-trainer" train --config "$DEMO/distilled.toml" --out "$OUT/distilled" $QUIET

step "report"
"$BIN/student-trainer" report --title "distill demo: MNIST, teacher -> students" \
  --run "teacher=$OUT/teacher" --run "scratch student=$OUT/scratch" \
  --run "distilled student=$OUT/distilled" --eval data/labels/mnist-test \
  --teacher-column logits --elapsed-s "$(( $(date +%s) - START ))" --out "$OUT/REPORT.md" \
  --html "$OUT/REPORT.html" --charts "$OUT/charts" >/dev/null
cat "$OUT/REPORT.md"
echo
echo "HTML report (self-contained, open it in a browser): $OUT/REPORT.html"
echo "charts: $OUT/charts/*.png and each run's curves.png"
