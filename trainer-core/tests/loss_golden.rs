//! Golden-value tests of the distillation losses against independent numpy
//! implementations (`scripts/golden/losses.py` → `scripts/golden/losses.json`).
//!
//! Every case runs in f64 (relative tolerance 1e-9) and in f32 (1e-5); cases
//! with `expected_grad` also check candle's backprop against the analytic
//! numpy gradient (max abs error relative to the largest gradient entry).

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use trainer_core::loss::{self, BceTarget, FeatureDistance};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/golden/losses.json");

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(GOLDEN).expect("read scripts/golden/losses.json");
    let doc: Value = serde_json::from_str(&text).expect("parse losses.json");
    doc["cases"].as_array().expect("cases array").clone()
}

/// Builds a tensor from `{"dtype", "shape", "data"}`; float data is cast to `float`.
fn tensor(spec: &Value, float: DType) -> Tensor {
    let shape: Vec<usize> = spec["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let data = spec["data"].as_array().expect("data");
    let dev = &Device::Cpu;
    match spec["dtype"].as_str().expect("dtype") {
        "f" => {
            let v: Vec<f64> = data.iter().map(|x| x.as_f64().expect("float")).collect();
            Tensor::from_vec(v, shape, dev)
                .unwrap()
                .to_dtype(float)
                .unwrap()
        }
        "u32" => {
            let v: Vec<u32> = data
                .iter()
                .map(|x| x.as_u64().expect("u32") as u32)
                .collect();
            Tensor::from_vec(v, shape, dev).unwrap()
        }
        "i64" => {
            let v: Vec<i64> = data.iter().map(|x| x.as_i64().expect("i64")).collect();
            Tensor::from_vec(v, shape, dev).unwrap()
        }
        other => panic!("unknown dtype {other}"),
    }
}

/// Runs the case's loss in `dtype`; returns the loss value and, when the case
/// has an expected gradient, d loss / d (first input) from backprop.
fn run(case: &Value, dtype: DType) -> (f64, Option<Vec<f64>>) {
    let inputs = &case["inputs"];
    let params = &case["params"];
    let input = |name: &str| tensor(&inputs[name], dtype);
    let temperature = || params["temperature"].as_f64().expect("temperature");
    let loss_name = case["loss"].as_str().expect("loss");
    let first = match loss_name {
        "ce" => "logits",
        "kd" | "kd_topk" | "soft_bce" => "student_logits",
        "infonce" => "student_emb",
        "feature" => "student_feat",
        _ => "student",
    };
    let var = Var::from_tensor(&input(first)).unwrap();
    let x = var.as_tensor();
    let value = match loss_name {
        "ce" => loss::ce(x, &input("labels")),
        "kd" => loss::kd(x, &input("teacher_logits"), temperature()),
        "kd_topk" => loss::kd_topk(
            x,
            &input("topk_indices"),
            &input("topk_values"),
            &input("logsumexp"),
            temperature(),
        ),
        "soft_bce" => {
            let target = input("target");
            match params["target"].as_str().expect("target kind") {
                "probs" => loss::soft_bce(x, BceTarget::Probs(&target)),
                "logits" => loss::soft_bce(
                    x,
                    BceTarget::Logits {
                        logits: &target,
                        temperature: temperature(),
                    },
                ),
                other => panic!("unknown soft_bce target {other}"),
            }
        }
        "infonce" => loss::infonce(x, &input("teacher_emb"), temperature()),
        "feature" => {
            let kind: FeatureDistance =
                serde_json::from_value(params["distance"].clone()).expect("distance parses");
            loss::feature(x, &input("teacher_feat"), kind)
        }
        "rkd_distance" => loss::rkd_distance(x, &input("teacher")),
        "rkd_angle" => loss::rkd_angle(x, &input("teacher")),
        "sp" => loss::sp(x, &input("teacher")),
        other => panic!("unknown loss {other}"),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
    assert_eq!(
        value.dims(),
        &[] as &[usize],
        "{}: loss must be a scalar",
        case["name"]
    );
    let got = value
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let grad = case.get("expected_grad").map(|_| {
        let grads = value.backward().unwrap();
        let g = grads.get(x).expect("gradient reaches the student input");
        g.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    });
    (got, grad)
}

fn check_all(dtype: DType, rel: f64, abs_floor: f64) {
    let cases = cases();
    assert!(cases.len() >= 25, "golden file lost cases");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let expected = case["expected"].as_f64().expect("expected");
        let (got, grad) = run(case, dtype);
        let err = (got - expected).abs();
        if err.is_nan() || err > rel * expected.abs() + abs_floor {
            failures.push(format!(
                "{name}: got {got}, expected {expected} (abs err {err:e})"
            ));
        }
        if let Some(grad) = grad {
            let want: Vec<f64> = case["expected_grad"]["data"]
                .as_array()
                .expect("grad data")
                .iter()
                .map(|v| v.as_f64().expect("float"))
                .collect();
            assert_eq!(grad.len(), want.len(), "{name}: gradient size");
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            let worst = grad
                .iter()
                .zip(&want)
                .fold(0f64, |m, (g, w)| m.max((g - w).abs()));
            if worst.is_nan() || worst > rel * scale + abs_floor {
                failures.push(format!(
                    "{name}: gradient max abs err {worst:e} (largest entry {scale:e})"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{dtype:?} mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn golden_values_f64() {
    check_all(DType::F64, 1e-9, 1e-12);
}

#[test]
fn golden_values_f32() {
    check_all(DType::F32, 1e-5, 1e-7);
}
