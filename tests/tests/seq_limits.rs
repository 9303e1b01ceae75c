//! Sequence limits and sentence-transformers defaults, on the real all-MiniLM-L6-v2 (fetched
//! by `scripts/fetch_text.sh`) over HTTP on loopback:
//! - served on token ids alone (no tokenizer), a row of 300,000 ids is a 413 naming the row,
//!   its length and the model's position limit (512, read from the graph), the server stays
//!   healthy, and `?truncate=true` cuts the row to the limit instead;
//! - with its tokenizer and no flags, the length (256) and pooling (mean) in force come from
//!   `sentence_bert_config.json` and `1_Pooling/config.json`, and `/v1/model` says so;
//! - on texts longer than 128 tokens the served embeddings match `scripts/reference_text.py`
//!   (the `tokenizers` package + onnxruntime + numpy mean pooling) at 256 tokens to 1e-4, and
//!   differ from it at the tokenizer file's own 128.

use std::path::PathBuf;

use distill_tests::python::python_json;
use distill_tests::{assert_close, max_abs_diff, python_bin, repo_root, Server};
use serde_json::{json, Value};

fn minilm_dir() -> PathBuf {
    let dir = repo_root().join(".deps/models/minilm-l6");
    assert!(
        dir.join("model.onnx").is_file() && dir.join("sentence_bert_config.json").is_file(),
        "{} is incomplete: run scripts/fetch_text.sh (make models)",
        dir.display()
    );
    dir
}

fn model() -> PathBuf {
    minilm_dir().join("model.onnx")
}

/// One row of `n` token ids (a [CLS], word pieces, a [SEP]) with its mask and type ids.
fn id_row(n: usize) -> Value {
    let mut ids: Vec<i64> = (0..n).map(|i| 1000 + (i % 5000) as i64).collect();
    ids[0] = 101;
    ids[n - 1] = 102;
    json!({"input_ids": [ids], "attention_mask": [vec![1; n]], "token_type_ids": [vec![0; n]]})
}

#[test]
fn a_row_over_the_position_limit_is_a_413_naming_it_and_is_cut_when_asked() {
    let server = Server::start(&model(), &["--ep", "cpu"]);
    let info = server.get("/v1/model").expect_status(200).json();
    let seq = &info["sequence"];
    assert_eq!(seq["max_seq_len"], 512, "{info}");
    assert!(
        seq["source"].as_str().unwrap_or("").contains("graph"),
        "{info}"
    );

    let r = server.score(&json!({"inputs": id_row(300_000)}));
    assert_eq!(r.status, 413, "{r:?}");
    let e = r.error().error;
    assert_eq!(e.code, "sequence_too_long", "{e:?}");
    assert_eq!(e.field.as_deref(), Some("inputs.input_ids"), "{e:?}");
    for part in ["row 0", "300000 tokens", "limit of 512", "truncate"] {
        assert!(e.message.contains(part), "{part:?} missing: {e:?}");
    }
    // The server is fine: health, and a row within the limit.
    server.get("/health").expect_status(200);
    server
        .score(&json!({"inputs": id_row(20)}))
        .expect_status(200);

    // Allowed to truncate: the row is cut to its first 512 ids, and that is what is scored.
    let cut = server
        .post_json(
            "/v1/score?truncate=true",
            &json!({"inputs": id_row(300_000), "return": ["last_hidden_state"]}),
        )
        .expect_status(200)
        .json();
    let mut first = id_row(512);
    first["input_ids"][0][511] = json!(1000 + 511);
    let whole = server
        .score(&json!({"inputs": first, "return": ["last_hidden_state"]}))
        .expect_status(200)
        .json();
    assert_close(
        "truncated row",
        &cut["outputs"]["last_hidden_state"],
        &whole["outputs"]["last_hidden_state"],
        1e-5,
    );
    // A flag above the position limit is refused at start.
    let e = Server::try_start(&model(), &["--ep", "cpu", "--max-seq-len", "600"])
        .err()
        .expect("600 > 512 refused");
    assert!(format!("{e:#}").contains("position limit of 512"), "{e:#}");
}

#[test]
fn defaults_come_from_the_sentence_transformers_files() {
    let dir = minilm_dir();
    let tok = dir.join("tokenizer.json").display().to_string();
    let server = Server::start(&model(), &["--ep", "cpu", "--tokenizer", &tok]);
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(info["text"]["max_seq_len"], 256, "{info}");
    let src = info["text"]["max_seq_len_source"].as_str().unwrap_or("");
    assert!(src.contains("sentence_bert_config.json"), "{info}");
    assert_eq!(info["sequence"]["position_limit"], 512, "{info}");
    let pooling = &info["pooling"][0];
    assert_eq!(pooling["output"], "last_hidden_state", "{info}");
    assert_eq!(pooling["pooling"], "mean", "{info}");
    assert!(
        pooling["source"]
            .as_str()
            .unwrap_or("")
            .contains("1_Pooling"),
        "{info}"
    );
    assert!(
        server.log().contains("sentence_bert_config.json"),
        "the start-up log names it"
    );
    // Flags override both.
    let server = Server::start(
        &model(),
        &[
            "--ep",
            "cpu",
            "--tokenizer",
            &tok,
            "--max-seq-len",
            "64",
            "--pool",
            "last_hidden_state=cls",
        ],
    );
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(info["text"]["max_seq_len"], 64, "{info}");
    assert_eq!(
        info["text"]["max_seq_len_source"], "--max-seq-len",
        "{info}"
    );
    assert_eq!(info["pooling"][0]["pooling"], "cls", "{info}");
    assert_eq!(info["pooling"][0]["source"], "--pool", "{info}");

    // Token ids over the length in force: 413, or cut with ?truncate=true.
    let r = server.score(&json!({"inputs": id_row(100)}));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.error().error.message.contains("limit of 64"), "{r:?}");
    server
        .post_json("/v1/score?truncate=true", &json!({"inputs": id_row(100)}))
        .expect_status(200);
}

/// Texts of about 150, 220 and 400 word pieces (a text over 256 is cut by both sides).
fn long_texts() -> Vec<String> {
    let base = "Knowledge distillation moves what a large teacher model knows into a small, fast \
                student, one soft label at a time, while the teacher watches.";
    [7, 10, 18]
        .iter()
        .enumerate()
        .map(|(i, &n)| format!("Text {i}: {}", vec![base; n].join(" ")))
        .collect()
}

/// `scripts/reference_text.py` on `texts` at `max_length`.
fn reference(texts: &[String], max_length: usize) -> Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("texts.json");
    let out = tmp.path().join("reference.json");
    std::fs::write(&input, serde_json::to_vec(texts).expect("json")).expect("write");
    let dir = minilm_dir();
    let o = std::process::Command::new(python_bin())
        .arg(repo_root().join("scripts/reference_text.py"))
        .arg("--tokenizer")
        .arg(dir.join("tokenizer.json"))
        .arg("--model")
        .arg(dir.join("model.onnx"))
        .arg("--sentences")
        .arg(&input)
        .arg("--max-length")
        .arg(max_length.to_string())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run reference_text.py");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("json")
}

#[test]
fn long_texts_match_a_sentence_transformers_style_reference_without_flags() {
    let texts = long_texts();
    let want = reference(&texts, 256);
    let tokens: Vec<u64> = want["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(tokens.iter().all(|&n| n > 128), "{tokens:?}");
    assert!(tokens.contains(&256), "one text is cut: {tokens:?}");
    let dir = minilm_dir();
    let tok = dir.join("tokenizer.json").display().to_string();
    let server = Server::start(&model(), &["--ep", "cpu", "--tokenizer", &tok]);
    let got = server
        .score(&json!({"inputs": {"text": texts}, "return": ["last_hidden_state"]}))
        .expect_status(200)
        .json();
    let got = &got["outputs"]["last_hidden_state"];
    assert_close("served vs reference at 256", got, &want["embeddings"], 1e-4);
    // At the tokenizer file's own 128 (what the server used before) they differ: this test
    // can tell the two lengths apart.
    let at_128 = reference(&texts, 128);
    let d = max_abs_diff(got, &at_128["embeddings"]).expect("diff");
    assert!(d > 1e-3, "256 and 128 tokens should differ, max |diff| {d}");
    // The reference's own sanity: its tokenizer hash is the served one.
    let sha = python_json(
        "import hashlib,sys,json; print(json.dumps(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest()))",
        &[dir.join("tokenizer.json")],
    )
    .expect("python");
    assert_eq!(want["tokenizer_sha256"], sha);
}
