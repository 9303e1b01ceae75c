#!/usr/bin/env bash
# Where a stored row's time goes: starts one teacher-server, sends ROWS rows of MNIST through
# `distill-label bench-load` (Arrow or JSON, inputs stored unless --no-store-inputs), then reads
# the server's per-stage timings from /metrics (distill_stage_duration_seconds) and prints each
# stage's seconds per row and share, with the server's CPU seconds per row. With --perf it also
# samples the server with `perf record -g` during the load and prints the top symbols.
#
# Usage: bench/profile.sh --bin BIN_DIR --model TEACHER.onnx [--rows 25600] [--batch-rows 256]
#                         [--concurrency 4] [--format arrow|json] [--no-store-inputs] [--perf]
#                         [--out target/profile]
# A build without the stage metrics (before issue 15) can still be profiled with --perf.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=""; MODEL=""; ROWS=25600; BATCH=256; CONC=4; FORMAT=arrow; FLAGS=(); PERF=0; OUT=target/profile
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$(realpath "$2"); shift 2 ;;
    --model) MODEL=$(realpath "$2"); shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --batch-rows) BATCH=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --format) FORMAT=$2; shift 2 ;;
    --no-store-inputs) FLAGS+=(--no-store-inputs); shift ;;
    --perf) PERF=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ -n "$BIN" ] && [ -n "$MODEL" ] || { echo "--bin and --model are required" >&2; exit 2; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
PY=$ROOT/.venv/bin/python
rm -rf "$OUT"; mkdir -p "$OUT"; OUT=$(realpath "$OUT")
[ -f data/mnist-train.parquet ] || "$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data >/dev/null
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/teacher-server" serve --model "$MODEL" --data-dir "$OUT/store" --bind "127.0.0.1:$port" \
  "${FLAGS[@]}" > "$OUT/server.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$port
for _ in $(seq 1 900); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
load() {
  "$BIN/distill-label" bench-load --server "$URL" --data data/mnist-train.parquet --input pixels=pixels \
    --columns label --rows "$ROWS" --batch-rows "$BATCH" --concurrency "$CONC" --format "$FORMAT" --dataset "$1"
}
load warm >/dev/null
curl -sf "$URL/metrics" > "$OUT/metrics-before.txt"
TICKS=$(getconf CLK_TCK)
c0=$(awk '{print $14+$15}' "/proc/$SPID/stat")
if [ $PERF = 1 ]; then
  perf record -F 499 -g -o "$OUT/perf.data" -p "$SPID" 2>"$OUT/perf-record.log" &
  PERF_PID=$!
  sleep 0.5
fi
LOAD1=$(cut -d' ' -f1 /proc/loadavg)
load measured | tee "$OUT/load.json"
c1=$(awk '{print $14+$15}' "/proc/$SPID/stat")
if [ $PERF = 1 ]; then
  kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
  perf report -i "$OUT/perf.data" --no-children --percent-limit 1.5 --stdio --sort dso,symbol -g none \
    2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 > "$OUT/perf-top.txt" || true
fi
curl -sf "$URL/metrics" > "$OUT/metrics-after.txt"
"$PY" - "$OUT" "$(( c1 - c0 ))" "$TICKS" "$LOAD1" <<'PY'
import json, re, sys
out, ticks, hz, load1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rep = json.load(open(f"{out}/load.json"))
def sums(path):
    d = {}
    for line in open(path):
        m = re.match(r'distill_stage_duration_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
        if m:
            d.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
        m = re.match(r'distill_wal_fsync_rounds_total (\S+)', line)
        if m:
            d["_fsyncs"] = float(m.group(1))
    return d
a, b = sums(f"{out}/metrics-before.txt"), sums(f"{out}/metrics-after.txt")
rows = rep["rows"]
cpu = ticks / hz
print(f"rows {rows}, {rep['rows_per_sec']:,.0f} rows/s, server CPU {cpu / rows * 1e6:.1f} µs/row, load1 {load1}")
if not any(k for k in b if not k.startswith("_")):
    print("(no per-stage metrics in this build)")
    sys.exit(0)
print(f"fsync rounds: {b.get('_fsyncs', 0) - a.get('_fsyncs', 0):.0f} for {rep['requests']} requests")
print("| stage | µs per row | share of the stages | calls |")
print("|---|---:|---:|---:|")
per = {k: (b[k].get("sum", 0) - a.get(k, {}).get("sum", 0)) / rows * 1e6 for k in b if not k.startswith("_")}
calls = {k: b[k].get("count", 0) - a.get(k, {}).get("count", 0) for k in per}
total = sum(per.values())
for k, v in per.items():
    print(f"| {k} | {v:.2f} | {v / total * 100:.0f}% | {calls[k]:.0f} |")
print(f"| sum of stages (wall, overlapping across requests) | {total:.2f} | | |")
PY
if [ $PERF = 1 ]; then echo; echo "perf (self time, top symbols):"; cat "$OUT/perf-top.txt"; fi
