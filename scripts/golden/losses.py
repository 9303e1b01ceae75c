#!/usr/bin/env python3
"""Golden values for trainer-core's distillation losses (trainer-core/src/loss).

Independent numpy (float64) implementations of every loss, written from the
papers' definitions and the authors' reference code rather than from the Rust
code: e.g. RKD uses explicit pairwise differences where the Rust side uses Gram
matrices, soft BCE uses log-sigmoid via logaddexp where the Rust side uses the
max(x,0) - xy + log1p(exp(-|x|)) form, and kd_topk at T=1 is cross-checked
against buckets cut from the full teacher softmax.

Inputs are drawn with a fixed seed and rounded to float32 so the Rust test can
run every case in f32 and f64 on exactly the same numbers. Writes losses.json
beside this file:

    {"seed": ..., "cases": [{"name", "loss", "params", "inputs": {name: {"dtype",
     "shape", "data"}}, "expected": float, "expected_grad"?: {...}}]}

`expected_grad` is d loss / d (first input), derived analytically (kd, kd_topk).

Run: .venv/bin/python scripts/golden/losses.py
"""

import json
import os

import numpy as np

SEED = 20250611
rng = np.random.default_rng(SEED)


def f32(a):
    """Round to float32 values (kept as float64 for the reference maths)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def randn(*shape, scale=1.0, shift=0.0):
    return f32(rng.standard_normal(shape) * scale + shift)


def arr(a, dtype="f"):
    a = np.asarray(a)
    data = a.reshape(-1).tolist()
    return {"dtype": dtype, "shape": list(a.shape), "data": data}


def logsumexp(x, axis=-1, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x):
    return x - logsumexp(x, keepdims=True)


def softmax(x):
    return np.exp(log_softmax(x))


# ---------------------------------------------------------------- references


def ref_ce(logits, labels):
    lp = log_softmax(logits)
    return -np.mean(lp[np.arange(len(labels)), labels])


def ref_kd(s, t, T):
    lq, lp = log_softmax(t / T), log_softmax(s / T)
    q = np.exp(lq)
    return T * T * np.sum(q * (lq - lp)) / s.shape[0]


def ref_kd_grad(s, t, T):
    # d/ds [T^2/b sum q (log q - log p)] = (T/b) (softmax(s/T) - softmax(t/T))
    return (T / s.shape[0]) * (softmax(s / T) - softmax(t / T))


def ref_kd_topk(s, idx, v, L, T):
    """The documented approximation, row by row; returns (loss, grad wrt s)."""
    b, c = s.shape
    k = idx.shape[1]
    total = 0.0
    grad = np.zeros_like(s)
    for r in range(b):
        lp = log_softmax(s[r] / T)
        p = np.exp(lp)
        head = np.zeros(c, dtype=bool)
        head[idx[r]] = True
        if k == c:
            lq_head = log_softmax(v[r] / T)
            total += np.sum(np.exp(lq_head) * (lq_head - lp[idx[r]]))
            grad[r, idx[r]] = p[idx[r]] - np.exp(lq_head)
            continue
        m = min(max(1.0 - np.sum(np.exp(v[r] - L[r])), 0.0), 1.0)
        n_tail = c - k
        with np.errstate(divide="ignore"):  # m = 0 (no tail mass) gives u = -inf, q_tail = 0
            u = L[r] + np.log(m / n_tail)  # equal tail logits reproducing the T=1 tail mass
        z_head = v[r] / T
        z_tail = np.log(n_tail) + u / T
        lse_T = logsumexp(np.append(z_head, z_tail))
        lq_head, lq_tail = z_head - lse_T, z_tail - lse_T
        q_head, q_tail = np.exp(lq_head), np.exp(lq_tail)
        lp_head = lp[idx[r]]
        lp_tail = logsumexp(lp[~head])
        kl = np.sum(q_head * (lq_head - lp_head))
        if q_tail > 0:
            kl += q_tail * (lq_tail - lp_tail)
        total += kl
        # d/ds_j = (1/T) (p_j - q_B(j) p_j / p_B(j)) for the bucket B(j) of class j
        g = p.copy()
        g[idx[r]] -= q_head
        g[~head] -= q_tail * np.exp(lp[~head] - lp_tail)
        grad[r] = g
    return T * T * total / b, T * grad / b


def ref_kd_buckets_exact(s, t, idx, T):
    """T=1 only: KL between bucketed full softmaxes (no approximation needed)."""
    assert T == 1.0
    b, c = s.shape
    total = 0.0
    for r in range(b):
        q, p = softmax(t[r]), softmax(s[r])
        head = np.zeros(c, dtype=bool)
        head[idx[r]] = True
        qb = np.append(q[idx[r]], q[~head].sum()) if (~head).any() else q[idx[r]]
        pb = np.append(p[idx[r]], p[~head].sum()) if (~head).any() else p[idx[r]]
        total += np.sum(qb * (np.log(qb) - np.log(pb)))
    return total / b


def topk_of(t, k):
    idx = np.argsort(-t, axis=1, kind="stable")[:, :k]
    # Store in a scrambled order: the loss must not depend on the order of the K.
    for r in range(idx.shape[0]):
        idx[r] = rng.permutation(idx[r])
    v = np.take_along_axis(t, idx, axis=1)
    return idx, v, f32(logsumexp(t))


def ref_soft_bce(x, y, scale, b):
    # -[y log sigmoid(x) + (1-y) log(1 - sigmoid(x))], logs via logaddexp.
    log_sig = -np.logaddexp(0.0, -x)
    log_one_minus = -np.logaddexp(0.0, x)
    return scale * np.sum(-(y * log_sig + (1 - y) * log_one_minus)) / b


def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def normalize(x, axis=-1, eps=1e-12):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def ref_infonce(s, t, tau):
    logits = normalize(s) @ normalize(t).T / tau
    return -np.mean(np.diag(log_softmax(logits)))


def huber(d, beta=1.0):
    a = np.abs(d)
    return np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


def ref_feature(s, t, dist):
    b = s.shape[0]
    kind = dist["kind"]
    if kind == "mse":
        return np.mean((s - t) ** 2)
    if kind == "l1":
        return np.mean(np.abs(s - t))
    if kind == "smooth_l1":
        return np.mean(huber(s - t, dist["beta"]))
    if kind == "cosine":
        sf, tf = s.reshape(b, -1), t.reshape(b, -1)
        cos = np.sum(sf * tf, axis=1) / (np.linalg.norm(sf, axis=1) * np.linalg.norm(tf, axis=1))
        return np.mean(1.0 - cos)
    if kind == "kl":
        return ref_kd(s.reshape(b, -1), t.reshape(b, -1), dist["temperature"])
    raise ValueError(kind)


def pdist(x):
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt(np.sum(diff * diff, axis=-1))


def ref_rkd_distance(s, t):
    b = s.shape[0]
    s, t = s.reshape(b, -1), t.reshape(b, -1)
    off = ~np.eye(b, dtype=bool)
    ds, dt = pdist(s), pdist(t)
    ds, dt = ds / ds[off].mean(), dt / dt[off].mean()
    return np.mean(huber(ds - dt))


def angles(x):
    # Park et al.'s reference: e[i, j] = normalize(x_j - x_i); angle[i, j, k] = <e_ij, e_ik>
    e = normalize(x[None, :, :] - x[:, None, :], axis=2)
    return np.einsum("ijd,ikd->ijk", e, e)


def ref_rkd_angle(s, t):
    b = s.shape[0]
    return np.mean(huber(angles(s.reshape(b, -1)) - angles(t.reshape(b, -1))))


def ref_sp(s, t):
    b = s.shape[0]
    s, t = s.reshape(b, -1), t.reshape(b, -1)
    gs, gt = normalize(s @ s.T, axis=1), normalize(t @ t.T, axis=1)
    return np.sum((gs - gt) ** 2) / (b * b)


# ---------------------------------------------------------------- cases

cases = []


def add(name, loss, inputs, expected, params=None, expected_grad=None):
    assert np.isfinite(expected), (name, expected)
    case = {"name": name, "loss": loss, "params": params or {}, "inputs": inputs, "expected": float(expected)}
    if expected_grad is not None:
        case["expected_grad"] = arr(expected_grad)
    cases.append(case)


# ce
for name, logits in [
    ("ce_small", randn(5, 7)),
    ("ce_large_logits", randn(4, 6, scale=600.0)),
]:
    labels = rng.integers(0, logits.shape[1], size=logits.shape[0])
    add(name, "ce", {"logits": arr(logits), "labels": arr(labels, "u32")}, ref_ce(logits, labels))

# kd (+ analytic gradient wrt the student logits)
for name, s, t, T in [
    ("kd_t1", randn(4, 10), randn(4, 10, scale=2.0), 1.0),
    ("kd_t4", randn(6, 10), randn(6, 10, scale=3.0), 4.0),
    ("kd_t2_5_many_classes", randn(3, 100), randn(3, 100, scale=2.0), 2.5),
    ("kd_large_logits", randn(4, 8, scale=300.0), randn(4, 8, scale=300.0), 2.0),
]:
    add(name, "kd", {"student_logits": arr(s), "teacher_logits": arr(t)}, ref_kd(s, t, T),
        params={"temperature": T}, expected_grad=ref_kd_grad(s, t, T))

# kd_topk (+ analytic gradient); the k = c case must equal kd.
for name, b, c, k, T, scale, idx_dtype in [
    ("kd_topk_k3_t2", 5, 10, 3, 2.0, 3.0, "u32"),
    ("kd_topk_k3_t1_exact", 5, 10, 3, 1.0, 3.0, "i64"),
    ("kd_topk_k9_of_10_t4", 4, 10, 9, 4.0, 2.0, "u32"),
    ("kd_topk_k5_of_50_t05", 3, 50, 5, 0.5, 2.0, "i64"),
    ("kd_topk_k_eq_c_t3", 4, 8, 8, 3.0, 2.0, "u32"),
    ("kd_topk_large_logits", 4, 12, 4, 2.0, 200.0, "u32"),
]:
    s = randn(b, c, scale=scale * 0.7)
    t = randn(b, c, scale=scale)
    idx, v, L = topk_of(t, k)
    loss, grad = ref_kd_topk(s, idx, v, L, T)
    if T == 1.0:
        # With the unrounded log-partition the T=1 tail mass is exact.
        exact = ref_kd_buckets_exact(s, t, idx, T)
        loss_exact_lse, _ = ref_kd_topk(s, idx, v, logsumexp(t), T)
        assert abs(loss_exact_lse - exact) <= 1e-9 * max(1.0, abs(exact)), (name, loss, exact)
    if k == c:
        assert abs(loss - ref_kd(s, t, T)) <= 1e-12 * max(1.0, abs(loss)), name
        assert np.allclose(grad, ref_kd_grad(s, t, T), atol=1e-14), name
    add(name, "kd_topk",
        {"student_logits": arr(s), "topk_indices": arr(idx, idx_dtype), "topk_values": arr(v),
         "logsumexp": arr(L), "teacher_logits": arr(t)},
        loss, params={"temperature": T}, expected_grad=grad)

# soft_bce
x, y = randn(4, 6, scale=2.0), f32(rng.uniform(0, 1, size=(4, 6)))
add("soft_bce_probs", "soft_bce", {"student_logits": arr(x), "target": arr(y)},
    ref_soft_bce(x, y, 1.0, 4), params={"target": "probs"})
x, tl, T = randn(3, 5, 2), randn(3, 5, 2, scale=3.0), 2.0
add("soft_bce_teacher_logits_t2", "soft_bce", {"student_logits": arr(x), "target": arr(tl)},
    ref_soft_bce(x / T, sigmoid(tl / T), T * T, 3), params={"target": "logits", "temperature": T})
x = f32(np.array([[1000.0, -1000.0, 999.5, -0.25], [-1000.0, 1000.0, 3.0, -998.0]]))
y = f32(np.array([[1.0, 0.0, 0.3, 0.5], [0.7, 0.2, 1.0, 0.0]]))
add("soft_bce_logits_pm1000", "soft_bce", {"student_logits": arr(x), "target": arr(y)},
    ref_soft_bce(x, y, 1.0, 2), params={"target": "probs"})
tl = f32(np.array([[1000.0, -1000.0, -3.0, 998.0], [-999.0, 1000.0, 0.5, -1000.0]]))
add("soft_bce_teacher_logits_pm1000", "soft_bce", {"student_logits": arr(x), "target": arr(tl)},
    ref_soft_bce(x, sigmoid(tl), 1.0, 2), params={"target": "logits", "temperature": 1.0})

# infonce
for name, b, d, tau in [("infonce_tau0_1", 6, 8, 0.1), ("infonce_tau1", 4, 16, 1.0)]:
    s, t = randn(b, d), randn(b, d)
    t = f32(t + 0.5 * s)  # positives correlated with the student
    add(name, "infonce", {"student_emb": arr(s), "teacher_emb": arr(t)}, ref_infonce(s, t, tau),
        params={"temperature": tau})

# feature distances (3-D features exercise the per-sample flattening)
s, t = randn(4, 3, 5), randn(4, 3, 5, scale=1.5)
for dist in [
    {"kind": "mse"},
    {"kind": "l1"},
    {"kind": "smooth_l1", "beta": 0.5},
    {"kind": "smooth_l1", "beta": 1.0},
    {"kind": "cosine"},
    {"kind": "kl", "temperature": 2.0},
]:
    label = "_".join(str(vv) for vv in dist.values()).replace(".", "_")
    add(f"feature_{label}", "feature", {"student_feat": arr(s), "teacher_feat": arr(t)},
        ref_feature(s, t, dist), params={"distance": dist})

# relation losses: student and teacher widths differ
s, t = randn(6, 8), randn(6, 12, scale=2.0)
add("rkd_distance", "rkd_distance", {"student": arr(s), "teacher": arr(t)}, ref_rkd_distance(s, t))
add("rkd_angle", "rkd_angle", {"student": arr(s), "teacher": arr(t)}, ref_rkd_angle(s, t))
s3, t3 = randn(5, 2, 3), randn(5, 10, scale=0.5)
add("rkd_distance_3d_student", "rkd_distance", {"student": arr(s3), "teacher": arr(t3)},
    ref_rkd_distance(s3, t3))
add("rkd_angle_3d_student", "rkd_angle", {"student": arr(s3), "teacher": arr(t3)}, ref_rkd_angle(s3, t3))
add("sp", "sp", {"student": arr(s3), "teacher": arr(t3)}, ref_sp(s3, t3))
add("sp_2d", "sp", {"student": arr(s), "teacher": arr(t)}, ref_sp(s, t))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses.json")
with open(out, "w") as fh:
    # One case per line: diffable, and small enough to read.
    fh.write('{"generator": "scripts/golden/losses.py", "seed": %d, "cases": [\n' % SEED)
    fh.write(",\n".join(json.dumps(case) for case in cases))
    fh.write("\n]}\n")
print(f"wrote {len(cases)} cases to {out}")
