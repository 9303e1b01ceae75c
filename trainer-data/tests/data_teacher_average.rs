//! Multi-teacher soft targets: the averaged "logits" the trainer feeds to kd / soft_bce must
//! reproduce the weighted average of the teachers' probabilities computed by numpy
//! (`data_teacher_average.py`, output pasted below).

use trainer_data::dataset::average_soft_targets;
use trainer_data::Matrix;

const SOFTMAX_AVG: [f64; 6] = [
    4.598343600251e-01,
    2.688696353312e-01,
    2.712960046438e-01,
    1.653954444592e-01,
    5.621983953649e-01,
    2.724061601760e-01,
];
const SIGMOID_AVG: [f64; 6] = [
    6.333135521247e-01,
    4.780866789239e-01,
    5.414510005905e-01,
    5.408197770673e-01,
    7.525360945297e-01,
    4.728933069060e-01,
];

fn teachers() -> Vec<(f64, Matrix)> {
    let m = |v: [f32; 6]| Matrix {
        rows: 2,
        cols: 3,
        data: v.to_vec(),
    };
    vec![
        (2.0, m([2.0, -1.0, 0.5, 0.0, 3.0, -2.0])),
        (1.0, m([-0.5, 1.5, 0.0, 1.0, 1.0, 4.0])),
    ]
}

const T: f64 = 2.0;

#[test]
fn softmax_average_matches_numpy() {
    let out = average_soft_targets(&teachers(), T, false);
    for r in 0..2 {
        let row: Vec<f64> = out.row(r).iter().map(|&v| v as f64 / T).collect();
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for c in 0..3 {
            let p = (row[c] - max).exp() / sum;
            let e = SOFTMAX_AVG[r * 3 + c];
            assert!((p - e).abs() < 1e-6, "row {r} class {c}: {p} vs numpy {e}");
        }
    }
}

#[test]
fn sigmoid_average_matches_numpy() {
    let out = average_soft_targets(&teachers(), T, true);
    for (i, &z) in out.data.iter().enumerate() {
        let p = 1.0 / (1.0 + (-(z as f64) / T).exp());
        let e = SIGMOID_AVG[i];
        assert!((p - e).abs() < 1e-6, "elem {i}: {p} vs numpy {e}");
    }
}
