//! The client against a local HTTP stub: retries on 429/503 honouring `Retry-After`, fail-fast
//! on other 4xx with the server's message; and the JSON body as a valid `ScoreRequest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use distill_proto::api::{ScoreRequest, ARROW_STREAM_MEDIA_TYPE};
use teacher_client::body::{arrow_ipc_body, json_body};
use teacher_client::client::{ClientError, ScoreClient};
use teacher_client::testing::{
    ok_body, sample_batch as batch, stub_config as config, Response, Stub,
};

#[test]
fn retries_429_honouring_retry_after_then_succeeds() {
    let stub = Stub::start(|n, _| {
        if n == 0 {
            Response::json(
                429,
                r#"{"error":{"code":"queue_full","message":"queue is full"}}"#,
            )
            .with_header("retry-after", "0.3")
        } else {
            Response::json(200, ok_body(4, "ds"))
        }
    });
    let client = ScoreClient::new(&config(stub.url(), 3)).unwrap();
    let body = Bytes::from(arrow_ipc_body(&batch(0, 4)).unwrap());
    let t = Instant::now();
    let resp = client
        .score_arrow(Some("ds"), None, &body, "batch 0")
        .unwrap();
    let waited = t.elapsed();
    assert_eq!((resp.rows, resp.stored), (4, 4));
    assert_eq!(client.retries(), 1);
    // Retry-After 0.3 s was honoured (the backoff alone would have been ~20 ms).
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/v1/score?dataset=ds");
        assert_eq!(r.header("content-type"), Some(ARROW_STREAM_MEDIA_TYPE));
        assert_eq!(r.header("authorization"), Some("Bearer secret"));
        assert_eq!(r.body, body.to_vec(), "the same body is resent");
    }
}

#[test]
fn retries_5xx_and_gives_up_after_the_budget() {
    let stub = Stub::start(|_, _| Response::json(503, "overloaded"));
    let client = ScoreClient::new(&config(stub.url(), 2)).unwrap();
    let err = client
        .score_json(&Bytes::from_static(b"{}"), "batch 7")
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::GaveUp { attempts: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("batch 7") && msg.contains("503") && msg.contains("overloaded"),
        "{msg}"
    );
    assert_eq!(stub.requests().len(), 3);
}

#[test]
fn connection_errors_are_retried_then_reported() {
    // Bind then drop a listener: the port is (almost surely) closed afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ScoreClient::new(&config(format!("http://127.0.0.1:{port}"), 2)).unwrap();
    let err = client.model().unwrap_err();
    assert!(
        matches!(&err, ClientError::GaveUp { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(client.retries(), 2);
}

#[test]
fn other_4xx_fail_fast_with_the_server_message() {
    let stub = Stub::start(|_, _| {
        Response::json(
            422,
            r#"{"error":{"code":"invalid_shape","message":"input pixels: expected [batch, 784], got [4, 3]","field":"inputs.pixels"}}"#,
        )
    });
    let client = ScoreClient::new(&config(stub.url(), 5)).unwrap();
    let body = Bytes::from(arrow_ipc_body(&batch(0, 4)).unwrap());
    let err = client
        .score_arrow(Some("ds"), None, &body, "batch 0")
        .unwrap_err();
    match &err {
        ClientError::Rejected {
            status,
            code,
            field,
            ..
        } => {
            assert_eq!(*status, 422);
            assert_eq!(code.as_deref(), Some("invalid_shape"));
            assert_eq!(field.as_deref(), Some("inputs.pixels"));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("expected [batch, 784], got [4, 3]"), "{msg}");
    assert_eq!(stub.requests().len(), 1, "a 422 is not retried");

    // A non-JSON error body is shown as it is.
    let stub = Stub::start(|_, _| Response::json(401, "missing bearer token"));
    let client = ScoreClient::new(&config(stub.url(), 5)).unwrap();
    let err = client.seal("ds").unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("missing bearer token"),
        "{err}"
    );
}

#[test]
fn json_body_is_a_valid_score_request() {
    let b = batch(3, 2);
    let body = json_body(&b, &["x".to_string()], Some("ds")).unwrap();
    let req: ScoreRequest = serde_json::from_slice(&body).unwrap();
    assert_eq!(req.dataset.as_deref(), Some("ds"));
    assert_eq!(req.ids, Some(vec!["r-3".to_string(), "r-4".to_string()]));
    assert_eq!(
        req.inputs["x"],
        serde_json::json!([[4.5, 5.0, 5.5], [6.0, 6.5, 7.0]])
    );
    assert_eq!(
        req.columns["label"],
        vec![serde_json::json!(3), serde_json::json!(4)]
    );
    // f32 values are written in their shortest form, not widened to f64 digits.
    let text = String::from_utf8(json_body(&batch(0, 1).slice(0, 1), &["x".into()], None).unwrap())
        .unwrap();
    assert!(!text.contains("dataset"), "{text}");
    let v = Float32Array::from(vec![0.1f32]);
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let fsl = FixedSizeListArray::try_new(item.clone(), 1, Arc::new(v), None).unwrap();
    let one = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("x", DataType::FixedSizeList(item, 1), false),
        ])),
        vec![Arc::new(StringArray::from(vec!["a"])), Arc::new(fsl)],
    )
    .unwrap();
    let text = String::from_utf8(json_body(&one, &["x".into()], None).unwrap()).unwrap();
    assert!(text.contains("[[0.1]]"), "{text}");
}

#[test]
fn json_body_sends_a_text_input_as_a_list_of_strings() {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec!["say \"hi\"", "ünïcode"])),
        ],
    )
    .unwrap();
    let body = json_body(&batch, &["text".to_string()], Some("ds")).unwrap();
    let req: ScoreRequest = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        req.inputs["text"],
        serde_json::json!(["say \"hi\"", "ünïcode"])
    );
    assert_eq!(req.ids, Some(vec!["a".to_string(), "b".to_string()]));
    assert!(req.columns.is_empty());

    let with_null = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec![None::<&str>])),
        ],
    )
    .unwrap();
    let msg = json_body(&with_null, &["text".to_string()], None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"text\"") && msg.contains("null"), "{msg}");
}
