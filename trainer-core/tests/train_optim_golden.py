#!/usr/bin/env python3
"""Golden values for tests/train_optim_golden.rs: three AdamW steps and three SGD (Nesterov)
steps on a 2x3 parameter, written from PyTorch's documented update rules in float64 numpy
(independent of the Rust code). Prints the expected parameters after each step.

usage: python train_optim_golden.py
"""
import numpy as np

P0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]])
GRADS = [
    np.array([[0.1, -0.2, 0.3], [0.0, 1.5, -0.5]]),
    np.array([[-0.4, 0.1, 0.0], [2.0, -0.3, 0.25]]),
    np.array([[0.05, 0.05, -1.0], [0.7, 0.0, 0.1]]),
]
LRS = [0.1, 0.05, 0.02]


def adamw(beta1=0.9, beta2=0.99, eps=1e-8, wd=0.1):
    p = P0.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    out = []
    for t, (g, lr) in enumerate(zip(GRADS, LRS), start=1):
        p = p * (1 - lr * wd)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mhat = m / (1 - beta1**t)
        denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + eps
        p = p - lr * mhat / denom
        out.append(p.copy())
    return out


def sgd(momentum=0.9, nesterov=True, wd=0.01):
    p = P0.copy()
    buf = None
    out = []
    for g, lr in zip(GRADS, LRS):
        d = g + wd * p
        buf = d.copy() if buf is None else momentum * buf + d
        step = d + momentum * buf if nesterov else buf
        p = p - lr * step
        out.append(p.copy())
    return out


def fmt(name, steps):
    rows = ",\n".join("    [" + ", ".join(f"{x:.9e}" for x in s.ravel()) + "]" for s in steps)
    return f"const {name}: [[f64; 6]; 3] = [\n{rows},\n];"


print(fmt("ADAMW", adamw()))
print(fmt("SGD_NESTEROV", sgd()))
