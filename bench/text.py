#!/usr/bin/env python3
"""Text-teacher benchmark, one run, rounds interleaved: sentences/s of all-MiniLM-L6-v2 on the
same WordNet sentences for
  raw           onnxruntime `InferenceSession.run` on pre-tokenized batches of --batch sentences,
                each padded to its longest row (what a client batch costs the model, nothing else)
  raw-sorted    the same, but the sentences sorted by length before batching: the model's cost
                with near-minimal padding, the ceiling for any server that reorders rows
  server-text   teacher-server --tokenizer, JSON bodies of sentences, storage on
  server-ids    teacher-server --tokenizer, Arrow IPC bodies of pre-tokenized ids, storage on
  fastapi-text  FastAPI + tokenizers + onnxruntime + pyarrow (bench/fastapi_text_baseline.py),
                JSON bodies of sentences, storage on
and then token-budget batching (length-ordered runs) against plain row batching on a mixed-length
load: padding efficiency (real / padded tokens, from /metrics) and the speed-up. Every client is
the same Python load generator (--concurrency threads, one request of --batch sentences each).
Prints medians, ranges and ratios, and writes OUT/results.json. Not a test: numbers depend on the
machine.

Usage: bench/text.py --server BIN --sentences wordnet.parquet [--rows 4096] [--batch 64]
                     [--concurrency 4] [--rounds 5] [--out target/bench-text]
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM = os.path.join(ROOT, ".deps/models/minilm-l6")
ARROW = "application/vnd.apache.arrow.stream"
MAX_LEN = 128


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_health(port: int, proc: subprocess.Popen, log: str) -> None:
    for _ in range(1200):
        if proc.poll() is not None:
            break
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"server on {port} did not come up:\n{open(log).read()[-3000:]}")


def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(os.path.join(MINILM, "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_LEN)
    tok.no_padding()
    return tok


def load(url_port: int, bodies: list, content_type: str, path: str, concurrency: int) -> float:
    """Sends every body once from `concurrency` threads; returns the wall seconds."""
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    errors = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=600)
        while True:
            with lock:
                if not queue:
                    return
                _, body = queue.pop()
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(f"HTTP {r.status}: {data[:300]!r}")
                return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    if errors:
        sys.exit(f"load failed: {errors[0]}")
    return took


def json_bodies(sentences, batch, dataset, round_no):
    out = []
    for i in range(0, len(sentences), batch):
        chunk = sentences[i : i + batch]
        ids = [f"r{round_no}-{i + j}" for j in range(len(chunk))]
        out.append(json.dumps({"dataset": dataset, "ids": ids, "inputs": {"text": chunk}}).encode())
    return out


def arrow_id_bodies(encodings, batch, round_no):
    """Arrow IPC bodies of right-padded int64 token tensors (as List<Int64> rows)."""
    out = []
    for i in range(0, len(encodings), batch):
        chunk = encodings[i : i + batch]
        width = max(len(e) for e in chunk)
        pad = lambda rows: pa.array(rows, type=pa.list_(pa.int64()))
        ids = pad([e + [0] * (width - len(e)) for e in chunk])
        mask = pad([[1] * len(e) + [0] * (width - len(e)) for e in chunk])
        types = pad([[0] * width for _ in chunk])
        rid = pa.array([f"r{round_no}-{i + j}" for j in range(len(chunk))])
        table = pa.table({"id": rid, "input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        out.append(sink.getvalue().to_pybytes())
    return out


def raw_ort(sess, encodings, batch) -> float:
    feeds = []
    for i in range(0, len(encodings), batch):
        chunk = encodings[i : i + batch]
        width = max(len(e) for e in chunk)
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(chunk):
            ids[r, : len(e)] = e
            mask[r, : len(e)] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    sess.run(None, feeds[0])
    start = time.perf_counter()
    for f in feeds:
        sess.run(None, f)
    return time.perf_counter() - start


def metric(port: int, name: str) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="teacher-server binary")
    ap.add_argument("--sentences", required=True, help="Parquet with a `text` column")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="target/bench-text")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    try:
        import fastapi, uvicorn  # noqa: F401  (the peer's own imports)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "fastapi", "uvicorn"], check=True)

    text = pq.read_table(a.sentences, columns=["text"]).column("text").to_pylist()
    # A fixed, mixed sample: every k-th sentence of the corpus (definitions and examples).
    step = max(1, len(text) // a.rows)
    sentences = text[::step][: a.rows]
    tok = tokenizer()
    encodings = [e.ids for e in tok.encode_batch(sentences)]
    lengths = [len(e) for e in encodings]
    print(f"[bench-text] {len(sentences)} sentences, tokens/sentence median {statistics.median(lengths)}, "
          f"max {max(lengths)}; batch {a.batch}, concurrency {a.concurrency}, {a.rounds} rounds", flush=True)

    ort_lib = os.environ.get("ORT_DYLIB_PATH", os.path.join(ROOT, ".deps/onnxruntime/libonnxruntime.so.1.31.1"))
    procs = {}

    def start_server(name, args):
        port = free_port()
        data = tempfile.mkdtemp(prefix=f"bench-{name}-")
        log = os.path.join(a.out, f"{name}.log")
        p = subprocess.Popen(args(port, data), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                             env={**os.environ, "ORT_DYLIB_PATH": ort_lib})
        wait_health(port, p, log)
        procs[name] = (p, port)
        return port

    def ours(batching):
        return lambda port, data: [
            a.server, "serve", "--model", os.path.join(MINILM, "model.onnx"),
            "--tokenizer", os.path.join(MINILM, "tokenizer.json"), "--ep", "cpu",
            "--data-dir", data, "--bind", f"127.0.0.1:{port}",
            "--output", "embedding=last_hidden_state", "--pool", "embedding=mean",
            "--batching", batching, "--max-wait-ms", "5"]

    start_server("server", ours("tokens"))
    start_server("server-rows", ours("rows"))
    start_server("fastapi", lambda port, data: [
        sys.executable, os.path.join(ROOT, "bench/fastapi_text_baseline.py"),
        "--model", os.path.join(MINILM, "model.onnx"), "--tokenizer", os.path.join(MINILM, "tokenizer.json"),
        "--data-dir", data, "--port", str(port), "--max-length", str(MAX_LEN)])

    sess = ort.InferenceSession(os.path.join(MINILM, "model.onnx"), providers=["CPUExecutionProvider"])
    by_length = sorted(encodings, key=len)
    results = {k: [] for k in ("raw", "raw-sorted", "server-text", "server-ids", "fastapi-text", "server-rows-text")}
    padding = {"tokens": [], "rows": []}
    try:
        for rnd in range(a.rounds):
            results["raw"].append(len(sentences) / raw_ort(sess, encodings, a.batch))
            results["raw-sorted"].append(len(sentences) / raw_ort(sess, by_length, a.batch))
            for name, key, port_name, bodies, ctype, path in (
                ("server-text", "tokens", "server", json_bodies(sentences, a.batch, f"t{rnd}", rnd), "application/json", "/v1/score"),
                ("server-ids", None, "server", arrow_id_bodies(encodings, a.batch, rnd), ARROW, f"/v1/score?dataset=i{rnd}"),
                ("fastapi-text", None, "fastapi", json_bodies(sentences, a.batch, f"t{rnd}", rnd), "application/json", "/v1/score"),
                ("server-rows-text", "rows", "server-rows", json_bodies(sentences, a.batch, f"t{rnd}", rnd), "application/json", "/v1/score"),
            ):
                port = procs[port_name][1]
                real0, pad0 = metric(port, "distill_tokens_real_total"), metric(port, "distill_tokens_padded_total")
                took = load(port, bodies, ctype, path, a.concurrency)
                results[name].append(len(sentences) / took)
                if key:
                    real = metric(port, "distill_tokens_real_total") - real0
                    pad = metric(port, "distill_tokens_padded_total") - pad0
                    padding[key].append(real / pad)
            print(f"[bench-text] round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in results.items()), flush=True)
    finally:
        for p, _ in procs.values():
            p.terminate()
        for p, _ in procs.values():
            p.wait(timeout=30)

    def stats(v):
        return {"median": statistics.median(v), "min": min(v), "max": max(v)}

    summary = {k: stats(v) for k, v in results.items()}
    med = {k: s["median"] for k, s in summary.items()}
    ratios = {
        "server-text / raw": med["server-text"] / med["raw"],
        "server-ids / raw": med["server-ids"] / med["raw"],
        "server-text / raw-sorted": med["server-text"] / med["raw-sorted"],
        "server-text / fastapi-text": med["server-text"] / med["fastapi-text"],
        "token batching / row batching": med["server-text"] / med["server-rows-text"],
    }
    pad = {k: stats(v) for k, v in padding.items()}
    out = {"sentences": len(sentences), "batch": a.batch, "concurrency": a.concurrency, "rounds": a.rounds,
           "tokens_median": statistics.median(lengths), "sentences_per_s": summary, "ratios": ratios,
           "padding_efficiency": pad, "load_before": open("/proc/loadavg").read().split()[:3]}
    json.dump(out, open(os.path.join(a.out, "results.json"), "w"), indent=2)
    print("| run | sentences/s median | range |\n|---|---:|---:|")
    for k, s in summary.items():
        print(f"| {k} | {s['median']:.0f} | {s['min']:.0f}-{s['max']:.0f} |")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    for k, s in pad.items():
        print(f"padding efficiency ({k} batching): {s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})")


if __name__ == "__main__":
    main()
