//! Text students exported to ONNX, run by ONNX Runtime from Rust (`OnnxTextEncoder`) and from
//! Python (`scripts/check_text_onnx.py`, which also runs `onnx.checker`), against candle and
//! against the numpy BERT forward of `scripts/golden/bert_reference.py`:
//! - tiny static and transformer students: ONNX vs candle to 1e-5 on a padded batch;
//! - all-MiniLM-L6-v2 from its safetensors (`scripts/fetch_text.sh`): candle and the exported
//!   f32 ONNX vs the committed numpy output `scripts/golden/bert_minilm.json` to 1e-4 (all six
//!   layers, and layers 0, 2, 4), and vs the registry's int8 ONNX: pooled cosine >= 0.99.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use serde_json::Value;
use trainer_core::export::export_text_onnx;
use trainer_core::model::text::config::TransformerInit;
use trainer_core::model::{StudentConfig, TextStudent, TransformerConfig};
use trainer_eval::{OnnxTextEncoder, TokenBatch};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ort_lib() -> PathBuf {
    let p = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
    };
    assert!(
        p.is_file(),
        "ONNX Runtime library {} is missing: run scripts/fetch_deps.sh (or set ORT_DYLIB_PATH)",
        p.display()
    );
    p
}

fn minilm(file: &str) -> PathBuf {
    let p = repo_root().join(".deps/models/minilm-l6").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch_text.sh (make models)",
        p.display()
    );
    p
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rows_i64(v: &Value) -> Vec<Vec<i64>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn batch(ids: &[Vec<i64>], mask: &[Vec<i64>], types: &[Vec<i64>]) -> TokenBatch {
    TokenBatch {
        rows: ids.len(),
        seq: ids[0].len(),
        input_ids: ids.concat(),
        attention_mask: mask.concat(),
        token_type_ids: types.concat(),
    }
}

fn tensor_i64(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_vec(rows.concat(), (rows.len(), rows[0].len()), &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn flat_ref(v: &Value) -> Vec<f32> {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    rows.concat()
}

/// Runs `model` through ONNX Runtime and returns `embedding` then `hidden0..`.
fn run_onnx(model: &Path, b: &TokenBatch) -> Vec<Vec<f32>> {
    let mut enc = OnnxTextEncoder::load(model, Some(&ort_lib())).unwrap();
    let outs = enc.run(b, &[]).unwrap();
    assert_eq!(outs[0].name, "embedding");
    outs.into_iter().map(|o| o.data).collect()
}

fn python_check(model: &Path, reference: &Path, extra: &[&str]) -> String {
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("scripts/check_text_onnx.py"))
        .arg("--model")
        .arg(model)
        .arg("--reference")
        .arg(reference)
        .args(extra)
        .output()
        .expect("run scripts/check_text_onnx.py");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "check_text_onnx.py failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn tiny_cases() -> Value {
    json(&repo_root().join("scripts/golden/text_students.json"))
}

/// Both tiny students: candle forward vs ONNX Runtime (Rust and Python) on a padded batch.
#[test]
fn tiny_students_match_onnx_runtime() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["transformer", "static"] {
        let case = &tiny_cases()[arch];
        let cfg: StudentConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let (_vm, s) = TextStudent::build(&cfg).unwrap();
        let ids = rows_i64(&case["input_ids"]);
        let mask = rows_i64(&case["attention_mask"]);
        let types = match case["token_type_ids"].is_null() {
            true => vec![vec![0; ids[0].len()]; ids.len()],
            false => rows_i64(&case["token_type_ids"]),
        };
        let out = s
            .forward(
                &tensor_i64(&ids),
                &tensor_i64(&mask),
                Some(&tensor_i64(&types)),
            )
            .unwrap();
        let path = dir.path().join(format!("{arch}.onnx"));
        export_text_onnx(&s, true, &path).unwrap();
        let got = run_onnx(&path, &batch(&ids, &mask, &types));
        assert_eq!(got.len(), 1 + out.hidden.len());
        let d = max_abs(&got[0], &flat(&out.embedding));
        assert!(d < 1e-5, "{arch}: embedding ONNX vs candle {d}");
        for (i, h) in out.hidden.iter().enumerate() {
            let d = max_abs(&got[1 + i], &flat(h));
            assert!(d < 1e-5, "{arch}: hidden{i} ONNX vs candle {d}");
        }
        // The same check from Python, against candle's values written as a reference.
        let reference = dir.path().join(format!("{arch}.json"));
        let to_rows = |t: &Tensor| t.to_vec2::<f32>().unwrap();
        let r = serde_json::json!({
            "input_ids": ids, "attention_mask": mask, "token_type_ids": types,
            "embedding": to_rows(&out.embedding),
            "hidden": out.hidden.iter().map(to_rows).collect::<Vec<_>>(),
        });
        std::fs::write(&reference, r.to_string()).unwrap();
        python_check(&path, &reference, &["--tol", "1e-5"]);
    }
}

fn minilm_config(layers: Option<Vec<usize>>) -> StudentConfig {
    let json = std::fs::read_to_string(minilm("config.json")).unwrap();
    let mut cfg = TransformerConfig::from_hf_config(&json).unwrap();
    if let Some(l) = &layers {
        cfg.layers = l.len();
    }
    cfg.init = Some(TransformerInit {
        from: minilm("model.safetensors"),
        layers,
    });
    StudentConfig::Transformer(cfg)
}

/// The f32 all-MiniLM-L6-v2 from its safetensors: candle and its exported ONNX (Rust and
/// Python ONNX Runtime) against the numpy reference; the exported model against the int8 one.
#[test]
fn minilm_teacher_matches_numpy_and_the_int8_onnx() {
    let reference_path = repo_root().join("scripts/golden/bert_minilm.json");
    let reference = json(&reference_path);
    let ids = rows_i64(&reference["input_ids"]);
    let mask = rows_i64(&reference["attention_mask"]);
    let types = rows_i64(&reference["token_type_ids"]);
    let (_vm, s) = TextStudent::build(&minilm_config(None)).unwrap();
    let out = s
        .forward(
            &tensor_i64(&ids),
            &tensor_i64(&mask),
            Some(&tensor_i64(&types)),
        )
        .unwrap();
    let d = max_abs(&flat(&out.embedding), &flat_ref(&reference["embedding"]));
    eprintln!("minilm candle vs numpy: embedding max abs {d:.3e}");
    assert!(d < 1e-4, "candle embedding vs numpy {d}");
    for (i, h) in out.hidden.iter().enumerate() {
        let d = max_abs(&flat(h), &flat_ref(&reference["hidden"][i]));
        assert!(d < 1e-4, "candle hidden{i} vs numpy {d}");
    }

    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("minilm-f32.onnx");
    export_text_onnx(&s, true, &onnx).unwrap();
    eprintln!(
        "minilm f32 ONNX: {} bytes",
        std::fs::metadata(&onnx).unwrap().len()
    );
    let got = run_onnx(&onnx, &batch(&ids, &mask, &types));
    let d = max_abs(&got[0], &flat_ref(&reference["embedding"]));
    eprintln!("minilm ONNX (Rust ORT) vs numpy: embedding max abs {d:.3e}");
    assert!(d < 1e-4, "ONNX embedding vs numpy {d}");
    for i in 0..6 {
        let d = max_abs(&got[1 + i], &flat_ref(&reference["hidden"][i]));
        assert!(d < 1e-4, "ONNX hidden{i} vs numpy {d}");
    }
    let int8 = minilm("model.onnx");
    let report = python_check(
        &onnx,
        &reference_path,
        &["--int8", int8.to_str().unwrap(), "--min-cosine", "0.99"],
    );
    eprintln!("minilm ONNX (Python ORT): {report}");
}

/// Layers 0, 2, 4 of the teacher (DistilBERT-style init) vs numpy running those layers.
#[test]
fn minilm_layer_subset_matches_numpy() {
    let reference = json(&repo_root().join("scripts/golden/bert_minilm.json"));
    let ids = rows_i64(&reference["input_ids"]);
    let mask = rows_i64(&reference["attention_mask"]);
    let types = rows_i64(&reference["token_type_ids"]);
    let (_vm, s) = TextStudent::build(&minilm_config(Some(vec![0, 2, 4]))).unwrap();
    let out = s
        .forward(
            &tensor_i64(&ids),
            &tensor_i64(&mask),
            Some(&tensor_i64(&types)),
        )
        .unwrap();
    let d = max_abs(
        &flat(&out.embedding),
        &flat_ref(&reference["embedding_layers_0_2_4"]),
    );
    eprintln!("minilm layers [0,2,4] candle vs numpy: max abs {d:.3e}");
    assert!(d < 1e-4, "layer-subset embedding vs numpy {d}");
}
