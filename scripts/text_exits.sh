#!/usr/bin/env bash
# Self-distillation of the transformer text student, measured (docs/results/modes.md,
# "Self-distillation of the transformer student"): a 3-layer student (all-MiniLM-L6-v2's
# embeddings + layers 0, 2, 4) trained with exits after blocks 0 and 1
# (examples/modes/text-self-distill.toml), against 1-, 2- and 3-layer students (teacher layers
# [0], [0, 2], [0, 2, 4]) each trained alone on the same rows with the same [[loss]] terms.
# Every truncated exit ONNX and every student ONNX is scored by `student-trainer eval-text`.
# A small budget: ROWS (default 16000) WordNet rows, spread over the corpus, are labelled by the
# f32 teacher through teacher-server; 5% are held out; 1 epoch.
# Needs what `make demo-text` fetches (.deps: the MiniLM teacher, WordNet, BBC, the eval sets).
# Idempotent: a finished run, eval or speed measurement in OUT is kept (delete it to redo it).
# Speed: after the evals, every model's `--suite speed` once more, back to back, in two rounds
# (the table shows the faster round: the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
OUT=${OUT:-runs/text-exits}
M=.deps/models/minilm-l6
ROWS=${ROWS:-16000}
QUIET=--quiet
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
mkdir -p "$OUT"

if [ ! -f "$OUT/teacher-f32.onnx" ]; then
  step "exact f32 teacher ONNX (export-bert)"
  "$BIN/student-trainer" export-bert --safetensors $M/model.safetensors --config $M/config.json \
    --out "$OUT/teacher-f32.onnx"
fi
if [ ! -f "$OUT/bbc-test.parquet" ]; then
  step "importing WordNet and BBC News; $ROWS WordNet rows, every k-th"
  "$BIN/distill-label" import-wordnet --dir .deps/corpora/wordnet/usr/share/wordnet \
    --out "$OUT/wordnet-all.parquet"
  "$BIN/distill-label" import-bbc --dir .deps/corpora/bbc --out-train "$OUT/bbc-train.parquet" \
    --out-test "$OUT/bbc-test.parquet"
  .venv/bin/python - "$OUT/wordnet-all.parquet" "$OUT/wordnet.parquet" "$ROWS" <<'PY'
import sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
step = max(1, t.num_rows // int(sys.argv[3]))
pq.write_table(t.take(list(range(0, t.num_rows, step))[: int(sys.argv[3])]), sys.argv[2])
PY
fi
if [ ! -d "$OUT/labels/wordnet" ]; then
  step "labelling the WordNet rows through HTTP"
  start_server "$OUT/teacher-f32.onnx" "$OUT/labels" "$OUT/teacher-server.log" \
    --tokenizer $M/tokenizer.json --max-seq-len 128 --output embedding=embedding
  trap stop_server EXIT
  "$BIN/distill-label" label --server "$URL" --data "$OUT/wordnet.parquet" --dataset wordnet \
    --columns pos,kind --seal --quiet
  stop_server
  trap - EXIT
fi

# config NAME LAYERS INIT_LAYERS SELF_DISTILL(0/1): the example with this run's data and budget.
config() {
  local name=$1 layers=$2 init=$3 sd=$4
  sed -e "s#^train = .*#train = \"$OUT/labels/wordnet\"#" \
    -e 's#^eval_fraction = .*#eval_fraction = 0.05#' \
    -e 's#^train_fraction = .*#train_fraction = 1.0#' \
    -e "s#^layers = .*#layers = $layers#" \
    -e "s#layers = \[0, 2, 4\] }#layers = $init }#" \
    examples/modes/text-self-distill.toml >"$OUT/$name.toml"
  if [ "$sd" = 0 ]; then
    .venv/bin/python - "$OUT/$name.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(re.sub(r"\[self_distill\].*?(?=\[train\])", "", s, flags=re.S))
PY
  fi
}
config sd 3 "[0, 2, 4]" 1
config l1 1 "[0]" 0
config l2 2 "[0, 2]" 0
config l3 3 "[0, 2, 4]" 0
for run in sd l1 l2 l3; do
  [ -f "$OUT/$run/summary.json" ] && continue
  step "training $run"
  t0=$(date +%s)
  "$BIN/student-trainer" train --config "$OUT/$run.toml" --out "$OUT/$run" $QUIET
  echo "$(( $(date +%s) - t0 ))" >"$OUT/$run.wall_s"
done

evaluate() {
  local name=$1 model=$2
  [ -f "$OUT/eval/$name.json" ] && return
  "$BIN/student-trainer" eval-text --model "$model" --tokenizer $M/tokenizer.json \
    --suite lee,wordsim,bbc,fidelity,speed --bbc-train "$OUT/bbc-train.parquet" \
    --bbc-test "$OUT/bbc-test.parquet" --teacher "$OUT/teacher-f32.onnx" \
    --out "$OUT/eval/$name.json" >"$OUT/eval/$name.txt"
  echo "  $name done"
}
step "eval-text"
mkdir -p "$OUT/eval"
evaluate sd-exit0 "$OUT/sd/exit0.onnx"
evaluate sd-exit1 "$OUT/sd/exit1.onnx"
evaluate sd-student "$OUT/sd/student.onnx"
evaluate l1 "$OUT/l1/student.onnx"
evaluate l2 "$OUT/l2/student.onnx"
evaluate l3 "$OUT/l3/student.onnx"

step "speed, every model back to back, two rounds"
MODELS="sd-exit0=sd/exit0 l1=l1/student sd-exit1=sd/exit1 l2=l2/student sd-student=sd/student l3=l3/student"
for round in 1 2; do
  for m in $MODELS; do
    name=${m%%=*}
    f="$OUT/eval/$name-speed$round.json"
    [ -f "$f" ] && continue
    "$BIN/student-trainer" eval-text --model "$OUT/${m#*=}.onnx" --tokenizer $M/tokenizer.json \
      --suite speed --bbc-train "$OUT/bbc-train.parquet" --bbc-test "$OUT/bbc-test.parquet" \
      --out "$f" >/dev/null
  done
done

step "report"
.venv/bin/python scripts/text_exits_report.py "$OUT" sd | tee "$OUT/REPORT.md"
echo "total $(( $(date +%s) - START )) s; $(uptime)"
