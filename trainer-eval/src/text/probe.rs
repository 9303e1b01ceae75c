//! The linear probe: multinomial logistic regression on frozen embeddings, trained by
//! full-batch gradient descent — deterministic (zero start, no sampling, so no seed).
//!
//! - Features are standardised with the train rows' per-dimension mean and standard deviation
//!   (a dimension with deviation below 1e-12 is only centred).
//! - Objective: mean cross-entropy of `softmax(x W + b)` + `l2 / 2 * |W|²` (bias not penalised);
//!   strictly convex, so it has one minimum whatever the optimiser.
//! - Step size `1 / (λ / 2 + l2)`, with `λ` the largest eigenvalue of `X̃ᵀX̃ / n`
//!   (`X̃` = features with a column of ones), estimated by `power_iterations` rounds of power
//!   iteration from the all-ones vector: Böhning's bound on the Hessian, so every step descends.
//! - `epochs` steps, each over all train rows.
//!
//! `scripts/golden/text_eval.py` repeats these steps in numpy and also solves the same
//! objective by Newton's method (the golden values of `tests/text_eval.rs`).

use serde::{Deserialize, Serialize};

use super::metrics::{check_labels, Embeddings};
use super::TextEvalError;

/// Settings of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Full-batch gradient steps.
    pub epochs: usize,
    /// L2 penalty on the weights (on the mean loss).
    pub l2: f64,
    /// Power-iteration rounds for the step size.
    pub power_iterations: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 300,
            l2: 1e-3,
            power_iterations: 50,
        }
    }
}

/// A fitted probe: the standardisation and the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbe {
    /// Classes.
    pub classes: usize,
    /// Per-dimension train mean.
    pub mean: Vec<f64>,
    /// Per-dimension divisor (train standard deviation, or 1).
    pub scale: Vec<f64>,
    /// Weights, `[classes, dim]` row-major.
    pub weights: Vec<f64>,
    /// Biases, one per class.
    pub bias: Vec<f64>,
    /// The step size used.
    pub lr: f64,
    /// The objective on the train rows after the last step.
    pub train_loss: f64,
}

/// Softmax of `z` in place (max subtracted first).
fn softmax(z: &mut [f64]) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    z.iter_mut().for_each(|v| *v /= s);
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LinearProbe {
    /// Fits the probe on `train` rows with class indices `labels` (below `classes`).
    pub fn fit(
        train: &Embeddings,
        labels: &[usize],
        classes: usize,
        cfg: &ProbeConfig,
    ) -> Result<Self, TextEvalError> {
        check_labels("probe train", train, labels, classes)?;
        if train.rows == 0 || train.dim == 0 || classes < 2 {
            return Err(TextEvalError::Input(format!(
                "a probe needs train rows, a width and 2+ classes; got {} rows of width {}, {classes} classes",
                train.rows, train.dim
            )));
        }
        if !(cfg.l2 >= 0.0 && cfg.l2.is_finite()) {
            return Err(TextEvalError::Input(format!(
                "probe l2 = {} must be >= 0",
                cfg.l2
            )));
        }
        let (n, d, k) = (train.rows, train.dim, classes);
        let mut mean = vec![0.0; d];
        for i in 0..n {
            for (m, &v) in mean.iter_mut().zip(train.row(i)) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; d];
        for i in 0..n {
            for ((s, &v), m) in var.iter_mut().zip(train.row(i)).zip(&mean) {
                *s += (v as f64 - m) * (v as f64 - m);
            }
        }
        let scale: Vec<f64> = var
            .iter()
            .map(|&s| {
                let sd = (s / n as f64).sqrt();
                if sd < 1e-12 {
                    1.0
                } else {
                    sd
                }
            })
            .collect();
        let mut probe = Self {
            classes,
            mean,
            scale,
            weights: vec![0.0; k * d],
            bias: vec![0.0; k],
            lr: 0.0,
            train_loss: 0.0,
        };
        let x: Vec<f64> = (0..n)
            .flat_map(|i| probe.standardise(train.row(i)))
            .collect();
        let lambda = largest_eigenvalue(&x, n, d, cfg.power_iterations);
        probe.lr = 1.0 / (0.5 * lambda + cfg.l2);
        let mut grad_w = vec![0.0; k * d];
        let mut grad_b = vec![0.0; k];
        let mut p = vec![0.0; k];
        for _ in 0..cfg.epochs {
            grad_w.iter_mut().for_each(|g| *g = 0.0);
            grad_b.iter_mut().for_each(|g| *g = 0.0);
            for (i, &y) in labels.iter().enumerate() {
                let xi = &x[i * d..(i + 1) * d];
                probe.logits_into(xi, &mut p);
                softmax(&mut p);
                p[y] -= 1.0;
                for (c, &g) in p.iter().enumerate() {
                    grad_b[c] += g;
                    for (gw, &v) in grad_w[c * d..(c + 1) * d].iter_mut().zip(xi) {
                        *gw += g * v;
                    }
                }
            }
            let inv_n = 1.0 / n as f64;
            for (w, g) in probe.weights.iter_mut().zip(&grad_w) {
                *w -= probe.lr * (g * inv_n + cfg.l2 * *w);
            }
            for (b, g) in probe.bias.iter_mut().zip(&grad_b) {
                *b -= probe.lr * g * inv_n;
            }
        }
        let mut ce = 0.0;
        for (i, &y) in labels.iter().enumerate() {
            probe.logits_into(&x[i * d..(i + 1) * d], &mut p);
            softmax(&mut p);
            ce -= p[y].max(f64::MIN_POSITIVE).ln();
        }
        probe.train_loss =
            ce / n as f64 + 0.5 * cfg.l2 * probe.weights.iter().map(|w| w * w).sum::<f64>();
        Ok(probe)
    }

    fn standardise(&self, row: &[f32]) -> Vec<f64> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((&v, m), s)| (v as f64 - m) / s)
            .collect()
    }

    fn logits_into(&self, x: &[f64], out: &mut [f64]) {
        let d = self.mean.len();
        for (c, o) in out.iter_mut().enumerate() {
            *o = dot(&self.weights[c * d..(c + 1) * d], x) + self.bias[c];
        }
    }

    /// Class probabilities of each row, `[rows, classes]` row-major.
    pub fn probabilities(&self, x: &Embeddings) -> Result<Vec<f64>, TextEvalError> {
        if x.dim != self.mean.len() {
            return Err(TextEvalError::Input(format!(
                "probe fitted on width {}, given rows of width {}",
                self.mean.len(),
                x.dim
            )));
        }
        let mut out = vec![0.0; x.rows * self.classes];
        for (i, p) in out.chunks_mut(self.classes).enumerate() {
            self.logits_into(&self.standardise(x.row(i)), p);
            softmax(p);
        }
        Ok(out)
    }

    /// Accuracy on `x` with true classes `labels` (argmax; ties: lowest class).
    pub fn accuracy(&self, x: &Embeddings, labels: &[usize]) -> Result<f64, TextEvalError> {
        check_labels("probe test", x, labels, self.classes)?;
        if x.rows == 0 {
            return Err(TextEvalError::Input("no rows to score the probe on".into()));
        }
        let p = self.probabilities(x)?;
        let correct = p
            .chunks(self.classes)
            .zip(labels)
            .filter(|(row, &y)| {
                let mut best = 0;
                for (c, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = c;
                    }
                }
                best == y
            })
            .count();
        Ok(correct as f64 / x.rows as f64)
    }
}

/// Largest eigenvalue of `X̃ᵀX̃ / n`, `X̃ = [x, 1]` (`x`: `[n, d]` row-major), by power
/// iteration from the all-ones vector: `‖A v‖` after the last round.
fn largest_eigenvalue(x: &[f64], n: usize, d: usize, rounds: usize) -> f64 {
    let mut v = vec![1.0 / ((d + 1) as f64).sqrt(); d + 1];
    let mut lambda = 0.0;
    for _ in 0..rounds.max(1) {
        let mut u = vec![0.0; d + 1];
        for i in 0..n {
            let xi = &x[i * d..(i + 1) * d];
            let t = dot(xi, &v[..d]) + v[d];
            for (uj, &xj) in u[..d].iter_mut().zip(xi) {
                *uj += t * xj;
            }
            u[d] += t;
        }
        u.iter_mut().for_each(|e| *e /= n as f64);
        lambda = u.iter().map(|e| e * e).sum::<f64>().sqrt();
        if lambda == 0.0 {
            break;
        }
        v = u.into_iter().map(|e| e / lambda).collect();
    }
    // The ones column puts 1 on the diagonal of `X̃ᵀX̃ / n`, so λ >= 1 in exact arithmetic.
    lambda.max(f64::MIN_POSITIVE)
}
