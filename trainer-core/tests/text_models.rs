//! Text students (static, transformer) against an independent computation on tiny sizes:
//! numpy forward values and central-difference gradients (`scripts/golden/text_students.py` →
//! `scripts/golden/text_students.json`), plus the bad-input errors of safetensors loading.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde_json::Value;
use trainer_core::model::text::config::{StaticInit, TransformerInit};
use trainer_core::model::{ModelError, StudentConfig, TextStudent};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/golden/text_students.json"
);

fn golden() -> Value {
    let text = std::fs::read_to_string(GOLDEN).expect("read scripts/golden/text_students.json");
    serde_json::from_str(&text).expect("parse golden json")
}

fn matrix_u32(v: &Value) -> Tensor {
    let rows: Vec<Vec<u32>> = serde_json::from_value(v.clone()).unwrap();
    let (b, s) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, s), &Device::Cpu).unwrap()
}

fn matrix_f32(v: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    let (b, s) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, s), &Device::Cpu).unwrap()
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Builds the case's student and overwrites every variable with the golden weights.
fn student(case: &Value) -> (VarMap, TextStudent) {
    let cfg: StudentConfig = serde_json::from_value(case["config"].clone()).unwrap();
    let vm = VarMap::new();
    let s = TextStudent::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let weights = case["weights"].as_object().unwrap();
    let data = vm.data().lock().unwrap();
    assert_eq!(
        data.len(),
        weights.len(),
        "student and golden weight sets differ"
    );
    for (name, var) in data.iter() {
        let w = &weights[name];
        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
        let vals: Vec<f32> = serde_json::from_value(w["data"].clone()).unwrap();
        var.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    drop(data);
    (vm, s)
}

fn check_case(case: &Value) {
    let (vm, s) = student(case);
    let ids = matrix_u32(&case["input_ids"]);
    let mask = matrix_f32(&case["attention_mask"]);
    let types = (!case["token_type_ids"].is_null()).then(|| matrix_u32(&case["token_type_ids"]));
    let out = s.forward(&ids, &mask, types.as_ref()).unwrap();
    let want = matrix_f32(&case["embedding"]);
    let d = max_abs(&out.embedding, &want);
    assert!(d < 1e-5, "embedding differs from numpy by {d}");
    let hidden = case["hidden"].as_array().unwrap();
    assert_eq!(out.hidden.len(), hidden.len());
    for (i, (h, w)) in out.hidden.iter().zip(hidden).enumerate() {
        let d = max_abs(h, &matrix_f32(w));
        assert!(d < 1e-5, "hidden{i} differs from numpy by {d}");
    }
    // L = sum(embedding * U) + sum_i sum(hidden_i * V_i), as the golden script.
    let mut loss = out
        .embedding
        .mul(&matrix_f32(&case["upstream_embedding"]))
        .unwrap()
        .sum_all()
        .unwrap();
    for (h, v) in out
        .hidden
        .iter()
        .zip(case["upstream_hidden"].as_array().unwrap())
    {
        loss = (loss + h.mul(&matrix_f32(v)).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let golden = case["grads"].as_object().unwrap();
    for (name, var) in data.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let got = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f64> = serde_json::from_value(golden[name].clone()).unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-3 * (1.0 + b.abs());
            assert!(
                (*a as f64 - b).abs() < tol,
                "d L / d {name}[{j}]: candle {a}, finite differences {b}"
            );
        }
    }
}

#[test]
fn transformer_forward_and_backward_match_numpy() {
    check_case(&golden()["transformer"]);
}

#[test]
fn static_forward_and_backward_match_numpy() {
    check_case(&golden()["static"]);
}

/// Padding must not change a row's embedding: the same sentence alone and padded next to a
/// longer one gives the same vector (the mask reaches attention and pooling).
#[test]
fn padding_does_not_change_the_embedding() {
    let case = &golden()["transformer"];
    let (_vm, s) = student(case);
    let alone = Tensor::new(&[[1u32, 12, 2]], &Device::Cpu).unwrap();
    let ones = Tensor::ones((1, 3), DType::F32, &Device::Cpu).unwrap();
    let a = s.forward(&alone, &ones, None).unwrap().embedding;
    let padded = Tensor::new(&[[1u32, 12, 2, 0, 0], [1, 5, 6, 7, 2]], &Device::Cpu).unwrap();
    let mask = Tensor::new(
        &[[1f32, 1., 1., 0., 0.], [1., 1., 1., 1., 1.]],
        &Device::Cpu,
    )
    .unwrap();
    let p = s
        .forward(&padded, &mask, None)
        .unwrap()
        .embedding
        .get(0)
        .unwrap();
    let d = max_abs(&a.squeeze(0).unwrap(), &p);
    assert!(d < 1e-6, "padding changed the embedding by {d}");
}

#[test]
fn config_tables_parse_and_reject_unknown_keys() {
    let ok: toml::Table = toml::from_str(
        "arch = \"transformer\"\nlayers = 3\nhidden = 384\nheads = 12\nffn = 1536\n\
         init = { from = \"m.safetensors\", layers = [0, 2, 4] }",
    )
    .unwrap();
    let cfg: StudentConfig = ok.try_into().unwrap();
    assert_eq!(cfg.arch_name(), "transformer");
    let bad: toml::Table =
        toml::from_str("arch = \"static\"\nvocab = 10\ndim = 4\nwidth = 3").unwrap();
    let err = bad.try_into::<StudentConfig>().unwrap_err().to_string();
    assert!(err.contains("width"), "{err}");
    let bad_init: toml::Table = toml::from_str(
        "arch = \"transformer\"\nlayers = 2\nhidden = 8\nheads = 2\nffn = 8\n\
         init = { from = \"m.safetensors\", layer = [0] }",
    )
    .unwrap();
    let err = bad_init
        .try_into::<StudentConfig>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer"), "{err}");
}

fn tiny_transformer(init: Option<TransformerInit>, layers: usize) -> StudentConfig {
    let mut v = golden()["transformer"]["config"].clone();
    v["layers"] = layers.into();
    let mut cfg: StudentConfig = serde_json::from_value(v).unwrap();
    if let StudentConfig::Transformer(c) = &mut cfg {
        c.init = init;
    }
    cfg
}

/// The golden weights as a safetensors file, minus `drop`, with `reshape` replaced.
fn write_weights(dir: &Path, drop: Option<&str>, reshape: Option<(&str, Tensor)>) -> PathBuf {
    let weights = golden()["transformer"]["weights"].clone();
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, w) in weights.as_object().unwrap() {
        if Some(name.as_str()) == drop {
            continue;
        }
        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
        let vals: Vec<f32> = serde_json::from_value(w["data"].clone()).unwrap();
        map.insert(
            name.clone(),
            Tensor::from_vec(vals, shape, &Device::Cpu).unwrap(),
        );
    }
    if let Some((name, t)) = reshape {
        map.insert(name.to_string(), t);
    }
    let path = dir.join("w.safetensors");
    candle_core::safetensors::save(&map, &path).unwrap();
    path
}

/// A student built from layer 1 of the file equals the golden one's layer-1 weights.
#[test]
fn init_takes_the_named_layers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_weights(dir.path(), None, None);
    let cfg = tiny_transformer(
        Some(TransformerInit {
            from: path,
            layers: Some(vec![1]),
        }),
        1,
    );
    let (vm, _s) = TextStudent::build(&cfg).unwrap();
    let data = vm.data().lock().unwrap();
    let got = data["encoder.layer.0.attention.self.query.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let want: Vec<f32> = serde_json::from_value(
        golden()["transformer"]["weights"]["encoder.layer.1.attention.self.query.weight"]["data"]
            .clone(),
    )
    .unwrap();
    assert_eq!(got, want);
}

/// The error `TextStudent::build` gives (the `VarMap` of a success has no `Debug`).
fn build_err(cfg: &StudentConfig) -> ModelError {
    match TextStudent::build(cfg) {
        Ok(_) => panic!("building {cfg:?} succeeded; expected an error"),
        Err(e) => e,
    }
}

#[test]
fn bad_weights_files_name_the_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let init = |path: &Path, layers: Option<Vec<usize>>| TransformerInit {
        from: path.to_path_buf(),
        layers,
    };
    let missing = "encoder.layer.1.output.dense.weight";
    let p = write_weights(dir.path(), Some(missing), None);
    let err = build_err(&tiny_transformer(Some(init(&p, None)), 2));
    assert!(
        matches!(&err, ModelError::MissingTensor { name, .. } if name == missing),
        "{err}"
    );
    assert!(err.to_string().contains("w.safetensors"), "{err}");

    let wrong = Tensor::zeros((8, 7), DType::F32, &Device::Cpu).unwrap();
    let name = "encoder.layer.0.attention.self.key.weight";
    let p = write_weights(dir.path(), None, Some((name, wrong)));
    let err = build_err(&tiny_transformer(Some(init(&p, None)), 2));
    let msg = err.to_string();
    assert!(
        msg.contains(name) && msg.contains("[8, 7]") && msg.contains("[8, 8]"),
        "{msg}"
    );

    let p = write_weights(dir.path(), None, None);
    let err = build_err(&tiny_transformer(Some(init(&p, Some(vec![0, 5]))), 2));
    assert!(
        matches!(
            err,
            ModelError::NoSuchLayer {
                layer: 5,
                available: 2,
                ..
            }
        ),
        "{err}"
    );

    let err = build_err(&tiny_transformer(
        Some(init(&dir.path().join("absent.safetensors"), None)),
        2,
    ));
    assert!(err.to_string().contains("absent.safetensors"), "{err}");

    // A static table of the wrong width without PCA.
    let cfg = StudentConfig::Static(trainer_core::model::StaticConfig {
        vocab: 13,
        dim: 4,
        project_to: None,
        init: Some(StaticInit {
            from: p.clone(),
            tensor: "embeddings.word_embeddings.weight".into(),
            pca: false,
        }),
    });
    let err = build_err(&cfg).to_string();
    assert!(err.contains("[13, 8]") && err.contains("[13, 4]"), "{err}");
}

/// With PCA the static table is the teacher table's centred projection: widths shrink, the
/// columns are centred and ordered by decreasing variance.
#[test]
fn static_init_by_pca() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_weights(dir.path(), None, None);
    let cfg = StudentConfig::Static(trainer_core::model::StaticConfig {
        vocab: 13,
        dim: 3,
        project_to: None,
        init: Some(StaticInit {
            from: p,
            tensor: "embeddings.word_embeddings.weight".into(),
            pca: true,
        }),
    });
    let (vm, _s) = TextStudent::build(&cfg).unwrap();
    let t = vm.data().lock().unwrap()["embeddings.weight"]
        .as_tensor()
        .clone();
    assert_eq!(t.dims(), &[13, 3]);
    let mean = t.mean(0).unwrap().to_vec1::<f32>().unwrap();
    assert!(mean.iter().all(|m| m.abs() < 1e-5), "{mean:?}");
    let var = t.sqr().unwrap().mean(0).unwrap().to_vec1::<f32>().unwrap();
    assert!(
        var[0] >= var[1] && var[1] >= var[2] && var[2] > 0.0,
        "{var:?}"
    );
}

#[test]
fn token_ids_beyond_the_vocabulary_are_an_error() {
    let (_vm, s) = student(&golden()["static"]);
    let ids = Tensor::new(&[[3u32, 11]], &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 2), DType::F32, &Device::Cpu).unwrap();
    let err = s.forward(&ids, &mask, None).unwrap_err().to_string();
    assert!(err.contains("id 11") && err.contains("11 rows"), "{err}");
}
