#!/usr/bin/env bash
# The server image, really run (opt-in: not part of `make test`, ~2-4 min and root): builds the
# runtime image of the Dockerfile around the host's release binary with podman, starts it with
# docker-compose.yml + docker-compose.cpu.yml (podman-compose), and checks
#   - the container's healthcheck passes (provider cpu, inference thread running),
#   - /v1/model answers with the token: provider cpu, every node placed on the CPU,
#   - /v1/score stores one batch, the shard lands in the host's data dir owned by uid 10001
#     and pyarrow reads it back,
#   - `down` (SIGTERM) stops it with exit status 0 and the dataset sealed.
# No container registry is reachable here, so the base image is a Debian root filesystem made
# with debootstrap and imported (BASE_IMAGE, built when missing); on a machine with registry
# access `RUNTIME_IMAGE=nvidia/cuda:... scripts/test_image.sh` uses a real one.
#
# Needs: podman + runc (Debian packages), debootstrap when BASE_IMAGE is missing; podman-compose
# is installed into target/image-venv from PyPI.
# Usage: scripts/test_image.sh [--keep] [--no-cargo]
#   --keep      leave the container and the work dir for a look
#   --no-cargo  use target/release/teacher-server as it is (no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0
CARGO_BUILD=1
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    --no-cargo) CARGO_BUILD=0 ;;
    *) echo "unknown argument: $a (see the header of $0)" >&2; exit 2 ;;
  esac
done
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm-slim}
RUNTIME_IMAGE=${RUNTIME_IMAGE:-$BASE_IMAGE}
IMAGE=localhost/distill/teacher-server:test
PORT=${PORT:-18080}
TOKEN=image-test-token
PY=$ROOT/.venv/bin/python
step() { echo "[image] $*"; }
fail() { echo "[image] FAIL: $*" >&2; exit 1; }

command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc)"
command -v runc >/dev/null || fail "runc is not installed (apt-get install runc)"
WORK=$(mktemp -d /tmp/distill-image.XXXXXX)
# This VM's cgroup layout needs runc (crun refuses it), and root here may not raise ulimits.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$WORK/containers.conf

VENV=$ROOT/target/image-venv
if ! "$VENV/bin/podman-compose" --version >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "podman-compose==1.6.0"
fi
COMPOSE="$VENV/bin/podman-compose"

if ! podman image exists "$BASE_IMAGE"; then
  command -v debootstrap >/dev/null || fail "$BASE_IMAGE is missing and debootstrap is not installed"
  MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  step "debootstrap bookworm from $MIRROR -> $BASE_IMAGE"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
  tar -C "$WORK/rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

if [ "$CARGO_BUILD" = 1 ]; then
  step "cargo build --release -p teacher-server"
  cargo build --release --locked -q -p teacher-server
fi
[ -x target/release/teacher-server ] || fail "target/release/teacher-server is missing"
SECRET=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && SECRET=(--secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt)
step "podman build (RUNTIME_IMAGE=$RUNTIME_IMAGE, BINARY_FROM=prebuilt)"
t0=$(date +%s)
# --format docker keeps HEALTHCHECK (the OCI format drops it).
podman build --format docker -f Dockerfile -t "$IMAGE" \
  --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" --build-arg BINARY_FROM=prebuilt \
  "${SECRET[@]}" . >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "podman build"; }
step "built in $(( $(date +%s) - t0 )) s, $(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" = distill ] || fail "the image does not run as distill"

mkdir -p "$WORK/models" "$WORK/data"
"$PY" scripts/make_test_models.py "$WORK/models" >/dev/null
cp "$WORK/models/mlp.onnx" "$WORK/models/teacher.onnx"
chown 10001:10001 "$WORK/data"
# The test's own settings on top of the two project files: the local image, another host
# port, the work dir's folders. podman-compose 1.6 crashes on `build: !reset null`, hence
# `up --no-build` with the build section left in place.
cat >"$WORK/compose.test.yml" <<EOF
services:
  teacher-server:
    image: $IMAGE
    ports: !override
      - "127.0.0.1:$PORT:8080"
    volumes: !override
      - $WORK/models:/models:ro
      - $WORK/data:/data
EOF
FILES=(-p distill-image-test -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.cpu.yml" -f "$WORK/compose.test.yml")
cleanup() {
  if [ "$KEEP" = 0 ]; then
    DISTILL_API_TOKEN=$TOKEN "$COMPOSE" "${FILES[@]}" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
  else
    echo "[image] kept: $WORK"
  fi
}
trap cleanup EXIT

step "compose up"
t0=$(date +%s.%N)
DISTILL_API_TOKEN=$TOKEN "$COMPOSE" "${FILES[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "compose up"; }
CID=$(podman ps -q --filter label=io.podman.compose.project=distill-image-test | head -1)
[ -n "$CID" ] || fail "no container"
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done
READY=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
step "ready $READY s after up: $(curl -fsS "http://127.0.0.1:$PORT/health")"
# No systemd here, so podman does not schedule healthchecks: run the image's check once.
podman healthcheck run "$CID" || { podman logs "$CID" | tail -20; fail "healthcheck"; }
step "healthcheck: $(podman inspect "$CID" --format '{{.State.Health.Status}}')"

AUTH=(-H "Authorization: Bearer $TOKEN")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/model")" = 401 ] || fail "/v1/model without the token is not 401"
curl -fsS "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/model" >"$WORK/model.json"
"$PY" - "$WORK/model.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["provider"] == "cpu", m["provider"]
p = m["placement"]
assert p["measured"] and p["nodes"] and set(p["providers"]) == {"CPUExecutionProvider"}, p
print(f"[image] /v1/model: provider {m['provider']}, ORT {m['ort_version']}, nodes {p['providers']}")
EOF
BODY=$("$PY" -c 'import json; print(json.dumps({"dataset": "image", "ids": [f"i-{k}" for k in range(5)], "inputs": {"x": [[0.1 * (k + j) for j in range(16)] for k in range(5)]}}))')
curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/v1/score" >"$WORK/score.json"
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["stored"] == 5, r; print("[image] stored", r["stored"], "rows")' "$WORK/score.json"
curl -fsS "${AUTH[@]}" -X POST "http://127.0.0.1:$PORT/v1/datasets/image/seal" >/dev/null

step "compose down (SIGTERM)"
DISTILL_API_TOKEN=$TOKEN "$COMPOSE" "${FILES[@]}" stop >/dev/null 2>&1
EXIT=$(podman inspect "$CID" --format '{{.State.ExitCode}}')
[ "$EXIT" = 0 ] || { podman logs "$CID" | tail -20; fail "exit status $EXIT after SIGTERM"; }
"$PY" - "$WORK/data/image" <<'EOF'
import glob, json, os, sys
import pyarrow.parquet as pq
d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "shard-*.parquet")))
assert files, os.listdir(d)
rows = sum(pq.read_table(f).num_rows for f in files)
owners = {os.stat(f).st_uid for f in files + [d]}
m = json.load(open(os.path.join(d, "_manifest.json")))
assert rows == 5 and m["rows"] == 5 and m["pending_rows"] == 0, (rows, m)
assert owners == {10001}, owners
print(f"[image] host data dir: {len(files)} shard, {rows} rows read by pyarrow, owned by uid 10001, sealed; provider {m['teacher']['provider']}")
EOF
step "PASS (container exit 0 after SIGTERM)"
