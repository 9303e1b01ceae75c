#!/usr/bin/env python3
"""Golden values for the text students on tiny sizes: seeded float32 weights with the students'
weight names, a padded batch of mixed lengths, the forward outputs (numpy float64, the BERT
forward of scripts/bert_reference.py) and the gradients of
L = sum(embedding * U) + sum_i sum(hidden_i * V_i) with respect to every weight, by central
finite differences in float64 (independent of any autograd).

  .venv/bin/python scripts/golden/text_students.py > scripts/golden/text_students.json
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bert_reference import bert_forward, masked_mean  # noqa: E402

rng = np.random.default_rng(7)


def f32(shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def transformer_case():
    V, D, H, F, L, P, T, OUT = 13, 8, 2, 12, 2, 8, 2, 5
    w = {
        "embeddings.word_embeddings.weight": f32((V, D), 0.5),
        "embeddings.position_embeddings.weight": f32((P, D), 0.5),
        "embeddings.token_type_embeddings.weight": f32((T, D), 0.5),
        "embeddings.LayerNorm.weight": 1 + f32((D,), 0.1),
        "embeddings.LayerNorm.bias": f32((D,), 0.1),
        "projector.weight": f32((OUT, D), 0.4),
        "projector.bias": f32((OUT,), 0.1),
    }
    for i in range(L):
        p = f"encoder.layer.{i}."
        for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
            w[p + n + ".weight"] = f32((D, D), 0.4)
            w[p + n + ".bias"] = f32((D,), 0.1)
        w[p + "intermediate.dense.weight"] = f32((F, D), 0.4)
        w[p + "intermediate.dense.bias"] = f32((F,), 0.1)
        w[p + "output.dense.weight"] = f32((D, F), 0.3)
        w[p + "output.dense.bias"] = f32((D,), 0.1)
        for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
            w[p + n + ".weight"] = 1 + f32((D,), 0.1)
            w[p + n + ".bias"] = f32((D,), 0.1)
    cfg = {"hidden": D, "heads": H, "layers": L, "eps": 1e-12}
    ids = np.array([[1, 5, 7, 9, 2, 0], [1, 12, 2, 0, 0, 0], [1, 3, 4, 6, 8, 2]])
    mask = (np.arange(6)[None, :] < np.array([5, 3, 6])[:, None]).astype(np.int64)
    types = np.array([[0, 0, 0, 1, 1, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]])

    def forward(wd):
        emb, hidden = bert_forward(wd, cfg, ids, mask, types)
        out = emb @ np.asarray(wd["projector.weight"], np.float64).T + wd["projector.bias"]
        return out, hidden

    config = {"arch": "transformer", "layers": L, "hidden": D, "heads": H, "ffn": F, "vocab": V,
              "max_positions": P, "type_vocab": T, "project_to": OUT}
    return config, w, ids, mask, types, forward


def static_case():
    V, D, OUT = 11, 6, 4
    w = {
        "embeddings.weight": f32((V, D), 0.7),
        "projector.weight": f32((OUT, D), 0.5),
        "projector.bias": f32((OUT,), 0.1),
    }
    ids = np.array([[3, 4, 10, 0], [7, 0, 0, 0], [1, 2, 3, 5]])
    mask = (np.arange(4)[None, :] < np.array([3, 1, 4])[:, None]).astype(np.int64)

    def forward(wd):
        t = np.asarray(wd["embeddings.weight"], np.float64)[ids]
        pooled = masked_mean(t, mask)
        return pooled @ np.asarray(wd["projector.weight"], np.float64).T + wd["projector.bias"], []

    config = {"arch": "static", "vocab": V, "dim": D, "project_to": OUT}
    return config, w, ids, mask, None, forward


def run(case):
    config, w, ids, mask, types, forward = case
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    emb, hidden = forward(w64)
    U = f32(emb.shape, 1.0).astype(np.float64)
    Vs = [f32(h.shape, 1.0).astype(np.float64) for h in hidden]

    def loss(wd):
        e, hs = forward(wd)
        return float((e * U).sum() + sum((h * v).sum() for h, v in zip(hs, Vs)))

    grads = {}
    eps = 1e-5
    for name, arr in w64.items():
        g = np.zeros_like(arr)
        flat = arr.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            lp = loss(w64)
            flat[j] = old - eps
            lm = loss(w64)
            flat[j] = old
            g.reshape(-1)[j] = (lp - lm) / (2 * eps)
        grads[name] = g.reshape(-1).tolist()
    return {
        "config": config,
        "weights": {k: {"shape": list(v.shape), "data": v.reshape(-1).astype(float).tolist()} for k, v in w.items()},
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "token_type_ids": None if types is None else types.tolist(),
        "embedding": emb.tolist(),
        "hidden": [h.tolist() for h in hidden],
        "upstream_embedding": U.tolist(),
        "upstream_hidden": [v.tolist() for v in Vs],
        "grads": grads,
    }


if __name__ == "__main__":
    out = {"transformer": run(transformer_case()), "static": run(static_case())}
    json.dump(out, sys.stdout)
