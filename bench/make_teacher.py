#!/usr/bin/env python3
"""Writes the benchmark teacher: an MNIST-shaped MLP (default 784-1200-1200-10) with seeded
random (He-initialised) weights, as ONNX (IR 8, opset 17).

Input `pixels` f32 [batch, 784], output `logits` f32 [batch, 10]. The weights are random:
the benchmark measures throughput, not accuracy (pass a trained teacher to bench/server.sh to
use that instead). `--hidden 64` gives a teacher so cheap that request decoding, not ONNX
Runtime, bounds a server's rows/s; `--hidden ""` is one Gemm 784->10, nearly free.

`--arch cnn` writes a PyTorch-style MNIST CNN instead (the layout `torch.onnx.export` gives
an `nn.Sequential` of Conv2d(1,8,3,p=1), ReLU, MaxPool2d(2), Conv2d(8,16,3,p=1), ReLU,
MaxPool2d(2), Flatten, Linear(784,64), ReLU, Linear(64,10)), fed the same flat `pixels`
[batch, 784] through a leading Reshape to [batch, 1, 28, 28].

Usage: make_teacher.py OUT.onnx [--seed 0] [--arch mlp|cnn] [--hidden 1200,1200]
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


def build_cnn(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def param(name, shape, fan_in):
        w = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name))
        return name

    def zeros(name, n):
        inits.append(numpy_helper.from_array(np.zeros(n, dtype=np.float32), name))
        return name

    inits.append(numpy_helper.from_array(np.array([-1, 1, 28, 28], dtype=np.int64), "image_shape"))
    nodes.append(helper.make_node("Reshape", ["pixels", "image_shape"], ["image"], name="reshape"))
    x = "image"
    for i, (cin, cout) in enumerate([(1, 8), (8, 16)]):
        w = param(f"conv{i}.weight", (cout, cin, 3, 3), cin * 9)
        b = zeros(f"conv{i}.bias", cout)
        nodes.append(helper.make_node("Conv", [x, w, b], [f"conv{i}"], name=f"conv{i}",
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"crelu{i}"], name=f"crelu{i}"))
        nodes.append(helper.make_node("MaxPool", [f"crelu{i}"], [f"pool{i}"], name=f"pool{i}",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        x = f"pool{i}"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    w = param("fc0.weight", (64, 784), 784)
    nodes.append(helper.make_node("Gemm", ["flat", w, zeros("fc0.bias", 64)], ["fc0"], name="fc0", transB=1))
    nodes.append(helper.make_node("Relu", ["fc0"], ["frelu0"], name="frelu0"))
    w = param("fc1.weight", (10, 64), 64)
    nodes.append(helper.make_node("Gemm", ["frelu0", w, zeros("fc1.bias", 10)], ["logits"], name="fc1", transB=1))
    graph = helper.make_graph(
        nodes,
        "cnn_mnist",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
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
    ap.add_argument("--arch", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--hidden", default="1200,1200", help="comma-separated hidden widths (mlp)")
    args = ap.parse_args()
    if args.arch == "cnn":
        onnx.save(build_cnn(args.seed), args.out)
        return
    hidden = [int(h) for h in args.hidden.split(",") if h]
    onnx.save(build(args.seed, hidden), args.out)


if __name__ == "__main__":
    main()
