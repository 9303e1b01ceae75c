#!/usr/bin/env python3
"""Prints a model's outputs computed by ONNX Runtime (Python) as JSON: the independent reference
the integration tests compare the Rust teacher-server with.

Usage: reference_outputs.py MODEL.onnx INPUTS.json [--tap NAME[:dtype]]... [--output NAME]...

INPUTS.json holds one nested array `[batch, ...]` per model input, by input name, either as the
top-level object or under "inputs" (so a `POST /v1/score` JSON body works as it is). Values are
converted to each input's declared element type (f32, f16, f64, i64, i32, bool).
--tap adds an inner tensor as an extra output (type from :dtype, default f32) before running,
with the python onnx API, independently of distill's Rust tap code.
--output restricts the printed outputs (default: all, taps included).

Prints {"outputs": {NAME: nested list}, "dtypes": {NAME: dtype}, "shapes": {NAME: [..]}} with
keys in the model's output order; float values are the exact doubles of the computed values
(NaN/Infinity printed as such). Runs on the CPU provider with one thread, so it is deterministic.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
            "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
NAMES = {"tensor(float)": "f32", "tensor(float16)": "f16", "tensor(double)": "f64",
         "tensor(int64)": "i64", "tensor(int32)": "i32", "tensor(bool)": "bool"}
TAP_TYPES = {"f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16, "f64": TensorProto.DOUBLE,
             "i64": TensorProto.INT64, "i32": TensorProto.INT32, "bool": TensorProto.BOOL}


def load_model(path, taps):
    model = onnx.load(path)
    for spec in taps:
        # As in Rust's Tap parsing: only a suffix naming a dtype is one (names may hold colons).
        name, dtype = spec, "f32"
        if ":" in spec and spec.rsplit(":", 1)[1] in TAP_TYPES:
            name, dtype = spec.rsplit(":", 1)
        model.graph.output.append(helper.make_tensor_value_info(name, TAP_TYPES[dtype], None))
    return model.SerializeToString()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("--tap", action="append", default=[])
    p.add_argument("--output", action="append", default=None)
    args = p.parse_args()

    with open(args.inputs, encoding="utf-8") as f:
        raw = json.load(f)
    if isinstance(raw, dict) and isinstance(raw.get("inputs"), dict):
        raw = raw["inputs"]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(load_model(args.model, args.tap), opts, providers=["CPUExecutionProvider"])

    feeds = {}
    for inp in sess.get_inputs():
        if inp.name not in raw:
            sys.exit(f"INPUTS.json has no input `{inp.name}` (model inputs: {[i.name for i in sess.get_inputs()]})")
        if inp.type not in NP_TYPES:
            sys.exit(f"input `{inp.name}` has unsupported type {inp.type}")
        feeds[inp.name] = np.asarray(raw[inp.name], dtype=NP_TYPES[inp.type])

    outs = sess.get_outputs()
    wanted = args.output or [o.name for o in outs]
    unknown = [n for n in wanted if n not in {o.name for o in outs}]
    if unknown:
        sys.exit(f"unknown outputs {unknown} (model outputs: {[o.name for o in outs]})")
    values = dict(zip(wanted, sess.run(wanted, feeds)))
    types = {o.name: o.type for o in outs}
    result = {
        "outputs": {n: values[n].tolist() for n in wanted},
        "dtypes": {n: NAMES.get(types[n], types[n]) for n in wanted},
        "shapes": {n: list(values[n].shape) for n in wanted},
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
