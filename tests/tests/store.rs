//! The label store through the real server: Parquet shards read back by pyarrow (an
//! independent reader), the manifest, sealing, idempotency, crash safety (`kill -9`), graceful
//! shutdown, the Arrow IPC path and concurrent writers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{FixedSizeListArray, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use distill_proto::api::ARROW_STREAM_MEDIA_TYPE;
use distill_tests::python::{numpy_reference, read_shards_with_pyarrow};
use distill_tests::{assert_close, ids, test_model, Rng, Server};
use serde_json::{json, Value};

fn mlp_server(extra: &[&str]) -> Server {
    let mut args = vec!["--ep", "cpu"];
    args.extend_from_slice(extra);
    Server::start(&test_model("mlp.onnx"), &args)
}

/// POSTs rows `prefix-{range}` with inputs `x` into `dataset`, asking for the outputs back.
fn post(
    server: &Server,
    dataset: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
    x: &Value,
) -> Value {
    server
        .score(&json!({
            "dataset": dataset,
            "ids": ids(prefix, range),
            "inputs": {"x": x},
            "return": ["logits", "embedding"],
        }))
        .expect_status(200)
        .json()
}

/// The dataset's shards as pyarrow reads them.
fn pyarrow(server: &Server, dataset: &str) -> Value {
    read_shards_with_pyarrow(&server.dataset_dir(dataset)).expect("pyarrow")
}

/// Rows of a pyarrow read, by id: `{id: {column: value}}`; asserts ids are unique.
fn rows_by_id(table: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    let data = table["data"].as_object().expect("data");
    let ids = data["id"].as_array().expect("id column");
    let mut out = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let row: BTreeMap<String, Value> = data
            .iter()
            .map(|(c, v)| (c.clone(), v[i].clone()))
            .collect();
        let id = id.as_str().expect("string id").to_string();
        assert!(
            out.insert(id.clone(), row).is_none(),
            "id {id} stored twice"
        );
    }
    out
}

/// `.wal` files under the dataset's `_wal/` folder that still hold bytes.
fn nonempty_wal_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("_wal")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn shards_read_back_with_pyarrow_equal_the_response() {
    let server = mlp_server(&[]);
    let x = Rng::new(10).matrix(12, 16);
    let resp = post(&server, "train", "r", 0..12, &x);
    assert_eq!(
        (
            resp["rows"].as_u64(),
            resp["stored"].as_u64(),
            resp["duplicates"].as_u64()
        ),
        (Some(12), Some(12), Some(0)),
        "{resp}"
    );
    let sealed = server.seal("train");
    assert_eq!(sealed["rows"], 12, "{sealed}");

    let table = pyarrow(&server, "train");
    assert_eq!(table["rows"], 12, "{table}");
    let cols: Vec<&str> = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for c in ["id", "x", "logits", "embedding"] {
        assert!(cols.contains(&c), "column {c} missing from {cols:?}");
    }
    let types = table["types"].as_array().expect("types");
    let type_of = |c: &str| {
        types[cols.iter().position(|n| *n == c).unwrap_or(0)]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let logits_type = type_of("logits");
    assert!(
        logits_type.starts_with("fixed_size_list<item: float") && logits_type.ends_with("[10]"),
        "logits type {logits_type}"
    );
    assert!(
        type_of("id").contains("string"),
        "id type {}",
        type_of("id")
    );

    let rows = rows_by_id(&table);
    for i in 0..12 {
        let row = &rows[&format!("r-{i}")];
        assert_close(&format!("stored x of r-{i}"), &row["x"], &x[i], 1e-12);
        assert_close(
            &format!("stored logits of r-{i}"),
            &row["logits"],
            &resp["outputs"]["logits"][i],
            1e-6,
        );
        assert_close(
            &format!("stored embedding of r-{i}"),
            &row["embedding"],
            &resp["outputs"]["embedding"][i],
            1e-6,
        );
    }
    // And the stored numbers are the teacher's, not just self-consistent.
    let want = numpy_reference("mlp", &test_model("mlp.onnx"), &json!({"x": x})).expect("numpy");
    for i in 0..12 {
        assert_close(
            "stored logits vs numpy",
            &rows[&format!("r-{i}")]["logits"],
            &want["logits"][i],
            1e-5,
        );
    }
}

#[test]
fn manifest_describes_the_dataset() {
    let server = mlp_server(&[]);
    post(&server, "m", "a", 0..5, &Rng::new(11).matrix(5, 16));
    let sealed = server.seal("m");
    let path = server.dataset_dir("m").join("_manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let manifest: Value = serde_json::from_str(&text).expect("_manifest.json is JSON");
    // It also parses as the shared type.
    let typed: distill_proto::store::Manifest =
        serde_json::from_str(&text).expect("_manifest.json fits proto's Manifest");
    assert_eq!(typed.schema_version, distill_proto::store::SCHEMA_VERSION);
    assert_eq!(manifest["dataset"], "m");
    assert_eq!(manifest["rows"], 5);
    assert_eq!(manifest["pending_rows"], 0);
    let shards = manifest["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 1, "{manifest}");
    let file = shards[0]["file"].as_str().expect("file");
    let meta = std::fs::metadata(server.dataset_dir("m").join(file)).expect("shard file exists");
    assert_eq!(shards[0]["bytes"], meta.len(), "{manifest}");
    assert_eq!(shards[0]["rows"], 5);
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(manifest["teacher"]["model_sha256"], info["model_sha256"]);
    assert_eq!(manifest["teacher"]["provider"], "cpu");
    assert_eq!(manifest["teacher"]["store_inputs"], true);
    let col_names: Vec<&str> = manifest["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ["id", "x", "logits", "embedding"] {
        assert!(
            col_names.contains(&c),
            "manifest columns {col_names:?} lack {c}"
        );
    }
    // The HTTP view agrees with the file.
    let over_http = server.get("/v1/datasets/m").expect_status(200).json();
    assert_eq!(over_http["rows"], 5, "{over_http}");
    assert_eq!(sealed["shards"], manifest["shards"]);
    // Each shard carries the same facts in its Parquet key-value metadata.
    let table = pyarrow(&server, "m");
    let kv = table["metadata"].as_object().expect("metadata");
    assert!(
        kv.values().any(|v| v
            .as_str()
            .is_some_and(|s| s.contains(info["model_sha256"].as_str().unwrap_or("?")))),
        "shard metadata lacks the teacher fingerprint: {kv:?}"
    );
    let list = server.get("/v1/datasets").expect_status(200).json();
    let entry = list
        .as_array()
        .and_then(|l| l.iter().find(|d| d["name"] == "m"))
        .unwrap_or_else(|| panic!("dataset m not listed: {list}"));
    assert_eq!(
        (entry["rows"].as_u64(), entry["shards"].as_u64()),
        (Some(5), Some(1)),
        "{entry}"
    );
}

#[test]
fn seal_semantics() {
    let server = mlp_server(&[]);
    post(&server, "s", "a", 0..4, &Rng::new(12).matrix(4, 16));
    let first = server.seal("s");
    assert_eq!(first["shards"].as_array().map(Vec::len), Some(1), "{first}");
    // Nothing open: still 200, nothing changes.
    let again = server.seal("s");
    assert_eq!(
        again["shards"], first["shards"],
        "sealing twice must not add a shard"
    );
    assert_eq!(again["rows"], 4);
    // New writes after a seal open a new shard.
    post(&server, "s", "b", 0..3, &Rng::new(13).matrix(3, 16));
    let second = server.seal("s");
    assert_eq!(
        second["shards"].as_array().map(Vec::len),
        Some(2),
        "{second}"
    );
    assert_eq!(second["rows"], 7);
    let table = pyarrow(&server, "s");
    assert_eq!(
        table["files"].as_array().map(Vec::len),
        Some(2),
        "{table:.300}"
    );
    assert_eq!(table["rows"], 7);
    assert_eq!(rows_by_id(&table).len(), 7);
    // Sealing a dataset that does not exist is a 404 with a JSON error.
    let r = server.send(server.client().post(server.url("/v1/datasets/nope/seal")));
    assert_eq!(r.status, 404, "{r:?}");
    r.error();
}

#[test]
fn pyarrow_reads_the_dataset_folder_while_a_shard_is_open() {
    // Users point pyarrow (or another Hive-style reader) at the dataset folder itself; the manifest, the write-ahead
    // log and the open shard's temporary file must not break that read.
    let server = mlp_server(&[]);
    post(&server, "f", "a", 0..5, &Rng::new(21).matrix(5, 16));
    server.seal("f");
    post(&server, "f", "b", 0..3, &Rng::new(22).matrix(3, 16));
    let dir = server.dataset_dir("f");
    assert!(
        !nonempty_wal_files(&dir).is_empty(),
        "the second batch should still be in the write-ahead log"
    );
    let out = distill_tests::python::run_python(
        "import sys, pyarrow.parquet as pq\n\
         t = pq.read_table(sys.argv[1])\n\
         print(t.num_rows, ','.join(sorted(t.column('id').to_pylist())))",
        &[dir.as_os_str()],
    )
    .expect("pyarrow reads the dataset folder");
    assert_eq!(out.trim(), "5 a-0,a-1,a-2,a-3,a-4", "{out}");
}

#[test]
fn reposting_is_idempotent_and_conflicts_are_409() {
    let server = mlp_server(&[]);
    let x = Rng::new(14).matrix(6, 16);
    let first = post(&server, "idem", "k", 0..6, &x);
    assert_eq!(first["stored"], 6);
    let again = post(&server, "idem", "k", 0..6, &x);
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(6)),
        "{again}"
    );
    // Outputs are still answered for duplicates.
    assert_close(
        "re-POST outputs",
        &again["outputs"]["logits"],
        &first["outputs"]["logits"],
        1e-6,
    );

    // Same id, different inputs: 409, and nothing of that request is stored (k-100 is new).
    let mut x2 = Rng::new(15).matrix(2, 16);
    x2[0] = x[0].clone();
    x2[0][0] = json!(x[0][0].as_f64().unwrap_or(0.0) + 1.0);
    let r = server.score(&json!({"dataset": "idem", "ids": ["k-100", "k-0"], "inputs": {"x": x2}}));
    assert_eq!(r.status, 409, "{r:?}");
    let e = r.error();
    assert!(
        e.error.message.contains("k-0"),
        "the conflict must name the id: {e:?}"
    );

    // Mixed request: some new, some duplicate.
    let mixed = server
        .score(&json!({"dataset": "idem", "ids": ["k-4", "k-5", "k-6"], "inputs": {"x": [x[4], x[5], x[5]]}}))
        .expect_status(200)
        .json();
    assert_eq!(
        (mixed["stored"].as_u64(), mixed["duplicates"].as_u64()),
        (Some(1), Some(2)),
        "{mixed}"
    );

    server.seal("idem");
    let rows = rows_by_id(&pyarrow(&server, "idem"));
    let ids: BTreeSet<&str> = rows.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = ["k-0", "k-1", "k-2", "k-3", "k-4", "k-5", "k-6"].into();
    assert_eq!(ids, want);
    assert_close(
        "k-0 keeps its first inputs",
        &rows["k-0"]["x"],
        &x[0],
        1e-12,
    );
}

#[test]
fn kill9_after_ack_loses_nothing() {
    let mut server = mlp_server(&[]);
    let x = Rng::new(16).matrix(30, 16);
    for part in 0..3 {
        let r = part * 10..part * 10 + 10;
        let xs = Value::Array(x.as_array().expect("rows")[r.clone()].to_vec());
        let resp = post(&server, "crash", "c", r, &xs);
        assert_eq!(resp["stored"], 10);
    }
    // Acknowledged: the process dies now, with no chance to flush anything.
    server.kill9();
    server.restart();
    let m = server.get("/v1/datasets/crash").expect_status(200).json();
    let total = m["rows"].as_u64().unwrap_or(0) + m["pending_rows"].as_u64().unwrap_or(0);
    assert_eq!(total, 30, "rows after restart: {m}");
    // Ids survive the restart: re-POSTing is still a no-op.
    let again = post(
        &server,
        "crash",
        "c",
        0..10,
        &Value::Array(x.as_array().expect("rows")[0..10].to_vec()),
    );
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(10)),
        "{again}"
    );
    server.seal("crash");
    let table = pyarrow(&server, "crash");
    assert_eq!(table["rows"], 30, "every acknowledged row exactly once");
    let rows = rows_by_id(&table);
    for i in 0..30 {
        assert_close(
            &format!("x of c-{i}"),
            &rows[&format!("c-{i}")]["x"],
            &x[i],
            1e-12,
        );
    }
}

#[test]
fn kill9_twice_in_a_row_still_loses_nothing() {
    let mut server = mlp_server(&[]);
    let x = Rng::new(17).matrix(8, 16);
    post(&server, "crash2", "a", 0..8, &x);
    server.kill9();
    server.restart();
    // Killed again right after the replay, before any seal.
    server.kill9();
    server.restart();
    server.seal("crash2");
    assert_eq!(pyarrow(&server, "crash2")["rows"], 8);
}

#[test]
fn sigterm_seals_the_open_shard() {
    let mut server = mlp_server(&[]);
    post(&server, "term", "t", 0..9, &Rng::new(18).matrix(9, 16));
    let status = server.terminate(Duration::from_secs(60));
    let status =
        status.unwrap_or_else(|| panic!("no exit within 60 s of SIGTERM; log:\n{}", server.log()));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; log:\n{}",
        server.log()
    );
    let dir = server.dataset_dir("term");
    assert_eq!(
        nonempty_wal_files(&dir),
        Vec::<String>::new(),
        "rows left in the write-ahead log"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("_manifest.json")).expect("manifest"))
            .expect("JSON");
    assert_eq!(
        (manifest["rows"].as_u64(), manifest["pending_rows"].as_u64()),
        (Some(9), Some(0)),
        "{manifest}"
    );
    let table = read_shards_with_pyarrow(&dir).expect("pyarrow");
    assert_eq!(table["rows"], 9);
}

/// An Arrow IPC stream with an `id` column and `x` as `FixedSizeList<f32, 16>`.
fn arrow_body(ids: &[String], x: &Value) -> Vec<u8> {
    let flat: Vec<f32> = x
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        })
        .collect();
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    let xs =
        FixedSizeListArray::try_new(item.clone(), 16, Arc::new(Float32Array::from(flat)), None)
            .expect("x column");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("x", DataType::FixedSizeList(item, 16), false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(ids.to_vec())), Arc::new(xs)],
    )
    .expect("batch");
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &schema).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
    }
    buf
}

#[test]
fn arrow_ipc_stores_the_same_as_json() {
    let server = mlp_server(&[]);
    let x = Rng::new(19).matrix(20, 16);
    let id_list: Vec<String> = (0..20).map(|i| format!("v-{i}")).collect();
    post(&server, "via-json", "v", 0..20, &x);
    let r = server
        .post_bytes(
            "/v1/score?dataset=via-ipc",
            ARROW_STREAM_MEDIA_TYPE,
            arrow_body(&id_list, &x),
        )
        .expect_status(200)
        .json();
    assert_eq!(
        (r["rows"].as_u64(), r["stored"].as_u64()),
        (Some(20), Some(20)),
        "{r}"
    );
    // Re-sending the same stream is idempotent too.
    let again = server
        .post_bytes(
            "/v1/score?dataset=via-ipc",
            ARROW_STREAM_MEDIA_TYPE,
            arrow_body(&id_list, &x),
        )
        .expect_status(200)
        .json();
    assert_eq!(again["duplicates"], 20, "{again}");
    server.seal("via-json");
    server.seal("via-ipc");
    let a = rows_by_id(&pyarrow(&server, "via-json"));
    let b = rows_by_id(&pyarrow(&server, "via-ipc"));
    assert_eq!(a.len(), 20);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (id, row) in &a {
        for col in ["x", "logits", "embedding"] {
            assert_close(
                &format!("{col} of {id}: JSON vs Arrow"),
                &b[id][col],
                &row[col],
                0.0,
            );
        }
    }
    // A body that is not an Arrow stream is a 4xx naming the body.
    let bad = server.post_bytes(
        "/v1/score?dataset=via-ipc",
        ARROW_STREAM_MEDIA_TYPE,
        b"not arrow".to_vec(),
    );
    assert!((400..500).contains(&bad.status), "{bad:?}");
    bad.error();
}

#[test]
fn concurrent_clients_store_every_row_once() {
    const THREADS: usize = 8;
    const REQUESTS: usize = 20;
    const ROWS: usize = 5;
    let server = Arc::new(mlp_server(&["--max-wait-ms", "5"]));
    let total = THREADS * REQUESTS * ROWS;
    let x = Arc::new(Rng::new(20).matrix(total, 16));
    let model = test_model("mlp.onnx");
    let want = Arc::new(numpy_reference("mlp", &model, &json!({"x": *x})).expect("numpy"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (server, x, want) = (server.clone(), x.clone(), want.clone());
            std::thread::spawn(move || {
                for q in 0..REQUESTS {
                    let start = (t * REQUESTS + q) * ROWS;
                    let xs =
                        Value::Array(x.as_array().expect("rows")[start..start + ROWS].to_vec());
                    let r = post(&server, "conc", "p", start..start + ROWS, &xs);
                    assert_eq!(r["stored"], ROWS as u64, "{r}");
                    for i in 0..ROWS {
                        assert_close(
                            &format!("logits of row {}", start + i),
                            &r["outputs"]["logits"][i],
                            &want["logits"][start + i],
                            1e-5,
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread panicked");
    }
    server.seal("conc");
    let table = pyarrow(&server, "conc");
    assert_eq!(table["rows"], total as u64);
    let rows = rows_by_id(&table);
    assert_eq!(rows.len(), total);
    for i in (0..total).step_by(37) {
        assert_close(
            &format!("stored logits of p-{i}"),
            &rows[&format!("p-{i}")]["logits"],
            &want["logits"][i],
            1e-5,
        );
    }
}

#[test]
fn duckdb_reads_the_shards() {
    // A third reader (DuckDB, C++) over a glob of every shard, as an analyst would query it.
    let server = mlp_server(&[]);
    let x = Rng::new(21).matrix(6, 16);
    let first = post(
        &server,
        "duck",
        "d",
        0..3,
        &Value::Array(x.as_array().expect("rows")[0..3].to_vec()),
    );
    server.seal("duck");
    let second = post(
        &server,
        "duck",
        "d",
        3..6,
        &Value::Array(x.as_array().expect("rows")[3..6].to_vec()),
    );
    server.seal("duck");
    let code = r#"
import json, sys, duckdb
glob = sys.argv[1] + "/shard-*.parquet"
con = duckdb.connect()
rows = con.execute(f"SELECT id, logits, len(embedding) FROM read_parquet('{glob}') ORDER BY id").fetchall()
files = con.execute(f"SELECT count(DISTINCT filename) FROM read_parquet('{glob}', filename=true)").fetchone()[0]
print(json.dumps({"rows": [[r[0], list(r[1]), r[2]] for r in rows], "files": files}))
"#;
    let dir = server.dataset_dir("duck");
    let got = distill_tests::python_json(code, &[&dir]).expect("duckdb");
    assert_eq!(got["files"], 2, "{got}");
    let rows = got["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "{got}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], format!("d-{i}"));
        assert_eq!(row[2], 32, "embedding width");
        let want = if i < 3 {
            &first["outputs"]["logits"][i]
        } else {
            &second["outputs"]["logits"][i - 3]
        };
        assert_close(&format!("DuckDB logits of d-{i}"), &row[1], want, 1e-6);
    }
}
