//! Every kind of bad input gets a 4xx JSON error naming the field at fault, and nothing of a
//! refused request is stored.

use distill_tests::{ids, test_model, Reply, Rng, Server};
use serde_json::{json, Value};

const MAX_BODY: usize = 200_000;
const MAX_ROWS: usize = 64;

fn server() -> Server {
    let body = MAX_BODY.to_string();
    let rows = MAX_ROWS.to_string();
    Server::start(
        &test_model("mlp.onnx"),
        &[
            "--ep",
            "cpu",
            "--max-body-bytes",
            &body,
            "--max-request-rows",
            &rows,
        ],
    )
}

fn row(v: f64) -> Value {
    Value::Array((0..16).map(|i| json!(v + i as f64 / 16.0)).collect())
}

/// One refused request: name, body, expected status (any 4xx when `None`), field to name.
type Case<'a> = (&'a str, Vec<u8>, Option<u16>, Option<&'a str>);

/// A good row with element `i` replaced by `v`.
fn row_with(i: usize, v: Value) -> Value {
    let mut r = row(0.0);
    r[i] = v;
    r
}

/// Asserts a 4xx JSON error whose `field` contains `field` (when given); returns it.
fn expect_rejected(r: &Reply, status: Option<u16>, field: Option<&str>, case: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{case}: expected 4xx, got {r:?}"
    );
    if let Some(s) = status {
        assert_eq!(r.status, s, "{case}: {r:?}");
    }
    let e = r.error();
    assert!(!e.error.code.is_empty(), "{case}: empty error code: {r:?}");
    assert!(
        !e.error.message.is_empty(),
        "{case}: empty error message: {r:?}"
    );
    if let Some(f) = field {
        let named = e.error.field.as_deref().is_some_and(|got| got.contains(f));
        assert!(named, "{case}: the error must name field {f:?}: {r:?}");
    }
}

/// Asserts nothing was stored under `dataset` (absent, or zero rows and no shard files).
fn assert_nothing_stored(server: &Server, dataset: &str) {
    let r = server.get(&format!("/v1/datasets/{dataset}"));
    if r.status == 200 {
        let m = r.json();
        assert_eq!(
            m["rows"].as_u64().unwrap_or(0) + m["pending_rows"].as_u64().unwrap_or(0),
            0,
            "rows were stored by refused requests: {m}"
        );
    } else {
        assert_eq!(r.status, 404, "{r:?}");
    }
}

#[test]
fn malformed_and_mistyped_json_is_refused() {
    let s = server();
    let good_x = json!([row(0.0), row(1.0)]);
    let mut cases: Vec<Case> = vec![
        (
            "malformed JSON",
            br#"{"dataset": "bad", "inputs": {"x": [[1, 2"#.to_vec(),
            None,
            None,
        ),
        ("not an object", b"[1, 2, 3]".to_vec(), None, None),
        (
            "inputs missing",
            br#"{"dataset": "bad", "ids": ["a"]}"#.to_vec(),
            None,
            Some("inputs"),
        ),
        (
            "unknown top-level field",
            br#"{"dataset": "bad", "ids": ["a"], "inputs": {}, "bogus": 1}"#.to_vec(),
            None,
            None,
        ),
    ];
    let json_cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "unknown input name",
            json!({"dataset": "bad", "ids": ["a", "b"], "inputs": {"x": good_x, "bogus": [[1.0], [2.0]]}}),
            Some("inputs.bogus"),
        ),
        (
            "missing input",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {}}),
            Some("inputs.x"),
        ),
        (
            "rank too low",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": row(0.0)}}),
            Some("inputs.x"),
        ),
        (
            "rank too high",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [[row(0.0)]]}}),
            Some("inputs.x"),
        ),
        (
            "wrong row length",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [[1.0, 2.0, 3.0]]}}),
            Some("inputs.x"),
        ),
        (
            "strings for f32",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [(0..16).map(|_| "a").collect::<Vec<_>>()]}}),
            Some("inputs.x"),
        ),
        (
            "booleans for f32",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [(0..16).map(|_| true).collect::<Vec<_>>()]}}),
            Some("inputs.x"),
        ),
        (
            "null for f32",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [(0..16).map(|_| Value::Null).collect::<Vec<_>>()]}}),
            Some("inputs.x"),
        ),
        (
            "ragged rows",
            json!({"dataset": "bad", "ids": ["a", "b"], "inputs": {"x": [row(0.0), (0..15).map(|i| i as f64).collect::<Vec<_>>()]}}),
            Some("inputs.x"),
        ),
        (
            "string NaN",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [row_with(3, json!("NaN"))]}}),
            Some("inputs.x"),
        ),
        (
            "string Infinity",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [row_with(3, json!("Infinity"))]}}),
            Some("inputs.x"),
        ),
        (
            "ids shorter than batch",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": good_x}}),
            Some("ids"),
        ),
        (
            "ids longer than batch",
            json!({"dataset": "bad", "ids": ["a", "b", "c"], "inputs": {"x": good_x}}),
            Some("ids"),
        ),
        (
            "duplicate ids",
            json!({"dataset": "bad", "ids": ["a", "a"], "inputs": {"x": good_x}}),
            Some("ids"),
        ),
        (
            "empty id",
            json!({"dataset": "bad", "ids": ["", "b"], "inputs": {"x": good_x}}),
            Some("ids"),
        ),
        (
            "ids missing with a dataset",
            json!({"dataset": "bad", "inputs": {"x": good_x}}),
            Some("ids"),
        ),
        (
            "unknown output in return",
            json!({"dataset": "bad", "ids": ["a", "b"], "inputs": {"x": good_x}, "return": ["nope"]}),
            Some("return"),
        ),
        (
            "pass-through column of wrong length",
            json!({"dataset": "bad", "ids": ["a", "b"], "inputs": {"x": good_x}, "columns": {"label": [1]}}),
            Some("label"),
        ),
    ];
    for (case, body, field) in json_cases {
        cases.push((case, serde_json::to_vec(&body).expect("json"), None, field));
    }
    // 1e999 is valid JSON syntax but no f64: it must be refused, not read as infinity.
    let mut huge = serde_json::to_string(
        &json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [row(0.0)]}}),
    )
    .expect("json");
    huge = huge.replacen("0.0625", "1e999", 1);
    assert!(huge.contains("1e999"));
    cases.push(("1e999", huge.into_bytes(), None, Some("inputs.x")));
    let mut neg = serde_json::to_string(
        &json!({"dataset": "bad", "ids": ["a"], "inputs": {"x": [row(0.0)]}}),
    )
    .expect("json");
    neg = neg.replacen("0.0625", "-1e400", 1);
    cases.push(("-1e400", neg.into_bytes(), None, Some("inputs.x")));

    for (case, body, status, field) in &cases {
        let r = s.post_bytes("/v1/score", "application/json", body.clone());
        expect_rejected(&r, *status, *field, case);
    }
    assert_nothing_stored(&s, "bad");
    // Still serving: a good request after all of that is stored.
    let ok = s
        .score(&json!({"dataset": "bad", "ids": ["a", "b"], "inputs": {"x": good_x}}))
        .expect_status(200)
        .json();
    assert_eq!(ok["stored"], 2, "{ok}");
}

#[test]
fn wrong_integer_dtypes_are_refused() {
    let s = Server::start(&test_model("tokens.onnx"), &["--ep", "cpu"]);
    let cases = [
        (
            "fractional token id",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"input_ids": [[1.5, 2]], "attention_mask": [[1, 1]]}}),
            "inputs.input_ids",
        ),
        (
            "string token id",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"input_ids": [["1", 2]], "attention_mask": [[1, 1]]}}),
            "inputs.input_ids",
        ),
        (
            "mask shape differs from ids",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1]]}}),
            "attention_mask",
        ),
        (
            "token id past i64",
            json!({"dataset": "bad", "ids": ["a"], "inputs": {"input_ids": [[1, 2]], "attention_mask": [[1, 1]]}}),
            "inputs.input_ids",
        ),
    ];
    for (case, body, field) in cases {
        let mut text = serde_json::to_string(&body).expect("json");
        if case == "token id past i64" {
            text = text.replacen("[[1,2]]", "[[1,99999999999999999999]]", 1);
            assert!(text.contains("99999999999999999999"));
        }
        let r = s.post_bytes("/v1/score", "application/json", text.into_bytes());
        let field = if case == "mask shape differs from ids" {
            None
        } else {
            Some(field)
        };
        expect_rejected(&r, None, field, case);
        if case == "mask shape differs from ids" {
            let f = r.error().error.field.unwrap_or_default();
            assert!(
                f.contains("attention_mask") || f.contains("input_ids"),
                "{case}: {r:?}"
            );
        }
    }
    assert_nothing_stored(&s, "bad");
}

#[test]
fn bad_dataset_names_are_refused() {
    let s = server();
    let long = "a".repeat(129);
    for name in [
        "../x",
        "a/b",
        ".",
        "..",
        "",
        "a b",
        "x\\y",
        long.as_str(),
        "na\u{e9}me",
    ] {
        let r = s.score(&json!({"dataset": name, "ids": ["a"], "inputs": {"x": [row(0.0)]}}));
        expect_rejected(&r, None, Some("dataset"), &format!("dataset name {name:?}"));
    }
    // 128 characters is still fine.
    let ok = "b".repeat(128);
    s.score(&json!({"dataset": ok, "ids": ["a"], "inputs": {"x": [row(0.0)]}}))
        .expect_status(200);
    // Nothing escaped the data dir and no folder was made for a refused name.
    let parent = s.data_dir().parent().expect("temp dir");
    let entries: Vec<String> = std::fs::read_dir(parent)
        .expect("temp dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|e| e == "x"),
        "a dataset escaped the data dir: {entries:?}"
    );
    let folders: Vec<String> = std::fs::read_dir(s.data_dir())
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        folders,
        vec![ok.clone()],
        "only the valid dataset has a folder"
    );
    // Path routes refuse bad names too (encoded slash and dot-dot).
    for path in ["/v1/datasets/..%2Fx", "/v1/datasets/%2E%2E/seal"] {
        let r = s.send(s.client().get(s.url(path)));
        assert!((400..500).contains(&r.status), "{path}: {r:?}");
    }
}

#[test]
fn size_limits_answer_413() {
    let s = server();
    // Over --max-request-rows.
    let x = Rng::new(30).matrix(MAX_ROWS + 1, 16);
    let r =
        s.score(&json!({"dataset": "big", "ids": ids("r", 0..MAX_ROWS + 1), "inputs": {"x": x}}));
    expect_rejected(&r, Some(413), None, "rows over --max-request-rows");
    // Exactly at the limit is fine (and stays under the body limit).
    let x = Rng::new(31).matrix(MAX_ROWS, 16);
    s.score(&json!({"dataset": "big-ok", "ids": ids("r", 0..MAX_ROWS), "inputs": {"x": x}}))
        .expect_status(200);
    // Over --max-body-bytes (padding with whitespace keeps it valid JSON).
    let mut body =
        serde_json::to_vec(&json!({"dataset": "big", "ids": ["a"], "inputs": {"x": [row(0.0)]}}))
            .expect("json");
    body.splice(1..1, std::iter::repeat_n(b' ', MAX_BODY + 10));
    let r = s.post_bytes("/v1/score", "application/json", body);
    expect_rejected(&r, Some(413), None, "body over --max-body-bytes");
    // The Arrow path has the same body limit.
    let r = s.post_bytes(
        "/v1/score?dataset=big",
        distill_proto::api::ARROW_STREAM_MEDIA_TYPE,
        vec![0u8; MAX_BODY + 10],
    );
    expect_rejected(&r, Some(413), None, "Arrow body over --max-body-bytes");
    assert_nothing_stored(&s, "big");
}

#[test]
fn unsupported_content_type_is_refused() {
    let s = server();
    let r = s.post_bytes("/v1/score", "text/plain", b"hello".to_vec());
    expect_rejected(&r, None, None, "text/plain body");
    assert!(r.status == 415 || r.status == 400, "{r:?}");
}

#[test]
fn a_request_the_model_rejects_does_not_fail_its_batch_mates() {
    // Token id 999 is past the 50-row embedding table: only ONNX Runtime can tell (Gather
    // fails). With a long merge window the bad request shares a run with good ones; only
    // the bad one may fail, and nothing of it may be stored.
    let s = std::sync::Arc::new(Server::start(
        &test_model("tokens.onnx"),
        &[
            "--ep",
            "cpu",
            "--max-wait-ms",
            "200",
            "--max-batch-rows",
            "64",
        ],
    ));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(7));
    let handles: Vec<_> = (0..7)
        .map(|i| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let token = if i == 0 { 999 } else { i };
                let body = json!({
                    "dataset": "mates",
                    "ids": [format!("m-{i}")],
                    "inputs": {"input_ids": [[1, token, 3]], "attention_mask": [[1, 1, 1]]},
                });
                barrier.wait();
                (i, s.score(&body))
            })
        })
        .collect();
    for h in handles {
        let (i, r) = h.join().expect("client thread");
        if i == 0 {
            expect_rejected(&r, None, Some("inputs"), "token id past the vocabulary");
        } else {
            assert_eq!(
                r.status, 200,
                "good request {i} failed beside a bad one: {r:?}"
            );
        }
    }
    let m = s.get("/v1/datasets/mates").expect_status(200).json();
    assert_eq!(
        m["rows"].as_u64().unwrap_or(0) + m["pending_rows"].as_u64().unwrap_or(0),
        6,
        "{m}"
    );
}
