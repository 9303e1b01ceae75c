#!/usr/bin/env python3
"""Golden values for student-trainer's text evaluators (trainer-eval/src/text).

Independent numpy (float64) computations on small hand-made inputs:
- Pearson: np.corrcoef.
- Spearman: ranks by brute force (rank of x = #values below x + (#values equal to x + 1) / 2,
  the average rank of a tie), then np.corrcoef; the Rust side sorts.
- Nearest centroid: class means of the L2-normalised train rows, cosine to each, argmax.
- Linear probe: (a) the same full-batch gradient-descent recipe the Rust side documents
  (standardise, zero start, step 1 / (lambda_max / 2 + l2) with lambda_max from power
  iteration, `epochs` steps), written with numpy matrix products; and (b) the exact minimum of
  the same objective by Newton's method with an explicit Hessian, which the Rust probe must
  reach when given enough epochs.

Inputs are rounded to float32 so the Rust test uses exactly the same numbers. Writes
text_eval.json beside this file. Run: .venv/bin/python scripts/golden/text_eval.py
"""

import json
import os

import numpy as np

SEED = 20261202
rng = np.random.default_rng(SEED)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def brute_ranks(x):
    x = np.asarray(x)
    return np.array([(x < v).sum() + ((x == v).sum() + 1) / 2 for v in x])


def spearman(x, y):
    return float(np.corrcoef(brute_ranks(x), brute_ranks(y))[0, 1])


def centroid_accuracy(train, ytrain, test, ytest, k):
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    cents = np.stack([tn[ytrain == c].mean(axis=0) for c in range(k)])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    testn = test / np.linalg.norm(test, axis=1, keepdims=True)
    pred = np.argmax(testn @ cents.T, axis=1)
    return float((pred == ytest).mean())


def standardise(train):
    mean = train.mean(axis=0)
    sd = np.sqrt(((train - mean) ** 2).mean(axis=0))
    sd = np.where(sd < 1e-12, 1.0, sd)
    return mean, sd


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def objective(xs, y, w, b, l2):
    p = softmax(xs @ w + b)
    return float(-np.log(p[np.arange(len(y)), y]).mean() + 0.5 * l2 * (w**2).sum())


def probe_gd(train, y, k, epochs, l2, power_iterations):
    mean, sd = standardise(train)
    xs = (train - mean) / sd
    n, d = xs.shape
    xt = np.hstack([xs, np.ones((n, 1))])
    a = xt.T @ xt / n
    v = np.full(d + 1, 1 / np.sqrt(d + 1))
    lam = 0.0
    for _ in range(max(power_iterations, 1)):
        u = a @ v
        lam = np.linalg.norm(u)
        v = u / lam
    lr = 1 / (0.5 * lam + l2)
    w = np.zeros((d, k))
    b = np.zeros(k)
    onehot = np.eye(k)[y]
    for _ in range(epochs):
        g = softmax(xs @ w + b) - onehot
        w -= lr * (xs.T @ g / n + l2 * w)
        b -= lr * g.mean(axis=0)
    return mean, sd, w, b, lr, objective(xs, y, w, b, l2)


def probe_newton(train, y, k, l2):
    """The minimum of the same objective: Newton's method on the flattened [W; b] (the biases
    are unique up to a common shift; this returns the ones that sum to 0)."""
    mean, sd = standardise(train)
    xs = (train - mean) / sd
    n, d = xs.shape
    xt = np.hstack([xs, np.ones((n, 1))])
    theta = np.zeros((d + 1, k))
    reg = np.diag(np.r_[np.full(d, l2), 0.0])
    onehot = np.eye(k)[y]
    for _ in range(50):
        p = softmax(xt @ theta)
        grad = xt.T @ (p - onehot) / n + reg @ theta
        h = np.zeros(((d + 1) * k, (d + 1) * k))
        for i in range(n):
            s = np.diag(p[i]) - np.outer(p[i], p[i])
            h += np.kron(np.outer(xt[i], xt[i]), s)
        h /= n
        h += np.kron(reg, np.eye(k))
        # Softmax ignores a shift of every bias by one constant, so the Hessian is singular along
        # it: the minimum-norm step keeps the biases summing to 0, as gradient descent from 0 does.
        step = np.linalg.lstsq(h, grad.reshape(-1), rcond=None)[0]
        theta -= step.reshape(d + 1, k)
        if np.abs(step).max() < 1e-14:
            break
    return theta[:d], theta[d], objective(xs, y, theta[:d], theta[d], l2)


def blobs(n_per, k, d, spread):
    centres = rng.standard_normal((k, d))
    x = np.concatenate([centres[c] + spread * rng.standard_normal((n_per, d)) for c in range(k)])
    y = np.repeat(np.arange(k), n_per)
    order = rng.permutation(len(y))
    return f32(x[order]), y[order]


cases = {}

x = f32(rng.standard_normal(12))
y = f32(0.6 * x + 0.8 * rng.standard_normal(12))
cases["pearson"] = {"x": x.tolist(), "y": y.tolist(), "expected": float(np.corrcoef(x, y)[0, 1])}

# Ties in both series (integers), as human scores and cosines can have.
x = f32(rng.integers(0, 5, 15))
y = f32(x + rng.integers(-2, 3, 15))
cases["spearman_ties"] = {
    "x": x.tolist(),
    "y": y.tolist(),
    "ranks_x": brute_ranks(x).tolist(),
    "expected": spearman(x, y),
}

k, d = 3, 4
train, ytrain = blobs(6, k, d, 0.9)
test, ytest = blobs(7, k, d, 0.9)
# Test rows from the same centres are needed: redraw them around the train class means.
means = np.stack([train[ytrain == c].mean(axis=0) for c in range(k)])
ytest = np.repeat(np.arange(k), 7)
test = f32(means[ytest] + 1.1 * rng.standard_normal((len(ytest), d)))
cases["centroid"] = {
    "classes": k,
    "train": train.tolist(),
    "train_labels": ytrain.tolist(),
    "test": test.tolist(),
    "test_labels": ytest.tolist(),
    "expected": centroid_accuracy(train, ytrain, test, ytest, k),
}

k, d = 3, 5
train, ytrain = blobs(10, k, d, 1.2)
l2, power_iterations = 0.01, 50
gd_epochs = 40
mean, sd, w, b, lr, loss = probe_gd(train, ytrain, k, gd_epochs, l2, power_iterations)
w_opt, b_opt, loss_opt = probe_newton(train, ytrain, k, l2)
test = f32(train[:9] + 0.5 * rng.standard_normal((9, d)))
probs = softmax(((test - mean) / sd) @ w + b)
cases["probe"] = {
    "classes": k,
    "l2": l2,
    "power_iterations": power_iterations,
    "train": train.tolist(),
    "train_labels": ytrain.tolist(),
    "test": test.tolist(),
    "gd_epochs": gd_epochs,
    "gd_lr": lr,
    "gd_weights": w.T.tolist(),  # [classes, dim], as the Rust probe stores them
    "gd_bias": b.tolist(),
    "gd_train_loss": loss,
    "gd_test_probabilities": probs.tolist(),
    "optimum_weights": w_opt.T.tolist(),
    "optimum_bias": b_opt.tolist(),
    "optimum_loss": loss_opt,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "text_eval.json")
with open(out, "w") as f:
    json.dump({"seed": SEED, "cases": cases}, f, indent=1)
    f.write("\n")
print(f"wrote {out}")
for name, c in cases.items():
    if "expected" in c:
        print(f"  {name}: {c['expected']:.6f}")
print(f"  probe: gd loss {loss:.6f} (lr {lr:.4f}), optimum {loss_opt:.6f}")
