#!/usr/bin/env python3
"""The same training step as `student-trainer` on the 784-800-800-10 MLP — forward, softmax
cross-entropy, backward, torch.optim.AdamW (weight decay 0) — in PyTorch CPU float32, on the
same MNIST Parquet file, shuffled batches of 128. Prints samples/s as JSON.

usage: trainer_torch_step.py TRAIN_PARQUET [STEPS]
"""
import json
import sys
import time

import torch

import mnist_parquet


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    x, y = mnist_parquet.load(path)
    x, y = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 800),
        torch.nn.ReLU(),
        torch.nn.Linear(800, 800),
        torch.nn.ReLU(),
        torch.nn.Linear(800, 10),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    bs = 128

    def step(k):
        start = (k * bs) % (len(x) - bs)
        idx = order[start : start + bs]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # Warm-up steps (allocator, thread pool) are not timed.
    for k in range(10):
        step(k)
    t0 = time.perf_counter()
    for k in range(10, 10 + steps):
        step(k)
    dt = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "steps": steps,
                "seconds": dt,
                "samples_per_s": steps * bs / dt,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
