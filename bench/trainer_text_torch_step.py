#!/usr/bin/env python3
"""The 3-layer text student's training step in PyTorch eager, CPU float32 — the architecture of
student-trainer's `transformer` student (MiniLM-L6's block shape: hidden 384, 12 heads, FFN 1536,
post-LayerNorm, GELU erf, 30,522-word table, 512 positions), masked mean pooling, loss
mean(1 - cos(pooled, target)) against a fixed random target, backward, torch.optim.AdamW
(weight decay 0.01, PyTorch's default CPU implementation) — on the batch file that
bench/text_batch.py wrote, padded to its longest row. Prints samples/s and CPU seconds (user +
system, all threads) per step as JSON.

usage: trainer_text_torch_step.py BATCH_JSON [STEPS] [--attention eager|sdpa] [--threads 2]
  eager: scores = q k^T / sqrt(dh) + mask, softmax, @ v (Hugging Face's "eager" BERT attention);
  sdpa:  F.scaled_dot_product_attention with the boolean key mask.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

L, D, H, FFN, VOCAB, POS, TYPES = 3, 384, 12, 1536, 30522, 512, 2


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(D, D) for _ in range(3))
        self.o = torch.nn.Linear(D, D)
        self.ln1 = torch.nn.LayerNorm(D, eps=1e-12)
        self.up = torch.nn.Linear(D, FFN)
        self.down = torch.nn.Linear(FFN, D)
        self.ln2 = torch.nn.LayerNorm(D, eps=1e-12)

    def forward(self, x, add_mask, keep, sdpa):
        b, s, _ = x.shape
        split = lambda t: t.view(b, s, H, D // H).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if sdpa:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(D // H) + add_mask
            ctx = scores.softmax(-1) @ v
        ctx = ctx.transpose(1, 2).reshape(b, s, D)
        x = self.ln1(self.o(ctx) + x)
        return self.ln2(self.down(F.gelu(self.up(x))) + x)


class Student(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.word = torch.nn.Embedding(VOCAB, D)
        self.pos = torch.nn.Embedding(POS, D)
        self.types = torch.nn.Embedding(TYPES, D)
        self.ln = torch.nn.LayerNorm(D, eps=1e-12)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))

    def forward(self, ids, mask, sdpa):
        s = ids.shape[1]
        x = self.word(ids) + self.pos.weight[:s][None] + self.types.weight[0]
        x = self.ln(x)
        add_mask = ((1.0 - mask) * -10000.0)[:, None, None, :]
        keep = mask.bool()[:, None, None, :]
        for blk in self.blocks:
            x = blk(x, add_mask, keep, sdpa)
        m = mask[:, :, None]
        return (x * m).sum(1) / m.sum(1).clamp_min(1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("batch")
    ap.add_argument("steps", type=int, nargs="?", default=20)
    ap.add_argument("--attention", choices=["eager", "sdpa"], default="eager")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = json.load(open(a.batch))["ids"]
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows])
    torch.manual_seed(0)
    model = Student()
    target = torch.randn(len(rows), D)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    sdpa = a.attention == "sdpa"

    def step():
        pooled = model(ids, mask, sdpa)
        loss = (1.0 - F.cosine_similarity(pooled, target, dim=-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "steps": a.steps,
        "seconds": dt,
        "samples_per_s": a.steps * len(rows) / dt,
        "step_ms_median": 1e3 * statistics.median(times),
        "cpu_s_per_step": cpu / a.steps,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "attention": a.attention,
    }))


if __name__ == "__main__":
    main()
