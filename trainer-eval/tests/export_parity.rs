//! Exported students against independent runtimes: the ONNX file written from candle weights is
//! run by ONNX Runtime through `ort` (Rust) and by onnxruntime Python
//! (`scripts/check_student_onnx.py`, which also runs `onnx.checker` with full shape inference),
//! and logits plus every `hidden{i}` output must match candle's forward to 1e-5.
//!
//! Needs the ONNX Runtime library (`ORT_DYLIB_PATH`, default `.deps/onnxruntime/...` in the repo)
//! and the `.venv` Python, both made by `scripts/fetch_deps.sh`.

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use distill_tests::paths::{ort_lib, python_bin as python, repo_root};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trainer_core::export::{export_onnx, ExportError};
use trainer_core::model::{Student, StudentConfig};
use trainer_eval::{NamedOutput, OnnxClassifier, RuntimeError};

const TOL: f32 = 1e-5;

/// A student with candle's random initialisation, its biases made clearly non-zero.
fn random_student(
    cfg: &StudentConfig,
    input_dim: usize,
    classes: usize,
    seed: u64,
) -> (VarMap, Student) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let s = Student::new(cfg, input_dim, classes, vb).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, var) in vm.data().lock().unwrap().iter() {
        if name.ends_with(".bias") {
            let n = var.elem_count();
            let b: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5f32..0.5)).collect();
            var.set(&Tensor::from_vec(b, n, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    (vm, s)
}

fn random_rows(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..rows * dim)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect()
}

/// Minimal `.npy` v1.0 writer for a C-order float32 matrix.
fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in data {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Runs the model with onnxruntime Python; returns every output by name.
fn python_outputs(model: &Path, x: &[f32], rows: usize, cols: usize) -> Vec<NamedOutput> {
    let dir = model.parent().unwrap();
    let npy = dir.join("inputs.npy");
    let json = dir.join("py_outputs.json");
    write_npy(&npy, x, rows, cols);
    let script = repo_root().join("scripts/check_student_onnx.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(model)
        .arg(&npy)
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["outputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, o)| NamedOutput {
            name: name.clone(),
            shape: o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            data: o["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Exports `cfg` with random weights, runs both runtimes on random rows, compares everything.
fn check_parity(cfg: &StudentConfig, input_dim: usize, classes: usize, rows: usize, seed: u64) {
    let (_vm, student) = random_student(cfg, input_dim, classes, seed);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("student.onnx");
    export_onnx(&student, "input", "logits", &model).unwrap();

    let x = random_rows(rows, input_dim, seed + 1);
    let xt = Tensor::from_vec(x.clone(), (rows, input_dim), &Device::Cpu).unwrap();
    let candle = student.forward(&xt, false).unwrap();
    let mut expected = vec![(
        "logits".to_string(),
        candle.logits.dims().to_vec(),
        flat(&candle.logits),
    )];
    for (i, h) in candle.hidden.iter().enumerate() {
        expected.push((format!("hidden{i}"), h.dims().to_vec(), flat(h)));
    }

    // Rust ONNX Runtime.
    let mut clf = OnnxClassifier::load(&model, Some(&ort_lib())).unwrap();
    assert_eq!(clf.input_dim(), Some(input_dim));
    let names: Vec<&str> = expected.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        clf.output_names(),
        names.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    let logits = clf.run(&x, rows).unwrap();
    let d = max_abs_diff(&logits, &expected[0].2);
    assert!(
        d <= TOL,
        "{}: logits (ort Rust) differ by {d}",
        cfg.arch_name()
    );
    let rust_outs = clf.run_outputs(&x, rows, &[]).unwrap();

    // Python ONNX Runtime.
    let py_outs = python_outputs(&model, &x, rows, input_dim);

    for (name, shape, want) in &expected {
        for (side, outs) in [("ort Rust", &rust_outs), ("onnxruntime Python", &py_outs)] {
            let got = outs
                .iter()
                .find(|o| &o.name == name)
                .unwrap_or_else(|| panic!("{side}: no output {name}"));
            assert_eq!(&got.shape, shape, "{side}: shape of {name}");
            let d = max_abs_diff(&got.data, want);
            eprintln!(
                "{} {side}: {name} {shape:?} max |diff| vs candle = {d:e}",
                cfg.arch_name()
            );
            assert!(
                d <= TOL,
                "{} {side}: {name} differs from candle by {d}",
                cfg.arch_name()
            );
        }
    }
    // Guard against a vacuous comparison (all-zero activations would match trivially).
    for (name, _, want) in &expected {
        assert!(
            want.iter().any(|&v| v.abs() > 1e-3),
            "{name} is all ~0: weak test data"
        );
    }
}

#[test]
fn mlp_matches_onnx_runtime() {
    let cfg = StudentConfig::Mlp {
        hidden: vec![64, 32],
        dropout: 0.3,
        input_dropout: 0.1,
    };
    check_parity(&cfg, 20, 7, 33, 11);
}

#[test]
fn linear_classifier_matches_onnx_runtime() {
    let cfg = StudentConfig::Mlp {
        hidden: vec![],
        dropout: 0.0,
        input_dropout: 0.0,
    };
    check_parity(&cfg, 9, 4, 5, 12);
}

#[test]
fn cnn_matches_onnx_runtime() {
    // Odd sizes exercise the floor of the 2x2 pool: 3x9x7 → 4x4x3 → 6x2x1.
    let cfg = StudentConfig::Cnn {
        channels: vec![4, 6],
        hidden: 16,
        dropout: 0.5,
        input_shape: [3, 9, 7],
    };
    check_parity(&cfg, 3 * 9 * 7, 5, 17, 13);
}

#[test]
fn mnist_shaped_cnn_matches_onnx_runtime() {
    let cfg = StudentConfig::Cnn {
        channels: vec![8, 16],
        hidden: 32,
        dropout: 0.0,
        input_shape: [1, 28, 28],
    };
    check_parity(&cfg, 784, 10, 8, 14);
}

#[test]
fn cnn_without_conv_blocks_matches_onnx_runtime() {
    let cfg = StudentConfig::Cnn {
        channels: vec![],
        hidden: 12,
        dropout: 0.0,
        input_shape: [2, 3, 3],
    };
    check_parity(&cfg, 18, 3, 4, 15);
}

#[test]
fn exported_graph_declares_dynamic_batch_and_metadata() {
    use distill_proto::onnx::{decode_model, tensor_shape_proto::dimension::Value, type_proto};
    let cfg = StudentConfig::Mlp {
        hidden: vec![6],
        dropout: 0.0,
        input_dropout: 0.0,
    };
    let (_vm, s) = random_student(&cfg, 4, 3, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    export_onnx(&s, "pixels", "scores", &path).unwrap();
    // Atomic write: only the final file remains.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("m.onnx")]);

    let model = decode_model(&std::fs::read(&path).unwrap()).unwrap();
    let g = model.graph.as_ref().unwrap();
    let dims = |vi: &distill_proto::onnx::ValueInfoProto| -> Vec<String> {
        match vi.r#type.as_ref().unwrap().value.as_ref().unwrap() {
            type_proto::Value::TensorType(t) => t
                .shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| match d.value.as_ref().unwrap() {
                    Value::DimValue(v) => v.to_string(),
                    Value::DimParam(p) => p.clone(),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "pixels");
    assert_eq!(dims(&g.input[0]), vec!["batch", "4"]);
    let outs: Vec<(String, Vec<String>)> =
        g.output.iter().map(|o| (o.name.clone(), dims(o))).collect();
    assert_eq!(
        outs,
        vec![
            (
                "scores".to_string(),
                vec!["batch".to_string(), "3".to_string()]
            ),
            (
                "hidden0".to_string(),
                vec!["batch".to_string(), "6".to_string()]
            ),
        ]
    );
    let mut inits: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    inits.sort();
    assert_eq!(
        inits,
        vec!["fc0.bias", "fc0.weight", "out.bias", "out.weight"]
    );
    let meta: std::collections::HashMap<_, _> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    let back: StudentConfig = serde_json::from_str(meta["distill.student.config"]).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(meta["distill.student.input_dim"], "4");

    // A model with custom names still runs; `run` picks the first output when none is `logits`.
    let mut clf = OnnxClassifier::load(&path, Some(&ort_lib())).unwrap();
    assert_eq!(clf.input_name(), "pixels");
    let x = random_rows(2, 4, 3);
    let xt = Tensor::from_vec(x.clone(), (2, 4), &Device::Cpu).unwrap();
    let want = flat(&s.forward(&xt, false).unwrap().logits);
    assert!(max_abs_diff(&clf.run(&x, 2).unwrap(), &want) <= TOL);
    let mut clf = clf.with_logits_output("hidden0").unwrap();
    assert_eq!(clf.run(&x, 2).unwrap().len(), 12);
    assert!(clf.with_logits_output("nope").is_err());
}

#[test]
fn bad_export_names_are_rejected() {
    let cfg = StudentConfig::Mlp {
        hidden: vec![6, 6],
        dropout: 0.0,
        input_dropout: 0.0,
    };
    let (_vm, s) = random_student(&cfg, 4, 3, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    for (input, output, needle) in [
        ("", "logits", "empty"),
        ("x", "", "empty"),
        ("x", "x", "both named"),
        ("hidden1", "logits", "clashes"),
        ("x", "fc0.out", "internal tensor"),
        ("fc1.weight", "logits", "internal tensor"),
        ("x", "out.bias", "internal tensor"),
    ] {
        match export_onnx(&s, input, output, &path) {
            Err(e @ ExportError::InvalidName(_)) => assert!(e.to_string().contains(needle), "{e}"),
            other => panic!("({input:?}, {output:?}) gave {other:?}"),
        }
    }
    assert!(!path.exists());
    // Dotted names (PyTorch's `input.1`) are fine when they do not clash.
    export_onnx(&s, "input.1", "logits", &path).unwrap();
    let mut clf = OnnxClassifier::load(&path, Some(&ort_lib())).unwrap();
    assert_eq!(clf.input_name(), "input.1");
    assert_eq!(clf.run(&[0.5; 8], 2).unwrap().len(), 6);
    // Unwritable destination: an Io error naming the path, not a panic.
    let bad = dir.path().join("no/such/dir/m.onnx");
    let e = export_onnx(&s, "x", "logits", &bad).unwrap_err();
    assert!(
        matches!(e, ExportError::Io { .. }) && e.to_string().contains("no/such/dir"),
        "{e}"
    );
}

#[test]
fn classifier_rejects_bad_input_and_bad_files() {
    let cfg = StudentConfig::Mlp {
        hidden: vec![5],
        dropout: 0.0,
        input_dropout: 0.0,
    };
    let (_vm, s) = random_student(&cfg, 6, 2, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    export_onnx(&s, "input", "logits", &path).unwrap();
    let mut clf = OnnxClassifier::load(&path, Some(&ort_lib())).unwrap();
    let e = clf.run(&[0.0; 10], 2).unwrap_err();
    assert!(
        e.to_string().contains("5 features") && e.to_string().contains("takes 6"),
        "{e}"
    );
    let e = clf.run(&[0.0; 13], 2).unwrap_err();
    assert!(e.to_string().contains("13 values"), "{e}");
    assert!(clf.run(&[], 0).is_err());
    let e = clf.run_outputs(&[0.0; 6], 1, &["hidden7"]).unwrap_err();
    assert!(e.to_string().contains("hidden7"), "{e}");

    let e = OnnxClassifier::load(&dir.path().join("missing.onnx"), Some(&ort_lib())).unwrap_err();
    assert!(e.to_string().contains("missing.onnx"), "{e}");
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let e = OnnxClassifier::load(&junk, Some(&ort_lib())).unwrap_err();
    assert!(
        matches!(e, RuntimeError::Ort { .. }) && e.to_string().contains("junk.onnx"),
        "{e}"
    );
}

#[test]
fn missing_ort_library_is_a_clear_error() {
    use trainer_eval::resolve_ort_lib;
    let e = resolve_ort_lib(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/libonnxruntime.so") && msg.contains("scripts/fetch_deps.sh"),
        "{msg}"
    );
    assert_eq!(resolve_ort_lib(Some(&ort_lib())).unwrap(), ort_lib());
}
