#!/usr/bin/env python3
"""A Python load client for the storage benchmark: the same load for teacher-server and the
FastAPI peer, from a client neither of them is written in.

It reads the first ROWS rows of a Parquet file (`id`, the model inputs, pass-through columns),
encodes them up front into request bodies of BATCH rows (Arrow IPC streams, or JSON
`ScoreRequest`s), opens CONCURRENCY keep-alive connections (stdlib `http.client`, one thread
each), then sends every body once and times from the first send to the last answer. A 429 or
503 is retried after a short pause (counted in `retries`); any other failure stops the run.
Prints one JSON object with the fields of `distill-label bench-load`'s report, so
bench/storage.sh and bench/summarize_storage.py read either client's output.

Usage: load_client.py --server URL --data FILE.parquet [--input NAME=COLUMN ...] [--columns a,b]
                      [--rows 25600] [--batch-rows 256] [--concurrency 4]
                      [--format arrow|json] [--dataset NAME]
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

import pyarrow as pa
import pyarrow.parquet as pq

ARROW = "application/vnd.apache.arrow.stream"
RETRY_STATUS = (429, 503)
MAX_RETRIES = 50


def load_rows(path: str, inputs: list, columns: list, rows: int) -> pa.Table:
    """The first `rows` rows as `id`, one column per input (named after the input), then the
    pass-through columns: the layout `distill-label bench-load` sends."""
    wanted = ["id"] + [c for _, c in inputs] + columns
    table = pq.read_table(path, columns=list(dict.fromkeys(wanted)))
    if table.num_rows < rows:
        sys.exit(f"{path} has only {table.num_rows} rows, {rows} asked")
    table = table.slice(0, rows)
    arrays = [table.column("id")] + [table.column(c) for _, c in inputs] + [table.column(c) for c in columns]
    names = ["id"] + [n for n, _ in inputs] + columns
    return pa.table(arrays, names=names).combine_chunks()


def arrow_body(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def json_body(batch: pa.RecordBatch, input_names: list, dataset) -> bytes:
    req = {"ids": batch.column(0).to_pylist(), "inputs": {}, "columns": {}}
    if dataset:
        req["dataset"] = dataset
    for name, col in zip(batch.schema.names[1:], batch.columns[1:]):
        if name in input_names:
            req["inputs"][name] = col.to_pylist()
        else:
            req["columns"][name] = col.to_pylist()
    if not req["columns"]:
        del req["columns"]
    return json.dumps(req, separators=(",", ":")).encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--input", action="append", default=[], help="NAME=COLUMN (model input from a column)")
    ap.add_argument("--columns", default="", help="pass-through columns, comma-separated")
    ap.add_argument("--rows", type=int, default=25600)
    ap.add_argument("--batch-rows", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--format", choices=["arrow", "json"], default="arrow")
    ap.add_argument("--dataset", default=None)
    a = ap.parse_args()
    if min(a.rows, a.batch_rows, a.concurrency) < 1:
        sys.exit("--rows, --batch-rows and --concurrency must be at least 1")
    inputs = [tuple(m.split("=", 1)) if "=" in m else (m, m) for m in a.input]
    columns = [c for c in a.columns.split(",") if c]
    table = load_rows(a.data, inputs, columns, a.rows)
    input_names = [n for n, _ in inputs]

    url = urllib.parse.urlsplit(a.server)
    path = "/v1/score"
    headers = {"Content-Type": "application/json"}
    if a.format == "arrow":
        headers = {"Content-Type": ARROW}
        if a.dataset:
            path += "?" + urllib.parse.urlencode({"dataset": a.dataset})
    bodies = []
    for batch in table.to_batches(max_chunksize=a.batch_rows):
        body = arrow_body(batch) if a.format == "arrow" else json_body(batch, input_names, a.dataset)
        bodies.append((body, batch.num_rows))

    lock = threading.Lock()
    state = {"next": 0, "rows": 0, "stored": 0, "retries": 0, "error": None}

    def take():
        with lock:
            if state["error"] is not None or state["next"] >= len(bodies):
                return None
            i = state["next"]
            state["next"] += 1
            return i

    def worker(conn: http.client.HTTPConnection) -> None:
        while (i := take()) is not None:
            body, n = bodies[i]
            for attempt in range(MAX_RETRIES + 1):
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        state["error"] = state["error"] or f"request {i}: {e}"
                    return
                if resp.status == 200:
                    answer = json.loads(data)
                    with lock:
                        state["rows"] += n
                        state["stored"] += answer.get("stored", 0)
                    break
                if resp.status in RETRY_STATUS and attempt < MAX_RETRIES:
                    with lock:
                        state["retries"] += 1
                    time.sleep(0.01)
                    continue
                with lock:
                    state["error"] = state["error"] or f"request {i}: HTTP {resp.status}: {data[:300]!r}"
                return

    conns = []
    for _ in range(a.concurrency):
        c = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=300)
        c.connect()
        conns.append(c)
    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    for c in conns:
        c.close()
    if state["error"]:
        sys.exit(state["error"])
    body_bytes = sum(len(b) for b, _ in bodies)
    print(json.dumps({
        "format": a.format,
        "rows": state["rows"],
        "stored": state["stored"],
        "requests": len(bodies),
        "retries": state["retries"],
        "body_bytes_per_row": body_bytes / a.rows,
        "seconds": seconds,
        "rows_per_sec": state["rows"] / seconds,
        "client": "python",
    }))


if __name__ == "__main__":
    main()
