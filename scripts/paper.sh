#!/usr/bin/env bash
# `make paper`: Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", §3
# (MNIST), reproduced with distill end to end, plus what the paper did not have: a born-again
# generation and feature/relation losses. Not part of CI; with the paper-like budget it takes
# hours on 2 cores. Budgets are environment variables (defaults = the full run):
#   PAPER_TEACHER_EPOCHS (60)  PAPER_STUDENT_EPOCHS (60)  PAPER_SWEEP_EPOCHS (same as students)
# Writes runs/paper/REPORT.md, REPORT.html and charts/, and docs/results/mnist-hinton.md
# (with its charts in docs/results/mnist-hinton/).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
OUT=runs/paper
LABELS=data/paper-labels
QUIET=--quiet
TEACHER_EPOCHS=${PAPER_TEACHER_EPOCHS:-60}
STUDENT_EPOCHS=${PAPER_STUDENT_EPOCHS:-60}
SWEEP_EPOCHS=${PAPER_SWEEP_EPOCHS:-$STUDENT_EPOCHS}
TEMPS=(1 2.5 4 8 20)

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step() { printf '\n=== [%5ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# config NAME TRAIN_DATASET HIDDEN EPOCHS LOSS_TOML [STUDENT_EXTRA] [TRAIN_EXTRA]
config() {
  local f=$OUT/configs/$1.toml
  cat >"$f" <<TOML
[data]
train = "$LABELS/$2"
eval = "$LABELS/${2%-train}-test"
input = "pixels"
label = "label"
eval_teacher = "logits"

[student]
arch = "mlp"
hidden = $3
${6:-}

$5

[train]
epochs = $4
batch_size = 128
lr = 1e-3
seed = 1
${7:-}

[train.optimizer]
kind = "adamw"

[train.schedule]
kind = "cosine"
TOML
  echo "$f"
}

train() { "$BIN/student-trainer" train --config "$1" --out "$OUT/$2" $QUIET >/dev/null; echo "trained $2"; }

kd_loss() {
  printf '[[loss]]\nkind = "kd"\nteacher = "logits"\ntemperature = %s\nweight = 1.0\n\n[[loss]]\nkind = "ce"\nweight = 0.1\n' "$1"
}
CE_LOSS=$'[[loss]]\nkind = "ce"'

step "fetching dependencies and building"
scripts/fetch_deps.sh
cargo build --workspace --bins
"$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data/
rm -rf "$OUT" "$LABELS"
mkdir -p "$OUT/configs"

step "teacher: 784-1200-1200-10 ReLU, dropout (0.2 input, 0.5 hidden), ±2-pixel jitter, $TEACHER_EPOCHS epochs"
cat >"$OUT/configs/teacher.toml" <<TOML
[data]
train = "data/mnist-train.parquet"
eval = "data/mnist-test.parquet"
input = "pixels"
label = "label"

[student]
arch = "mlp"
hidden = [1200, 1200]
dropout = 0.5
input_dropout = 0.2

[[loss]]
kind = "ce"

[train]
epochs = $TEACHER_EPOCHS
batch_size = 128
lr = 1e-3
seed = 0
jitter = 2

[train.optimizer]
kind = "adamw"

[train.schedule]
kind = "cosine"
TOML
train "$OUT/configs/teacher.toml" teacher

step "labelling the 60k transfer set and the test set with the teacher (logits + penultimate layer)"
start_server "$OUT/teacher/student.onnx" "$LABELS" "$OUT/teacher-server.log" \
  --output logits=logits --output embedding=hidden1
trap stop_server EXIT
label "$URL" data/mnist-train.parquet t1-train
label "$URL" data/mnist-test.parquet t1-test
stop_server
trap - EXIT

step "2x800 students, no regularisation: scratch vs distilled at T = 20"
train "$(config scratch-800 t1-train '[800, 800]' "$STUDENT_EPOCHS" "$CE_LOSS")" scratch-800
train "$(config kd-800-T20 t1-train '[800, 800]' "$STUDENT_EPOCHS" "$(kd_loss 20)")" kd-800-T20

step "temperature sweep: 2x800 and 2x30 students, T in ${TEMPS[*]}"
train "$(config scratch-30 t1-train '[30, 30]' "$SWEEP_EPOCHS" "$CE_LOSS")" scratch-30
for t in "${TEMPS[@]}"; do
  [ "$t" = 20 ] || train "$(config "kd-800-T$t" t1-train '[800, 800]' "$SWEEP_EPOCHS" "$(kd_loss "$t")")" "kd-800-T$t"
  train "$(config "kd-30-T$t" t1-train '[30, 30]' "$SWEEP_EPOCHS" "$(kd_loss "$t")")" "kd-30-T$t"
done

step "feature and relation knowledge: kd + feature (FitNets), kd + rkd"
FEATURE=$(printf '%s\n\n[[loss]]\nkind = "feature"\nteacher = "embedding"\nstudent_layer = 1\ndistance = "mse"\nweight = 1.0\n' "$(kd_loss 20)")
RKD=$(printf '%s\n\n[[loss]]\nkind = "rkd"\nteacher = "embedding"\nstudent_layer = 1\ndistance_weight = 1.0\nangle_weight = 2.0\nweight = 1.0\n' "$(kd_loss 20)")
train "$(config kd-feature-800 t1-train '[800, 800]' "$STUDENT_EPOCHS" "$FEATURE")" kd-feature-800
train "$(config kd-rkd-800 t1-train '[800, 800]' "$STUDENT_EPOCHS" "$RKD")" kd-rkd-800

step "born-again generation: the distilled 2x800 student served as the next teacher"
start_server "$OUT/kd-800-T20/student.onnx" "$LABELS" "$OUT/gen2-server.log" --output logits=logits
trap stop_server EXIT
label "$URL" data/mnist-train.parquet t2-train
label "$URL" data/mnist-test.parquet t2-test
stop_server
trap - EXIT
train "$(config born-again-800 t2-train '[800, 800]' "$STUDENT_EPOCHS" "$(kd_loss 20)")" born-again-800

step "report"
RUNS=(--run "teacher 2x1200 (dropout, jitter)=$OUT/teacher" --run "2x800 scratch=$OUT/scratch-800")
for t in "${TEMPS[@]}"; do RUNS+=(--run "2x800 kd, T $t=$OUT/kd-800-T$t"); done
RUNS+=(--run "2x30 scratch=$OUT/scratch-30")
for t in "${TEMPS[@]}"; do RUNS+=(--run "2x30 kd, T $t=$OUT/kd-30-T$t"); done
RUNS+=(--run "2x800 kd + feature, T 20=$OUT/kd-feature-800" --run "2x800 kd + rkd, T 20=$OUT/kd-rkd-800")
RUNS+=(--run "2x800 born-again gen 2 (teacher: the kd T 20 student)=$OUT/born-again-800")
ELAPSED=$(( $(date +%s) - START ))
"$BIN/student-trainer" report --title "Hinton et al. 2015 §3 on MNIST, reproduced with distill" \
  "${RUNS[@]}" --eval "$LABELS/t1-test" --teacher-column logits --elapsed-s "$ELAPSED" \
  --reference "teacher 2x1200 (dropout, jitter)=67" --reference "2x800 scratch=146" \
  --reference "2x800 kd, T 20=74" --reference-source "Hinton et al. 2015 (paper)" \
  --out "$OUT/REPORT.md" --html "$OUT/REPORT.html" --charts "$OUT/charts" >/dev/null

mkdir -p docs/results/mnist-hinton
cp "$OUT"/charts/*.png docs/results/mnist-hinton/
{
  echo "# MNIST: Hinton et al. 2015 §3, reproduced"
  echo
  echo "Produced by \`make paper\` (\`scripts/paper.sh\`) at commit \`$(git rev-parse --short HEAD)\`"
  echo "on $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, CPU only,"
  echo "$(date -u +%Y-%m-%d). Wall time: ${ELAPSED} s. Budgets: teacher ${TEACHER_EPOCHS} epochs,"
  echo "students ${STUDENT_EPOCHS} epochs, temperature sweep ${SWEEP_EPOCHS} epochs."
  echo
  echo "## The paper's numbers (test errors of 10,000)"
  echo
  echo "| model | paper |"
  echo "|---|---:|"
  echo "| teacher 2x1200, dropout + jitter | 67 |"
  echo "| 2x800 from scratch, no regularisation | 146 |"
  echo "| 2x800 distilled at T = 20 | 74 |"
  echo "| temperature | with >= 300 units any T > 8 similar; with 30 units T 2.5-4 best |"
  echo
  echo "## Settings here"
  echo
  echo "- Transfer set: the same 60k training images, labelled by the teacher through"
  echo "  \`teacher-server\` (Arrow IPC, stored logits and the teacher's penultimate layer)."
  echo "- Teacher: 784-1200-1200-10 ReLU, dropout 0.5 (input 0.2), ±2-pixel jitter, AdamW"
  echo "  lr 1e-3 cosine, batch 128 (the paper used SGD with dropout's max-norm recipe)."
  echo "- Students: no dropout, no jitter, no weight decay; AdamW lr 1e-3 cosine, batch 128."
  echo "  Distilled: kd (batchmean KL at T, × T²) weight 1 + hard-label ce weight 0.1."
  echo "- kd + feature: plus MSE between the student's second hidden layer and the teacher's"
  echo "  penultimate layer (both 800/1200 wide, through a learned linear projector)."
  echo "- kd + rkd: plus RKD distance (1) and angle (2) terms on the same layers."
  echo "- Born-again: the T = 20 student, exported to ONNX, served by \`teacher-server\` as the"
  echo "  teacher of one more 2x800 generation (same recipe)."
  echo
  echo "## Measured"
  echo
  sed '1,2d' "$OUT/REPORT.md" | sed 's|](charts/|](mnist-hinton/|'
} >docs/results/mnist-hinton.md
cat docs/results/mnist-hinton.md
