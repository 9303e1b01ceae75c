#!/usr/bin/env python3
"""Runs a text-encoder ONNX (input_ids, attention_mask[, token_type_ids] -> embedding) in
onnxruntime Python on the padded batch of a reference JSON (scripts/golden/bert_minilm.json or
one written by a test) and prints one JSON line: the max abs difference of `embedding` and of
every `hidden{i}` the reference has. With --int8 MODEL it also runs that model (output
last_hidden_state), mean-pools it and reports the per-row cosine with our embedding.
Exits 1 if a difference exceeds --tol or a cosine is below --min-cosine.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def feeds(sess, ref):
    names = {i.name for i in sess.get_inputs()}
    all_ = {
        "input_ids": np.array(ref["input_ids"], dtype=np.int64),
        "attention_mask": np.array(ref["attention_mask"], dtype=np.int64),
        "token_type_ids": np.array(ref["token_type_ids"], dtype=np.int64),
    }
    return {k: v for k, v in all_.items() if k in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--int8")
    ap.add_argument("--min-cosine", type=float, default=0.99)
    a = ap.parse_args()
    onnx.checker.check_model(a.model, full_check=True)
    ref = json.load(open(a.reference))
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    outs = {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, feeds(sess, ref)))}
    report = {"embedding_max_abs": float(np.abs(outs["embedding"] - np.array(ref["embedding"])).max())}
    worst = report["embedding_max_abs"]
    for i, h in enumerate(ref.get("hidden", [])):
        d = float(np.abs(outs[f"hidden{i}"] - np.array(h)).max())
        report[f"hidden{i}_max_abs"] = d
        worst = max(worst, d)
    ok = worst <= a.tol
    if a.int8:
        s8 = ort.InferenceSession(a.int8, providers=["CPUExecutionProvider"])
        last = s8.run(["last_hidden_state"], feeds(s8, ref))[0]
        m = np.array(ref["attention_mask"], dtype=np.float32)[:, :, None]
        pooled = (last * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        e = outs["embedding"]
        cos = (pooled * e).sum(1) / (np.linalg.norm(pooled, axis=1) * np.linalg.norm(e, axis=1))
        report["int8_cosine"] = [float(c) for c in cos]
        ok = ok and float(cos.min()) >= a.min_cosine
    print(json.dumps(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
