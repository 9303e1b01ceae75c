#!/usr/bin/env bash
# Server benchmark, one run, rounds interleaved: rows/s of the same teacher ONNX on the same
# MNIST batches (the first --rows of the train split) for
#   raw           ONNX Runtime Session::run from Rust, no server        (ort-bench)
#   server-json   teacher-server, JSON body, storage on                 (distill-label bench-load)
#   server-arrow  teacher-server, Arrow IPC body, storage on
#   fastapi-json  FastAPI + uvicorn + onnxruntime + pyarrow Parquet     (bench/fastapi_baseline.py)
#   fastapi-arrow the same over Arrow IPC
# then the label-store bytes/row of the same outputs stored as f32, f16 and top-k, and prints
# medians, ranges and ratios (bench/summarize.py). Not a test: numbers depend on the machine.
#
# Usage: bench/server.sh [--model TEACHER.onnx --input-name NAME | --hidden 1200,1200] [--rounds 7]
#                        [--rows 30720] [--batch-rows 1024] [--concurrency 4] [--topk 5]
#                        [--out target/bench]
# Without --model a random-weight MLP 784-<hidden>-10 is generated (bench/make_teacher.py;
# --hidden 64 makes request decoding, not ONNX Runtime, the bound).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=""
HIDDEN=1200,1200
INPUT_NAME=pixels
ROUNDS=7
ROWS=30720
BATCH=1024
CONC=4
TOPK=5
OUT=target/bench
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$(realpath "$2"); shift 2 ;;
    --input-name) INPUT_NAME=$2; shift 2 ;;
    --hidden) HIDDEN=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --batch-rows) BATCH=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --topk) TOPK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
PY=$ROOT/.venv/bin/python
if [ ! -x "$PY" ] || [ ! -f "$ORT_DYLIB_PATH" ] || [ ! -f .deps/mnist/t10k-images-idx3-ubyte ]; then
  scripts/fetch_deps.sh
fi
"$PY" -c "import fastapi, uvicorn" 2>/dev/null || "$ROOT/.venv/bin/pip" install -q fastapi uvicorn
command -v curl >/dev/null || { echo "bench/server.sh needs curl" >&2; exit 1; }

echo "[bench] cargo build --release"
cargo build --release -q -p teacher-server -p label-client
BIN=$ROOT/target/release

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
if [ -z "$MODEL" ]; then
  "$PY" bench/make_teacher.py "$OUT/teacher.onnx" --hidden "$HIDDEN"
  MODEL=$OUT/teacher.onnx
fi
"$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data >/dev/null
DATA=$ROOT/data/mnist-train.parquet   # throughput rows (the first --rows of it)
STORE_DATA=$ROOT/data/mnist-test.parquet   # storage: the whole test split
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() { # URL LOG PID
  for _ in $(seq 1 900); do
    curl -sf "$1/health" >/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "[bench] server at $1 did not come up; its log:" >&2; cat "$2" >&2; exit 1
}
# start_server NAME [extra teacher-server flags...]: sets SERVER_URL and SERVER_PID.
start_server() {
  local name=$1; shift
  local port; port=$(free_port)
  "$BIN/teacher-server" serve --model "$MODEL" --data-dir "$OUT/store-$name" \
    --bind "127.0.0.1:$port" "$@" > "$OUT/server-$name.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); SERVER_URL=http://127.0.0.1:$port
  wait_health "$SERVER_URL" "$OUT/server-$name.log" "$SERVER_PID"
}
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
record() { # NAME ROUND JSON
  echo "{\"name\":\"$1\",\"round\":$2,\"result\":$3}" >> "$RESULTS"
  echo "[bench] round $2 $1: $3"
}
load() { # URL FORMAT DATASET
  "$BIN/distill-label" bench-load --server "$1" --data "$DATA" --input "pixels=$INPUT_NAME" \
    --columns label --rows "$ROWS" --batch-rows "$BATCH" --concurrency "$CONC" --format "$2" --dataset "$3"
}

# Throughput: both servers up side by side (idle while the other is measured), storage on.
# teacher-server stores the same columns as the baseline (id, outputs, label: --no-store-inputs).
start_server tput --no-store-inputs; RUST_URL=$SERVER_URL; RUST_PID=$SERVER_PID
port=$(free_port)
"$PY" bench/fastapi_baseline.py --model "$MODEL" --data-dir "$OUT/store-fastapi" --port "$port" \
  > "$OUT/fastapi.log" 2>&1 &
FA_PID=$!; PIDS+=("$FA_PID"); FA_URL=http://127.0.0.1:$port
wait_health "$FA_URL" "$OUT/fastapi.log" "$FA_PID"

echo "[bench] warm-up"
for f in json arrow; do
  load "$RUST_URL" $f warm-$f >/dev/null
  load "$FA_URL" $f warm-$f >/dev/null
done
ITERS=$(( (ROWS + BATCH - 1) / BATCH ))
for r in $(seq 1 "$ROUNDS"); do
  record raw "$r" "$("$BIN/ort-bench" --model "$MODEL" --data "$DATA" --input "pixels=$INPUT_NAME" \
    --batch-rows "$BATCH" --iters "$ITERS" --warmup 2)"
  for f in json arrow; do
    record "server-$f" "$r" "$(load "$RUST_URL" $f "r$r-$f")"
    record "fastapi-$f" "$r" "$(load "$FA_URL" $f "r$r-$f")"
  done
done
stop_server "$RUST_PID"
stop_server "$FA_PID"

# Storage: label the whole test split once per storage mode, sealed, through `distill-label label`.
declare -A MODES=(
  [f32]="--no-store-inputs"
  [f16]="--no-store-inputs --feature-dtype f16"
  [topk]="--no-store-inputs --logits-topk $TOPK"
  [f32-inputs]=""
)
for mode in f32 f16 topk f32-inputs; do
  # shellcheck disable=SC2086
  start_server "$mode" ${MODES[$mode]}
  "$BIN/distill-label" label --server "$SERVER_URL" --data "$STORE_DATA" --dataset mnist-test \
    --input "pixels=$INPUT_NAME" --columns label --batch-rows "$BATCH" --concurrency "$CONC" --seal --quiet \
    | tee "$OUT/label-$mode.txt"
  stop_server "$SERVER_PID"
done

{
  echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "load average before / after: $LOAD_BEFORE / $(cut -d" " -f1-3 /proc/loadavg)"
  echo "teacher: $MODEL ($(stat -c %s "$MODEL") bytes); rows/run $ROWS, batch $BATCH, concurrency $CONC, rounds $ROUNDS"
} > "$OUT/machine.txt"
"$PY" bench/summarize.py "$OUT" | tee "$OUT/summary.md"
