#!/usr/bin/env python3
"""Summarises a bench/storage.sh run: per teacher, body format and storage mode, the median and
range of rows/s, of rows per server CPU-second, the server's CPU microseconds per row and
fsyncs/s of every system, with the
load average seen; then ratios computed round by round (interleaved runs) and their medians.
Prints Markdown.

Usage: summarize_storage.py OUT_DIR
"""
import json
import os
import statistics
import sys
from collections import defaultdict


def med_range(v):
    if not v:
        return "–"
    return f"{statistics.median(v):,.0f} ({min(v):,.0f} – {max(v):,.0f})"


def main(out: str) -> None:
    recs = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
    with open(os.path.join(out, "machine.txt")) as f:
        print("".join("    " + l for l in f))
    by = defaultdict(list)
    for r in recs:
        by[(r["teacher"], r["format"], r["mode"], r["system"])].append(r)
    teachers = sorted({r["teacher"] for r in recs})
    systems = [s for s in dict.fromkeys(r["system"] for r in recs) if s != "raw"]
    for t in teachers:
        raw = [r["result"]["rows_per_sec"] for r in by[(t, "-", "-", "raw")]]
        print(f"### teacher `{t}`: raw ONNX Runtime {med_range(raw)} rows/s\n")
        print("| format | storage | system | rows/s median (range) | rows per server CPU-s median (range) | server CPU µs/row median (range) | fsyncs/s | load1 |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for f in ["arrow", "json"]:
            for m in ["inputs", "noinputs", "nodataset"]:
                for s in systems:
                    rs = by.get((t, f, m, s))
                    if not rs:
                        continue
                    rps = [r["result"]["rows_per_sec"] for r in rs]
                    cpu = [r["server_cpu_s"] / r["result"]["rows"] * 1e6 for r in rs]
                    per_cpu = [r["result"]["rows"] / r["server_cpu_s"] for r in rs if r["server_cpu_s"] > 0]
                    fs = [r["fsyncs"] / r["result"]["seconds"] for r in rs if r.get("fsyncs") is not None]
                    fs = f"{statistics.median(fs):,.0f}" if fs else "n/a"
                    loads = [r["load1"] for r in rs]
                    bad = [r["result"]["stored"] for r in rs if m != "nodataset" and r["result"]["stored"] != r["result"]["rows"]]
                    warn = " (stored fewer rows than sent!)" if bad else ""
                    print(f"| {f} | {m} | {s}{warn} | {med_range(rps)} | {med_range(per_cpu)} | {statistics.median(cpu):.1f} ({min(cpu):.1f} – {max(cpu):.1f}) | {fs} | {min(loads):.1f}–{max(loads):.1f} |")
        print()
        # Ratios per round (the runs of one round are interleaved), then the median of those.
        pairs = []
        for f in ["arrow", "json"]:
            for m in ["inputs", "noinputs", "nodataset"]:
                pairs += [(f, m, a, m, b) for a in systems for b in systems if a != b]
            pairs += [(f, "inputs", a, "nodataset", a) for a in systems if a != "fastapi"]
        print("| ratio of rows/s (per round, median and range) | value |")
        print("|---|---:|")
        for (f, ma, a, mb, b) in pairs:
            ra = {r["round"]: r["result"]["rows_per_sec"] for r in by.get((t, f, ma, a), [])}
            rb = {r["round"]: r["result"]["rows_per_sec"] for r in by.get((t, f, mb, b), [])}
            q = [ra[k] / rb[k] for k in ra if k in rb and rb[k] > 0]
            if not q:
                continue
            print(f"| {f}: {a} {ma} / {b} {mb} | {statistics.median(q):.2f} ({min(q):.2f} – {max(q):.2f}) |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
