//! The real server's numbers against independent references: onnxruntime Python
//! (`scripts/reference_outputs.py`, or the Python API directly for taps) and numpy
//! (`reference()` in `scripts/make_test_models.py`), to 1e-5.

use distill_tests::python::{numpy_reference, reference_outputs_tapped};
use distill_tests::{assert_close, json_shape, reference_outputs, test_model, Rng, Server};
use serde_json::{json, Value};

const TOL: f64 = 1e-5;

/// Token inputs for `tokens.onnx` (vocab 50): right-padded masks of varying length, one row
/// fully padded but for its first token.
fn token_inputs(batch: usize, seq: usize, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let ids: Vec<Vec<i64>> = (0..batch)
        .map(|_| (0..seq).map(|_| rng.int(0, 50)).collect())
        .collect();
    let mask: Vec<Vec<i64>> = (0..batch)
        .map(|i| (0..seq).map(|j| i64::from(j <= i % seq)).collect())
        .collect();
    json!({"input_ids": ids, "attention_mask": mask})
}

/// Scores `inputs` without storing and returns the outputs object.
fn score(server: &Server, inputs: &Value) -> Value {
    let r = server
        .score(&json!({ "inputs": inputs }))
        .expect_status(200)
        .json();
    assert_eq!(r["stored"], 0, "nothing is stored without a dataset: {r}");
    r["outputs"].clone()
}

#[test]
fn mlp_matches_onnxruntime_python_and_numpy() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let x = Rng::new(1).matrix(7, 16);
    let inputs = json!({ "x": x });
    let got = score(&server, &inputs);
    let ort_ref = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    let np_ref = numpy_reference("mlp", &model, &inputs).expect("numpy reference");
    for name in ["logits", "embedding"] {
        assert_eq!(
            json_shape(&got[name]),
            json_shape(&np_ref[name]),
            "{name} shape"
        );
        assert_close(
            &format!("{name} vs onnxruntime"),
            &got[name],
            &ort_ref[name],
            TOL,
        );
        assert_close(&format!("{name} vs numpy"), &got[name], &np_ref[name], TOL);
    }
    assert_eq!(json_shape(&got["logits"]), vec![7, 10]);
}

#[test]
fn single_row_and_large_batch_agree_with_reference() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu", "--max-batch-rows", "64"]);
    // 300 rows: more than one inference run's worth; the server must still answer in order.
    let x = Rng::new(2).matrix(300, 16);
    let inputs = json!({ "x": x });
    let got = score(&server, &inputs);
    let want = numpy_reference("mlp", &model, &inputs).expect("numpy reference");
    assert_close("logits, 300 rows", &got["logits"], &want["logits"], TOL);
    let one = json!({ "x": [x[0].clone()] });
    let got1 = score(&server, &one);
    assert_close("logits, 1 row", &got1["logits"][0], &want["logits"][0], TOL);
}

#[test]
fn tap_returns_the_inner_tensor() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu", "--tap", "hidden_pre"]);
    let info = server.get("/v1/model").expect_status(200).json();
    let tap = info["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|s| s["tensor"] == "hidden_pre"))
        .unwrap_or_else(|| panic!("/v1/model does not list the tap: {info}"));
    assert_eq!(tap["source"], "tap", "{tap}");
    assert_eq!(tap["dtype"], "f32", "{tap}");
    let name = tap["name"].as_str().expect("tap name").to_string();

    let inputs = json!({ "x": Rng::new(3).matrix(5, 16) });
    let got = score(&server, &inputs);
    let ort_ref = reference_outputs_tapped(&model, &inputs, &["hidden_pre"]).expect("onnxruntime");
    let np_ref = numpy_reference("mlp", &model, &inputs).expect("numpy reference");
    assert_eq!(json_shape(&got[&name]), vec![5, 32]);
    assert_close(
        "tap vs onnxruntime",
        &got[&name],
        &ort_ref["hidden_pre"],
        TOL,
    );
    assert_close("tap vs numpy", &got[&name], &np_ref["hidden_pre"], TOL);
    // The tap must not change the graph's own outputs.
    assert_close("logits with a tap", &got["logits"], &np_ref["logits"], TOL);
    // hidden_pre has negative values that ReLU clips: it really is the pre-activation.
    let any_negative = got[&name]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .any(|v| v.as_f64().is_some_and(|f| f < 0.0));
    assert!(
        any_negative,
        "hidden_pre should hold negative values before the ReLU"
    );
}

#[test]
fn tokens_unpooled_matches_reference() {
    let model = test_model("tokens.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let inputs = token_inputs(4, 6, 4);
    let got = score(&server, &inputs);
    let ort_ref = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    assert_eq!(json_shape(&got["last_hidden_state"]), vec![4, 6, 8]);
    assert_close(
        "last_hidden_state",
        &got["last_hidden_state"],
        &ort_ref["last_hidden_state"],
        TOL,
    );
    assert_close("pooled", &got["pooled"], &ort_ref["pooled"], TOL);
}

/// Pools the reference `last_hidden_state` with numpy (masked mean or first position).
fn numpy_pool(inputs: &Value, hidden: &Value, how: &str) -> Value {
    let code = r#"
import json, sys
import numpy as np
d = json.load(sys.stdin)
inputs, hidden, how = d["inputs"], np.array(d["hidden"]), d["how"]
mask = np.array(inputs["attention_mask"], dtype=np.float64)
if how == "mean":
    pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
else:
    pooled = hidden[:, 0, :]
print(json.dumps(pooled.tolist()))
"#;
    distill_tests::python::python_json_stdin(
        code,
        &json!({"inputs": inputs, "hidden": hidden, "how": how}),
    )
    .expect("numpy pooling")
}

fn check_pooling(how: &str) {
    let model = test_model("tokens.onnx");
    let server = Server::start(
        &model,
        &[
            "--ep",
            "cpu",
            "--output",
            "hidden=last_hidden_state",
            "--pool",
            &format!("hidden={how}"),
        ],
    );
    let info = server.get("/v1/model").expect_status(200).json();
    let spec = info["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|s| s["name"] == "hidden"))
        .unwrap_or_else(|| panic!("no output `hidden` in {info}"));
    assert_eq!(spec["pooling"], how, "{spec}");
    assert_eq!(spec["tensor"], "last_hidden_state", "{spec}");

    let inputs = token_inputs(5, 7, 5);
    let got = score(&server, &inputs);
    let ort_ref = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    let want = numpy_pool(&inputs, &ort_ref["last_hidden_state"], how);
    assert_eq!(json_shape(&got["hidden"]), vec![5, 8], "pooled shape");
    assert_close(
        &format!("{how} pooling vs numpy"),
        &got["hidden"],
        &want,
        TOL,
    );
    if how == "mean" {
        // The model's own `pooled` output is the masked mean too.
        assert_close(
            "mean pooling vs the model's pooled",
            &got["hidden"],
            &ort_ref["pooled"],
            TOL,
        );
    }
}

#[test]
fn tokens_mean_pooling_matches_numpy() {
    check_pooling("mean");
}

#[test]
fn tokens_cls_pooling_matches_numpy() {
    check_pooling("cls");
}

#[test]
fn multi_dtype_inputs_match_reference() {
    let model = test_model("multi_dtype.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let info = server.get("/v1/model").expect_status(200).json();
    let dtypes: Vec<(String, String)> = info["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").into(),
                i["dtype"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        dtypes,
        [("a", "f16"), ("b", "f64"), ("c", "i32"), ("d", "bool")]
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .to_vec()
    );

    let mut rng = Rng::new(6);
    let rows = 6;
    // f16 values on a 1/64 grid are exact in f16, so JSON -> f16 cannot round differently
    // in the server and in numpy.
    let a: Vec<Vec<f64>> = (0..rows)
        .map(|_| (0..4).map(|_| rng.int(-256, 256) as f64 / 64.0).collect())
        .collect();
    let b: Vec<Vec<f64>> = (0..rows)
        .map(|_| (0..4).map(|_| rng.uniform(-3.0, 3.0)).collect())
        .collect();
    let c: Vec<Vec<i64>> = (0..rows)
        .map(|_| (0..4).map(|_| rng.int(-1000, 1000)).collect())
        .collect();
    let d: Vec<Vec<bool>> = (0..rows)
        .map(|_| (0..4).map(|_| rng.int(0, 2) == 1).collect())
        .collect();
    let inputs = json!({"a": a, "b": b, "c": c, "d": d});
    let got = score(&server, &inputs);
    let ort_ref = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    let np_ref = numpy_reference("multi_dtype", &model, &inputs).expect("numpy reference");
    // y reaches ~3000 in magnitude: compare relative to it (f32 has ~7 digits).
    assert_close("y vs onnxruntime", &got["y"], &ort_ref["y"], 1e-3);
    assert_close("y vs numpy", &got["y"], &np_ref["y"], 1e-3);
}

#[test]
fn model_info_describes_the_signature() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu", "--max-request-rows", "77"]);
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(info["provider"], "cpu", "{info}");
    assert_eq!(info["max_request_rows"], 77, "{info}");
    assert_eq!(
        info["inputs"],
        json!([{"name": "x", "dtype": "f32", "shape": ["batch", 16]}])
    );
    let names: Vec<&str> = info["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["logits", "embedding"], "{info}");
    let sha = distill_tests::run_python(
        "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
        &[&model],
    )
    .expect("hashlib");
    assert_eq!(info["model_sha256"], sha.trim(), "{info}");
    assert!(
        info["ort_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{info}"
    );
}
