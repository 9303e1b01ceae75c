//! The Arrow IPC body of `POST /v1/score` for every input dtype and for dynamic axes
//! (`List` columns): stores the same rows as the JSON body, and refuses what JSON refuses.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float16Array, Float64Array, Int32Array, Int64Array,
    ListArray, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use distill_proto::api::ARROW_STREAM_MEDIA_TYPE;
use distill_tests::python::read_shards_with_pyarrow;
use distill_tests::{assert_close, test_model, Rng, Server};
use half::f16;
use serde_json::{json, Value};

/// One IPC stream holding `columns` (name, array) in one record batch.
fn ipc(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .expect("batch");
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &schema).expect("writer");
    w.write(&batch).expect("write");
    w.finish().expect("finish");
    drop(w);
    buf
}

fn fixed(values: ArrayRef, width: i32) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
    Arc::new(FixedSizeListArray::try_new(item, width, values, None).expect("fixed list"))
}

fn list(values: ArrayRef, lengths: &[usize]) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
    Arc::new(
        ListArray::try_new(
            item,
            OffsetBuffer::from_lengths(lengths.iter().copied()),
            values,
            None,
        )
        .expect("list"),
    )
}

fn ids(prefix: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from(
        (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>(),
    ))
}

/// Stored rows of a dataset by id: `{id: {column: value}}`.
fn stored(server: &Server, dataset: &str) -> serde_json::Map<String, Value> {
    server.seal(dataset);
    let t = read_shards_with_pyarrow(&server.dataset_dir(dataset)).expect("pyarrow");
    let data = t["data"].as_object().expect("data");
    let mut out = serde_json::Map::new();
    for (i, id) in data["id"].as_array().expect("ids").iter().enumerate() {
        let row: serde_json::Map<String, Value> = data
            .iter()
            .map(|(c, v)| (c.clone(), v[i].clone()))
            .collect();
        out.insert(id.as_str().expect("id").to_string(), Value::Object(row));
    }
    out
}

#[test]
fn every_input_dtype_through_arrow_matches_json() {
    let server = Server::start(&test_model("multi_dtype.onnx"), &["--ep", "cpu"]);
    let rows = 5;
    let mut rng = Rng::new(90);
    let a: Vec<f64> = (0..rows * 4)
        .map(|_| rng.int(-256, 256) as f64 / 64.0)
        .collect(); // exact in f16
    let b: Vec<f64> = (0..rows * 4).map(|_| rng.uniform(-3.0, 3.0)).collect();
    let c: Vec<i32> = (0..rows * 4).map(|_| rng.int(-1000, 1000) as i32).collect();
    let d: Vec<bool> = (0..rows * 4).map(|_| rng.int(0, 2) == 1).collect();
    let nest = |v: Vec<Value>| -> Value {
        Value::Array(v.chunks(4).map(|r| Value::Array(r.to_vec())).collect())
    };
    let body = json!({
        "dataset": "via-json",
        "ids": (0..rows).map(|i| format!("r-{i}")).collect::<Vec<_>>(),
        "inputs": {
            "a": nest(a.iter().map(|v| json!(v)).collect()),
            "b": nest(b.iter().map(|v| json!(v)).collect()),
            "c": nest(c.iter().map(|v| json!(v)).collect()),
            "d": nest(d.iter().map(|v| json!(v)).collect()),
        },
    });
    server.score(&body).expect_status(200);
    let stream = ipc(vec![
        ("id", ids("r", rows)),
        (
            "a",
            fixed(
                Arc::new(Float16Array::from(
                    a.iter().map(|&v| f16::from_f64(v)).collect::<Vec<_>>(),
                )),
                4,
            ),
        ),
        ("b", fixed(Arc::new(Float64Array::from(b.clone())), 4)),
        ("c", fixed(Arc::new(Int32Array::from(c.clone())), 4)),
        ("d", fixed(Arc::new(BooleanArray::from(d.clone())), 4)),
    ]);
    let r = server
        .post_bytes("/v1/score?dataset=via-ipc", ARROW_STREAM_MEDIA_TYPE, stream)
        .expect_status(200)
        .json();
    assert_eq!(r["stored"], rows, "{r}");
    let (j, i) = (stored(&server, "via-json"), stored(&server, "via-ipc"));
    assert_eq!(j.len(), rows);
    for (id, row) in &j {
        for col in ["a", "b", "c", "d", "y"] {
            assert_close(
                &format!("{col} of {id}: Arrow vs JSON"),
                &i[id][col],
                &row[col],
                0.0,
            );
        }
    }
}

#[test]
fn dynamic_axes_arrive_as_list_columns() {
    let server = Server::start(
        &test_model("tokens.onnx"),
        &[
            "--ep",
            "cpu",
            "--output",
            "hidden=last_hidden_state",
            "--pool",
            "hidden=mean",
        ],
    );
    let seq = 6;
    let ids_v: Vec<i64> = (0..3 * seq as i64).map(|v| v % 50).collect();
    let mask_v: Vec<i64> = (0..3 * seq)
        .map(|k| i64::from(k % seq <= k / seq + 1))
        .collect();
    let nest = |v: &[i64]| -> Value { Value::Array(v.chunks(seq).map(|r| json!(r)).collect()) };
    server
        .score(&json!({
            "dataset": "tok-json",
            "ids": ["t-0", "t-1", "t-2"],
            "inputs": {"input_ids": nest(&ids_v), "attention_mask": nest(&mask_v)},
        }))
        .expect_status(200);
    let stream = ipc(vec![
        ("id", ids("t", 3)),
        (
            "input_ids",
            list(Arc::new(Int64Array::from(ids_v.clone())), &[seq; 3]),
        ),
        (
            "attention_mask",
            list(Arc::new(Int64Array::from(mask_v.clone())), &[seq; 3]),
        ),
    ]);
    server
        .post_bytes("/v1/score?dataset=tok-ipc", ARROW_STREAM_MEDIA_TYPE, stream)
        .expect_status(200);
    let (j, i) = (stored(&server, "tok-json"), stored(&server, "tok-ipc"));
    assert_eq!(j.len(), 3);
    for (id, row) in &j {
        assert_close(
            &format!("pooled hidden of {id}"),
            &i[id]["hidden"],
            &row["hidden"],
            0.0,
        );
        assert_close(
            &format!("input_ids of {id}"),
            &i[id]["input_ids"],
            &row["input_ids"],
            0.0,
        );
    }

    // Rows of different lengths in one request cannot form a [batch, seq] tensor.
    let ragged = ipc(vec![
        ("id", ids("g", 2)),
        (
            "input_ids",
            list(Arc::new(Int64Array::from(vec![1i64, 2, 3, 4, 5])), &[3, 2]),
        ),
        (
            "attention_mask",
            list(Arc::new(Int64Array::from(vec![1i64; 5])), &[3, 2]),
        ),
    ]);
    let r = server.post_bytes("/v1/score?dataset=tok-ipc", ARROW_STREAM_MEDIA_TYPE, ragged);
    assert!((400..500).contains(&r.status), "{r:?}");
    let field = r.error().error.field.unwrap_or_default();
    assert!(
        field.starts_with("inputs."),
        "ragged lists must name the input: {r:?}"
    );
    // Without an id column nothing can be stored.
    let no_ids = ipc(vec![
        (
            "input_ids",
            list(Arc::new(Int64Array::from(vec![1i64, 2])), &[2]),
        ),
        (
            "attention_mask",
            list(Arc::new(Int64Array::from(vec![1i64, 1])), &[2]),
        ),
    ]);
    let r = server.post_bytes("/v1/score?dataset=tok-ipc", ARROW_STREAM_MEDIA_TYPE, no_ids);
    assert!((400..500).contains(&r.status), "{r:?}");
    assert_eq!(r.error().error.field.as_deref(), Some("ids"), "{r:?}");
    let m = server.get("/v1/datasets/tok-ipc").expect_status(200).json();
    assert_eq!(m["rows"], 3, "refused streams stored nothing: {m}");
}
