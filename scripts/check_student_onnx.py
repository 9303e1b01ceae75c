#!/usr/bin/env python3
"""Run an exported student ONNX model with onnxruntime (Python) and dump every graph output.

Used by student-trainer's export parity tests as the independent side of the comparison:

    check_student_onnx.py MODEL.onnx INPUTS.npy OUT.json

- validates MODEL.onnx with `onnx.checker.check_model(full_check=True)` (structure + shape
  inference), so a graph ONNX Runtime happens to tolerate but the spec rejects still fails;
- feeds INPUTS.npy (float32, [rows, input_dim]) to the model's single input;
- writes OUT.json: {"outputs": {name: {"shape": [...], "data": [flat floats]}}} for all outputs.
  Floats are written with Python's repr, which round-trips float32 exactly through f64.
Exits non-zero with a message on any failure.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    model_path, inputs_path, out_path = argv[1:]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    x = np.load(inputs_path)
    if x.dtype != np.float32 or x.ndim != 2:
        print(f"inputs must be float32 [rows, dim], got {x.dtype} {x.shape}", file=sys.stderr)
        return 1
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        print(f"expected one graph input, got {[i.name for i in inputs]}", file=sys.stderr)
        return 1
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {inputs[0].name: x})
    out = {
        "outputs": {
            n: {"shape": list(v.shape), "data": [float(f) for f in v.reshape(-1)]}
            for n, v in zip(names, values)
        }
    }
    with open(out_path, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
