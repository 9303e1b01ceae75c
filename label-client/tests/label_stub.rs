//! A whole `label` run against a local HTTP stub, decoded on the stub side: every row sent once
//! (retrying throttled batches), the first rejection stops the run, bad options fail before
//! anything is sent.

use std::io::Cursor;
use std::path::Path;

use arrow::array::{AsArray, Int64Array};
use arrow::ipc::reader::StreamReader;
use label_client::label::source::InputMapping;
use label_client::label::{label, LabelError, LabelOptions};
use teacher_client::testing::{
    ok_body, sample_batch as batch, stub_config as config, Response, Stub,
};

fn write_parquet(path: &Path, rows: usize) {
    let b = batch(0, rows);
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        b.schema(),
        None,
    )
    .unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

#[test]
fn label_streams_every_row_as_arrow_and_seals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.parquet");
    write_parquet(&data, 103);
    let bodies = std::sync::Mutex::new(std::collections::HashSet::new());
    let stub = Stub::start(move |_, req| {
        if req.target.ends_with("/seal") {
            return Response::json(
                200,
                r#"{"rows":103,"shards":[{"file":"shard-000000.parquet","rows":103,"bytes":1}]}"#,
            );
        }
        // The first attempt of every third batch is throttled, to exercise retries inside a
        // run. Keyed by the batch, not the request count: with a global count, concurrent
        // workers' retries could keep landing on throttled slots until one gave up (seen once
        // in CI under load).
        let first_of = bodies
            .lock()
            .ok()
            .and_then(|mut seen| seen.insert(req.body.clone()).then(|| seen.len()));
        if first_of.is_some_and(|k| k % 3 == 1) {
            return Response::json(429, "busy").with_header("retry-after", "0");
        }
        let reader = StreamReader::try_new(Cursor::new(req.body.clone()), None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        Response::json(200, ok_body(rows, "ds"))
    });
    let options = LabelOptions {
        client: config(stub.url(), 4),
        data: data.clone(),
        dataset: "mnist-small".to_string(),
        id_column: "id".to_string(),
        inputs: vec!["x=pixels".parse::<InputMapping>().unwrap()],
        columns: vec!["label".to_string()],
        batch_rows: 10,
        concurrency: 3,
        seal: true,
        progress: false,
        views: None,
    };
    let summary = label(&options).unwrap();
    assert_eq!(summary.rows, 103);
    assert_eq!(summary.stored, 103);
    assert!(summary.retries >= 1);
    assert_eq!(
        summary
            .sealed
            .as_ref()
            .and_then(|m| m.get("rows"))
            .and_then(|r| r.as_u64()),
        Some(103)
    );

    // Decode what the stub stored: every id exactly once, input renamed, label passed through.
    let mut ids = Vec::new();
    for req in stub
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/v1/score"))
    {
        assert_eq!(req.target, "/v1/score?dataset=mnist-small");
        let reader = StreamReader::try_new(Cursor::new(req.body.clone()), None).unwrap();
        for b in reader {
            let b = b.unwrap();
            let names: Vec<_> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["id", "pixels", "label"]);
            assert!(b.num_rows() <= 10);
            let id = b.column(0).as_string::<i32>();
            let px = b.column(1).as_fixed_size_list();
            let lab: &Int64Array = b.column(2).as_primitive();
            for r in 0..b.num_rows() {
                let i: usize = id.value(r)[2..].parse().unwrap();
                let v = px.value(r);
                let v = v.as_primitive::<arrow::datatypes::Float32Type>();
                assert_eq!(v.value(0), (i * 3) as f32 * 0.5);
                assert_eq!(lab.value(r), (i % 10) as i64);
                ids.push(i);
            }
        }
    }
    let throttled = stub.requests().len() - 1 - 11; // minus seal, minus 11 accepted batches
    assert_eq!(throttled as u64, summary.retries);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, (0..103).collect::<Vec<_>>(), "every row arrived");
    let seals = stub
        .requests()
        .iter()
        .filter(|r| r.target == "/v1/datasets/mnist-small/seal")
        .count();
    assert_eq!(seals, 1);
}

#[test]
fn label_stops_at_the_first_rejection_and_names_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.parquet");
    write_parquet(&data, 50);
    let stub = Stub::start(|_, _| {
        Response::json(
            413,
            r#"{"error":{"code":"too_many_rows","message":"at most 5 rows per request"}}"#,
        )
    });
    let options = LabelOptions {
        client: config(stub.url(), 4),
        data,
        dataset: "ds".to_string(),
        id_column: "id".to_string(),
        inputs: vec!["x".parse().unwrap()],
        columns: vec![],
        batch_rows: 10,
        concurrency: 1,
        seal: true,
        progress: false,
        views: None,
    };
    let err = label(&options).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("batch 0") && msg.contains("ids r-0..r-9"),
        "{msg}"
    );
    assert!(
        msg.contains("413") && msg.contains("at most 5 rows per request"),
        "{msg}"
    );
    // Stopped early, did not seal.
    assert!(stub.requests().len() <= 2, "{}", stub.requests().len());
    assert!(stub.requests().iter().all(|r| !r.target.ends_with("/seal")));
}

#[test]
fn label_checks_columns_and_names_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.parquet");
    write_parquet(&data, 5);
    let mut options = LabelOptions {
        client: config("http://127.0.0.1:9".to_string(), 0),
        data: data.clone(),
        dataset: "ds".to_string(),
        id_column: "id".to_string(),
        inputs: vec!["pixels".parse().unwrap()],
        columns: vec![],
        batch_rows: 10,
        concurrency: 1,
        seal: false,
        progress: false,
        views: None,
    };
    let msg = label(&options).unwrap_err().to_string();
    assert!(
        msg.contains("no column \"pixels\"") && msg.contains("id, x, label"),
        "{msg}"
    );

    options.inputs = vec!["label".parse().unwrap()];
    let msg = label(&options).unwrap_err().to_string();
    assert!(msg.contains("\"label\" is Int64"), "{msg}");

    options.dataset = "../escape".to_string();
    assert!(matches!(
        label(&options).unwrap_err(),
        LabelError::Options(_)
    ));

    assert!("=x".parse::<InputMapping>().is_err());
    assert_eq!(
        "a=b".parse::<InputMapping>().unwrap(),
        InputMapping {
            column: "a".into(),
            input: "b".into()
        }
    );
}
