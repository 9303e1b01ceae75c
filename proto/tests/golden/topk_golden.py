"""Golden values for the label store's top-k + log-sum-exp (proto/tests/store_write.rs).

Run: /work/main/.venv/bin/python proto/tests/golden/topk_golden.py > proto/tests/golden/topk_golden.json
numpy computes the reference independently: a stable argsort (ties by lower index) on the
negated logits, and log-sum-exp in float64 via the max-shift.
"""
import json

import numpy as np

rng = np.random.default_rng(7)
k = 4
logits = (rng.standard_normal((6, 10)) * 8).astype(np.float32)
logits[1, :] = 3.0  # all ties: indices 0..k
logits[2, 5] = logits[2, 1]  # a tie in the middle
logits[3] *= 40  # large magnitudes (a naive exp would overflow in f32)
order = np.argsort(-logits.astype(np.float64), axis=1, kind="stable")[:, :k]
values = np.take_along_axis(logits, order, axis=1)
x = logits.astype(np.float64)
m = x.max(axis=1, keepdims=True)
lse = (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]
print(json.dumps({
    "k": k,
    "logits": logits.tolist(),
    "indices": order.astype(int).tolist(),
    "values": values.tolist(),
    "logsumexp": lse.tolist(),
}))
