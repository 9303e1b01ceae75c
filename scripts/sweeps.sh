#!/usr/bin/env bash
# The MNIST temperature sweeps of `make paper` (2x800 and 2x30 students, T in 1 2.5 4 8 20,
# kd weight 1 + hard-label ce weight 0.1, AdamW lr 1e-3 cosine, batch 128, no regularisation)
# re-run through `student-trainer sweep` with 3 seeds at a reduced budget, plus the 2x30 runs
# started one by one with `train`, for the wall time of one data load against eighteen.
# Writes docs/results/sweeps.md (and the charts beside it). Not part of CI.
#
#   LABELS            label-store folder with mnist-train/ and mnist-test/ holding a `logits`
#                     teacher column (`make demo` writes data/labels; `make paper` data/paper-labels
#                     with t1-train/t1-test: set TRAIN_SET/TEST_SET)
#   EPOCHS_800 (2)    EPOCHS_30 (10)    SEEDS (0,1,2)
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=${LABELS:-data/labels}
TRAIN_SET=${TRAIN_SET:-mnist-train}
TEST_SET=${TEST_SET:-mnist-test}
EPOCHS_800=${EPOCHS_800:-2}
EPOCHS_30=${EPOCHS_30:-10}
SEEDS=${SEEDS:-0,1,2}
BIN=target/debug/student-trainer
OUT=runs/sweeps
DOC=docs/results/sweeps.md
rm -rf "$OUT"
mkdir -p "$OUT" docs/results/sweeps

config() { # NAME HIDDEN EPOCHS
  cat >"$OUT/$1.toml" <<TOML
[data]
train = "$LABELS/$TRAIN_SET"
eval = "$LABELS/$TEST_SET"
input = "pixels"
label = "label"
eval_teacher = "logits"

[student]
arch = "mlp"
hidden = $2

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 20.0
weight = 1.0

[[loss]]
kind = "ce"
weight = 0.1

[train]
epochs = $3
batch_size = 128
lr = 1e-3
seed = 1

[train.optimizer]
kind = "adamw"

[train.schedule]
kind = "cosine"
TOML
  echo "$OUT/$1.toml"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
GRID=(--grid 'loss.kd.temperature=[1, 2.5, 4, 8, 20]' --seeds "$SEEDS")
declare -A WALL LOAD_BEFORE LOAD_AFTER
timed() { # KEY CMD...
  local key=$1; shift
  LOAD_BEFORE[$key]=$(load)
  local t0; t0=$(date +%s.%N)
  "$@"
  WALL[$key]=$(echo "$(date +%s.%N) - $t0" | bc)
  LOAD_AFTER[$key]=$(load)
  printf '%s: %.0f s (load %s -> %s)\n' "$key" "${WALL[$key]}" "${LOAD_BEFORE[$key]}" "${LOAD_AFTER[$key]}" >&2
}

cargo build -p student-trainer --bins
C30=$(config mlp-30 '[30, 30]' "$EPOCHS_30")
C800=$(config mlp-800 '[800, 800]' "$EPOCHS_800")
timed s30j1 "$BIN" sweep --config "$C30" "${GRID[@]}" --jobs 1 --quiet --out "$OUT/sweep-30-jobs1" >/dev/null
timed s30j2 "$BIN" sweep --config "$C30" "${GRID[@]}" --jobs 2 --quiet --out "$OUT/sweep-30-jobs2" >/dev/null
one_by_one() {
  for c in "$OUT"/sweep-30-jobs1/runs/*/config.toml; do
    "$BIN" train --config "$c" --out "$OUT/one-by-one/$(basename "$(dirname "$c")")" --quiet --no-onnx >/dev/null 2>&1
  done
}
timed s30seq one_by_one
timed s800 "$BIN" sweep --config "$C800" "${GRID[@]}" --jobs 1 --quiet --out "$OUT/sweep-800" >/dev/null
cp "$OUT/sweep-30-jobs1/sweep.png" docs/results/sweeps/mnist-2x30.png
cp "$OUT/sweep-800/sweep.png" docs/results/sweeps/mnist-2x800.png

same=$(cmp -s "$OUT/sweep-30-jobs1/table.md" "$OUT/sweep-30-jobs2/table.md" && echo "identical" || echo "DIFFERENT")
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
{
  echo "# Temperature sweeps through \`student-trainer sweep\` (MNIST, 3 seeds)"
  echo
  echo "Produced by \`scripts/sweeps.sh\` at commit \`$(git rev-parse --short HEAD)\` on"
  echo "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, CPU only, $(date -u +%Y-%m-%d)."
  echo "Data: \`$LABELS/$TRAIN_SET\` (60,000 rows) and \`$LABELS/$TEST_SET\` (10,000), teacher column \`logits\`."
  echo "Settings as in \`make paper\`'s sweep (kd weight 1 + ce 0.1, AdamW lr 1e-3 cosine, batch 128,"
  echo "no dropout, no jitter), T ∈ {1, 2.5, 4, 8, 20}, seeds $SEEDS, at a reduced budget:"
  echo "**2x800: $EPOCHS_800 epochs, 2x30: $EPOCHS_30 epochs** (the paper script's sweep used 20)."
  echo
  echo "## 2x30 students ($EPOCHS_30 epochs)"
  echo
  sed -n '/^Teacher/,$p' "$OUT/sweep-30-jobs1/report.md" | sed 's|(sweep.png)|(sweeps/mnist-2x30.png)|; s|`best.toml`|`best.toml` of the sweep folder|'
  echo
  echo "## 2x800 students ($EPOCHS_800 epochs)"
  echo
  sed -n '/^Teacher/,$p' "$OUT/sweep-800/report.md" | sed 's|(sweep.png)|(sweeps/mnist-2x800.png)|; s|`best.toml`|`best.toml` of the sweep folder|'
  echo
  echo "## Wall time: one sweep against the same runs one by one"
  echo
  echo "The 18 runs of the 2x30 sweep (6 settings × 3 seeds; its scratch baseline included). Load"
  echo "averages (1/5/15 min) before → after each step: other work shared the 2 cores."
  echo
  echo "| how | wall time | data loads | load average before → after |"
  echo "|---|---:|---:|---|"
  printf '| `sweep --jobs 1` | %.0f s | %s (%.1f s) | %s → %s |\n' "${WALL[s30j1]}" "$(json "$OUT/sweep-30-jobs1/summary.json" "d['data_loads']")" "$(json "$OUT/sweep-30-jobs1/summary.json" "d['data_load_s']")" "${LOAD_BEFORE[s30j1]}" "${LOAD_AFTER[s30j1]}"
  printf '| `sweep --jobs 2` | %.0f s | %s (%.1f s) | %s → %s |\n' "${WALL[s30j2]}" "$(json "$OUT/sweep-30-jobs2/summary.json" "d['data_loads']")" "$(json "$OUT/sweep-30-jobs2/summary.json" "d['data_load_s']")" "${LOAD_BEFORE[s30j2]}" "${LOAD_AFTER[s30j2]}"
  printf '| 18 × `train --no-onnx` one after another | %.0f s | 18 | %s → %s |\n' "${WALL[s30seq]}" "${LOAD_BEFORE[s30seq]}" "${LOAD_AFTER[s30seq]}"
  printf '| 2x800 `sweep --jobs 1` (for scale) | %.0f s | %s (%.1f s) | %s → %s |\n' "${WALL[s800]}" "$(json "$OUT/sweep-800/summary.json" "d['data_loads']")" "$(json "$OUT/sweep-800/summary.json" "d['data_load_s']")" "${LOAD_BEFORE[s800]}" "${LOAD_AFTER[s800]}"
  echo
  echo "The tables of \`--jobs 1\` and \`--jobs 2\` are $same (each seed's numbers do not depend"
  echo "on how many runs train at once)."
} >"$DOC"
cat "$DOC"
