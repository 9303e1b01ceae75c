#!/usr/bin/env python3
"""The same training step as `student-trainer` on the 784-800-800-10 MLP — forward, softmax
cross-entropy, backward, AdamW (PyTorch's formulation, weight decay 0) — in float32 numpy, on
the same MNIST Parquet file, shuffled batches of 128. Prints samples/s as JSON.

usage: trainer_numpy_step.py TRAIN_PARQUET [STEPS]
"""
import json
import sys
import time

import numpy as np

import mnist_parquet


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    x, y = mnist_parquet.load(path)
    rng = np.random.default_rng(0)
    sizes = [784, 800, 800, 10]
    params = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / i)
        params.append(rng.uniform(-bound, bound, (o, i)).astype(np.float32))
        params.append(rng.uniform(-1 / np.sqrt(i), 1 / np.sqrt(i), o).astype(np.float32))
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    lr, b1, b2, eps = np.float32(1e-3), np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    order = rng.permutation(len(x))
    bs = 128

    def step(k, xb, yb):
        w1, c1, w2, c2, w3, c3 = params
        h1 = np.maximum(xb @ w1.T + c1, 0)
        h2 = np.maximum(h1 @ w2.T + c2, 0)
        z = h2 @ w3.T + c3
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = p
        g[np.arange(len(yb)), yb] -= 1
        g /= np.float32(len(yb))
        grads = [None] * 6
        grads[4] = g.T @ h2
        grads[5] = g.sum(0)
        d2 = (g @ w3) * (h2 > 0)
        grads[2] = d2.T @ h1
        grads[3] = d2.sum(0)
        d1 = (d2 @ w2) * (h1 > 0)
        grads[0] = d1.T @ xb
        grads[1] = d1.sum(0)
        bc1 = 1 - b1 ** k
        bc2 = 1 - b2 ** k
        for i in range(6):
            m[i] *= b1
            m[i] += (1 - b1) * grads[i]
            v[i] *= b2
            v[i] += (1 - b2) * grads[i] * grads[i]
            denom = np.sqrt(v[i]) / np.sqrt(bc2) + eps
            params[i] -= (lr / bc1) * m[i] / denom

    # Warm-up steps (allocator, BLAS threads) are not timed.
    for k in range(1, 11):
        idx = order[(k * bs) % (len(x) - bs):][:bs]
        step(k, x[idx], y[idx])
    t0 = time.perf_counter()
    for k in range(11, 11 + steps):
        start = (k * bs) % (len(x) - bs)
        idx = order[start : start + bs]
        step(k, x[idx], y[idx])
    dt = time.perf_counter() - t0
    print(json.dumps({"steps": steps, "seconds": dt, "samples_per_s": steps * bs / dt}))


if __name__ == "__main__":
    main()
