#!/usr/bin/env bash
# Labels the whole WordNet 3.0 corpus (~166k definitions and examples) through teacher-server
# with all-MiniLM-L6-v2 and its tokenizer, into one sealed dataset, and prints the wall time,
# sentences/s and the padding efficiency the server reports. Not a test: numbers depend on the
# machine (and on whatever else runs on it: the load average is printed before and after).
#
# Usage: bench/label_wordnet.sh [--out target/label-wordnet] [--batch-rows 256] [--concurrency 4]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=target/label-wordnet
BATCH=256
CONC=4
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --batch-rows) BATCH=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
[ -f .deps/models/minilm-l6/tokenizer.json ] || scripts/fetch_text.sh
cargo build -q -p teacher-server -p label-client
BIN=$ROOT/target/debug
rm -rf "$OUT"; mkdir -p "$OUT"
"$BIN/distill-label" import-wordnet --dir .deps/corpora/wordnet/usr/share/wordnet --out "$OUT/wordnet.parquet"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
M=.deps/models/minilm-l6
"$BIN/teacher-server" serve --model $M/model.onnx --tokenizer $M/tokenizer.json --ep cpu \
  --output embedding=last_hidden_state --pool embedding=mean \
  --data-dir "$OUT/data" --bind 127.0.0.1:$PORT > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
echo "[label-wordnet] load before: $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s.%N)
"$BIN/distill-label" label --server http://127.0.0.1:$PORT --data "$OUT/wordnet.parquet" \
  --dataset wordnet --columns pos,kind,synset --batch-rows "$BATCH" --concurrency "$CONC" --seal --quiet
END=$(date +%s.%N)
echo "[label-wordnet] load after: $(cut -d' ' -f1-3 /proc/loadavg)"
METRICS=$(curl -sf http://127.0.0.1:$PORT/metrics)
REAL=$(echo "$METRICS" | awk '/^distill_tokens_real_total /{print $2}')
PADDED=$(echo "$METRICS" | awk '/^distill_tokens_padded_total /{print $2}')
ROWS=$(.venv/bin/python -c "import pyarrow.parquet as pq,sys; print(pq.read_table(sys.argv[1]).num_rows)" "$OUT/data/wordnet")
.venv/bin/python - "$START" "$END" "$ROWS" "$REAL" "$PADDED" "$OUT/data/wordnet" <<'EOF'
import sys, os
start, end, rows, real, padded, d = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".parquet"))
took = end - start
print(f"[label-wordnet] {rows} rows stored and sealed in {took:.1f} s = {rows / took:.0f} sentences/s; "
      f"padding efficiency {real / padded:.3f} ({real:.0f} real / {padded:.0f} padded tokens); "
      f"{size / 2**20:.1f} MiB of Parquet ({size / rows:.0f} B/row)")
EOF
