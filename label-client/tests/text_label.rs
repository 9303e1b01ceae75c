//! `label` streams a text column: an imported file's Utf8 `text` (and a LargeUtf8 column,
//! cast) goes to the server as a Utf8 column of the Arrow IPC body.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, LargeStringArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::StreamReader;
use label_client::import::text::{import_text, TextFormat, TextImportOptions};
use label_client::label::{label, LabelOptions};
use teacher_client::testing::{ok_body, Response, Stub};
use teacher_client::{ClientConfig, RetryPolicy};

fn options(url: String, data: std::path::PathBuf, input: &str) -> LabelOptions {
    LabelOptions {
        client: ClientConfig {
            server: url,
            api_token: None,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                retries: 0,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
            },
        },
        data,
        dataset: "sentences".to_string(),
        id_column: "id".to_string(),
        inputs: vec![input.parse().unwrap()],
        columns: vec![],
        batch_rows: 2,
        concurrency: 2,
        seal: false,
        progress: false,
        views: None,
    }
}

/// (id, text) of every row the stub received, sorted by id; asserts the body's schema.
fn received(stub: &Stub) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for req in stub.requests() {
        let reader = StreamReader::try_new(Cursor::new(req.body.clone()), None).unwrap();
        for b in reader {
            let b = b.unwrap();
            let schema = b.schema();
            assert_eq!(schema.field(0).name(), "id");
            assert_eq!(schema.field(1).name(), "text");
            assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
            let (ids, texts) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
            );
            for r in 0..b.num_rows() {
                rows.push((ids.value(r).to_string(), texts.value(r).to_string()));
            }
        }
    }
    rows.sort();
    rows
}

fn stub() -> Stub {
    Stub::start(|_, req| {
        let reader = StreamReader::try_new(Cursor::new(req.body.clone()), None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        Response::json(200, ok_body(rows, "sentences"))
    })
}

#[test]
fn an_imported_text_file_streams_as_a_utf8_column() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("s.txt");
    std::fs::write(&txt, "alpha\nbeta\ngamma\n").unwrap();
    let data = dir.path().join("s.parquet");
    import_text(&TextImportOptions {
        input: txt,
        format: TextFormat::Txt,
        text_field: "text".to_string(),
        id_field: None,
        out: data.clone(),
        force: false,
    })
    .unwrap();
    let stub = stub();
    let summary = label(&options(stub.url(), data, "text")).unwrap();
    assert_eq!(summary.rows, 3);
    let mut want: Vec<(String, String)> = ["alpha", "beta", "gamma"]
        .iter()
        .map(|t| {
            (
                label_client::import::text_parquet::content_id(t),
                t.to_string(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(received(&stub), want);
}

#[test]
fn a_large_utf8_column_is_sent_as_utf8_under_the_input_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("l.parquet");
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("sentence", DataType::LargeUtf8, false),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(LargeStringArray::from(vec!["one", "two", "three"])),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&data).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let stub = stub();
    label(&options(stub.url(), data, "sentence=text")).unwrap();
    assert_eq!(
        received(&stub),
        [("a", "one"), ("b", "two"), ("c", "three")].map(|(i, t)| (i.to_string(), t.to_string()))
    );
}
