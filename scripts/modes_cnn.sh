#!/usr/bin/env bash
# Self-distillation of the CNN student on MNIST (issue 12): a [16, 32]-channel CNN with exits
# after conv blocks 0 and 1 (BYOT recipe and the ce-only multi-exit ablation) beside the same
# truncated networks trained alone; each model's test errors and ONNX Runtime rows/s.
#
#   scripts/modes_cnn.sh [--epochs E] [--seeds "1"] [--out runs/modes-cnn]
#
# Needs the built binaries (target/debug) and MNIST. Writes OUT/cnn.md and every run folder.
# exit0 = conv block 0 + a 64-unit head = the CNN with channels [16], hidden 64; exit1 = blocks
# 0-1 + a 64-unit head = channels [16, 32], hidden 64; the full network has hidden 128.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
EPOCHS=1
SEEDS="1"
OUT=runs/modes-cnn
TIMING_ROUNDS=${TIMING_ROUNDS:-5}
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) EPOCHS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
step() { printf '=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
mkdir -p "$OUT"
[ -f data/mnist-train.parquet ] || "$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data/

# run NAME SEED CHANNELS HIDDEN [SELF_DISTILL_TOML]
run() {
  local name=$1 seed=$2 channels=$3 hidden=$4 extra=${5:-}
  cat >"$OUT/$name.toml" <<TOML
[data]
train = "$ROOT/data/mnist-train.parquet"
eval = "$ROOT/data/mnist-test.parquet"
input = "pixels"
label = "label"

[student]
arch = "cnn"
channels = $channels
hidden = $hidden
input_shape = [1, 28, 28]

[[loss]]
kind = "ce"

$extra

[train]
epochs = $EPOCHS
batch_size = 128
lr = 1e-3
seed = $seed
optimizer = "adamw"
schedule = "cosine"
TOML
  rm -rf "$OUT/runs/$name"
  local t0=$SECONDS
  "$BIN/student-trainer" train --config "$OUT/$name.toml" --out "$OUT/runs/$name" --quiet >/dev/null
  echo "$name $((SECONDS - t0))" >>"$OUT/wall.txt"
}

: >"$OUT/wall.txt"
for seed in $SEEDS; do
  step "seed $seed: self-distilled CNN (exits 0, 1; kd_weight 0.5, T = 3)"
  run "sd-s$seed" "$seed" "[16, 32]" 128 "[self_distill]
exits = [0, 1]
head_hidden = 64
temperature = 3.0
kd_weight = 0.5
hint_weight = 0.0"
  step "seed $seed: the same exits, ce only"
  run "sd-ce-s$seed" "$seed" "[16, 32]" 128 "[self_distill]
exits = [0, 1]
head_hidden = 64
kd_weight = 0.0
hint_weight = 0.0"
  step "seed $seed: the truncated networks alone"
  run "alone-exit0-s$seed" "$seed" "[16]" 64
  run "alone-exit1-s$seed" "$seed" "[16, 32]" 64
  run "alone-full-s$seed" "$seed" "[16, 32]" 128
done

step "scoring every exported model with ONNX Runtime ($TIMING_ROUNDS timed passes over the 10k test images)"
: >"$OUT/evals.jsonl"
for m in "$OUT"/runs/*/*.onnx; do
  run=$(basename "$(dirname "$m")")
  json=$("$BIN/student-trainer" eval --model "$m" --data data/mnist-test.parquet --json \
    --timing-rounds "$TIMING_ROUNDS")
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["run"]=sys.argv[1]; d["model"]=sys.argv[2]; print(json.dumps(d))' \
    "$run" "$(basename "$m" .onnx)" "$json" >>"$OUT/evals.jsonl"
done
python3 - "$OUT" "$SEEDS" <<'PY'
import json, sys
out, seeds = sys.argv[1], sys.argv[2].split()
ev = {(d["run"], d["model"]): d for d in map(json.loads, open(f"{out}/evals.jsonl"))}
wall = dict(l.split() for l in open(f"{out}/wall.txt"))
rows = [
    ("CNN [16] + 64 head, alone (= exit0's shape)", "alone-exit0", "student", None),
    ("exit0 of the self-distilled CNN", "sd", "exit0", "alone-exit0"),
    ("exit0, multi-exit ce only", "sd-ce", "exit0", "alone-exit0"),
    ("CNN [16, 32] + 64 head, alone (= exit1's shape)", "alone-exit1", "student", None),
    ("exit1 of the self-distilled CNN", "sd", "exit1", "alone-exit1"),
    ("exit1, multi-exit ce only", "sd-ce", "exit1", "alone-exit1"),
    ("CNN [16, 32] + 128 head, alone", "alone-full", "student", None),
    ("self-distilled CNN, full network", "sd", "student", "alone-full"),
    ("multi-exit ce only, full network", "sd-ce", "student", "alone-full"),
]
lines = ["| model | " + " | ".join(f"errors s{s}" for s in seeds) + " | vs alone (mean) | ORT rows/s (s%s) | run wall s (s%s) |" % (seeds[0], seeds[0]),
         "|---|" + "---:|" * (len(seeds) + 3)]
for label, run, model, base in rows:
    errs = [ev[(f"{run}-s{s}", model)]["errors"] for s in seeds]
    mean = sum(errs) / len(errs)
    delta = "—"
    if base:
        b = [ev[(f"{base}-s{s}", "student")]["errors"] for s in seeds]
        delta = f"{mean - sum(b) / len(b):+.1f}"
    rps = ev[(f"{run}-s{seeds[0]}", model)].get("infer_rows_per_s") or 0
    lines.append(f"| {label} | " + " | ".join(map(str, errs)) + f" | {delta} | {rps:,.0f} | {wall.get(f'{run}-s{seeds[0]}')} |")
open(f"{out}/cnn.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
step "done: $OUT/cnn.md"
