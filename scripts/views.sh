#!/usr/bin/env bash
# Consistent teaching of augmented inputs on MNIST (issue 12): students trained on jittered
# inputs (±2 px) from single-view teacher logits (today's offline KD: the teacher saw the
# un-augmented image) vs K stored views (K = 1, 4, 8; the student replays the views the
# teacher scored) vs the teacher served per augmented batch; plus the student alone with
# jitter and KD without jitter. Also the storage cost per view.
#
#   scripts/views.sh [--epochs E] [--teacher-epochs T] [--seeds "1 2"] [--out runs/views]
#
# Needs the built binaries (target/debug) and MNIST (.deps/mnist, scripts/fetch_deps.sh).
# Writes OUT/views.md (tables, by scripts/views_report.py), OUT/rows.json, OUT/storage.json
# and every run folder.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
EPOCHS=8
TEACHER_EPOCHS=8
SEEDS="1 2"
OUT=runs/views
STUDENTS=${STUDENTS:-"2x800 2x30"}
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) EPOCHS=$2; shift 2 ;;
    --teacher-epochs) TEACHER_EPOCHS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
QUIET=--quiet
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step() { printf '=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -f data/mnist-train.parquet ] || "$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data/

# cfg NAME SEED STUDENT_TOML TRAIN_DATA JITTER LOSS_TOML [EXTRA_TOML]: writes OUT/NAME.toml.
cfg() {
  local name=$1 seed=$2 student=$3 train=$4 jitter=$5 loss=$6 extra=${7:-}
  cat >"$OUT/$name.toml" <<EOF
[data]
train = "$train"
eval = "$ROOT/data/mnist-test.parquet"
input = "pixels"
label = "label"

$extra

[student]
$student

$loss

[train]
epochs = $EPOCHS
batch_size = 128
lr = 1e-3
seed = $seed
jitter = $jitter
optimizer = "adamw"
schedule = "cosine"
EOF
}

train() {
  local name=$1
  rm -rf "$OUT/runs/$name"
  local t0=$SECONDS
  "$BIN/student-trainer" train --config "$OUT/$name.toml" --out "$OUT/runs/$name" $QUIET
  echo "$name $((SECONDS - t0))" >>"$OUT/wall.txt"
}

TEACHER='arch = "mlp"
hidden = [1200, 1200]
dropout = 0.3
input_dropout = 0.1'
CE='[[loss]]
kind = "ce"'
KD='[[loss]]
kind = "kd"
teacher = "logits"
temperature = 4.0

[[loss]]
kind = "ce"
weight = 0.1'
: >"$OUT/wall.txt"
: >"$OUT/label.txt"

step "teacher: 2x1200 (dropout 0.3, input dropout 0.1), ±2 px jitter, $TEACHER_EPOCHS epochs"
EPOCHS_SAVED=$EPOCHS
EPOCHS=$TEACHER_EPOCHS
cfg teacher 0 "$TEACHER" "$ROOT/data/mnist-train.parquet" 2 "$CE"
EPOCHS=$EPOCHS_SAVED
train teacher

# label_into NAME [distill-label flags]: labels the 60k training images into dataset NAME,
# recording wall time and rows.
label_into() {
  local name=$1
  shift
  local t0=$SECONDS
  "$BIN/distill-label" label --server "$URL" --data data/mnist-train.parquet --dataset "$name" \
    --columns label --seal $QUIET "$@" | tee -a "$OUT/label.log"
  echo "$LABEL_SET/$name $((SECONDS - t0))" >>"$OUT/label.txt"
}

step "labelling through teacher-server, inputs stored: one un-augmented view, then K = 1, 4, 8 jittered views"
rm -rf "$OUT/labels" "$OUT/labels-noinputs"
start_server "$OUT/runs/teacher/student.onnx" "$OUT/labels-noinputs" "$OUT/server-noinputs.log" \
  --output logits=logits --no-store-inputs
trap stop_server EXIT
LABEL_SET=labels-noinputs
label_into single
label_into k1 --views 1 --augment jitter=2
label_into k8 --views 8 --augment jitter=2
stop_server
start_server "$OUT/runs/teacher/student.onnx" "$OUT/labels" "$OUT/server.log" --output logits=logits
LABEL_SET=labels
label_into single
for k in 1 4 8; do
  label_into "k$k" --views "$k" --augment jitter=2
done

for seed in $SEEDS; do
  for st in $STUDENTS; do
    case $st in
      2x800) STUDENT='arch = "mlp"
hidden = [800, 800]' ;;
      2x30) STUDENT='arch = "mlp"
hidden = [30, 30]' ;;
      *) echo "unknown student $st" >&2; exit 2 ;;
    esac
    step "seed $seed, $st: alone, ±2 px jitter"
    cfg "$st-alone-jitter-s$seed" "$seed" "$STUDENT" "$ROOT/data/mnist-train.parquet" 2 "$CE"
    train "$st-alone-jitter-s$seed"
    step "seed $seed, $st: offline KD from single-view logits, no jitter"
    cfg "$st-kd-s$seed" "$seed" "$STUDENT" "$OUT/labels/single" 0 "$KD"
    train "$st-kd-s$seed"
    step "seed $seed, $st: offline KD from single-view logits, student jittered (inconsistent)"
    cfg "$st-kd-jitter-s$seed" "$seed" "$STUDENT" "$OUT/labels/single" 2 "$KD"
    train "$st-kd-jitter-s$seed"
    for k in 1 4 8; do
      step "seed $seed, $st: K = $k stored views replayed"
      cfg "$st-views$k-s$seed" "$seed" "$STUDENT" "$ROOT/data/mnist-train.parquet" 0 "$KD" \
        "[data.views]
path = \"$OUT/labels/k$k\""
      train "$st-views$k-s$seed"
    done
    step "seed $seed, $st: the teacher served per augmented batch"
    cfg "$st-served-s$seed" "$seed" "$STUDENT" "$ROOT/data/mnist-train.parquet" 0 "$KD" \
      "[data.served]
server = \"$URL\"
augment = \"jitter=2\""
    train "$st-served-s$seed"
  done
done
stop_server
trap - EXIT

python3 scripts/views_report.py "$OUT" "$SEEDS" "$STUDENTS" "$EPOCHS"
step "done: $OUT/views.md"
