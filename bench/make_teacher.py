#!/usr/bin/env python3
"""Writes the benchmark teacher: an MNIST-shaped MLP (default 784-1200-1200-10) with seeded
random (He-initialised) weights, as ONNX (IR 8, opset 17).

Input `pixels` f32 [batch, 784], output `logits` f32 [batch, 10]. The weights are random:
the benchmark measures throughput, not accuracy (pass a trained teacher to bench/server.sh to
use that instead). `--hidden 64` gives a teacher so cheap that request decoding, not ONNX
Runtime, bounds a server's rows/s.

Usage: make_teacher.py OUT.onnx [--seed 0] [--hidden 1200,1200]
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

def build(seed: int, hidden: list[int]) -> onnx.ModelProto:
    sizes = [784, *hidden, 10]
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x = "pixels"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        last = i == len(sizes) - 2
        out = "logits" if last else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"fc{i}"))
        x = out
        if not last:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    graph = helper.make_graph(
        nodes,
        "mlp_" + "_".join(map(str, sizes)),
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="distill-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", default="1200,1200", help="comma-separated hidden widths")
    args = ap.parse_args()
    hidden = [int(h) for h in args.hidden.split(",") if h]
    onnx.save(build(args.seed, hidden), args.out)


if __name__ == "__main__":
    main()
