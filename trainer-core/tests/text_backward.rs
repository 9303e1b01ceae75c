//! Backward of the text students against PyTorch autograd (float64) on tiny sizes:
//! `scripts/golden/text_backward.py` wrote fixed weights (safetensors, Hugging Face names),
//! a padded batch of mixed lengths, the loss
//! `mean(1 - cos(e, T)) + mse(e, T) [+ 0.5 mse(hidden0, H0)]` and d loss / d every parameter
//! to `scripts/golden/text_backward.json`. Here the same weights go through the students'
//! safetensors loading (`init`), the loss through the trainer's own `feature` losses, the
//! gradients through candle autograd (f32). Plus the padding checks: the pad id's embedding
//! row and the unused position rows get exactly zero gradient, and changing what sits under the
//! mask changes no gradient.

use std::path::{Path, PathBuf};

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde_json::Value;
use trainer_core::loss::{feature, FeatureDistance};
use trainer_core::model::text::config::{StaticInit, TransformerInit};
use trainer_core::model::text::weights;
use trainer_core::model::{StudentConfig, TextStudent};

/// Per element: `|candle - torch| <= RTOL * |torch| + ATOL * max|torch tensor|`. f32 autograd
/// against a float64 reference; PyTorch's own f32 gradients land ~1e-6 (relative to each
/// tensor's largest entry) from its float64 ones on these cases.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/golden")
}

fn golden() -> Value {
    let path = golden_dir().join("text_backward.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("parse text_backward.json")
}

fn matrix<T: serde::de::DeserializeOwned + candle_core::WithDType>(v: &Value) -> Tensor {
    let rows: Vec<Vec<T>> = serde_json::from_value(v.clone()).unwrap();
    let (b, s) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, s), &Device::Cpu).unwrap()
}

/// The case's student, its weights loaded from the committed safetensors: everything but the
/// projector through the config's `init` (weights.rs), the projector from the same file.
fn student(case: &Value) -> (VarMap, TextStudent) {
    let file = golden_dir().join(case["weights"].as_str().unwrap());
    let mut cfg: StudentConfig = serde_json::from_value(case["config"].clone()).unwrap();
    match &mut cfg {
        StudentConfig::Static(c) => {
            c.init = Some(StaticInit {
                from: file.clone(),
                tensor: "embeddings.weight".into(),
                pca: false,
            })
        }
        StudentConfig::Transformer(c) => {
            c.init = Some(TransformerInit {
                from: file.clone(),
                layers: None,
            })
        }
        other => panic!("not a text config: {other:?}"),
    }
    let (vm, s) = TextStudent::build(&cfg).unwrap();
    let tensors = weights::read_safetensors(&file).unwrap();
    {
        let data = vm.data().lock().unwrap();
        for name in ["projector.weight", "projector.bias"] {
            data[name].set(&tensors[name]).unwrap();
        }
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut want: Vec<&String> = case["grads"].as_object().unwrap().keys().collect();
        want.sort();
        assert_eq!(names, want, "student and golden parameter sets differ");
    }
    (vm, s)
}

/// The golden loss on the student's forward pass, its value and its gradients.
fn loss_and_grads(
    case: &Value,
    s: &TextStudent,
    ids: &Tensor,
    types: Option<&Tensor>,
) -> (f64, GradStore) {
    let mask = matrix::<f32>(&case["attention_mask"]);
    let out = s.forward(ids, &mask, types).unwrap();
    let target = matrix::<f32>(&case["target_embedding"]);
    let mut loss = (feature(&out.embedding, &target, FeatureDistance::Cosine).unwrap()
        + feature(&out.embedding, &target, FeatureDistance::Mse).unwrap())
    .unwrap();
    if !case["target_hidden0"].is_null() {
        let h0 = matrix::<f32>(&case["target_hidden0"]);
        let term = feature(&out.hidden[0], &h0, FeatureDistance::Mse).unwrap();
        loss = (loss + (term * 0.5).unwrap()).unwrap();
    }
    let value = loss.to_scalar::<f32>().unwrap() as f64;
    (value, loss.backward().unwrap())
}

fn golden_inputs(case: &Value) -> (Tensor, Option<Tensor>) {
    let ids = matrix::<u32>(&case["input_ids"]);
    let types = (!case["token_type_ids"].is_null()).then(|| matrix::<u32>(&case["token_type_ids"]));
    (ids, types)
}

fn grad_of(vm: &VarMap, grads: &GradStore, name: &str) -> Vec<f32> {
    let data = vm.data().lock().unwrap();
    grads
        .get(data[name].as_tensor())
        .unwrap_or_else(|| panic!("no gradient for {name}"))
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Compares the loss and every parameter's gradient with PyTorch's; prints the worst error
/// relative to each tensor's largest entry (`--nocapture`).
fn check_against_torch(case_name: &str) {
    let g = golden();
    let case = &g[case_name];
    let (vm, s) = student(case);
    let (ids, types) = golden_inputs(case);
    let (loss, grads) = loss_and_grads(case, &s, &ids, types.as_ref());
    let want_loss = case["loss"].as_f64().unwrap();
    assert!(
        (loss - want_loss).abs() < 1e-5 * (1.0 + want_loss.abs()),
        "{case_name}: loss {loss}, PyTorch {want_loss}"
    );
    let mut worst = (0f64, String::new());
    for (name, want) in case["grads"].as_object().unwrap() {
        let want_shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(want["data"].clone()).unwrap();
        let got = grad_of(&vm, &grads, name);
        let shape = vm.data().lock().unwrap()[name].dims().to_vec();
        assert_eq!(shape, want_shape, "{case_name}: {name} shape");
        let mut scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        if name.ends_with("attention.self.key.bias") {
            // Zero analytically: a per-query constant added to every score leaves the softmax
            // unchanged (PyTorch float64 gives ~1e-17). Candle's must be zero to ATOL.
            assert!(
                scale < 1e-12,
                "{case_name}: PyTorch's {name} gradient is not zero"
            );
            scale = 1.0;
        } else {
            assert!(
                scale > 1e-3,
                "{case_name}: golden gradient of {name} is ~0 ({scale})"
            );
        }
        for (j, (a, b)) in got.iter().zip(&want).enumerate() {
            let err = (*a as f64 - b).abs();
            assert!(
                err <= RTOL * b.abs() + ATOL * scale,
                "{case_name}: d loss / d {name}[{j}]: candle {a}, PyTorch {b} (tensor max {scale})"
            );
            if err / scale > worst.0 {
                worst = (err / scale, format!("{name}[{j}]"));
            }
        }
    }
    println!(
        "{case_name}: loss {loss} vs {want_loss}; worst gradient error {:.2e} of the tensor's max, at {}",
        worst.0, worst.1
    );
}

#[test]
fn transformer_gradients_match_pytorch() {
    check_against_torch("transformer");
}

#[test]
fn static_gradients_match_pytorch() {
    check_against_torch("static");
}

/// The row of `table_grad` (`[rows, width]`, flat) for `row`.
fn row(table_grad: &[f32], width: usize, row: usize) -> &[f32] {
    &table_grad[row * width..(row + 1) * width]
}

/// Pad id 0 sits only under the mask, and the batch is 12 tokens wide in a 16-row position
/// table: those embedding rows get exactly zero gradient, in PyTorch and in candle.
#[test]
fn padding_rows_get_zero_gradient() {
    let g = golden();
    for (case_name, table, width, unused_positions) in [
        ("static", "embeddings.weight", 8, 0..0),
        (
            "transformer",
            "embeddings.word_embeddings.weight",
            16,
            12..16,
        ),
    ] {
        let case = &g[case_name];
        let ids: Vec<Vec<u32>> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let mask: Vec<Vec<u32>> = serde_json::from_value(case["attention_mask"].clone()).unwrap();
        let pad_under_mask = ids
            .iter()
            .flatten()
            .zip(mask.iter().flatten())
            .all(|(&i, &m)| (i == 0) == (m == 0));
        assert!(
            pad_under_mask,
            "{case_name}: the golden batch must use id 0 exactly at padding"
        );
        assert!(
            mask.iter().flatten().any(|&m| m == 0),
            "{case_name}: no padding"
        );
        let torch: Vec<f64> = serde_json::from_value(case["grads"][table]["data"].clone()).unwrap();
        assert!(
            torch[..width].iter().all(|&v| v == 0.0),
            "{case_name}: PyTorch pad row"
        );
        let (vm, s) = student(case);
        let (ids, types) = golden_inputs(case);
        let (_, grads) = loss_and_grads(case, &s, &ids, types.as_ref());
        let got = grad_of(&vm, &grads, table);
        assert!(
            row(&got, width, 0).iter().all(|&v| v == 0.0),
            "{case_name}: the pad id's row got gradient {:?}",
            row(&got, width, 0)
        );
        if !unused_positions.is_empty() {
            let pos = grad_of(&vm, &grads, "embeddings.position_embeddings.weight");
            for p in unused_positions {
                assert!(
                    row(&pos, width, p).iter().all(|&v| v == 0.0),
                    "position row {p}"
                );
            }
        }
    }
}

/// Other ids and token types under the mask leave every gradient as it was: padding reaches
/// neither attention (keys) nor pooling, so the masked positions contribute nothing.
#[test]
fn what_lies_under_the_mask_changes_no_gradient() {
    let g = golden();
    for case_name in ["static", "transformer"] {
        let case = &g[case_name];
        let (vm, s) = student(case);
        let (ids, types) = golden_inputs(case);
        let (loss, base) = loss_and_grads(case, &s, &ids, types.as_ref());
        let vocab = case["config"]["vocab"].as_u64().unwrap() as u32;
        let mask: Vec<Vec<u32>> = serde_json::from_value(case["attention_mask"].clone()).unwrap();
        let mut ids2: Vec<Vec<u32>> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let mut types2 = types.as_ref().map(|t| t.to_vec2::<u32>().unwrap());
        for (r, m) in mask.iter().enumerate() {
            for (c, &m) in m.iter().enumerate() {
                if m == 0 {
                    ids2[r][c] = 1 + (7 * r as u32 + 3 * c as u32) % (vocab - 1);
                    if let Some(t) = types2.as_mut() {
                        t[r][c] = 1;
                    }
                }
            }
        }
        let ids2 = Tensor::new(ids2, &Device::Cpu).unwrap();
        let types2 = types2.map(|t| Tensor::new(t, &Device::Cpu).unwrap());
        let (loss2, other) = loss_and_grads(case, &s, &ids2, types2.as_ref());
        assert!(
            (loss - loss2).abs() < 1e-6,
            "{case_name}: loss {loss} vs {loss2}"
        );
        let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        for name in names {
            let (a, b) = (grad_of(&vm, &base, &name), grad_of(&vm, &other, &name));
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (j, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 * scale,
                    "{case_name}: d loss / d {name}[{j}] moved from {x} to {y} when only padding changed"
                );
            }
        }
    }
}
