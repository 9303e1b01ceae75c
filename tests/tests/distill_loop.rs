//! The whole offline loop across the crates, small: teacher-server labels rows into the
//! Parquet store -> student-trainer distils a student from the stored logits and exports
//! ONNX -> teacher-server serves that student, which agrees with the teacher.

use std::process::Command;

use distill_tests::python::numpy_reference;
use distill_tests::{bin_path, ids, ort_lib, test_model, Rng, Server};
use serde_json::{json, Value};

const TRAIN: usize = 4096;
const EVAL: usize = 256;
const CHUNK: usize = 1024;

fn argmax(row: &Value) -> usize {
    row.as_array()
        .expect("row")
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
            let v = v.as_f64().unwrap_or(f64::NEG_INFINITY);
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Stores `x` (with the teacher's argmax as the hard `label`) into `dataset`, in chunks.
fn label_rows(server: &Server, dataset: &str, x: &Value, labels: &[usize]) {
    let rows = x.as_array().expect("rows");
    for start in (0..rows.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(rows.len());
        let r = server
            .score(&json!({
                "dataset": dataset,
                "ids": ids(dataset, start..end),
                "inputs": {"x": rows[start..end]},
                "columns": {"label": labels[start..end]},
            }))
            .expect_status(200)
            .json();
        assert_eq!(r["stored"], end - start, "{r}");
    }
    server.seal(dataset);
}

#[test]
fn teacher_to_store_to_student_to_server() {
    let model = test_model("mlp.onnx");
    let teacher = Server::start(&model, &["--ep", "cpu"]);
    let mut rng = Rng::new(80);
    let x_train = rng.matrix(TRAIN, 16);
    let x_eval = rng.matrix(EVAL, 16);
    let labels = |x: &Value| -> Vec<usize> {
        let logits =
            numpy_reference("mlp", &model, &json!({"x": x})).expect("numpy")["logits"].clone();
        logits
            .as_array()
            .expect("rows")
            .iter()
            .map(argmax)
            .collect()
    };
    let (y_train, y_eval) = (labels(&x_train), labels(&x_eval));
    label_rows(&teacher, "train", &x_train, &y_train);
    label_rows(&teacher, "eval", &x_eval, &y_eval);

    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("kd.toml");
    let run = work.path().join("run");
    std::fs::write(
        &config,
        format!(
            r#"[data]
train = "{train}"
eval = "{eval}"
input = "x"
label = "label"
eval_teacher = "logits"

[student]
arch = "mlp"
hidden = [128]

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 2.0
weight = 1.0

[train]
epochs = 60
batch_size = 128
lr = 1e-2
seed = 1

[train.optimizer]
kind = "adamw"

[train.schedule]
kind = "cosine"
"#,
            train = teacher.dataset_dir("train").display(),
            eval = teacher.dataset_dir("eval").display(),
        ),
    )
    .expect("write config");
    let out = Command::new(bin_path("student-trainer"))
        .arg("train")
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .arg("--quiet")
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .expect("run student-trainer");
    assert!(
        out.status.success(),
        "student-trainer train failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).expect("summary.json"))
            .expect("summary.json is JSON");

    // Serve the exported student exactly like a teacher and score the eval rows.
    let student_model = run.join("student.onnx");
    let student = Server::start(&student_model, &["--ep", "cpu"]);
    let info = student.get("/v1/model").expect_status(200).json();
    let input = info["inputs"][0]["name"]
        .as_str()
        .expect("student input")
        .to_string();
    let output = info["outputs"][0]["name"]
        .as_str()
        .expect("student output")
        .to_string();
    let got = student
        .score(&json!({"inputs": {input: x_eval}}))
        .expect_status(200)
        .json();
    let preds: Vec<usize> = got["outputs"][&output]
        .as_array()
        .expect("rows")
        .iter()
        .map(argmax)
        .collect();
    let agree = preds.iter().zip(&y_eval).filter(|(p, y)| p == y).count() as f64 / EVAL as f64;
    // Chance is ~10%; this student (16-128-10, 60 epochs of KD) reached 0.98 when written.
    assert!(
        agree >= 0.9,
        "served student agrees with the teacher on {agree:.3} of eval rows; summary: {summary}"
    );
    // The trainer scored the same eval rows with its own (candle) forward pass: the ONNX
    // export served by ONNX Runtime must give the same answers (a row may flip only on a
    // near-tie between two logits).
    let trainer_errors = summary["eval"]["errors"]
        .as_u64()
        .expect("summary eval.errors") as usize;
    let served_errors = preds.iter().zip(&y_eval).filter(|(p, y)| p != y).count();
    assert!(
        served_errors.abs_diff(trainer_errors) <= 2,
        "served student errs on {served_errors} eval rows, the trainer counted {trainer_errors}"
    );
    println!("served student agreement {agree:.3}; trainer summary {summary}");
}
