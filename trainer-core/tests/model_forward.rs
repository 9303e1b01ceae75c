//! Candle-side behaviour of the students: weight names, shapes, hidden activations, dropout,
//! gradients, and errors (not panics) for bad inputs. Numerical parity with ONNX Runtime is in
//! `trainer-eval/tests/export_parity.rs`.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder, VarMap};
use trainer_core::model::{ModelError, Student, StudentConfig};

fn build(cfg: &StudentConfig, input_dim: usize, classes: usize) -> (VarMap, Student) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let s = Student::new(cfg, input_dim, classes, vb).unwrap();
    (vm, s)
}

fn names_and_shapes(vm: &VarMap) -> Vec<(String, Vec<usize>)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<_> = data
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    v.sort();
    v
}

fn input(rows: usize, dim: usize) -> Tensor {
    // Deterministic, varied values in [-1, 1).
    let data: Vec<f32> = (0..rows * dim)
        .map(|i| ((i * 37 % 101) as f32 / 50.5) - 1.0)
        .collect();
    Tensor::from_vec(data, (rows, dim), &Device::Cpu).unwrap()
}

fn mlp(hidden: Vec<usize>, dropout: f32, input_dropout: f32) -> StudentConfig {
    StudentConfig::Mlp {
        hidden,
        dropout,
        input_dropout,
    }
}

#[test]
fn mlp_weights_have_stable_names_and_shapes() {
    let (vm, s) = build(&mlp(vec![16, 8], 0.0, 0.0), 12, 5);
    assert_eq!(
        names_and_shapes(&vm),
        vec![
            ("fc0.bias".to_string(), vec![16]),
            ("fc0.weight".to_string(), vec![16, 12]),
            ("fc1.bias".to_string(), vec![8]),
            ("fc1.weight".to_string(), vec![8, 16]),
            ("out.bias".to_string(), vec![5]),
            ("out.weight".to_string(), vec![5, 8]),
        ]
    );
    assert_eq!(s.feature_dims(), vec![16, 8]);
    assert_eq!(s.param_count(), 16 * 12 + 16 + 8 * 16 + 8 + 5 * 8 + 5);
    assert_eq!((s.input_dim(), s.num_classes()), (12, 5));
}

#[test]
fn cnn_weights_have_stable_names_and_shapes() {
    // 3x9x7 → conv(4) pool → 4x4x3 → conv(6) pool → 6x2x1 = 12 → fc 10 → 5 classes.
    let cfg = StudentConfig::Cnn {
        channels: vec![4, 6],
        hidden: 10,
        dropout: 0.0,
        input_shape: [3, 9, 7],
    };
    let (vm, s) = build(&cfg, 3 * 9 * 7, 5);
    assert_eq!(
        names_and_shapes(&vm),
        vec![
            ("conv0.bias".to_string(), vec![4]),
            ("conv0.weight".to_string(), vec![4, 3, 3, 3]),
            ("conv1.bias".to_string(), vec![6]),
            ("conv1.weight".to_string(), vec![6, 4, 3, 3]),
            ("fc.bias".to_string(), vec![10]),
            ("fc.weight".to_string(), vec![10, 12]),
            ("out.bias".to_string(), vec![5]),
            ("out.weight".to_string(), vec![5, 10]),
        ]
    );
    assert_eq!(s.feature_dims(), vec![4 * 4 * 3, 6 * 2, 10]);
    let expected: usize = [4 * 27 + 4, 6 * 36 + 6, 10 * 12 + 10, 5 * 10 + 5]
        .iter()
        .sum();
    assert_eq!(s.param_count(), expected);
    let out = s.forward(&input(3, 189), false).unwrap();
    assert_eq!(out.logits.dims(), &[3, 5]);
    let dims: Vec<Vec<usize>> = out.hidden.iter().map(|h| h.dims().to_vec()).collect();
    assert_eq!(dims, vec![vec![3, 48], vec![3, 12], vec![3, 10]]);
}

#[test]
fn mlp_hidden_are_relu_activations_feeding_the_next_layer() {
    let (vm, s) = build(&mlp(vec![16, 8], 0.0, 0.0), 12, 5);
    let x = input(4, 12);
    let out = s.forward(&x, false).unwrap();
    assert_eq!(out.logits.dims(), &[4, 5]);
    assert_eq!(out.hidden.len(), 2);
    // Recompute by hand from the VarMap's tensors: h0 = relu(x W0ᵀ + b0), etc.
    let data = vm.data().lock().unwrap();
    let lin = |x: &Tensor, p: &str| {
        let w = data[&format!("{p}.weight")].as_tensor().clone();
        let b = data[&format!("{p}.bias")].as_tensor().clone();
        x.matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
    };
    let h0 = lin(&x, "fc0").relu().unwrap();
    let h1 = lin(&h0, "fc1").relu().unwrap();
    let logits = lin(&h1, "out");
    let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(max_diff(&out.hidden[0], &h0) < 1e-6);
    assert!(max_diff(&out.hidden[1], &h1) < 1e-6);
    assert!(max_diff(&out.logits, &logits) < 1e-6);
    let min: f32 = out.hidden[0]
        .flatten_all()
        .unwrap()
        .min(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(min >= 0.0);
    // Module impl gives eval logits.
    assert!(max_diff(&Module::forward(&s, &x).unwrap(), &logits) < 1e-6);
}

#[test]
fn linear_classifier_has_no_hidden_layers() {
    let (_vm, s) = build(&mlp(vec![], 0.0, 0.0), 6, 3);
    let out = s.forward(&input(2, 6), false).unwrap();
    assert!(out.hidden.is_empty());
    assert!(s.feature_dims().is_empty());
    assert_eq!(out.logits.dims(), &[2, 3]);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (_vm, s) = build(&mlp(vec![8], 0.0, 0.0), 12, 5);
    match s.forward(&input(4, 11), false) {
        Err(ModelError::InputShape { expected: 12, got }) => assert_eq!(got, vec![4, 11]),
        other => panic!("expected InputShape, got {other:?}"),
    }
    let e = s
        .forward(&input(4, 12).reshape((4, 3, 4)).unwrap(), false)
        .unwrap_err();
    assert!(e.to_string().contains("[batch, 12]"), "{e}");
    let x64 = input(2, 12).to_dtype(DType::F64).unwrap();
    assert!(matches!(
        s.forward(&x64, true),
        Err(ModelError::InputDType(DType::F64))
    ));

    let cfg = StudentConfig::Cnn {
        channels: vec![2],
        hidden: 4,
        dropout: 0.0,
        input_shape: [1, 4, 4],
    };
    let (_vm, c) = build(&cfg, 16, 3);
    assert!(matches!(
        c.forward(&input(2, 15), false),
        Err(ModelError::InputShape { expected: 16, .. })
    ));
    assert!(c.forward(&input(2, 16), false).is_ok());
}

#[test]
fn dropout_only_in_training_and_reproducible_with_a_seed() {
    let (_vm, s) = build(&mlp(vec![256], 0.5, 0.0), 12, 5);
    let x = input(64, 12);
    let eval1 = s.forward(&x, false).unwrap();
    let eval2 = s.forward(&x, false).unwrap();
    let l1: Vec<f32> = eval1.logits.flatten_all().unwrap().to_vec1().unwrap();
    let l2: Vec<f32> = eval2.logits.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(l1, l2, "eval forward must be deterministic");

    s.seed_dropout(7);
    let t1 = s.forward(&x, true).unwrap();
    s.seed_dropout(7);
    let t2 = s.forward(&x, true).unwrap();
    let t3 = s.forward(&x, true).unwrap();
    let v = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    assert_eq!(v(&t1.logits), v(&t2.logits), "same seed, same mask");
    assert_ne!(v(&t2.logits), v(&t3.logits), "the generator moves on");
    assert_ne!(v(&t1.logits), l1, "training logits see dropout");
    // Hidden activations are taken before dropout: identical to eval.
    assert_eq!(v(&t1.hidden[0]), v(&eval1.hidden[0]));
}

#[test]
fn dropout_zeroes_about_p_and_rescales_the_rest() {
    // Input dropout on a constant input: every kept value must be exactly 1/(1-p).
    use trainer_core::model::Dropout;
    let d = Dropout::new(3);
    let x = Tensor::ones((200, 100), DType::F32, &Device::Cpu).unwrap();
    let y: Vec<f32> = d
        .apply(&x, 0.3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    let frac = zeros as f64 / y.len() as f64;
    assert!((frac - 0.3).abs() < 0.02, "dropped fraction {frac}");
    let kept = 1.0f32 / 0.7;
    assert!(y.iter().all(|&v| v == 0.0 || (v - kept).abs() < 1e-6));
    assert!(d.apply(&x, 1.0).is_err());
    assert!(d.apply(&x, -0.1).is_err());
    assert!(d.apply(&x, f32::NAN).is_err());
    let same: Vec<f32> = d
        .apply(&x, 0.0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(same.iter().all(|&v| v == 1.0));
}

#[test]
fn gradients_reach_every_weight() {
    for (cfg, dim) in [
        (mlp(vec![8, 8], 0.2, 0.1), 12),
        (
            StudentConfig::Cnn {
                channels: vec![3, 4],
                hidden: 6,
                dropout: 0.2,
                input_shape: [2, 6, 6],
            },
            72,
        ),
    ] {
        let (vm, s) = build(&cfg, dim, 4);
        let out = s.forward(&input(5, dim), true).unwrap();
        // Use the logits and every hidden tap, as a feature loss would.
        let mut loss = out.logits.sqr().unwrap().sum_all().unwrap();
        for h in &out.hidden {
            loss = (loss + h.sum_all().unwrap()).unwrap();
        }
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        for (name, var) in data.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no grad for {name}", cfg.arch_name()));
            let n: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(n.is_finite() && n > 0.0, "{name}: grad norm {n}");
        }
    }
}
