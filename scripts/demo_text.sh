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
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
OUT=runs/demo-text
DATA=data/text
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
"$BIN/distill-label" import-bbc --dir .deps/corpora/bbc --out-train "$DATA/bbc-train.parquet" \
  --out-test "$DATA/bbc-test.parquet"

step "serving the f32 teacher with its tokenizer"
start_server "$OUT/teacher-f32.onnx" "$DATA/labels" "$OUT/teacher-server.log" \
  --tokenizer $M/tokenizer.json --max-seq-len 128 --output embedding=embedding \
  --output hidden2=hidden2
trap stop_server EXIT

step "labelling WordNet through HTTP (text in Arrow IPC; the server tokenizes)"
"$BIN/distill-label" label --server "$URL" --data "$DATA/wordnet.parquet" --dataset wordnet \
  --columns pos,kind --seal --quiet
curl -sf "$URL/v1/model" >"$OUT/teacher-model.json"
curl -sf "$URL/metrics" | grep -E '^distill_tokens_(real|padded)_total ' >"$OUT/teacher-padding.txt" || true
stop_server
trap - EXIT

step "training the static student (teacher token table reduced by PCA, then distilled)"
"$BIN/student-trainer" train --config "$CONFIGS/static.toml" --out "$OUT/static" $QUIET
"$BIN/student-trainer" export-init --config "$CONFIGS/static.toml" --out "$OUT/static-init.onnx"

step "training the 3-layer transformer student (teacher layers 0, 2, 4, then distilled)"
"$BIN/student-trainer" train --config "$CONFIGS/transformer-l3.toml" --out "$OUT/transformer-l3" $QUIET
"$BIN/student-trainer" export-init --config "$CONFIGS/transformer-l3.toml" \
  --out "$OUT/transformer-l3-init.onnx"

step "serving the distilled transformer through the OpenAI-compatible /v1/embeddings"
start_server "$OUT/transformer-l3/student.onnx" "$OUT/student-labels" "$OUT/student-server.log" \
  --tokenizer $M/tokenizer.json --max-seq-len 128 --output embedding=embedding --normalize embedding
trap stop_server EXIT
curl -sf "$URL/v1/embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "student", "input": ["a student served as the next teacher", "distillation"]}' \
  >"$OUT/student-embeddings.json"
.venv/bin/python - "$OUT/student-embeddings.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["data"]
print(f"/v1/embeddings: {len(d)} embeddings of {len(d[0]['embedding'])} floats, "
      f"usage.prompt_tokens {r['usage']['prompt_tokens']}")
PY
stop_server
trap - EXIT

step "evaluating teacher, paraphrase-MiniLM-L3-v2 and the students (before and after) on real text"
L3=$(find .deps/models/minilm -name '*.onnx' | head -1)
evaluate() {
  local name=$1 model=$2
  shift 2
  "$BIN/student-trainer" eval-text --model "$model" --tokenizer $M/tokenizer.json \
    --suite lee,wordsim,bbc,fidelity,speed --bbc-train "$DATA/bbc-train.parquet" \
    --bbc-test "$DATA/bbc-test.parquet" --teacher "$OUT/teacher-f32.onnx" \
    --out "$OUT/eval/$name.json" "$@" >"$OUT/eval/$name.txt"
  echo "  $name done"
}
mkdir -p "$OUT/eval"
evaluate teacher "$OUT/teacher-f32.onnx"
evaluate paraphrase-MiniLM-L3-v2 "$L3" --output 461
evaluate static-init "$OUT/static-init.onnx"
evaluate static "$OUT/static/student.onnx"
evaluate transformer-l3-init "$OUT/transformer-l3-init.onnx"
evaluate transformer-l3 "$OUT/transformer-l3/student.onnx"

step "report"
.venv/bin/python scripts/text_report.py --out "$OUT" --elapsed-s "$(( $(date +%s) - START ))" \
  >"$OUT/REPORT.md"
cat "$OUT/REPORT.md"
