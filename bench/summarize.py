#!/usr/bin/env python3
"""Summarises a bench/server.sh run directory: medians and ranges of rows/s per system, the
ratios between them, and label-store bytes per row per storage mode (from the sealed Parquet
shards, with per-column compressed sizes from the Parquet footers). Prints Markdown.

Usage: summarize.py OUT_DIR
"""
import glob
import json
import os
import statistics
import sys

import pyarrow.parquet as pq

ORDER = ["raw", "server-arrow", "server-json", "fastapi-arrow", "fastapi-json"]
LABELS = {
    "raw": "ONNX Runtime `Session::run` from Rust (no server)",
    "server-arrow": "teacher-server, Arrow IPC, storage on",
    "server-json": "teacher-server, JSON, storage on",
    "fastapi-arrow": "FastAPI + onnxruntime + pyarrow, Arrow IPC, storage on",
    "fastapi-json": "FastAPI + onnxruntime + pyarrow, JSON, storage on",
}


def main(out: str) -> None:
    runs = {}
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            runs.setdefault(rec["name"], []).append(rec["result"])
    with open(os.path.join(out, "machine.txt")) as f:
        print("".join("    " + l for l in f))

    med = {}
    print("| system | median rows/s | min – max rows/s | runs | request bytes/row |")
    print("|---|---:|---:|---:|---:|")
    for name in ORDER:
        rs = runs.get(name)
        if not rs:
            print(f"| {LABELS[name]} | not measured | | 0 | |")
            continue
        v = [r["rows_per_sec"] for r in rs]
        med[name] = statistics.median(v)
        body = rs[0].get("body_bytes_per_row")
        body = f"{body:,.0f}" if body else "–"
        print(f"| {LABELS[name]} | {med[name]:,.0f} | {min(v):,.0f} – {max(v):,.0f} | {len(v)} | {body} |")
        stored = [r.get("stored") for r in rs if "stored" in r]
        if stored and any(s != r["rows"] for s, r in zip(stored, rs)):
            print(f"|   warning: {name} stored fewer rows than sent: {stored} | | | | |")
    print()
    print("| ratio (of medians) | value |")
    print("|---|---:|")
    for a, b in [("server-arrow", "raw"), ("server-json", "raw"), ("server-arrow", "server-json"),
                 ("server-json", "fastapi-json"), ("server-arrow", "fastapi-arrow")]:
        if a in med and b in med:
            print(f"| {a} / {b} | {med[a] / med[b]:.2f} |")
    print()

    print("| storage mode | rows | shards | bytes/row (files) | per-column compressed bytes/row |")
    print("|---|---:|---:|---:|---|")
    for mode in ["f32", "f16", "topk", "f32-inputs"]:
        files = sorted(glob.glob(os.path.join(out, f"store-{mode}", "mnist-test", "*.parquet")))
        if not files:
            print(f"| {mode} | not measured | | | |")
            continue
        rows, total, cols = 0, 0, {}
        for path in files:
            md = pq.ParquetFile(path).metadata
            rows += md.num_rows
            total += os.path.getsize(path)
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                for c in range(rg.num_columns):
                    cc = rg.column(c)
                    top = cc.path_in_schema.split(".")[0]
                    cols[top] = cols.get(top, 0) + cc.total_compressed_size
        per_col = ", ".join(f"{k} {v / rows:.1f}" for k, v in cols.items())
        print(f"| {mode} | {rows:,} | {len(files)} | {total / rows:.1f} | {per_col} |")


if __name__ == "__main__":
    main(sys.argv[1])
