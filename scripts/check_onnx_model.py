#!/usr/bin/env python3
"""Checks ONNX models written or edited by distill's Rust code against numpy, with ONNX Runtime.

Four modes, each printing one JSON object on stdout and exiting 1 when a check fails:

  check_onnx_model.py built MODEL.onnx SPEC.json [--tol 1e-5]
      MODEL was built by Rust from the weights in SPEC (JSON written by the same test):
        {"kind": "mlp" | "cnn", "weights": {NAME: {"dims": [..], "data": [..]}},
         "inputs": {NAME: {"dims": [..], "data": [..]}}, "outputs": [NAME, ..], ...kind params}
      kind "mlp":  h = relu(x @ fc1_w.T + fc1_b); logits = h @ fc2_w.T + fc2_b;
                   outputs (logits, hidden).
      kind "cnn":  conv (pad, stride from SPEC "conv_pad"/"conv_stride") + bias -> relu ->
                   max-pool (SPEC "pool", square, stride = size) -> flatten ->
                   logits = flat @ fc_w.T + fc_b; output (logits).
      The model is validated with onnx.checker (full check), run with ONNX Runtime on SPEC's
      inputs and compared with numpy computed from SPEC's weights (not from the model's bytes).
      Prints {"max_abs_err": {OUTPUT: err}, "shapes": {OUTPUT: shape}, "ok": bool}.

  check_onnx_model.py tap --model NAME --original A.onnx --tapped B.onnx --tap TENSOR [..] [--tol 1e-5]
      NAME is one of scripts/make_test_models.py's models; B is A with TENSOR(s) added as graph
      outputs by Rust. Runs both on the same deterministic inputs: A's outputs must come out of B
      bit-identical, each tapped tensor must match make_test_models.reference (numpy).
      Prints {"original_identical": bool, "tap_max_abs_err": {TENSOR: err},
              "tap_dtypes": {TENSOR: dtype}, "ok": bool}.

  check_onnx_model.py foreign --original A.onnx --tapped B.onnx --dtypes DTYPES.json
      B is any model A with inner tensors added as outputs by Rust, DTYPES.json maps each added
      output to the dtype Rust declared. ONNX Runtime type-checks declared graph outputs against
      its own inference when it loads B, so loading proves the declared types right. Then both
      run on random inputs (ints in [0, 50), inputs named *mask* all ones, floats normal, dynamic axes 2 then 7) and A's
      outputs must come out of B within --tol (default 1e-5; extra outputs can stop ORT's node
      fusions, which changes rounding, so not necessarily bit-identical).
      Prints {"loads": bool, "error": str|null, "taps": n, "mismatched": [..],
              "original_max_abs_diff": {OUTPUT: d}, "original_identical": bool, "ok": bool}.

  check_onnx_model.py same A.onnx B.onnx
      B is A decoded and re-encoded by Rust: the two must parse to equal ModelProto messages
      (protobuf equality: nothing dropped or altered, whatever the byte layout), after clearing
      scalars explicitly set to their default outside AttributeProto (proto3 cannot keep that).
      Prints {"equal": bool, "ok": bool}.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_test_models  # noqa: E402


def _array(entry, dtype=np.float32):
    return np.asarray(entry["data"], dtype=dtype).reshape(entry["dims"])


def _conv2d(x, w, b, pad, stride):
    """Direct NCHW convolution, written out so it is independent of any library kernel."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, k, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,kchw->nk", patch.astype(np.float64), w.astype(np.float64))
    return out + b.astype(np.float64)[None, :, None, None]


def _maxpool(x, size):
    n, c, h, w = x.shape
    oh, ow = h // size, w // size
    return x[:, :, :oh * size, :ow * size].reshape(n, c, oh, size, ow, size).max(axis=(3, 5))


def numpy_built(spec):
    w = {k: _array(v).astype(np.float64) for k, v in spec["weights"].items()}
    x = _array(spec["inputs"]["x"]).astype(np.float64)
    if spec["kind"] == "mlp":
        hidden = np.maximum(x @ w["fc1_w"].T + w["fc1_b"], 0)
        return {"logits": hidden @ w["fc2_w"].T + w["fc2_b"], "hidden": hidden}
    if spec["kind"] == "cnn":
        y = np.maximum(_conv2d(x, w["conv_w"], w["conv_b"], spec["conv_pad"], spec["conv_stride"]), 0)
        y = _maxpool(y, spec["pool"]).reshape(x.shape[0], -1)
        return {"logits": y @ w["fc_w"].T + w["fc_b"]}
    raise ValueError(f"unknown kind {spec['kind']!r}")


def check_built(args):
    with open(args.spec, encoding="utf-8") as f:
        spec = json.load(f)
    onnx.checker.check_model(onnx.load(args.model), full_check=True)
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    feeds = {k: _array(v) for k, v in spec["inputs"].items()}
    got = dict(zip(spec["outputs"], sess.run(spec["outputs"], feeds)))
    want = numpy_built(spec)
    errs = {k: float(np.max(np.abs(got[k].astype(np.float64) - want[k]))) for k in spec["outputs"]}
    shapes_ok = all(got[k].shape == want[k].shape for k in spec["outputs"])
    ok = shapes_ok and all(e < args.tol for e in errs.values())
    return {"max_abs_err": errs, "shapes": {k: list(got[k].shape) for k in got}, "ok": ok}


NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
            "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
ORT_DTYPES = {"tensor(float)": "f32", "tensor(float16)": "f16", "tensor(double)": "f64",
              "tensor(int64)": "i64", "tensor(int32)": "i32", "tensor(bool)": "bool"}


def check_tap(args):
    original = ort.InferenceSession(args.original, providers=["CPUExecutionProvider"])
    tapped = ort.InferenceSession(args.tapped, providers=["CPUExecutionProvider"])
    names = [o.name for o in original.get_outputs()]
    tapped_names = [o.name for o in tapped.get_outputs()]
    if tapped_names != names + args.tap:
        return {"ok": False, "error": f"tapped model outputs {tapped_names}, expected {names + args.tap}"}
    inputs = make_test_models.example_inputs(args.model, batch=3, seed=7)
    base = original.run(None, inputs)
    out = dict(zip(tapped_names, tapped.run(None, inputs)))
    identical = all(np.array_equal(b, out[n]) and b.dtype == out[n].dtype for n, b in zip(names, base))
    want = make_test_models.reference(args.model, onnx.load(args.original), inputs)
    errs, dtypes = {}, {}
    for t in args.tap:
        errs[t] = float(np.max(np.abs(out[t].astype(np.float64) - want[t].astype(np.float64))))
        if out[t].shape != want[t].shape:
            errs[t] = float("inf")
        dtypes[t] = ORT_DTYPES.get(next(o.type for o in tapped.get_outputs() if o.name == t), "other")
    ok = identical and all(e < args.tol for e in errs.values())
    return {"original_identical": identical, "tap_max_abs_err": errs, "tap_dtypes": dtypes, "ok": ok}


def _random_inputs(sess, seed=3):
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in sess.get_inputs():
        dynamic = iter([2, 7, 7, 7, 7])
        shape = [d if isinstance(d, int) and d > 0 else next(dynamic) for d in inp.shape]
        dtype = NP_TYPES[inp.type]
        if "mask" in inp.name:  # attention masks: all tokens real (an all-zero row gives NaN)
            feeds[inp.name] = np.ones(shape, dtype=dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[inp.name] = rng.integers(0, 50, size=shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[inp.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def check_foreign(args):
    with open(args.dtypes, encoding="utf-8") as f:
        expected = json.load(f)
    original = ort.InferenceSession(args.original, providers=["CPUExecutionProvider"])
    try:
        tapped = ort.InferenceSession(args.tapped, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT's type check of the declared outputs failed
        return {"loads": False, "error": str(e)[:4000], "ok": False}
    names = [o.name for o in original.get_outputs()]
    tapped_outs = tapped.get_outputs()
    declared = {o.name: ORT_DTYPES.get(o.type, o.type) for o in tapped_outs[len(names):]}
    mismatched = sorted(set(declared.items()) ^ set(expected.items()))
    result = {"loads": True, "error": None, "taps": len(declared), "mismatched": mismatched[:20]}
    if [o.name for o in tapped_outs[:len(names)]] != names or mismatched:
        return {**result, "ok": False, "error": "outputs of the tapped model are not the original ones plus the taps"}
    feeds = _random_inputs(original)
    base = original.run(names, feeds)
    again = tapped.run(names, feeds)
    # Extra outputs can keep ORT from fusing nodes (attention, LayerNorm, GELU), which changes
    # float rounding: the original outputs must agree to float tolerance, not bit for bit.
    def diff(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        return float(np.max(np.abs(np.nan_to_num(a) - np.nan_to_num(b)), initial=0.0))
    diffs = {n: diff(a, b) for n, a, b in zip(names, base, again)}
    same_types = all(a.dtype == b.dtype and a.shape == b.shape for a, b in zip(base, again))
    ok = same_types and all(d <= args.tol for d in diffs.values())
    identical = all(np.array_equal(a, b, equal_nan=a.dtype.kind == "f") for a, b in zip(base, again))
    return {**result, "original_max_abs_diff": diffs, "original_identical": identical, "ok": ok}


def _clear_explicit_defaults(msg, path, cleared):
    """Clears singular scalars explicitly set to their default value, outside AttributeProto.

    proto3 (what prost generates from) cannot tell `domain: ""` from an absent domain, and ONNX
    gives both the same meaning. AttributeProto is left alone: distill keeps presence there
    (`keepdims: 0` must stay present for onnx.checker), so a difference there is a real one.
    """
    in_attribute = msg.DESCRIPTOR.name == "AttributeProto"
    for field, value in msg.ListFields():
        if field.is_repeated:
            if field.type == field.TYPE_MESSAGE:
                for i, item in enumerate(value):
                    _clear_explicit_defaults(item, f"{path}.{field.name}[{i}]", cleared)
        elif field.type == field.TYPE_MESSAGE:
            _clear_explicit_defaults(value, f"{path}.{field.name}", cleared)
        elif not in_attribute and field.containing_oneof is None and value == field.default_value:
            msg.ClearField(field.name)
            cleared.append(f"{path}.{field.name}")


def check_same(args):
    a, b = onnx.load(args.a, load_external_data=False), onnx.load(args.b, load_external_data=False)
    cleared = []
    _clear_explicit_defaults(a, "a", cleared)
    _clear_explicit_defaults(b, "b", cleared)
    equal = a == b
    return {"equal": equal, "explicit_defaults_cleared": cleared, "ok": equal}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("built")
    b.add_argument("model")
    b.add_argument("spec")
    b.add_argument("--tol", type=float, default=1e-5)
    t = sub.add_parser("tap")
    t.add_argument("--model", required=True, choices=sorted(make_test_models.MODELS))
    t.add_argument("--original", required=True)
    t.add_argument("--tapped", required=True)
    t.add_argument("--tap", action="append", required=True)
    t.add_argument("--tol", type=float, default=1e-5)
    fo = sub.add_parser("foreign")
    fo.add_argument("--original", required=True)
    fo.add_argument("--tapped", required=True)
    fo.add_argument("--dtypes", required=True)
    fo.add_argument("--tol", type=float, default=1e-5)
    s = sub.add_parser("same")
    s.add_argument("a")
    s.add_argument("b")
    args = p.parse_args()
    result = {"built": check_built, "tap": check_tap, "foreign": check_foreign, "same": check_same}[args.mode](args)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
