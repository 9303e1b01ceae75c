#!/usr/bin/env bash
# Training modes on MNIST, same budgets (issue 12): offline KD vs online teacher-student vs
# deep mutual learning of two 2x800 students vs each trained alone, and self-distillation
# (each exit's test errors and ONNX Runtime rows/s vs the same truncated network trained alone).
#
#   scripts/modes.sh [--epochs E] [--seeds "1 2"] [--out runs/modes] [--score-only]
#
# Needs the built binaries (target/debug) and MNIST (.deps/mnist, scripts/fetch_deps.sh).
# Writes OUT/modes.md (the table), OUT/rows.json and every run folder. The teacher of offline
# KD is trained for warm-up + E epochs (the online teacher's budget), labelled through
# teacher-server into OUT/labels; every student gets E epochs. --score-only re-scores the runs
# already in OUT. Rows/s: SPEED_ROUNDS (3) interleaved rounds over all models, each the median
# of TIMING_ROUNDS (5) passes over the 10k test images, one thread pool per process as
# ONNX Runtime's default; the table gives the median round (the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/run_env.sh
. scripts/run_env.sh
EPOCHS=1
SEEDS="1 2"
OUT=runs/modes
WARMUP=1
TIMING_ROUNDS=${TIMING_ROUNDS:-5}
SPEED_ROUNDS=${SPEED_ROUNDS:-3}
SCORE_ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --epochs) EPOCHS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --score-only) SCORE_ONLY=1; shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
QUIET=--quiet
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
step() { printf '=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
mkdir -p "$OUT"
[ -f data/mnist-train.parquet ] || "$BIN/distill-label" import-mnist --idx-dir .deps/mnist --out data/

# cfg NAME SEED STUDENT_TOML LOSS_TOML EXTRA_TOML [TRAIN_DATA] [EVAL_TEACHER]: writes OUT/NAME.toml.
cfg() {
  local name=$1 seed=$2 student=$3 loss=$4 extra=$5
  local train=${6:-data/mnist-train.parquet} eval_teacher=${7:-}
  cat >"$OUT/$name.toml" <<EOF
[data]
train = "$train"
eval = "data/mnist-test.parquet"
input = "pixels"
label = "label"
$eval_teacher

[student]
$student

$loss

[train]
epochs = $EPOCHS
batch_size = 128
lr = 1e-3
seed = $seed
optimizer = "adamw"
schedule = "cosine"

$extra
EOF
}

train() {
  local name=$1
  rm -rf "$OUT/runs/$name"
  local t0=$SECONDS
  nice -n "${NICE:-0}" "$BIN/student-trainer" train --config "$OUT/$name.toml" --out "$OUT/runs/$name" $QUIET
  echo "$name $((SECONDS - t0))" >>"$OUT/wall.txt"
}

MLP800='arch = "mlp"
hidden = [800, 800]'
TEACHER='arch = "mlp"
hidden = [1200, 1200]
dropout = 0.3
input_dropout = 0.1'
CE='[[loss]]
kind = "ce"'
if [ -z "$SCORE_ONLY" ]; then
: >"$OUT/wall.txt"

step "offline teacher: 2x1200, $((WARMUP + EPOCHS)) epochs (the online teacher's budget), hard labels"
cfg teacher 0 "$TEACHER" "$CE" ""
sed -i "s/^epochs = .*/epochs = $((WARMUP + EPOCHS))/" "$OUT/teacher.toml"
train teacher

step "labelling the 70k images with the teacher through teacher-server"
rm -rf "$OUT/labels"
start_server "$OUT/runs/teacher/student.onnx" "$OUT/labels" "$OUT/teacher-server.log" --output logits=logits
trap stop_server EXIT
label "$URL" data/mnist-train.parquet mnist-train
stop_server
trap - EXIT

for seed in $SEEDS; do
  step "seed $seed: 2x800 alone (ce)"
  cfg "alone-s$seed" "$seed" "$MLP800" "$CE" ""
  train "alone-s$seed"

  step "seed $seed: offline KD from the stored teacher logits (T = 4, 0.1 ce)"
  cfg "kd-s$seed" "$seed" "$MLP800" '[[loss]]
kind = "kd"
teacher = "logits"
temperature = 4.0

[[loss]]
kind = "ce"
weight = 0.1' "" "$OUT/labels/mnist-train"
  train "kd-s$seed"

  step "seed $seed: online teacher-student (teacher warm-up $WARMUP epoch, T = 4, 0.1 ce)"
  cfg "online-ts-s$seed" "$seed" "$MLP800" '[[loss]]
kind = "ce"
weight = 0.1' "[online]
mode = \"teacher_student\"
temperature = 4.0
warmup_epochs = $WARMUP

[online.teacher]
$TEACHER"
  train "online-ts-s$seed"

  step "seed $seed: the same, the teacher without dropout (are noisy train-mode targets the cost?)"
  cfg "online-ts-nodrop-s$seed" "$seed" "$MLP800" '[[loss]]
kind = "ce"
weight = 0.1' "[online]
mode = \"teacher_student\"
temperature = 4.0
warmup_epochs = $WARMUP

[online.teacher]
arch = \"mlp\"
hidden = [1200, 1200]"
  train "online-ts-nodrop-s$seed"

  step "seed $seed: mutual learning of two 2x800 students (T = 1)"
  cfg "mutual-s$seed" "$seed" "$MLP800" "$CE" "[online]
mode = \"mutual\"
temperature = 1.0

[online.peers.peer]
$MLP800"
  train "mutual-s$seed"

  step "seed $seed: self-distillation of a 3x800 MLP, exits after layers 0 and 1"
  cfg "sd-s$seed" "$seed" 'arch = "mlp"
hidden = [800, 800, 800]' "$CE" "[self_distill]
exits = [0, 1]
temperature = 3.0
kd_weight = 0.5
hint_weight = 0.1"
  train "sd-s$seed"

  step "seed $seed: the same exits with ce only (kd_weight = 0, no hint): the multi-exit baseline"
  cfg "sd-ce-s$seed" "$seed" 'arch = "mlp"
hidden = [800, 800, 800]' "$CE" "[self_distill]
exits = [0, 1]
kd_weight = 0.0
hint_weight = 0.0"
  train "sd-ce-s$seed"

  step "seed $seed: the truncated networks trained alone (1x800, 3x800; 2x800 is alone-s$seed)"
  cfg "alone1-s$seed" "$seed" 'arch = "mlp"
hidden = [800]' "$CE" ""
  train "alone1-s$seed"
  cfg "alone3-s$seed" "$seed" 'arch = "mlp"
hidden = [800, 800, 800]' "$CE" ""
  train "alone3-s$seed"
done

fi

step "scoring every exported model with ONNX Runtime ($SPEED_ROUNDS rounds of $TIMING_ROUNDS timed passes over the 10k test images)"
: >"$OUT/evals.jsonl"
for round in $(seq 1 "$SPEED_ROUNDS"); do
  echo "round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.txt"
  for m in "$OUT"/runs/*/*.onnx; do
    run=$(basename "$(dirname "$m")")
    json=$("$BIN/student-trainer" eval --model "$m" --data data/mnist-test.parquet --json \
      --timing-rounds "$TIMING_ROUNDS")
    python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["run"]=sys.argv[1]; d["model"]=sys.argv[2]; d["round"]=int(sys.argv[4]); print(json.dumps(d))' \
      "$run" "$(basename "$m" .onnx)" "$json" "$round" >>"$OUT/evals.jsonl"
  done
done

python3 - "$OUT" "$EPOCHS" "$SEEDS" <<'PY'
import json, sys, collections
out, epochs, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split()
ev, speed = {}, collections.defaultdict(list)
for line in open(f"{out}/evals.jsonl"):
    d = json.loads(line)
    ev.setdefault((d["run"], d["model"]), d)
    if d.get("infer_rows_per_s"):
        speed[(d["run"], d["model"])].append(d["infer_rows_per_s"])
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None
wall = dict(l.split() for l in open(f"{out}/wall.txt"))
rows = [
    ("2x800 alone (ce)", "alone", "student"),
    ("2x800 offline KD (stored teacher)", "kd", "student"),
    ("2x800 online teacher-student: student", "online-ts", "student"),
    ("2x1200 online teacher-student: teacher", "online-ts", "teacher"),
    ("2x800 online teacher-student, teacher without dropout: student", "online-ts-nodrop", "student"),
    ("2x1200 online teacher-student, teacher without dropout: teacher", "online-ts-nodrop", "teacher"),
    ("2x800 mutual learning: student", "mutual", "student"),
    ("2x800 mutual learning: peer", "mutual", "peer"),
    ("1x800 alone", "alone1", "student"),
    ("3x800 self-distilled: exit0 (1x800 truncated)", "sd", "exit0"),
    ("3x800 self-distilled: exit1 (2x800 truncated)", "sd", "exit1"),
    ("3x800 self-distilled: full network", "sd", "student"),
    ("3x800 multi-exit, ce only: exit0", "sd-ce", "exit0"),
    ("3x800 multi-exit, ce only: exit1", "sd-ce", "exit1"),
    ("3x800 multi-exit, ce only: full network", "sd-ce", "student"),
    ("3x800 alone", "alone3", "student"),
]
lines = ["| model | " + " | ".join(f"errors s{s}" for s in seeds) + " | mean | ORT rows/s (s%s) | params | run wall s (s%s) |" % (seeds[0], seeds[0]),
         "|---|" + "---|" * len(seeds) + "---|---|---|---|"]
table = []
for label, run, model in rows:
    errs = []
    for s in seeds:
        d = ev.get((f"{run}-s{s}", model))
        errs.append(d["errors"] if d else None)
    d0 = ev.get((f"{run}-s{seeds[0]}", model))
    summ = json.load(open(f"{out}/runs/{run}-s{seeds[0]}/summary.json"))
    params = summ["param_count"] if model == "student" else summ["networks"][model]["param_count"]
    known = [e for e in errs if e is not None]
    mean = sum(known) / len(known) if known else None
    rps = median(speed.get((f"{run}-s{seeds[0]}", model), []))
    w = float(wall.get(f"{run}-s{seeds[0]}", "nan"))
    table.append(dict(model=label, run=run, network=model, errors=errs, mean=mean, ort_rows_per_s=rps, params=params, wall_s=w))
    lines.append(f"| {label} | " + " | ".join(str(e) for e in errs) + f" | {mean:.1f} | {rps:,.0f} | {params:,} | {w:.0f} |")
lines.append("")
lines.append(f"teacher for offline KD: {wall.get('teacher')} s wall; errors {ev.get(('teacher','student'),{}).get('errors')}")
open(f"{out}/modes.md", "w").write("\n".join(lines) + "\n")
json.dump(table, open(f"{out}/rows.json", "w"), indent=1)
print("\n".join(lines))
PY
step "done: $OUT/modes.md"
