//! The fused AdamW and SGD updates against golden values from an independent numpy
//! implementation of PyTorch's update rules (`train_optim_golden.py`, output pasted below).
//! Also checks that checkpointed optimizer state continues identically.

use candle_core::{Device, Tensor, Var};
use trainer_core::optim::{Hyper, Optimizer};

const ADAMW: [[f64; 6]; 3] = [
    [
        3.950000100e-01,
        -8.900000050e-01,
        1.880000003e+00,
        0.000000000e+00,
        1.475000007e-01,
        -6.425000020e-01,
    ],
    [
        4.209445289e-01,
        -8.722150344e-01,
        1.837020998e+00,
        -3.712298916e-02,
        1.211576430e-01,
        -6.259525309e-01,
    ],
    [
        4.271522268e-01,
        -8.692388412e-01,
        1.842576621e+00,
        -5.212197021e-02,
        1.129802612e-01,
        -6.228931392e-01,
    ],
];
const SGD_NESTEROV: [[f64; 6]; 3] = [
    [
        4.800500000e-01,
        -9.601000000e-01,
        1.939200000e+00,
        0.000000000e+00,
        -3.547500000e-02,
        -6.535750000e-01,
    ],
    [
        5.133414525e-01,
        -9.601829050e-01,
        1.924397760e+00,
        -1.900000000e-01,
        -6.779254875e-02,
        -6.561503537e-01,
    ],
    [
        5.161177146e-01,
        -9.601206993e-01,
        1.956686738e+00,
        -2.489278000e-01,
        -8.480749063e-02,
        -6.562457875e-01,
    ],
];

const P0: [f32; 6] = [0.5, -1.0, 2.0, 0.0, 0.25, -0.75];
const GRADS: [[f32; 6]; 3] = [
    [0.1, -0.2, 0.3, 0.0, 1.5, -0.5],
    [-0.4, 0.1, 0.0, 2.0, -0.3, 0.25],
    [0.05, 0.05, -1.0, 0.7, 0.0, 0.1],
];
const LRS: [f64; 3] = [0.1, 0.05, 0.02];

/// Runs steps `range` of `opt` on `var`, each with gradient `GRADS[k]` (as d/dp of sum(p*g)).
fn steps(opt: &mut Optimizer, var: &Var, range: std::ops::Range<usize>, expect: &[[f64; 6]; 3]) {
    for k in range {
        let g = Tensor::from_slice(&GRADS[k], (2, 3), &Device::Cpu).expect("grad");
        let loss = var
            .as_tensor()
            .mul(&g)
            .and_then(|t| t.sum_all())
            .expect("loss");
        let grads = loss.backward().expect("backward");
        opt.step(&grads, LRS[k]).expect("step");
        let got = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values");
        for (i, (g, e)) in got.iter().zip(expect[k].iter()).enumerate() {
            assert!(
                (*g as f64 - e).abs() < 2e-6,
                "step {} elem {i}: got {g}, numpy {e}",
                k + 1
            );
        }
    }
}

fn fresh(hyper: Hyper) -> (Optimizer, Var) {
    let var = Var::from_slice(&P0, (2, 3), &Device::Cpu).expect("var");
    (Optimizer::new(hyper, vec![("w".into(), var.clone())]), var)
}

const ADAMW_HYPER: Hyper = Hyper::AdamW {
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weight_decay: 0.1,
};

const SGD_HYPER: Hyper = Hyper::Sgd {
    momentum: 0.9,
    nesterov: true,
    weight_decay: 0.01,
};

#[test]
fn adamw_matches_numpy() {
    let (mut opt, var) = fresh(ADAMW_HYPER);
    steps(&mut opt, &var, 0..3, &ADAMW);
}

#[test]
fn sgd_nesterov_matches_numpy() {
    let (mut opt, var) = fresh(SGD_HYPER);
    steps(&mut opt, &var, 0..3, &SGD_NESTEROV);
}

#[test]
fn optimizer_state_round_trips() {
    for (hyper, expect) in [(ADAMW_HYPER, &ADAMW), (SGD_HYPER, &SGD_NESTEROV)] {
        let (mut opt, var) = fresh(hyper);
        steps(&mut opt, &var, 0..1, expect);
        let state = opt.state_tensors().expect("state");
        let snapshot = var.as_tensor().copy().expect("copy");
        // A new optimizer over a new variable restored from the snapshot continues identically.
        let var2 = Var::from_tensor(&snapshot).expect("var");
        let mut opt2 = Optimizer::new(hyper, vec![("w".into(), var2.clone())]);
        opt2.load_state(&state, opt.steps()).expect("load");
        steps(&mut opt2, &var2, 1..3, expect);
    }
}

#[test]
fn large_parameters_split_across_threads_match_numpy() {
    // 70_002 elements (above the two-thread threshold): the 6-element pattern repeated, so each
    // element must follow the golden trajectory of its position mod 6.
    let reps = 11_667;
    let tile = |v: &[f32; 6]| -> Vec<f32> { (0..reps).flat_map(|_| v.iter().copied()).collect() };
    for (hyper, expect) in [(ADAMW_HYPER, &ADAMW), (SGD_HYPER, &SGD_NESTEROV)] {
        let var = Var::from_vec(tile(&P0), reps * 6, &Device::Cpu).expect("var");
        let mut opt = Optimizer::new(hyper, vec![("w".into(), var.clone())]);
        for k in 0..3 {
            let g = Tensor::from_vec(tile(&GRADS[k]), reps * 6, &Device::Cpu).expect("grad");
            let grads = var
                .as_tensor()
                .mul(&g)
                .and_then(|t| t.sum_all())
                .and_then(|l| l.backward())
                .expect("backward");
            opt.step(&grads, LRS[k]).expect("step");
            let got = var.as_tensor().to_vec1::<f32>().expect("values");
            for (i, g) in got.iter().enumerate() {
                let e = expect[k][i % 6];
                assert!(
                    (*g as f64 - e).abs() < 2e-6,
                    "step {} elem {i}: got {g}, numpy {e}",
                    k + 1
                );
            }
        }
    }
}
