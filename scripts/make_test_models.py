#!/usr/bin/env python3
"""Writes the small ONNX teachers the integration tests use, each with a `.json` sidecar.

Usage: python scripts/make_test_models.py OUT_DIR

Models (IR version 8, opset 17, weights from numpy's default_rng with fixed seeds, so the files
are byte-identical on every run):
  mlp.onnx          x f32 [batch,16] -> Gemm -> hidden_pre -> Relu -> embedding [batch,32]
                    -> Gemm -> logits [batch,10]; tappable inner tensor: hidden_pre.
  tokens.onnx       input_ids, attention_mask i64 [batch,seq] -> Gather(table 50x8) ->
                    token_embeddings, * mask -> last_hidden_state f32 [batch,seq,8];
                    pooled f32 [batch,8] = mask-weighted mean over seq (what mean pooling gives).
  multi_dtype.onnx  a f16, b f64, c i32, d bool, all [batch,4] -> y f32 [batch,4] =
                    a + 2*b + 3*c + 4*d (each Cast to f32 first).

The numpy functions `reference(name, model, inputs)` below compute every named tensor of each
model independently of ONNX Runtime; scripts/check_onnx_model.py uses them.
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 17

DTYPE_NAMES = {
    TensorProto.FLOAT: "f32",
    TensorProto.FLOAT16: "f16",
    TensorProto.DOUBLE: "f64",
    TensorProto.INT64: "i64",
    TensorProto.INT32: "i32",
    TensorProto.BOOL: "bool",
}


def _finish(graph, doc):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="distill-make_test_models",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def make_mlp():
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((32, 16)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(32) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((10, 32)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["hidden_pre"], name="fc1", transB=1),
        helper.make_node("Relu", ["hidden_pre"], ["embedding"], name="relu1"),
        helper.make_node("Gemm", ["embedding", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 32]),
        ],
        [
            numpy_helper.from_array(w1, "fc1.weight"),
            numpy_helper.from_array(b1, "fc1.bias"),
            numpy_helper.from_array(w2, "fc2.weight"),
            numpy_helper.from_array(b2, "fc2.bias"),
        ],
    )
    return _finish(graph, "16-32-10 MLP teacher for tests (seed 0)"), {
        "description": "MLP 16 -> 32 (ReLU) -> 10; embedding is the hidden activation",
        "seed": 0,
        "taps": [{"name": "hidden_pre", "dtype": "f32", "shape": ["batch", 32],
                  "description": "hidden layer before ReLU"}],
    }


def make_tokens():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((50, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["embeddings.weight", "input_ids"], ["token_embeddings"], name="embed"),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], name="mask_cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes_last"], ["mask_3d"], name="mask_unsqueeze"),
        helper.make_node("Mul", ["token_embeddings", "mask_3d"], ["last_hidden_state"], name="mask_mul"),
        helper.make_node("ReduceSum", ["last_hidden_state", "axes_seq"], ["summed"], name="sum_seq", keepdims=0),
        helper.make_node("ReduceSum", ["mask_3d", "axes_seq"], ["count"], name="count_seq", keepdims=0),
        helper.make_node("Max", ["count", "eps"], ["count_clamped"], name="clamp"),
        helper.make_node("Div", ["summed", "count_clamped"], ["pooled"], name="mean"),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 8]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 8]),
        ],
        [
            numpy_helper.from_array(table, "embeddings.weight"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes_last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes_seq"),
            numpy_helper.from_array(np.array([1e-9], dtype=np.float32), "eps"),
        ],
    )
    return _finish(graph, "token embedding teacher for tests (seed 1)"), {
        "description": "embedding table (vocab 50, dim 8) times attention mask; pooled is the "
                       "mask-weighted mean over seq (equal to mean pooling of last_hidden_state)",
        "seed": 1,
        "vocab": 50,
        "taps": [{"name": "token_embeddings", "dtype": "f32", "shape": ["batch", "seq", 8],
                  "description": "embedding lookup before masking"},
                 {"name": "mask_f", "dtype": "f32", "shape": ["batch", "seq"],
                  "description": "attention mask cast to f32"}],
    }


def make_multi_dtype():
    nodes = [
        helper.make_node("Cast", ["a"], ["a_f"], name="cast_a", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["b"], ["b_f"], name="cast_b", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["c"], ["c_f"], name="cast_c", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["d"], ["d_f"], name="cast_d", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["b_f", "two"], ["b2"], name="mul_b"),
        helper.make_node("Mul", ["c_f", "three"], ["c3"], name="mul_c"),
        helper.make_node("Mul", ["d_f", "four"], ["d4"], name="mul_d"),
        helper.make_node("Sum", ["a_f", "b2", "c3", "d4"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "multi_dtype",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT16, ["batch", 4]),
            helper.make_tensor_value_info("b", TensorProto.DOUBLE, ["batch", 4]),
            helper.make_tensor_value_info("c", TensorProto.INT32, ["batch", 4]),
            helper.make_tensor_value_info("d", TensorProto.BOOL, ["batch", 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
            numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three"),
            numpy_helper.from_array(np.array(4.0, dtype=np.float32), "four"),
        ],
    )
    return _finish(graph, "inputs of four dtypes combined into one f32 output"), {
        "description": "y = f32(a) + 2*f32(b) + 3*f32(c) + 4*f32(d); a f16, b f64, c i32, d bool",
        "seed": None,
        "taps": [{"name": "c_f", "dtype": "f32", "shape": ["batch", 4],
                  "description": "input c cast to f32"}],
    }


MODELS = {"mlp": make_mlp, "tokens": make_tokens, "multi_dtype": make_multi_dtype}


def _specs(values):
    out = []
    for v in values:
        t = v.type.tensor_type
        shape = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim]
        out.append({"name": v.name, "dtype": DTYPE_NAMES[t.elem_type], "shape": shape})
    return out


def sidecar(name, model, extra):
    return {
        "model": f"{name}.onnx",
        "ir_version": model.ir_version,
        "opset": OPSET,
        "inputs": _specs(model.graph.input),
        "outputs": _specs(model.graph.output),
        **extra,
    }


def example_inputs(name, batch, seed=0, seq=5):
    """Deterministic example inputs of a model, as numpy arrays by input name."""
    rng = np.random.default_rng(seed)
    if name == "mlp":
        return {"x": rng.standard_normal((batch, 16)).astype(np.float32)}
    if name == "tokens":
        ids = rng.integers(0, 50, size=(batch, seq), dtype=np.int64)
        mask = np.ones((batch, seq), dtype=np.int64)
        for i in range(batch):  # right padding of varying length, at least one real token
            mask[i, 1 + (i % seq):] = 0
        return {"input_ids": ids, "attention_mask": mask}
    if name == "multi_dtype":
        return {
            "a": rng.standard_normal((batch, 4)).astype(np.float16),
            "b": rng.standard_normal((batch, 4)).astype(np.float64),
            "c": rng.integers(-5, 5, size=(batch, 4), dtype=np.int32),
            "d": rng.integers(0, 2, size=(batch, 4)).astype(bool),
        }
    raise ValueError(f"unknown model {name!r}")


def reference(name, model, inputs):
    """Every named tensor of a model computed with numpy from the model's initializers."""
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    if name == "mlp":
        x = inputs["x"].astype(np.float32)
        hidden_pre = x @ w["fc1.weight"].T + w["fc1.bias"]
        embedding = np.maximum(hidden_pre, 0)
        logits = embedding @ w["fc2.weight"].T + w["fc2.bias"]
        return {"hidden_pre": hidden_pre, "embedding": embedding, "logits": logits}
    if name == "tokens":
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        token_embeddings = w["embeddings.weight"][ids]
        mask_f = mask.astype(np.float32)
        last = token_embeddings * mask_f[..., None]
        count = np.maximum(mask_f.sum(axis=1, keepdims=True), 1e-9)
        pooled = last.sum(axis=1) / count
        return {"token_embeddings": token_embeddings, "mask_f": mask_f,
                "last_hidden_state": last, "pooled": pooled}
    if name == "multi_dtype":
        f = {k: inputs[k].astype(np.float32) for k in "abcd"}
        y = f["a"] + 2 * f["b"] + 3 * f["c"] + 4 * f["d"]
        return {"a_f": f["a"], "b_f": f["b"], "c_f": f["c"], "d_f": f["d"], "y": y}
    raise ValueError(f"unknown model {name!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_test_models.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, make in MODELS.items():
        model, extra = make()
        path = os.path.join(out_dir, f"{name}.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(sidecar(name, model, extra), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
