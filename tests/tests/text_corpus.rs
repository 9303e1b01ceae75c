//! A real corpus end to end: WordNet 3.0 (Debian's `wordnet-base`, fetched by
//! `scripts/fetch_text.sh`) imported by `distill-label import-wordnet`, a slice of it labelled
//! by `distill-label label` through a MiniLM text teacher, sealed, and read back by pyarrow and
//! DuckDB with its text, token ids and embeddings; the stored embeddings are checked against
//! `scripts/reference_text.py` on the same sentences.

use std::process::Command;

use distill_tests::python::python_json;
use distill_tests::{assert_close, bin_path, python_bin, repo_root, Server};
use serde_json::Value;

/// Sentences labelled (the whole corpus is ~166k rows: `make demo-text` labels all of it).
const ROWS: usize = 600;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn wordnet_is_labelled_end_to_end_and_read_back_by_pyarrow_and_duckdb() {
    let root = repo_root();
    let wordnet = root.join(".deps/corpora/wordnet/usr/share/wordnet");
    let minilm = root.join(".deps/models/minilm-l6");
    assert!(
        wordnet.join("data.noun").is_file(),
        "{} is missing: run scripts/fetch_text.sh (make models)",
        wordnet.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = tmp.path().join("wordnet.parquet");
    run(Command::new(bin_path("distill-label"))
        .arg("import-wordnet")
        .arg("--dir")
        .arg(&wordnet)
        .arg("--out")
        .arg(&all));
    // A slice taken every k-th row, so definitions and examples of every part of speech appear.
    let slice = tmp.path().join("slice.parquet");
    let sentences = tmp.path().join("slice.json");
    let code = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
step = max(1, t.num_rows // int(sys.argv[4]))
s = t.take(list(range(0, t.num_rows, step))[: int(sys.argv[4])])
pq.write_table(s, sys.argv[2])
json.dump(s.column("text").to_pylist(), open(sys.argv[3], "w"))
print(json.dumps({"total": t.num_rows, "rows": s.num_rows, "kinds": sorted(set(s.column("kind").to_pylist()))}))
"#;
    let rows = ROWS.to_string();
    let info = python_json(
        code,
        &[
            all.as_os_str(),
            slice.as_os_str(),
            sentences.as_os_str(),
            std::ffi::OsStr::new(&rows),
        ],
    )
    .expect("slice the corpus");
    assert!(info["total"].as_u64().unwrap_or(0) > 160_000, "{info}");
    assert_eq!(info["rows"], ROWS, "{info}");
    assert_eq!(info["kinds"], serde_json::json!(["def", "ex"]), "{info}");

    let tok = minilm.join("tokenizer.json").display().to_string();
    let server = Server::start(
        &minilm.join("model.onnx"),
        &[
            "--ep",
            "cpu",
            "--tokenizer",
            tok.as_str(),
            "--output",
            "embedding=last_hidden_state",
            "--pool",
            "embedding=mean",
        ],
    );
    run(Command::new(bin_path("distill-label"))
        .args(["label", "--server", &server.url(""), "--dataset", "wordnet"])
        .arg("--data")
        .arg(&slice)
        .args([
            "--columns",
            "pos,kind",
            "--batch-rows",
            "64",
            "--seal",
            "--quiet",
        ]));

    let dir = server.dataset_dir("wordnet");
    let code = r#"
import json, sys
import duckdb
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).sort_by("id")
src = pq.read_table(sys.argv[2]).sort_by("id")
con = duckdb.connect()
q = con.execute(
    f"select count(*), count(distinct id), min(len(input_ids)), max(len(input_ids)), "
    f"min(len(embedding)), sum(case when text is null then 1 else 0 end) "
    f"from read_parquet('{sys.argv[1]}/*.parquet')"
).fetchone()
print(json.dumps({
    "rows": t.num_rows,
    "same_ids": t.column("id").to_pylist() == src.column("id").to_pylist(),
    "same_text": t.column("text").to_pylist() == src.column("text").to_pylist(),
    "kinds": sorted(set(t.column("kind").to_pylist())),
    "types": {f.name: str(f.type) for f in t.schema},
    "duckdb": list(q),
}))
"#;
    let got = python_json(code, &[dir.as_os_str(), slice.as_os_str()]).expect("read back");
    assert_eq!(got["rows"], ROWS, "{got}");
    assert_eq!(got["same_ids"], true, "{got}");
    assert_eq!(got["same_text"], true, "{got}");
    assert_eq!(got["kinds"], serde_json::json!(["def", "ex"]), "{got}");
    assert_eq!(
        got["types"]["input_ids"], "list<item: int32 not null>",
        "{got}"
    );
    let duck = &got["duckdb"];
    assert_eq!(duck[0], ROWS, "duckdb count: {got}");
    assert_eq!(duck[1], ROWS, "duckdb distinct ids: {got}");
    assert!(
        duck[2].as_u64().unwrap_or(0) >= 3,
        "at least [CLS] x [SEP]: {got}"
    );
    assert!(
        duck[3].as_u64().unwrap_or(999) <= 128,
        "truncated at 128: {got}"
    );
    assert_eq!(duck[4], 384, "{got}");
    assert_eq!(duck[5], 0, "no null text: {got}");

    // The stored embeddings of the first rows (in file order of the slice) match the reference.
    let want_dir = tempfile::tempdir().expect("tempdir");
    let want_path = want_dir.path().join("want.json");
    let first: Vec<String> =
        serde_json::from_slice::<Vec<String>>(&std::fs::read(&sentences).expect("sentences"))
            .expect("json")
            .into_iter()
            .take(32)
            .collect();
    let first_path = want_dir.path().join("first.json");
    std::fs::write(&first_path, serde_json::to_vec(&first).expect("json")).expect("write");
    run(Command::new(python_bin())
        .arg(root.join("scripts/reference_text.py"))
        .arg("--tokenizer")
        .arg(minilm.join("tokenizer.json"))
        .arg("--model")
        .arg(minilm.join("model.onnx"))
        .arg("--sentences")
        .arg(&first_path)
        .args(["--max-length", "128", "--out"])
        .arg(&want_path));
    let want: Value =
        serde_json::from_slice(&std::fs::read(&want_path).expect("read")).expect("json");
    let code = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
src = pq.read_table(sys.argv[2]).column("id").to_pylist()[:32]
by = dict(zip(t.column("id").to_pylist(), t.column("embedding").to_pylist()))
ids = dict(zip(t.column("id").to_pylist(), t.column("input_ids").to_pylist()))
print(json.dumps({"embedding": [by[i] for i in src], "input_ids": [ids[i] for i in src]}))
"#;
    let stored = python_json(code, &[dir.as_os_str(), slice.as_os_str()]).expect("stored rows");
    assert_eq!(stored["input_ids"], want["input_ids"]);
    assert_close(
        "stored WordNet embeddings",
        &stored["embedding"],
        &want["embeddings"],
        1e-4,
    );
}
