#!/usr/bin/env python3
"""Writes the fixed token batch both sides of bench/trainer_text.sh train on: 64 rows whose
lengths follow WordNet glosses' shape (log-normal, median 12 tokens, clipped to 3..40, the
longest row exactly 40 so every step pads to 40), ids [CLS] w... [SEP] in the 30,522-word
uncased vocabulary. Seeded: the same file every time.

usage: text_batch.py OUT_JSON [BATCH] [SEED]
"""
import json
import sys

import numpy as np


def main():
    out = sys.argv[1]
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(12), 0.45, batch))), 3, 40).astype(int)
    lengths[int(np.argmax(lengths))] = 40
    ids = [[101] + rng.integers(1000, 30000, n - 2).tolist() + [102] for n in lengths]
    with open(out, "w") as f:
        json.dump({"vocab": 30522, "lengths": lengths.tolist(), "ids": ids}, f)
    print(f"batch {batch}: lengths median {int(np.median(lengths))}, max {lengths.max()}, "
          f"{int(lengths.sum())} tokens, padding efficiency {lengths.sum() / (batch * lengths.max()):.2f}")


if __name__ == "__main__":
    main()
