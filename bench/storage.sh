#!/usr/bin/env bash
# Storage-path benchmark (issue 15), rounds interleaved: rows/s, server CPU seconds per row and
# fsyncs/s of teacher-server builds (e.g. main's and this branch's) against raw ONNX Runtime and
# the FastAPI + onnxruntime + pyarrow peer, for each teacher x storage mode x body format:
#   teachers  cnn (PyTorch-style MNIST CNN), free (one Gemm 784->10), mlp (784-1200-1200-10)
#   storage   inputs (the default: inputs stored), noinputs (--no-store-inputs), nodataset
#   formats   arrow, json
# The same load client and the same pre-encoded bodies for every server: by default the Python
# client bench/load_client.py (stdlib threads + http.client, the comparison a reviewer makes
# with one client for both servers), or with --client rust the lighter `distill-label
# bench-load`. Every server of a teacher is up side by side, idle while another is measured. Server
# CPU comes from /proc/PID/stat (utime+stime) around each run, the second reading taken once
# the server has gone quiet (so background Parquet encoding is counted); fsyncs from the server's
# distill_wal_fsync_rounds_total when it has one (builds before issue 15 fsync once per
# request). The 1-minute load average is
# recorded with every run: the machine may be shared.
#
# Usage: bench/storage.sh --build NAME=BIN_DIR [--build NAME=BIN_DIR ...] [--teachers cnn,free]
#                         [--rounds 3] [--rows 25600] [--batch-rows 256] [--concurrency 4]
#                         [--formats arrow,json] [--modes inputs,noinputs,nodataset]
#                         [--no-fastapi] [--client python|rust] [--out target/bench-storage]
# BIN_DIR holds teacher-server, distill-label and ort-bench (the first build's client and
# ort-bench are used for every build). Summarise with bench/summarize_storage.py OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILDS=()
TEACHERS=cnn,free
ROUNDS=3
ROWS=25600
BATCH=256
CONC=4
FORMATS=arrow,json
MODES=inputs,noinputs,nodataset
FASTAPI=1
CLIENT=python
OUT=target/bench-storage
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILDS+=("$2"); shift 2 ;;
    --teachers) TEACHERS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --batch-rows) BATCH=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --formats) FORMATS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --no-fastapi) FASTAPI=0; shift ;;
    --client) CLIENT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ ${#BUILDS[@]} -gt 0 ] || { echo "give at least one --build NAME=BIN_DIR" >&2; exit 2; }
case $CLIENT in python|rust) ;; *) echo "--client is python or rust, not $CLIENT" >&2; exit 2 ;; esac

export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
PY=$ROOT/.venv/bin/python
"$PY" -c "import fastapi, uvicorn" 2>/dev/null || "$ROOT/.venv/bin/pip" install -q fastapi uvicorn
FIRST_BIN=${BUILDS[0]#*=}
rm -rf "$OUT"; mkdir -p "$OUT"; OUT=$(realpath "$OUT")
"$FIRST_BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data >/dev/null
DATA=$ROOT/data/mnist-train.parquet
RESULTS=$OUT/results.jsonl
: > "$RESULTS"
TICKS=$(getconf CLK_TCK)

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
cpu_s() { awk -v t="$TICKS" '{printf "%.3f", ($14+$15)/t}' "/proc/$1/stat"; }
# The server's CPU once it has gone quiet: Parquet encoding runs behind the acknowledgements
# (teacher-server's background encoder), so its share of a run is counted only when the
# reading waits until the CPU clock stops moving (at most ~10 s).
cpu_settled() {
  local a b; a=$(cpu_s "$1")
  for _ in $(seq 1 40); do
    sleep 0.25; b=$(cpu_s "$1")
    [ "$a" = "$b" ] && break
    a=$b
  done
  echo "$a"
}
fsyncs() { # a server without the counter (FastAPI, builds before issue 15) gives null
  local t; t=$(curl -sf "$1/metrics" 2>/dev/null) || { echo null; return 0; }
  awk '/^distill_wal_fsync_rounds_total /{print $2; f=1} END{if(!f) print "null"}' <<< "$t"
}

declare -A URL PID
for teacher in ${TEACHERS//,/ }; do
  case $teacher in
    cnn) "$PY" bench/make_teacher.py "$OUT/$teacher.onnx" --arch cnn ;;
    free) "$PY" bench/make_teacher.py "$OUT/$teacher.onnx" --hidden "" ;;
    mlp) "$PY" bench/make_teacher.py "$OUT/$teacher.onnx" --hidden 1200,1200 ;;
    *) echo "unknown teacher $teacher" >&2; exit 2 ;;
  esac
  MODEL=$OUT/$teacher.onnx
  SYSTEMS=()
  for b in "${BUILDS[@]}"; do
    name=${b%%=*}; bin=${b#*=}
    for store in inputs noinputs; do
      flags=(); [ $store = noinputs ] && flags=(--no-store-inputs)
      port=$(free_port); sys=$name-$store
      "$bin/teacher-server" serve --model "$MODEL" --data-dir "$OUT/store-$teacher-$sys" \
        --bind "127.0.0.1:$port" "${flags[@]}" > "$OUT/server-$teacher-$sys.log" 2>&1 &
      PID[$sys]=$!; PIDS+=("${PID[$sys]}"); URL[$sys]=http://127.0.0.1:$port
      wait_health "${URL[$sys]}" "$OUT/server-$teacher-$sys.log" "${PID[$sys]}"
      SYSTEMS+=("$sys")
    done
  done
  if [ $FASTAPI = 1 ]; then
    for store in inputs noinputs; do
      flags=(); [ $store = inputs ] && flags=(--store-inputs)
      port=$(free_port); sys=fastapi-$store
      "$PY" bench/fastapi_baseline.py --model "$MODEL" --data-dir "$OUT/store-$teacher-$sys" \
        --port "$port" "${flags[@]}" > "$OUT/fastapi-$teacher-$store.log" 2>&1 &
      PID[$sys]=$!; PIDS+=("${PID[$sys]}"); URL[$sys]=http://127.0.0.1:$port
      wait_health "${URL[$sys]}" "$OUT/fastapi-$teacher-$store.log" "${PID[$sys]}"
      SYSTEMS+=("$sys")
    done
  fi

  load() { # URL FORMAT [DATASET]
    local ds=(); [ -n "${3:-}" ] && ds=(--dataset "$3")
    local cmd=("$FIRST_BIN/distill-label" bench-load)
    [ "$CLIENT" = python ] && cmd=("$PY" bench/load_client.py)
    "${cmd[@]}" --server "$1" --data "$DATA" --input pixels=pixels \
      --columns label --rows "$ROWS" --batch-rows "$BATCH" --concurrency "$CONC" --format "$2" "${ds[@]}"
  }
  echo "[bench] $teacher: warm-up"
  for sys in "${SYSTEMS[@]}"; do
    for f in ${FORMATS//,/ }; do load "${URL[$sys]}" "$f" "warm-$f" >/dev/null; done
  done
  ITERS=$(( (ROWS + BATCH - 1) / BATCH ))
  for r in $(seq 1 "$ROUNDS"); do
    res=$("$FIRST_BIN/ort-bench" --model "$MODEL" --data "$DATA" --input pixels=pixels \
      --batch-rows "$BATCH" --iters "$ITERS" --warmup 2)
    echo "{\"teacher\":\"$teacher\",\"system\":\"raw\",\"mode\":\"-\",\"format\":\"-\",\"round\":$r,\"load1\":$(cut -d' ' -f1 /proc/loadavg),\"result\":$res}" >> "$RESULTS"
    for f in ${FORMATS//,/ }; do
      for mode in ${MODES//,/ }; do
        for sys in "${SYSTEMS[@]}"; do
          # nodataset runs on the inputs server (nothing is stored either way).
          case $mode in
            inputs) [[ $sys == *-inputs ]] || continue; ds="r$r-$f" ;;
            noinputs) [[ $sys == *-noinputs ]] || continue; ds="r$r-$f" ;;
            nodataset) [[ $sys == *-inputs ]] || continue; ds="" ;;
          esac
          p=${PID[$sys]}; u=${URL[$sys]}
          c0=$(cpu_s "$p"); s0=$(fsyncs "$u"); l=$(cut -d' ' -f1 /proc/loadavg)
          res=$(load "$u" "$f" "$ds")
          c1=$(cpu_settled "$p"); s1=$(fsyncs "$u")
          fs=null; [ "$s0" != null ] && fs=$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b-a}')
          line="{\"teacher\":\"$teacher\",\"system\":\"${sys%-*}\",\"mode\":\"$mode\",\"format\":\"$f\",\"round\":$r,\"load1\":$l,\"server_cpu_s\":$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b-a}'),\"fsyncs\":$fs,\"result\":$res}"
          echo "$line" >> "$RESULTS"
          echo "[bench] $line"
        done
      done
    done
  done
  for sys in "${SYSTEMS[@]}"; do
    [[ $sys == fastapi-* ]] || curl -sf "${URL[$sys]}/metrics" > "$OUT/metrics-$teacher-$sys.txt" || true
    kill "${PID[$sys]}" 2>/dev/null || true; wait "${PID[$sys]}" 2>/dev/null || true
  done
done
{
  echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "rows/run $ROWS, batch $BATCH, concurrency $CONC, rounds $ROUNDS, client $CLIENT, builds: ${BUILDS[*]}"
} > "$OUT/machine.txt"
"$PY" bench/summarize_storage.py "$OUT" | tee "$OUT/summary.md"
