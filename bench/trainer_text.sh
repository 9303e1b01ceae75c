#!/usr/bin/env bash
# Training-step throughput of the 3-layer text student (MiniLM-L6's block shape: hidden 384,
# 12 heads, FFN 1536; masked mean pooling; cosine loss vs a fixed random target; AdamW), batch 64
# of fixed mixed lengths (bench/text_batch.py: median 12, max 40 tokens), in candle
# (student-trainer/examples/text_step.rs, at the dev profile `make test` uses and at release)
# and in PyTorch eager CPU float32 (bench/trainer_text_torch_step.py, manual and SDPA attention),
# the same threads for both, interleaved over several rounds in one invocation; prints medians,
# ranges, CPU seconds per step (less sensitive to other jobs than wall time) and ratios as a
# Markdown table.
#
# usage: bench/trainer_text.sh [--rounds N] [--steps N] [--warmup N] [--threads N] [--no-release]
#   --no-release  skip the release build (its dependencies take minutes to build the first time)
#   PyTorch: $TORCH_PYTHON if set, else .deps/torch-venv (created on first use:
#   pip install torch numpy safetensors, ~5 GB with its CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=${BENCH_DIR:-target/bench-trainer-text}
ROUNDS=3
STEPS=20
WARMUP=3
THREADS=2
RELEASE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-release) RELEASE=0; shift ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
TORCH_PY=${TORCH_PYTHON:-.deps/torch-venv/bin/python}
if ! "$TORCH_PY" -c "import torch" 2>/dev/null; then
  echo "[bench] installing PyTorch into .deps/torch-venv"
  python3 -m venv .deps/torch-venv
  .deps/torch-venv/bin/pip install -q torch numpy safetensors
  TORCH_PY=.deps/torch-venv/bin/python
fi
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

mkdir -p "$WORK"
cargo build -q -p student-trainer --example text_step
# Release in its own target dir (CARGO_TARGET_DIR_RELEASE, default: the usual one), so a dev
# build running beside it is not blocked on the build-directory lock.
DEV_BIN=${CARGO_TARGET_DIR:-target}/debug/examples/text_step
REL_BIN=""
if [ "$RELEASE" = 1 ]; then
  REL_DIR=${CARGO_TARGET_DIR_RELEASE:-${CARGO_TARGET_DIR:-target}}
  CARGO_TARGET_DIR=$REL_DIR cargo build -q -p student-trainer --example text_step --release
  REL_BIN=$REL_DIR/release/examples/text_step
fi
BATCH=$WORK/batch.json
"$PY" bench/text_batch.py "$BATCH" 64 0
RESULTS=$WORK/results.jsonl
: > "$RESULTS"
label() { "$PY" -c "import json,sys; d=json.load(sys.stdin); d['system']=sys.argv[1]; print(json.dumps(d))" "$1"; }
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
for r in $(seq 1 "$ROUNDS"); do
  "$DEV_BIN" "$BATCH" "$STEPS" "$WARMUP" | label "candle (dev profile)" >> "$RESULTS"
  if [ -n "$REL_BIN" ]; then
    "$REL_BIN" "$BATCH" "$STEPS" "$WARMUP" | label "candle (release)" >> "$RESULTS"
  fi
  # mimalloc told never to return freed pages to the OS: candle frees and re-allocates
  # hundreds of MB per step, and re-faulting them (zeroed huge pages) is a visible share of
  # the backward pass.
  MIMALLOC_PURGE_DELAY=-1 "${REL_BIN:-$DEV_BIN}" "$BATCH" "$STEPS" "$WARMUP" \
    | label "candle ($( [ -n "$REL_BIN" ] && echo release || echo dev profile ), MIMALLOC_PURGE_DELAY=-1)" >> "$RESULTS"
  for attn in eager sdpa; do
    "$TORCH_PY" -W ignore bench/trainer_text_torch_step.py "$BATCH" "$STEPS" --warmup "$WARMUP" --attention "$attn" --threads "$THREADS" \
      | label "PyTorch CPU ($attn attention)" >> "$RESULTS"
  done
  echo "[bench] round $r done (load $(cut -d" " -f1-3 /proc/loadavg))"
done
TORCH_VERSION=$("$TORCH_PY" -c "import torch; print(torch.__version__)")
echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(getconf _NPROCESSORS_ONLN) cores, $THREADS threads each; PyTorch $TORCH_VERSION; load average before / after: $LOAD_BEFORE / $(cut -d" " -f1-3 /proc/loadavg)"
"$PY" - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["system"], []).append(r)
med = {k: statistics.median(x["samples_per_s"] for x in v) for k, v in by.items()}
print("| system | median samples/s | min - max | step ms (median) | CPU s / step (median) | fwd / bwd / AdamW ms | rounds |")
print("|---|---:|---:|---:|---:|---:|---:|")
for k, v in by.items():
    s = [x["samples_per_s"] for x in v]
    phases = "-"
    if "forward_ms_median" in v[0]:
        f = lambda key: statistics.median(x[key] for x in v)
        phases = f"{f('forward_ms_median'):.0f} / {f('backward_ms_median'):.0f} / {f('optimizer_ms_median'):.0f}"
    step = statistics.median(x["step_ms_median"] for x in v)
    cpu = [x["cpu_s_per_step"] for x in v if x.get("cpu_s_per_step") is not None]
    cpu = f"{statistics.median(cpu):.2f}" if cpu else "-"
    print(f"| {k} | {med[k]:.1f} | {min(s):.1f} - {max(s):.1f} | {step:.0f} | {cpu} | {phases} | {len(v)} |")
for c in [k for k in med if k.startswith("candle")]:
    for t in [k for k in med if k.startswith("PyTorch")]:
        print(f"ratio {c} / {t}: {med[c] / med[t]:.2f}")
PY
