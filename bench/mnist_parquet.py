"""Loads the `pixels` and `label` columns of an MNIST Parquet file written by
`distill-label import-mnist` as numpy arrays (float32 [n, 784], int64 [n]), for the
reference training-step benchmarks."""
import numpy as np
import pyarrow.parquet as pq


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(path, columns=["pixels", "label"])
    x = np.asarray(t.column("pixels").combine_chunks().flatten(), dtype=np.float32).reshape(-1, 784)
    y = np.asarray(t.column("label").to_numpy(), dtype=np.int64)
    return x, y
