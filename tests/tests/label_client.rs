//! `distill-label` (label-client) against the real `teacher-server`: a Parquet file written by
//! pyarrow is streamed as Arrow IPC, stored, sealed and read back; re-running is idempotent.

use std::process::Command;

use distill_tests::python::{numpy_reference, read_shards_with_pyarrow};
use distill_tests::{assert_close, bin_path, run_python, test_model, Rng, Server};
use serde_json::{json, Value};

const ROWS: usize = 50;

/// Writes `ROWS` rows (`id`, `x` as fixed_size_list<float>[16], `label`) with pyarrow,
/// compressed with `compression` (pyarrow's default is snappy).
fn write_input(path: &std::path::Path, x: &Value, compression: &str) {
    let code = r#"
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
x = np.array(json.loads(open(sys.argv[2]).read()), dtype=np.float32)
n = x.shape[0]
t = pa.table({
    "id": pa.array([f"img-{i}" for i in range(n)]),
    "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
    "label": pa.array(np.arange(n) % 10, type=pa.int64()),
})
pq.write_table(t, sys.argv[1], row_group_size=17, compression=sys.argv[3])
"#;
    let json_path = path.with_extension("json");
    std::fs::write(&json_path, x.to_string()).expect("write inputs");
    run_python(
        code,
        &[
            path.as_os_str(),
            json_path.as_os_str(),
            std::ffi::OsStr::new(compression),
        ],
    )
    .expect("pyarrow writes the input file");
}

fn label(server: &Server, data: &std::path::Path, dataset: &str) -> std::process::Output {
    Command::new(bin_path("distill-label"))
        .args(["label", "--server", &server.url(""), "--dataset", dataset])
        .arg("--data")
        .arg(data)
        .args([
            "--columns",
            "label",
            "--batch-rows",
            "7",
            "--concurrency",
            "3",
            "--seal",
            "--quiet",
        ])
        .output()
        .expect("run distill-label")
}

#[test]
fn distill_label_streams_a_parquet_file_into_the_store() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("images.parquet");
    let x = Rng::new(70).matrix(ROWS, 16);
    write_input(&data, &x, "zstd");

    let out = label(&server, &data, "lab");
    assert!(
        out.status.success(),
        "distill-label failed: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let table = read_shards_with_pyarrow(&server.dataset_dir("lab")).expect("pyarrow");
    assert_eq!(table["rows"], ROWS as u64, "every row stored once");
    let m = server.get("/v1/datasets/lab").expect_status(200).json();
    assert_eq!(
        (m["rows"].as_u64(), m["pending_rows"].as_u64()),
        (Some(ROWS as u64), Some(0)),
        "sealed: {m}"
    );

    let want = numpy_reference("mlp", &model, &json!({"x": x})).expect("numpy");
    let ids = table["data"]["id"].as_array().expect("ids");
    for (r, id) in ids.iter().enumerate() {
        let i: usize = id
            .as_str()
            .and_then(|s| s.strip_prefix("img-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected id {id}"));
        assert_close(
            &format!("logits of {id}"),
            &table["data"]["logits"][r],
            &want["logits"][i],
            1e-5,
        );
        assert_eq!(
            table["data"]["label"][r],
            (i % 10) as u64,
            "pass-through label of {id}"
        );
    }

    // Running it again stores nothing new.
    let again = label(&server, &data, "lab");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let table = read_shards_with_pyarrow(&server.dataset_dir("lab")).expect("pyarrow");
    assert_eq!(
        table["rows"], ROWS as u64,
        "a re-run must not duplicate rows"
    );
}

#[test]
fn distill_label_reads_pyarrow_default_snappy_files() {
    // pyarrow and pandas write snappy unless told otherwise: most files users have.
    let server = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("snappy.parquet");
    write_input(&data, &Rng::new(71).matrix(ROWS, 16), "snappy");
    let out = label(&server, &data, "snappy");
    assert!(
        out.status.success(),
        "distill-label cannot read a snappy Parquet file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = read_shards_with_pyarrow(&server.dataset_dir("snappy")).expect("pyarrow");
    assert_eq!(table["rows"], ROWS as u64);
}
