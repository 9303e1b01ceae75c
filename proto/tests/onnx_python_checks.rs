//! Checks of ONNX models written or edited by `distill_proto::onnx`, run with ONNX Runtime's
//! Python package against numpy (scripts/check_onnx_model.py) and against models made by the
//! Python `onnx` API (scripts/make_test_models.py). Needs the venv of scripts/fetch_deps.sh.

use std::path::Path;
use std::process::Command;

use distill_proto::api::Dim;
use distill_proto::onnx::{
    add_taps, attr_float, attr_int, attr_ints, decode_model, encode_model, tappable_tensors,
    GraphBuilder, OnnxError, Tap,
};
use distill_proto::DType;
use distill_tests::paths::{python_bin as python, repo_root};
use serde_json::{json, Value};

/// Runs a script of scripts/ and returns whether it succeeded and its JSON answer (the last
/// stdout line); panics when it prints no JSON.
fn run_script_status(script: &str, args: &[&str]) -> (bool, Value) {
    let out = Command::new(python())
        .arg(repo_root().join("scripts").join(script))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or("");
    let value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{script} {args:?} printed no JSON ({e}, {}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        )
    });
    (out.status.success(), value)
}

/// Runs a script of scripts/ and returns its JSON answer; panics with it when the script fails.
fn run_script(script: &str, args: &[&str]) -> Value {
    let (ok, value) = run_script_status(script, args);
    assert!(ok, "{script} {args:?} failed: {value}");
    value
}

/// Deterministic pseudo-random values in [-scale, scale) (xorshift64*), so the test needs no rand.
struct Values(u64);

impl Values {
    fn take(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                let u = bits as f32 / (1u64 << 24) as f32;
                (2.0 * u - 1.0) * scale
            })
            .collect()
    }
}

fn batch(rest: &[usize]) -> Vec<Dim> {
    std::iter::once(Dim::Dynamic("batch".into()))
        .chain(rest.iter().map(|&n| Dim::Fixed(n)))
        .collect()
}

fn entry(dims: &[usize], data: &[f32]) -> Value {
    json!({ "dims": dims, "data": data })
}

/// Writes the model and the spec, runs `check_onnx_model.py built`, asserts the result.
fn check_built(dir: &Path, name: &str, model_bytes: &[u8], spec: &Value, outputs: &[&str]) {
    let model_path = dir.join(format!("{name}.onnx"));
    let spec_path = dir.join(format!("{name}.json"));
    std::fs::write(&model_path, model_bytes).unwrap();
    std::fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let result = run_script(
        "check_onnx_model.py",
        &[
            "built",
            model_path.to_str().unwrap(),
            spec_path.to_str().unwrap(),
            "--tol",
            "1e-5",
        ],
    );
    assert_eq!(result["ok"], json!(true), "{result}");
    for out in outputs {
        let err = result["max_abs_err"][out]
            .as_f64()
            .unwrap_or_else(|| panic!("no error reported for {out}: {result}"));
        assert!(err < 1e-5, "{name}.{out}: max abs error {err}");
    }
}

#[test]
fn mlp_built_in_rust_matches_numpy_in_onnxruntime() {
    let mut v = Values(0x5eed_0001);
    let (fc1_w, fc1_b) = (v.take(32 * 16, 0.4), v.take(32, 0.1));
    let (fc2_w, fc2_b) = (v.take(10 * 32, 0.4), v.take(10, 0.1));
    let x = v.take(5 * 16, 1.0);

    let mut b = GraphBuilder::new("student_mlp");
    b.input("x", DType::F32, &batch(&[16]));
    b.initializer_f32("fc1.weight", &[32, 16], &fc1_w);
    b.initializer_f32("fc1.bias", &[32], &fc1_b);
    b.initializer_f32("fc2.weight", &[10, 32], &fc2_w);
    b.initializer_f32("fc2.bias", &[10], &fc2_b);
    let trans_b = || vec![attr_int("transB", 1)];
    // Explicit zero and default values: onnx.checker needs their value fields present.
    let fc1_attrs = vec![
        attr_int("transA", 0),
        attr_int("transB", 1),
        attr_float("beta", 1.0),
    ];
    b.node(
        "Gemm",
        &["x", "fc1.weight", "fc1.bias"],
        &["h_pre"],
        fc1_attrs,
    );
    b.node("Relu", &["h_pre"], &["hidden"], vec![]);
    b.node(
        "Gemm",
        &["hidden", "fc2.weight", "fc2.bias"],
        &["logits"],
        trans_b(),
    );
    b.output("logits", DType::F32, &batch(&[10]));
    b.output("hidden", DType::F32, &batch(&[32]));
    let model = b.finish();
    assert_eq!(tappable_tensors(&model), vec!["h_pre"]);
    let bytes = encode_model(&model);
    assert_eq!(decode_model(&bytes).unwrap(), model);

    let spec = json!({
        "kind": "mlp",
        "weights": {
            "fc1_w": entry(&[32, 16], &fc1_w), "fc1_b": entry(&[32], &fc1_b),
            "fc2_w": entry(&[10, 32], &fc2_w), "fc2_b": entry(&[10], &fc2_b),
        },
        "inputs": { "x": entry(&[5, 16], &x) },
        "outputs": ["logits", "hidden"],
    });
    let dir = tempfile::tempdir().unwrap();
    check_built(dir.path(), "mlp", &bytes, &spec, &["logits", "hidden"]);
}

#[test]
fn cnn_built_in_rust_matches_numpy_in_onnxruntime() {
    let mut v = Values(0x5eed_0002);
    let (conv_w, conv_b) = (v.take(4 * 9, 0.5), v.take(4, 0.1));
    let (fc_w, fc_b) = (v.take(10 * 64, 0.3), v.take(10, 0.1));
    let x = v.take(3 * 64, 1.0);

    let mut b = GraphBuilder::new("student_cnn");
    b.input("x", DType::F32, &batch(&[1, 8, 8]));
    b.initializer_f32("conv.weight", &[4, 1, 3, 3], &conv_w);
    b.initializer_f32("conv.bias", &[4], &conv_b);
    b.initializer_f32("fc.weight", &[10, 64], &fc_w);
    b.initializer_f32("fc.bias", &[10], &fc_b);
    b.node(
        "Conv",
        &["x", "conv.weight", "conv.bias"],
        &["conv_out"],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[1, 1]),
        ],
    );
    b.node("Relu", &["conv_out"], &["conv_relu"], vec![]);
    b.node(
        "MaxPool",
        &["conv_relu"],
        &["pooled"],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    b.node("Flatten", &["pooled"], &["flat"], vec![attr_int("axis", 1)]);
    b.node(
        "Gemm",
        &["flat", "fc.weight", "fc.bias"],
        &["logits"],
        vec![attr_int("transB", 1)],
    );
    b.output("logits", DType::F32, &batch(&[10]));
    let bytes = encode_model(&b.finish());

    let spec = json!({
        "kind": "cnn",
        "conv_pad": 1, "conv_stride": 1, "pool": 2,
        "weights": {
            "conv_w": entry(&[4, 1, 3, 3], &conv_w), "conv_b": entry(&[4], &conv_b),
            "fc_w": entry(&[10, 64], &fc_w), "fc_b": entry(&[10], &fc_b),
        },
        "inputs": { "x": entry(&[3, 1, 8, 8], &x) },
        "outputs": ["logits"],
    });
    let dir = tempfile::tempdir().unwrap();
    check_built(dir.path(), "cnn", &bytes, &spec, &["logits"]);
}

/// The Python-made test models in a fresh temp dir.
fn python_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python())
        .arg(repo_root().join("scripts/make_test_models.py"))
        .arg(dir.path())
        .output()
        .expect("run make_test_models.py");
    assert!(
        out.status.success(),
        "make_test_models.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Taps `taps` in the Python model `name` with Rust, then checks the result in onnxruntime.
fn tap_and_check(dir: &Path, name: &str, taps: &[&str], expected: &[DType]) -> Value {
    let original = dir.join(format!("{name}.onnx"));
    let mut model = decode_model(&std::fs::read(&original).unwrap()).unwrap();
    let taps: Vec<Tap> = taps.iter().map(|t| t.parse().unwrap()).collect();
    assert_eq!(add_taps(&mut model, &taps).unwrap(), expected);
    let tapped = dir.join(format!("{name}_tapped.onnx"));
    std::fs::write(&tapped, encode_model(&model)).unwrap();
    let mut args = vec![
        "tap".to_string(),
        "--model".into(),
        name.into(),
        "--original".into(),
        original.to_str().unwrap().into(),
        "--tapped".into(),
        tapped.to_str().unwrap().into(),
    ];
    for t in &taps {
        args.push("--tap".into());
        args.push(t.tensor.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = run_script("check_onnx_model.py", &args);
    assert_eq!(result["original_identical"], json!(true), "{result}");
    assert_eq!(result["ok"], json!(true), "{result}");
    result
}

#[test]
fn tapped_python_models_give_numpy_values_and_unchanged_outputs() {
    let dir = python_models();
    let dir = dir.path();

    let mlp = decode_model(&std::fs::read(dir.join("mlp.onnx")).unwrap()).unwrap();
    assert_eq!(tappable_tensors(&mlp), vec!["hidden_pre"]);
    let r = tap_and_check(dir, "mlp", &["hidden_pre"], &[DType::F32]);
    assert!(
        r["tap_max_abs_err"]["hidden_pre"].as_f64().unwrap() < 1e-5,
        "{r}"
    );

    // No value_info in this model: types come from the Gather's f32 table and the Cast's `to`.
    let r = tap_and_check(
        dir,
        "tokens",
        &["token_embeddings", "mask_f"],
        &[DType::F32, DType::F32],
    );
    assert_eq!(
        r["tap_dtypes"],
        json!({"token_embeddings": "f32", "mask_f": "f32"}),
        "{r}"
    );
    assert_eq!(
        r["tap_max_abs_err"]["token_embeddings"],
        json!(0.0),
        "a lookup is exact: {r}"
    );

    let r = tap_and_check(dir, "multi_dtype", &["c_f:f32"], &[DType::F32]);
    assert_eq!(r["tap_max_abs_err"]["c_f"], json!(0.0), "{r}");
}

#[test]
fn rust_re_encoding_keeps_every_field() {
    let dir = python_models();
    for name in ["mlp", "tokens", "multi_dtype"] {
        let original = dir.path().join(format!("{name}.onnx"));
        let model = decode_model(&std::fs::read(&original).unwrap()).unwrap();
        let copy = dir.path().join(format!("{name}_copy.onnx"));
        std::fs::write(&copy, encode_model(&model)).unwrap();
        let r = run_script(
            "check_onnx_model.py",
            &["same", original.to_str().unwrap(), copy.to_str().unwrap()],
        );
        assert_eq!(r["equal"], json!(true), "{name}: {r}");
    }
}

#[test]
fn unknown_tap_in_a_python_model_names_it_and_the_candidates() {
    let dir = python_models();
    let bytes = std::fs::read(dir.path().join("tokens.onnx")).unwrap();
    let mut model = decode_model(&bytes).unwrap();
    let err = add_taps(&mut model, &[Tap::new("token_embedding")]).unwrap_err();
    let OnnxError::UnknownTensor { name, candidates } = &err else {
        panic!("expected UnknownTensor, got {err:?}");
    };
    assert_eq!(name, "token_embedding");
    assert_eq!(candidates[0], "token_embeddings");
    let msg = err.to_string();
    assert!(
        msg.contains("`token_embedding`") && msg.contains("token_embeddings"),
        "{msg}"
    );
    // Graph outputs are not taps.
    let err = add_taps(&mut model, &[Tap::new("pooled")]).unwrap_err();
    assert!(matches!(err, OnnxError::AlreadyOutput(_)), "{err:?}");
}

/// Every inner tensor of the real foreign models of scripts/fetch_models.sh (PyTorch and Keras
/// exports without value_info), tapped with no dtype given: ONNX Runtime accepts the declared
/// types (it checks them against its own inference) and the original outputs stay within 1e-5
/// (not bit for bit: extra outputs can stop ONNX Runtime's fusions, which changes rounding).
#[test]
fn every_tensor_of_foreign_models_taps_with_the_right_type() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["minilm", "magika"] {
        let original = repo_root().join(format!(".deps/models/{name}/model.onnx"));
        assert!(
            original.exists(),
            "{} is missing: run scripts/fetch_models.sh (make models)",
            original.display()
        );
        let mut model = decode_model(&std::fs::read(&original).unwrap()).unwrap();
        let names = tappable_tensors(&model);
        assert!(
            names.len() > 50,
            "{name}: only {} tappable tensors",
            names.len()
        );
        let taps: Vec<Tap> = names.iter().map(|n| Tap::new(n.clone())).collect();
        let dtypes = add_taps(&mut model, &taps).unwrap();
        assert!(
            dtypes.iter().any(|d| *d != DType::F32),
            "{name}: inference found only f32 tensors"
        );
        let expected: serde_json::Map<String, Value> = names
            .iter()
            .zip(&dtypes)
            .map(|(n, d)| (n.clone(), json!(d.name())))
            .collect();
        let tapped = dir.path().join(format!("{name}_tapped.onnx"));
        let dtypes_path = dir.path().join(format!("{name}_dtypes.json"));
        std::fs::write(&tapped, encode_model(&model)).unwrap();
        std::fs::write(&dtypes_path, serde_json::to_vec(&expected).unwrap()).unwrap();
        let r = run_script(
            "check_onnx_model.py",
            &[
                "foreign",
                "--original",
                original.to_str().unwrap(),
                "--tapped",
                tapped.to_str().unwrap(),
                "--dtypes",
                dtypes_path.to_str().unwrap(),
            ],
        );
        assert_eq!(r["loads"], json!(true), "{name}: {r}");
        assert_eq!(r["taps"], json!(names.len()), "{name}: {r}");
        assert_eq!(r["ok"], json!(true), "{name}: {r}");
        eprintln!(
            "{name}: {} taps, original outputs max abs diff {}",
            names.len(),
            r["original_max_abs_diff"]
        );
    }
}

/// The check above has teeth: a tap declared with a wrong dtype is refused by ONNX Runtime.
#[test]
fn a_wrongly_typed_tap_is_refused_by_onnxruntime() {
    let dir = python_models();
    let original = dir.path().join("mlp.onnx");
    let mut model = decode_model(&std::fs::read(&original).unwrap()).unwrap();
    let dtypes = add_taps(&mut model, &["hidden_pre:i64".parse().unwrap()]).unwrap();
    assert_eq!(
        dtypes,
        vec![DType::I64],
        "the user's dtype is declared when the model says nothing"
    );
    let tapped = dir.path().join("mlp_wrong.onnx");
    let dtypes_path = dir.path().join("wrong.json");
    std::fs::write(&tapped, encode_model(&model)).unwrap();
    std::fs::write(&dtypes_path, br#"{"hidden_pre": "i64"}"#).unwrap();
    let (ok, r) = run_script_status(
        "check_onnx_model.py",
        &[
            "foreign",
            "--original",
            original.to_str().unwrap(),
            "--tapped",
            tapped.to_str().unwrap(),
            "--dtypes",
            dtypes_path.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{r}");
    assert_eq!(r["loads"], json!(false), "{r}");
    assert!(
        r["error"].as_str().unwrap_or("").contains("hidden_pre"),
        "{r}"
    );
}
