#!/usr/bin/env python3
"""Sentence embeddings computed independently of distill: the Hugging Face `tokenizers` package
on a tokenizer.json, ONNX Runtime (Python) on the encoder, then mean pooling over the attention
mask, optionally L2-normalised. The reference the text-path tests compare teacher-server with.

Usage:
  reference_text.py --tokenizer tokenizer.json --model model.onnx --sentences FILE
                    [--max-length 256] [--normalize] [--batch-size 64] [--output NAME]
                    --out OUT.{npy,json}

FILE holds one sentence a line (the line without its line break, otherwise as it is), or, when
its name ends in `.json`, a JSON list of strings (for sentences holding line breaks).

Tokenisation: the tokenizer's own settings are replaced by truncation at --max-length (longest
first, no stride) and padding to the longest sentence of each batch with the tokenizer's pad
token; special tokens ([CLS] ... [SEP]) are added as the tokenizer's post-processor says. (The
all-MiniLM-L6-v2 tokenizer.json ships with truncation at 128 and fixed padding to 128; both are
overridden here, so --max-length alone decides.)

Model inputs are found by name: `input_ids`, `attention_mask` and, when the model has it,
`token_type_ids`, each in the element type the model declares. The pooled output is the model's
`last_hidden_state` (or --output NAME, or its first output), [batch, seq, hidden]:
  pooled = sum_t(h[t] * mask[t]) / max(sum_t(mask[t]), 1e-9)      (in float64)
  normalised: pooled / max(||pooled||_2, 1e-12)
then cast to float32. Runs on the CPU provider with one thread (deterministic).

Output: OUT.npy holds the float32 embeddings [n, hidden]. OUT.json holds
{"embeddings": [[...]], "input_ids": [[...]] (each sentence's token ids, unpadded),
 "tokens": [n per sentence], "max_length": L, "normalized": bool, "tokenizer_sha256": "..."}.
"""

import argparse
import hashlib
import json
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def read_sentences(path):
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            sentences = json.load(f)
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            sys.exit(f"{path}: expected a JSON list of strings")
        return sentences
    with open(path, encoding="utf-8", newline="") as f:
        return [line.rstrip("\r\n") for line in f]


def load_tokenizer(path, max_length):
    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length=max_length)
    pad = tok.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = tok.token_to_id(pad_token)
    if pad_id is None:
        sys.exit(f"{path}: pad token {pad_token!r} is not in the vocabulary")
    tok.enable_padding(pad_id=pad_id, pad_type_id=pad.get("pad_type_id", 0), pad_token=pad_token)
    return tok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", default=None, help="model output to pool (default last_hidden_state)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.max_length < 2 or args.batch_size < 1:
        sys.exit("--max-length must be at least 2 and --batch-size at least 1")
    if not (args.out.endswith(".npy") or args.out.endswith(".json")):
        sys.exit("--out must end in .npy or .json")

    sentences = read_sentences(args.sentences)
    if not sentences:
        sys.exit(f"{args.sentences}: no sentences")
    for i, s in enumerate(sentences):
        if not s.strip():
            sys.exit(f"{args.sentences}: sentence {i} is empty")
    tok = load_tokenizer(args.tokenizer, args.max_length)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    declared = {i.name: i.type for i in sess.get_inputs()}
    for name in ("input_ids", "attention_mask"):
        if name not in declared:
            sys.exit(f"{args.model}: no input {name!r} (inputs: {', '.join(declared)})")
    unknown = set(declared) - {"input_ids", "attention_mask", "token_type_ids"}
    if unknown:
        sys.exit(f"{args.model}: inputs {sorted(unknown)} cannot be fed from text")
    outputs = [o.name for o in sess.get_outputs()]
    output = args.output or ("last_hidden_state" if "last_hidden_state" in outputs else outputs[0])
    if output not in outputs:
        sys.exit(f"{args.model}: no output {output!r} (outputs: {', '.join(outputs)})")

    pooled, ids = [], []
    for start in range(0, len(sentences), args.batch_size):
        enc = tok.encode_batch(sentences[start:start + args.batch_size])
        columns = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        feeds = {name: np.asarray(columns[name], dtype=INT_TYPES[t]) for name, t in declared.items()}
        (hidden,) = sess.run([output], feeds)
        if hidden.ndim != 3:
            sys.exit(f"output {output!r} has shape {hidden.shape}, expected [batch, seq, hidden]")
        mask = np.asarray(columns["attention_mask"], dtype=np.float64)[:, :, None]
        summed = (hidden.astype(np.float64) * mask).sum(axis=1)
        vec = summed / np.maximum(mask.sum(axis=1), 1e-9)
        if args.normalize:
            vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        pooled.append(vec.astype(np.float32))
        ids.extend([i for i, m in zip(e.ids, e.attention_mask) if m] for e in enc)
    emb = np.concatenate(pooled)

    if args.out.endswith(".npy"):
        np.save(args.out, emb)
    else:
        with open(args.tokenizer, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        doc = {"embeddings": [[float(x) for x in row] for row in emb], "input_ids": ids,
               "tokens": [len(i) for i in ids], "max_length": args.max_length,
               "normalized": args.normalize, "tokenizer_sha256": sha, "output": output}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(doc, f)
    print(f"{len(sentences)} sentences -> {args.out} [{emb.shape[0]}, {emb.shape[1]}]", file=sys.stderr)


if __name__ == "__main__":
    main()
