# Shared steps of scripts/demo.sh and scripts/paper.sh (sourced, not run).

# start_server MODEL DATA_DIR LOG [teacher-server flags...]: starts teacher-server on a free
# loopback port; sets SERVER_PID and URL.
start_server() {
  local model=$1 data_dir=$2 log=$3
  shift 3
  "$BIN/teacher-server" serve --model "$model" --data-dir "$data_dir" --bind 127.0.0.1:0 \
    --ep auto "$@" >"$log.stdout" 2>"$log" &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    grep -q 'listening on' "$log.stdout" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log"; echo "teacher-server exited" >&2; return 1; }
    sleep 0.2
  done
  URL=$(grep -o 'http://[0-9.:]*' "$log.stdout" | head -1)
  [ -n "$URL" ] || { cat "$log"; echo "teacher-server did not report its address" >&2; return 1; }
  echo "teacher-server at $URL (pid $SERVER_PID)"
}

# stop_server: SIGTERM (the server finishes queued batches and seals its shards), then wait.
stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

# label URL PARQUET DATASET: streams a Parquet file through the server and seals the dataset.
label() {
  "$BIN/distill-label" label --server "$1" --data "$2" --dataset "$3" --columns label --seal $QUIET
}
