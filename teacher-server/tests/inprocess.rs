//! The server's router driven in process (no socket) against the tiny ONNX models of
//! `scripts/make_test_models.py`, with outputs compared to ONNX Runtime in Python
//! (`scripts/reference_outputs.py`) and to the models' own numpy-checked `pooled` output.
//! Needs `scripts/fetch_deps.sh` (the ONNX Runtime library and the Python venv).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use clap::Parser;
use distill_tests::paths::{ort_lib, python_bin, repo_root};
use serde_json::{json, Value};
use teacher_server::state::AppState;
use teacher_server::{Cli, Command as Sub};
use tower::ServiceExt;

/// Writes the test models into a fresh temp dir.
fn models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(python_bin())
        .arg(repo_root().join("scripts/make_test_models.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "make_test_models.py failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    dir
}

/// Outputs of ONNX Runtime in Python for the same inputs.
fn reference(model: &Path, inputs: &Value, taps: &[&str]) -> Value {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(inputs).unwrap()).unwrap();
    let mut cmd = Command::new(python_bin());
    cmd.arg(repo_root().join("scripts/reference_outputs.py"))
        .arg(model)
        .arg(file.path());
    for t in taps {
        cmd.arg("--tap").arg(t);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "reference_outputs.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["outputs"].clone()
}

async fn state(model: &Path, data: &Path, extra: &[&str]) -> Arc<AppState> {
    let lib = ort_lib().display().to_string();
    let mut argv = vec![
        "teacher-server".to_string(),
        "serve".into(),
        "--model".into(),
        model.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--ort-lib".into(),
        lib,
        "--ep".into(),
        "cpu".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let Sub::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    teacher_server::server::prepare(&args).await.unwrap().state
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = teacher_server::routes::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn assert_close(got: &Value, want: &Value, tol: f64, what: &str) {
    match (got, want) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{what}: lengths differ");
            for (x, y) in a.iter().zip(b) {
                assert_close(x, y, tol, what);
            }
        }
        (x, y) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: {x} vs {y}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlp_outputs_and_taps_match_onnxruntime_and_are_stored() {
    let dir = models();
    let data = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp.onnx");
    let st = state(
        &model,
        data.path(),
        &[
            "--tap",
            "hidden_pre",
            "--output",
            "logits=logits",
            "--output",
            "feat=hidden_pre",
        ],
    )
    .await;
    let x: Vec<Vec<f64>> = (0..3)
        .map(|r| {
            (0..16)
                .map(|c| ((r * 16 + c) as f64 * 0.37).sin())
                .collect()
        })
        .collect();
    let inputs = json!({ "x": x });
    let want = reference(&model, &inputs, &["hidden_pre"]);

    let (status, got) = call(&st, post("/v1/score", &json!({ "inputs": inputs }))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["rows"], 3);
    assert_close(&got["outputs"]["logits"], &want["logits"], 1e-5, "logits");
    assert_close(
        &got["outputs"]["feat"],
        &want["hidden_pre"],
        1e-5,
        "tapped hidden_pre",
    );
    assert!(
        got["outputs"].get("embedding").is_none(),
        "embedding was not asked for with --output"
    );

    let body = json!({ "dataset": "d1", "ids": ["a", "b", "c"], "inputs": inputs, "columns": { "label": [1, 2, 3] }, "return": ["logits"] });
    let (status, got) = call(&st, post("/v1/score", &body)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        (got["stored"].as_u64(), got["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(got["outputs"].get("feat").is_none());
    let (status, got) = call(&st, post("/v1/score", &body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (got["stored"].as_u64(), got["duplicates"].as_u64()),
        (Some(0), Some(3))
    );

    let (status, manifest) = call(
        &st,
        Request::post("/v1/datasets/d1/seal")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{manifest}");
    assert_eq!(manifest["rows"], 3);
    let (_, list) = call(
        &st,
        Request::get("/v1/datasets").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(list[0]["name"], "d1");

    // A wrong dtype stores nothing and names the field.
    let bad = json!({ "dataset": "d2", "ids": ["z"], "inputs": { "x": [vec![true; 16]] } });
    let (status, err) = call(&st, post("/v1/score", &bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "inputs.x");
    assert_eq!(err["error"]["code"], "invalid_dtype");
    let (status, _) = call(
        &st,
        Request::get("/v1/datasets/d2").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    st.batcher.shutdown();
    st.store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mean_pooling_matches_the_models_own_pooled_output() {
    let dir = models();
    let data = tempfile::tempdir().unwrap();
    let model = dir.path().join("tokens.onnx");
    let st = state(
        &model,
        data.path(),
        &["--pool", "last_hidden_state=mean", "--api-token", "t0k"],
    )
    .await;
    let inputs = json!({
        "input_ids": [[3, 14, 15, 9, 2], [6, 5, 35, 0, 0], [8, 9, 7, 9, 3]],
        "attention_mask": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]
    });
    let want = reference(&model, &inputs, &[]);
    let req = || {
        Request::post("/v1/score")
            .header("content-type", "application/json")
            .header("authorization", "Bearer t0k")
            .body(Body::from(
                serde_json::to_vec(&json!({ "inputs": inputs })).unwrap(),
            ))
            .unwrap()
    };
    let (status, got) = call(&st, req()).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    // `pooled` is the graph's own mask-weighted mean (checked against numpy by the model script).
    assert_close(
        &got["outputs"]["last_hidden_state"],
        &want["pooled"],
        1e-6,
        "mean pooling",
    );
    assert_close(&got["outputs"]["pooled"], &want["pooled"], 1e-6, "pooled");

    let (status, err) = call(&st, post("/v1/score", &json!({ "inputs": inputs }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
    let (status, _) = call(&st, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    st.batcher.shutdown();
}
