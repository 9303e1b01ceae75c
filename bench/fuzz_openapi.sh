#!/usr/bin/env bash
# OpenAPI-driven fuzzing of the live server: schemathesis (PyPI, in its own venv) reads the
# server's /openapi.json and sends generated requests, valid and invalid, to every operation
# until the time budget is spent; then bench/fuzz_summary.py counts what came back from the
# recorded requests (HAR) and the server log:
#   requests, statuses, 5xx other than shedding (must be 0), panics in the server log (0),
#   rows stored from requests that were not answered 200 (0: every dataset's rows equal the
#   sum of `stored` of its 200 answers, read from the manifests after a clean shutdown).
# The debug binary is the default: its integer-overflow checks turn silent wraps into panics.
#
# Usage: bench/fuzz_openapi.sh [--max-time 600] [--seed 1] [--bin target/debug/teacher-server]
#                              [--out target/fuzz-openapi]
# Exit status 1 when any of the zero-counts above is not zero. Not part of `make test`
# (schemathesis and its dependencies are a ~40 MB install); the decoders' own fuzz corpus
# and the regression tests of what this found run there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MAX_TIME=600
SEED=1
BIN=$ROOT/target/debug/teacher-server
OUT=target/fuzz-openapi
SCHEMATHESIS_VERSION=4.32.5
while [ $# -gt 0 ]; do
  case "$1" in
    --max-time) MAX_TIME=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --bin) BIN=$(realpath "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] && [ -f "$ORT_DYLIB_PATH" ] || scripts/fetch_deps.sh
[ -x "$BIN" ] || { echo "$BIN is missing: cargo build --workspace --bins" >&2; exit 1; }
VENV=${FUZZ_VENV:-$ROOT/target/fuzz-venv}
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

rm -rf "$OUT"
mkdir -p "$OUT/models"
OUT=$(realpath "$OUT")
"$PY" scripts/make_test_models.py "$OUT/models" >/dev/null
TOKEN=fuzz-token
# Small limits, so generated requests reach them (and the queue sheds) without using the
# machine's whole memory.
"$BIN" serve --model "$OUT/models/mlp.onnx" --data-dir "$OUT/data" --bind 127.0.0.1:0 \
  --ep cpu --api-token "$TOKEN" --max-body-bytes 1048576 --max-request-rows 256 \
  --queue-capacity 512 --header-timeout-secs 5 --body-timeout-secs 5 \
  >"$OUT/server.stdout" 2>"$OUT/server.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
ADDR=""
for _ in $(seq 600); do
  ADDR=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$OUT/server.stdout" | head -1)
  [ -n "$ADDR" ] && break
  kill -0 $PID 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "the server did not start" >&2; exit 1; }
echo "[fuzz] server on $ADDR; schemathesis $SCHEMATHESIS_VERSION for ${MAX_TIME}s, seed $SEED"

set +e
# Run from $OUT: schemathesis keeps its cache (.schemathesis/) in the working directory.
(cd "$OUT" && "$VENV/bin/schemathesis" run "http://$ADDR/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks all --continue-on-failure --max-time "$MAX_TIME" --seed "$SEED" \
  --workers 2 --request-timeout 30 --suppress-health-check all \
  --report har --report-har-path "$OUT/requests.har" \
  >"$OUT/schemathesis.txt" 2>&1)
ST_RC=$?
set -e
echo "[fuzz] schemathesis exit $ST_RC (its check report: $OUT/schemathesis.txt)"
tail -40 "$OUT/schemathesis.txt"

# A clean shutdown seals every dataset, so the manifests count every stored row.
kill -TERM $PID
SERVER_RC=0
wait $PID || SERVER_RC=$?
trap - EXIT
"$PY" bench/fuzz_summary.py --har "$OUT/requests.har" --log "$OUT/server.log" \
  --data "$OUT/data" --server-exit "$SERVER_RC" | tee "$OUT/summary.txt"
