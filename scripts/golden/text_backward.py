#!/usr/bin/env python3
"""Backward goldens for the text students from PyTorch autograd (float64), an implementation
independent of candle: nn.Embedding, nn.LayerNorm, nn.Linear, GELU (erf) and
F.scaled_dot_product_attention with a boolean key mask.

Two tiny students with fixed, seeded float32 weights under the Hugging Face / student weight
names, written to safetensors beside this script:
  - static: vocab 20, dim 8, projector 8 -> 6;
  - transformer: 2 post-LayerNorm blocks, hidden 16, 2 heads, FFN 32, vocab 30, 16 positions,
    2 token types, projector 16 -> 12.
A padded batch of mixed lengths (pad id 0 appears only at padding) and a scalar loss
  L = mean_i(1 - cos(e_i, T_i)) + mean((e - T)^2)              (e: the pooled, projected embedding)
    + 0.5 * mean((h0 - H0)^2)                                   (transformer: h0 = masked mean of block 0)
against fixed targets T, H0. Emits the loss and d L / d (every parameter) to
scripts/golden/text_backward.json; trainer-core/tests/text_backward.rs recomputes them with
candle autograd. Nothing here is needed by CI (the JSON and safetensors are committed).

  .deps/torch-venv/bin/python scripts/golden/text_backward.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(10)


def f32(shape, scale):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def masked_mean(x, mask):
    m = mask[:, :, None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1e-9)


def loss_fn(e, target, h0=None, h0_target=None):
    cos = (1.0 - F.cosine_similarity(e, target, dim=-1)).mean()
    loss = cos + F.mse_loss(e, target)
    if h0 is not None:
        loss = loss + 0.5 * F.mse_loss(h0, h0_target)
    return loss


class Bert(torch.nn.Module):
    """BERT encoder (post-LayerNorm) + masked mean pooling + projector, HF parameter names."""

    def __init__(self, V, D, H, Fd, L, P, T, OUT, eps):
        super().__init__()
        self.heads, self.eps = H, eps
        self.embeddings = torch.nn.Module()
        self.embeddings.word_embeddings = torch.nn.Embedding(V, D)
        self.embeddings.position_embeddings = torch.nn.Embedding(P, D)
        self.embeddings.token_type_embeddings = torch.nn.Embedding(T, D)
        self.embeddings.LayerNorm = torch.nn.LayerNorm(D, eps=eps)
        self.encoder = torch.nn.Module()
        self.encoder.layer = torch.nn.ModuleList()
        for _ in range(L):
            blk = torch.nn.Module()
            blk.attention = torch.nn.Module()
            blk.attention.self = torch.nn.Module()
            for n in ["query", "key", "value"]:
                setattr(blk.attention.self, n, torch.nn.Linear(D, D))
            blk.attention.output = torch.nn.Module()
            blk.attention.output.dense = torch.nn.Linear(D, D)
            blk.attention.output.LayerNorm = torch.nn.LayerNorm(D, eps=eps)
            blk.intermediate = torch.nn.Module()
            blk.intermediate.dense = torch.nn.Linear(D, Fd)
            blk.output = torch.nn.Module()
            blk.output.dense = torch.nn.Linear(Fd, D)
            blk.output.LayerNorm = torch.nn.LayerNorm(D, eps=eps)
            self.encoder.layer.append(blk)
        self.projector = torch.nn.Linear(D, OUT)

    def forward(self, ids, mask, types):
        b, s = ids.shape
        e = self.embeddings
        pos = torch.arange(s)
        x = e.word_embeddings(ids) + e.position_embeddings(pos)[None] + e.token_type_embeddings(types)
        x = e.LayerNorm(x)
        keep = mask.bool()[:, None, None, :]  # [b, 1, 1, s]: True = attend
        hidden = []
        for blk in self.encoder.layer:
            a = blk.attention.self
            split = lambda t: t.view(b, s, self.heads, -1).transpose(1, 2)
            ctx = F.scaled_dot_product_attention(split(a.query(x)), split(a.key(x)), split(a.value(x)), attn_mask=keep)
            ctx = ctx.transpose(1, 2).reshape(b, s, -1)
            x = blk.attention.output.LayerNorm(blk.attention.output.dense(ctx) + x)
            f = F.gelu(blk.intermediate.dense(x))
            x = blk.output.LayerNorm(blk.output.dense(f) + x)
            hidden.append(masked_mean(x, mask))
        return self.projector(hidden[-1]), hidden


class Static(torch.nn.Module):
    def __init__(self, V, D, OUT):
        super().__init__()
        self.embeddings = torch.nn.Embedding(V, D)
        self.projector = torch.nn.Linear(D, OUT)

    def forward(self, ids, mask, _types):
        return self.projector(masked_mean(self.embeddings(ids), mask)), []


def transformer_weights(V, D, Fd, L, P, T, OUT):
    w = {
        "embeddings.word_embeddings.weight": f32((V, D), 0.5),
        "embeddings.position_embeddings.weight": f32((P, D), 0.5),
        "embeddings.token_type_embeddings.weight": f32((T, D), 0.5),
        "embeddings.LayerNorm.weight": 1 + f32((D,), 0.1),
        "embeddings.LayerNorm.bias": f32((D,), 0.1),
        "projector.weight": f32((OUT, D), 0.3),
        "projector.bias": f32((OUT,), 0.1),
    }
    for i in range(L):
        p = f"encoder.layer.{i}."
        for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]:
            w[p + n + ".weight"] = f32((D, D), 0.3)
            w[p + n + ".bias"] = f32((D,), 0.1)
        w[p + "intermediate.dense.weight"] = f32((Fd, D), 0.3)
        w[p + "intermediate.dense.bias"] = f32((Fd,), 0.1)
        w[p + "output.dense.weight"] = f32((D, Fd), 0.2)
        w[p + "output.dense.bias"] = f32((D,), 0.1)
        for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
            w[p + n + ".weight"] = 1 + f32((D,), 0.1)
            w[p + n + ".bias"] = f32((D,), 0.1)
    return w


def padded(lengths, width, vocab):
    """ids with real tokens drawn from 1..vocab-1 (so pad id 0 occurs only at padding)."""
    ids = np.zeros((len(lengths), width), np.int64)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(1, vocab, n)
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return ids, mask


def transformer_case():
    V, D, H, Fd, L, P, T, OUT = 30, 16, 2, 32, 2, 16, 2, 12
    w = transformer_weights(V, D, Fd, L, P, T, OUT)
    ids, mask = padded([9, 3, 12, 6], 12, V)
    types = np.zeros_like(ids)
    types[0, 5:9] = 1
    types[2, 6:12] = 1
    types[3, 2:4] = 1
    config = {"arch": "transformer", "layers": L, "hidden": D, "heads": H, "ffn": Fd, "vocab": V,
              "max_positions": P, "type_vocab": T, "layer_norm_eps": 1e-12, "project_to": OUT}
    return config, w, ids, mask, types, lambda: Bert(V, D, H, Fd, L, P, T, OUT, 1e-12), D, OUT


def static_case():
    V, D, OUT = 20, 8, 6
    w = {
        "embeddings.weight": f32((V, D), 0.7),
        "projector.weight": f32((OUT, D), 0.5),
        "projector.bias": f32((OUT,), 0.1),
    }
    ids, mask = padded([4, 1, 7, 5], 7, V)
    config = {"arch": "static", "vocab": V, "dim": D, "project_to": OUT}
    return config, w, ids, mask, None, lambda: Static(V, D, OUT), None, OUT


def grads(make, w, dtype, ids, mask, types, target, h0_target):
    model = make().to(dtype)
    params = dict(model.named_parameters())
    assert set(params) == set(w), set(params) ^ set(w)
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(torch.from_numpy(w[k]).to(dtype))
    e, hidden = model(ids, mask, types)
    loss = loss_fn(e, target.to(dtype), hidden[0] if hidden else None,
                   None if h0_target is None else h0_target.to(dtype))
    loss.backward()
    return float(loss.detach()), {k: p.grad.detach().to(torch.float64).numpy() for k, p in params.items()}


def run(name, case):
    config, w, ids_np, mask_np, types_np, make, hidden_dim, out_dim = case
    b = ids_np.shape[0]
    target_np = f32((b, out_dim), 1.0)
    h0_np = f32((b, hidden_dim), 1.0) if hidden_dim else None
    ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
    types = torch.from_numpy(types_np) if types_np is not None else torch.zeros_like(ids)
    target = torch.from_numpy(target_np)
    h0 = None if h0_np is None else torch.from_numpy(h0_np)
    loss, g = grads(make, w, torch.float64, ids, mask, types, target, h0)
    loss32, g32 = grads(make, w, torch.float32, ids, mask, types, target, h0)
    # How far float32 autograd (PyTorch's own) lands from float64: a scale for the test's tolerance.
    # The key biases are left out: their gradient is zero analytically (a per-query constant
    # added to every score leaves the softmax unchanged), float64 gives ~1e-17.
    worst = max(float(np.max(np.abs(g32[k] - g[k])) / np.max(np.abs(g[k])))
                for k in g if not k.endswith("attention.self.key.bias"))
    print(f"{name}: loss {loss:.8f} (f32 {loss32:.8f}); torch f32 vs f64 worst gradient error, "
          f"relative to each tensor's largest entry: {worst:.2e}", file=sys.stderr)
    weights_file = f"text_backward_{name}.safetensors"
    save_file(w, os.path.join(HERE, weights_file))
    return {
        "config": config,
        "weights": weights_file,
        "input_ids": ids_np.tolist(),
        "attention_mask": mask_np.tolist(),
        "token_type_ids": None if types_np is None else types_np.tolist(),
        "target_embedding": target_np.astype(float).tolist(),
        "target_hidden0": None if h0_np is None else h0_np.astype(float).tolist(),
        "loss": loss,
        "grads": {k: {"shape": list(v.shape), "data": [float(f"{x:.10g}") for x in v.reshape(-1)]}
                  for k, v in sorted(g.items())},
    }


if __name__ == "__main__":
    torch.manual_seed(0)
    out = {
        "torch": torch.__version__,
        "static": run("static", static_case()),
        "transformer": run("transformer", transformer_case()),
    }
    with open(os.path.join(HERE, "text_backward.json"), "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
