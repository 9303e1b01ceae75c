"""Summarises an OpenAPI fuzzing run (bench/fuzz_openapi.sh): the requests schemathesis
recorded (HAR), the server log and the label store left behind.

Prints requests per operation and status, and three zero-counts, exiting 1 when any is not 0:
  - 5xx answers other than shedding (503 with Retry-After),
  - panics in the server log,
  - rows stored from requests not answered 200: per dataset, the rows its manifest counts
    minus the sum of `stored` over the 200 answers to requests naming it.
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import urllib.parse


def dataset_of(entry):
    """The dataset a /v1/score request names (JSON body or Arrow query), or None."""
    req = entry["request"]
    post = req.get("postData") or {}
    headers = {h["name"].lower(): h["value"] for h in req.get("headers", [])}
    mime = headers.get("content-type", post.get("mimeType", ""))
    if "json" not in mime:
        # Arrow IPC bodies name the dataset in the query (ignored for JSON bodies).
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(req["url"]).query)
        return q["dataset"][0] if q.get("dataset") else None
    text = post.get("text") or ""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    d = body.get("dataset") if isinstance(body, dict) else None
    return d if isinstance(d, str) else None


def operation(entry):
    path = urllib.parse.urlsplit(entry["request"]["url"]).path
    path = re.sub(r"^/v1/datasets/[^/]+", "/v1/datasets/{name}", path)
    return f'{entry["request"]["method"]} {path}'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--har", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--server-exit", type=int, default=0)
    a = ap.parse_args()

    with open(a.har) as f:
        entries = json.load(f)["log"]["entries"]
    by_op = collections.defaultdict(collections.Counter)
    statuses = collections.Counter()
    server_errors = []
    acked = collections.Counter()
    for e in entries:
        status = e["response"]["status"]
        statuses[status] += 1
        by_op[operation(e)][status] += 1
        headers = {h["name"].lower(): h["value"] for h in e["response"].get("headers", [])}
        if status >= 500 and not (status == 503 and "retry-after" in headers):
            server_errors.append(f'{operation(e)} -> {status}: {(e["response"].get("content") or {}).get("text", "")[:300]}')
        if status == 200 and operation(e) == "POST /v1/score":
            d = dataset_of(e)
            if d is not None:
                body = json.loads(e["response"]["content"]["text"])
                acked[d] += int(body.get("stored", 0))

    with open(a.log, errors="replace") as f:
        log = f.read()
    panics = [l for l in log.splitlines() if "panicked" in l]

    stored = {}
    for m in glob.glob(os.path.join(a.data, "*", "_manifest.json")):
        with open(m) as f:
            man = json.load(f)
        stored[man["dataset"]] = man["rows"] + man.get("pending_rows", 0)
    unacked_rows = {d: n - acked.get(d, 0) for d, n in stored.items() if n != acked.get(d, 0)}
    empty_datasets = sorted(d for d, n in stored.items() if n == 0 and acked.get(d, 0) == 0)

    print(f"requests: {len(entries)}")
    print("statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    for op in sorted(by_op):
        print(f"  {op}: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_op[op].items())))
    print(f"datasets: {len(stored)}, rows stored: {sum(stored.values())}, rows acknowledged: {sum(acked.values())}")
    if empty_datasets:
        print(f"datasets created without rows: {len(empty_datasets)} ({', '.join(empty_datasets[:10])})")
    print(f"5xx other than shedding: {len(server_errors)}")
    for s in server_errors[:20]:
        print(f"  {s}")
    print(f"panics in the server log: {len(panics)}")
    for p in panics[:10]:
        print(f"  {p}")
    print(f"rows stored from requests not answered 200: {sum(unacked_rows.values())} {unacked_rows or ''}")
    print(f"server exit after SIGTERM: {a.server_exit}")
    bad = server_errors or panics or unacked_rows or a.server_exit != 0
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
