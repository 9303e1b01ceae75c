#!/usr/bin/env python3
"""Writes MNIST IDX files as Parquet in the layout `distill-label import-mnist` uses:
`id` utf8, `pixels` FixedSizeList<float32, 784> in [0, 1], `label` int64.

usage: trainer_mnist_parquet.py IDX_DIR OUT_DIR   (writes mnist-train.parquet, mnist-test.parquet)
"""
import gzip
import os
import struct
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, dtype, ndim = struct.unpack(">BBBB", data[:4])
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write(images, labels, prefix, path):
    n = images.shape[0]
    pixels = (images.reshape(n, 784).astype(np.float32) / 255.0).ravel()
    table = pa.table(
        {
            "id": pa.array([f"{prefix}-{i}" for i in range(n)], pa.utf8()),
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels, pa.float32()), 784),
            "label": pa.array(labels.astype(np.int64), pa.int64()),
        }
    )
    pq.write_table(table, path, compression="zstd", row_group_size=8192)


def main():
    idx_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    for split, prefix in (("train", "train"), ("t10k", "test")):
        images = read_idx(os.path.join(idx_dir, f"{split}-images-idx3-ubyte"))
        labels = read_idx(os.path.join(idx_dir, f"{split}-labels-idx1-ubyte"))
        write(images, labels, prefix, os.path.join(out_dir, f"mnist-{prefix}.parquet"))


if __name__ == "__main__":
    main()
