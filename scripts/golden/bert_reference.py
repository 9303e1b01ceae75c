#!/usr/bin/env python3
"""Independent numpy BERT forward (post-LayerNorm, GELU erf, masked mean pooling) over a
Hugging Face BERT safetensors file, parsed here by hand (8-byte header length, JSON header,
little-endian raw tensors), so nothing is shared with the Rust code it checks.

  scripts/golden/bert_reference.py --safetensors F --config config.json --out scripts/golden/bert_minilm.json
      writes a fixed padded batch of mixed lengths (token ids, mask, type ids) and its pooled
      embeddings plus each layer's masked-mean output (float64 math, stored to 8 digits).

Used as a module by scripts/golden/text_students.py.
"""
import argparse
import json
import math
import struct

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    """name -> numpy array for every tensor in the file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = arr
    return out


def erf(x):
    # np has no erf; math.erf per element is exact to double precision.
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def masked_mean(h, mask):
    m = mask[:, :, None].astype(np.float64)
    return (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)


def bert_forward(w, cfg, ids, mask, types=None, layers=None):
    """Pooled embedding and per-layer masked means, all float64.

    w: name -> array (HF names); cfg: dict with hidden, heads, eps; ids/mask/types: [b, s] ints;
    layers: which source layers to run in order (default all)."""
    g = lambda k: np.asarray(w[k], dtype=np.float64)
    b, s = ids.shape
    d, h = cfg["hidden"], cfg["heads"]
    dh = d // h
    eps = cfg["eps"]
    if types is None:
        types = np.zeros_like(ids)
    x = g("embeddings.word_embeddings.weight")[ids]
    x = x + g("embeddings.position_embeddings.weight")[:s][None]
    x = x + g("embeddings.token_type_embeddings.weight")[types]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    add = (1.0 - mask.astype(np.float64))[:, None, None, :] * -10000.0
    if layers is None:
        layers = range(cfg["layers"])
    pooled = []
    for i in layers:
        p = f"encoder.layer.{i}."
        lin = lambda t, n: t @ g(p + n + ".weight").T + g(p + n + ".bias")
        split = lambda t: t.reshape(b, s, h, dh).transpose(0, 2, 1, 3)
        q = split(lin(x, "attention.self.query"))
        k = split(lin(x, "attention.self.key"))
        v = split(lin(x, "attention.self.value"))
        sc = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + add
        sc = sc - sc.max(-1, keepdims=True)
        pr = np.exp(sc)
        pr = pr / pr.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
        a = layer_norm(
            lin(ctx, "attention.output.dense") + x,
            g(p + "attention.output.LayerNorm.weight"),
            g(p + "attention.output.LayerNorm.bias"),
            eps,
        )
        f = lin(a, "intermediate.dense")
        f = 0.5 * f * (1.0 + erf(f / math.sqrt(2.0)))
        x = layer_norm(
            lin(f, "output.dense") + a,
            g(p + "output.LayerNorm.weight"),
            g(p + "output.LayerNorm.bias"),
            eps,
        )
        pooled.append(masked_mean(x, mask))
    return pooled[-1], pooled


def sample_batch(vocab, seed=0):
    """A padded batch of mixed lengths: [CLS] ... [SEP] rows of 9, 4, 13 and 1+1 tokens."""
    rng = np.random.default_rng(seed)
    lens = [9, 4, 13, 2]
    s = max(lens)
    ids = np.zeros((len(lens), s), dtype=np.int64)
    mask = np.zeros((len(lens), s), dtype=np.int64)
    types = np.zeros((len(lens), s), dtype=np.int64)
    for r, n in enumerate(lens):
        ids[r, :n] = rng.integers(1000, vocab, n)
        ids[r, 0], ids[r, n - 1] = 101, 102
        mask[r, :n] = 1
        types[r, n // 2 : n] = 1 if r == 2 else 0  # one row with a second segment
    return ids, mask, types


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--safetensors", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    hf = json.load(open(args.config))
    cfg = {
        "hidden": hf["hidden_size"],
        "heads": hf["num_attention_heads"],
        "layers": hf["num_hidden_layers"],
        "eps": hf.get("layer_norm_eps", 1e-12),
    }
    w = read_safetensors(args.safetensors)
    ids, mask, types = sample_batch(hf["vocab_size"])
    emb, layers = bert_forward(w, cfg, ids, mask, types)
    sub_emb, _ = bert_forward(w, cfg, ids, mask, types, layers=[0, 2, 4])
    r = lambda a: [[float(f"{v:.8g}") for v in row] for row in a]
    json.dump(
        {
            "source": "scripts/golden/bert_reference.py over all-MiniLM-L6-v2 model.safetensors",
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "token_type_ids": types.tolist(),
            "embedding": r(emb),
            "hidden": [r(p) for p in layers],
            "embedding_layers_0_2_4": r(sub_emb),
        },
        open(args.out, "w"),
    )


if __name__ == "__main__":
    main()
