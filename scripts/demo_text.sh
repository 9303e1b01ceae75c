#!/usr/bin/env bash
# `make demo-text`: distil a sentence encoder, end to end, on real text.
#   all-MiniLM-L6-v2 safetensors -> exact f32 ONNX (student-trainer export-bert) -> teacher-server
#   --tokenizer -> WordNet 3.0 labelled through HTTP (Arrow IPC of text) -> sealed label store
#   -> a static student (teacher's token table, PCA) and a 3-layer transformer (teacher layers
#   0, 2, 4) trained on the stored embeddings -> ONNX -> one served through /v1/embeddings ->
#   teacher / paraphrase-MiniLM-L3-v2 / students (before and after training) evaluated on
#   Lee-50, WordSim-353 and BBC News -> runs/demo-text/REPORT.md.
# Idempotent inputs (deps, models, corpora); runs are redone each time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
OUT=runs/demo-text
DATA=data/text
BIN=$ROOT/target/debug
M=.deps/models/minilm-l6
QUIET=${DEMO_QUIET:+--quiet}
CONFIGS=${DEMO_TEXT_CONFIGS:-examples/text}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

step "fetching dependencies, the MiniLM teacher, the corpora and the eval sets"
scripts/fetch_deps.sh
scripts/fetch_models.sh
scripts/fetch_text.sh

step "building (cargo build --workspace --bins)"
cargo build --workspace --bins

rm -rf "$OUT" "$DATA"
mkdir -p "$OUT" "$DATA"

step "writing the exact f32 ONNX of all-MiniLM-L6-v2 from its safetensors"
"$BIN/student-trainer" export-bert --safetensors $M/model.safetensors --config $M/config.json \
  --out "$OUT/teacher-f32.onnx"

step "importing WordNet 3.0 (definitions and examples) and BBC News"
"$BIN/distill-label" import-wordnet --dir .deps/corpora/wordnet/usr/share/wordnet \
  --out "$DATA/wordnet.parquet"
"$BIN/distill-label" import-bbc --dir .deps/corpora/bbc --out "$DATA/bbc"

step "serving the f32 teacher with its tokenizer"
start_server "$OUT/teacher-f32.onnx" "$DATA/labels" "$OUT/teacher-server.log" \
  --tokenizer $M/tokenizer.json --max-seq-len 128 --output embedding=embedding \
  --output hidden2=hidden2
trap stop_server EXIT

step "labelling WordNet through HTTP (text in Arrow IPC; the server tokenizes)"
"$BIN/distill-label" label --server "$URL" --data "$DATA/wordnet.parquet" --dataset wordnet \
  --columns pos,kind --seal $QUIET
curl -sf "$URL/v1/model" >"$OUT/teacher-model.json"
curl -sf "$URL/metrics" | grep -E '^distill_tokens_(real|padded)_total ' >"$OUT/teacher-padding.txt" || true
stop_server
trap - EXIT
