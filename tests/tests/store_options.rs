//! Storage options through the real server: top-K logits, not storing inputs, pass-through
//! columns, and a dataset refusing rows from another teacher.

use distill_tests::python::{numpy_reference, python_json_stdin, read_shards_with_pyarrow};
use distill_tests::{assert_close, ids, test_model, Rng, Server};
use serde_json::{json, Value};

fn columns(table: &Value) -> Vec<String> {
    table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

/// Row index of each id in a pyarrow read.
fn index_of(table: &Value, id: &str) -> usize {
    table["data"]["id"]
        .as_array()
        .and_then(|ids| ids.iter().position(|v| v == id))
        .unwrap_or_else(|| panic!("id {id} not stored"))
}

#[test]
fn topk_logits_match_numpy() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu", "--logits-topk", "3"]);
    let x = Rng::new(60).matrix(8, 16);
    server
        .score(&json!({"dataset": "topk", "ids": ids("t", 0..8), "inputs": {"x": x}}))
        .expect_status(200);
    server.seal("topk");
    let table = read_shards_with_pyarrow(&server.dataset_dir("topk")).expect("pyarrow");
    let cols = columns(&table);
    for c in [
        "logits_topk_indices",
        "logits_topk_values",
        "logits_logsumexp",
        "embedding",
    ] {
        assert!(
            cols.iter().any(|n| n == c),
            "column {c} missing from {cols:?}"
        );
    }
    assert!(
        !cols.iter().any(|n| n == "logits"),
        "full logits stored despite --logits-topk: {cols:?}"
    );

    let logits = numpy_reference("mlp", &model, &json!({"x": x})).expect("numpy")["logits"].clone();
    let want = python_json_stdin(
        r#"
import json, sys
import numpy as np
l = np.array(json.load(sys.stdin), dtype=np.float64)
idx = np.argsort(-l, axis=1, kind="stable")[:, :3]
m = l.max(axis=1, keepdims=True)
lse = (m[:, 0] + np.log(np.exp(l - m).sum(axis=1)))
print(json.dumps({"idx": idx.tolist(), "val": np.take_along_axis(l, idx, 1).tolist(), "lse": lse.tolist()}))
"#,
        &logits,
    )
    .expect("numpy top-k");
    for i in 0..8 {
        let r = index_of(&table, &format!("t-{i}"));
        assert_eq!(
            table["data"]["logits_topk_indices"][r], want["idx"][i],
            "top-3 classes of t-{i}"
        );
        assert_close(
            &format!("top-3 logits of t-{i}"),
            &table["data"]["logits_topk_values"][r],
            &want["val"][i],
            1e-5,
        );
        assert_close(
            &format!("logsumexp of t-{i}"),
            &table["data"]["logits_logsumexp"][r],
            &want["lse"][i],
            1e-5,
        );
    }
}

#[test]
fn no_store_inputs_still_deduplicates() {
    let server = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--no-store-inputs"],
    );
    let x = Rng::new(61).matrix(4, 16);
    let body = json!({"dataset": "noin", "ids": ids("n", 0..4), "inputs": {"x": x}});
    server.score(&body).expect_status(200);
    let again = server.score(&body).expect_status(200).json();
    assert_eq!(again["duplicates"], 4, "{again}");
    // The digest of the inputs is kept even when the inputs are not: a changed row conflicts.
    let changed = json!({"dataset": "noin", "ids": ["n-0"], "inputs": {"x": [Rng::new(62).matrix(1, 16)[0]]}});
    assert_eq!(server.score(&changed).status, 409);
    server.seal("noin");
    let table = read_shards_with_pyarrow(&server.dataset_dir("noin")).expect("pyarrow");
    assert_eq!(table["rows"], 4);
    let cols = columns(&table);
    assert!(
        !cols.iter().any(|c| c == "x"),
        "inputs stored despite --no-store-inputs: {cols:?}"
    );
    assert!(cols.iter().any(|c| c == "logits"), "{cols:?}");
}

#[test]
fn pass_through_columns_are_stored() {
    let server = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let x = Rng::new(63).matrix(3, 16);
    server
        .score(&json!({
            "dataset": "pt",
            "ids": ids("p", 0..3),
            "inputs": {"x": x},
            "columns": {"label": [3, 1, 4], "source": ["a", "b", "c"]},
        }))
        .expect_status(200);
    server.seal("pt");
    let table = read_shards_with_pyarrow(&server.dataset_dir("pt")).expect("pyarrow");
    for (i, (label, source)) in [(3, "a"), (1, "b"), (4, "c")].into_iter().enumerate() {
        let r = index_of(&table, &format!("p-{i}"));
        assert_eq!(table["data"]["label"][r], label, "label of p-{i}");
        assert_eq!(table["data"]["source"][r], source, "source of p-{i}");
    }
    // A later request may not change a pass-through column's type.
    let r = server.score(&json!({
        "dataset": "pt", "ids": ["p-9"], "inputs": {"x": [x[0]]}, "columns": {"label": ["three"]},
    }));
    assert!((400..500).contains(&r.status), "{r:?}");
    let e = r.error();
    assert!(e.error.message.contains("label"), "{e:?}");
}

#[test]
fn dataset_refuses_rows_from_another_teacher() {
    let model = test_model("mlp.onnx");
    let mut server = Server::start(&model, &["--ep", "cpu"]);
    let x = Rng::new(64).matrix(2, 16);
    server
        .score(&json!({"dataset": "fp", "ids": ["a", "b"], "inputs": {"x": x}}))
        .expect_status(200);
    server.seal("fp");
    // Same model, but now with a tap: the stored outputs differ, so the teacher does too.
    server
        .restart_with(&model, &["--ep", "cpu", "--tap", "hidden_pre"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let r = server.score(&json!({"dataset": "fp", "ids": ["c"], "inputs": {"x": [x[0]]}}));
    assert!(
        (400..500).contains(&r.status),
        "rows from another teacher were accepted: {r:?}"
    );
    let e = r.error();
    assert!(
        e.error.message.contains("fp"),
        "the error must name the dataset: {e:?}"
    );
    // A new dataset under the new teacher is fine, and the old one is untouched.
    server
        .score(&json!({"dataset": "fp2", "ids": ["c"], "inputs": {"x": [x[0]]}}))
        .expect_status(200);
    let m = server.get("/v1/datasets/fp").expect_status(200).json();
    assert_eq!(m["rows"], 2, "{m}");
}
