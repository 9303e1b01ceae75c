//! Scores logits on the host, in f64: misclassifications, accuracy, cross-entropy with the
//! hard labels, top-1 agreement with the teacher and the KD loss against it.

use serde::{Deserialize, Serialize};

use trainer_data::Target;

/// Held-out metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalMetrics {
    /// Rows evaluated.
    pub rows: usize,
    /// Misclassified rows.
    pub errors: usize,
    /// `1 - errors / rows`.
    pub accuracy: f64,
    /// Mean cross-entropy with the hard labels.
    pub ce: f64,
    /// Fraction of rows where the student's top-1 class is the teacher's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Mean KD loss (batchmean KL · T²) against full teacher logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kd: Option<f64>,
    /// Median ONNX Runtime inference throughput over the rows, when timed (`eval --timing-rounds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infer_rows_per_s: Option<f64>,
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn log_softmax(row: &[f32], t: f64, out: &mut Vec<f64>) {
    out.clear();
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 / t));
    let lse = row
        .iter()
        .map(|&v| (v as f64 / t - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    out.extend(row.iter().map(|&v| v as f64 / t - lse));
}

/// Metrics of `logits` (`rows × classes`, row-major) against `labels`, and against the
/// teacher's logits when given (`kd_temperature` for the KD loss; top-k teachers give
/// agreement only).
pub fn score_logits(
    logits: &[f32],
    classes: usize,
    labels: &[u32],
    teacher: Option<&Target>,
    kd_temperature: f64,
) -> EvalMetrics {
    let rows = labels.len();
    let mut errors = 0usize;
    let mut ce = 0f64;
    let mut agree = 0usize;
    let mut kd = 0f64;
    let (mut ls, mut lq) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let row = &logits[r * classes..(r + 1) * classes];
        let pred = argmax(row);
        if pred != labels[r] as usize {
            errors += 1;
        }
        log_softmax(row, 1.0, &mut ls);
        ce -= ls[labels[r] as usize];
        match teacher {
            Some(Target::Dense(m)) => {
                let trow = m.row(r);
                if argmax(trow) == pred {
                    agree += 1;
                }
                log_softmax(row, kd_temperature, &mut ls);
                log_softmax(trow, kd_temperature, &mut lq);
                kd += lq
                    .iter()
                    .zip(&ls)
                    .map(|(q, p)| q.exp() * (q - p))
                    .sum::<f64>();
            }
            Some(Target::TopK {
                indices, values, ..
            }) => {
                let k = values.cols;
                let top = indices[r * k + argmax(values.row(r))] as usize;
                if top == pred {
                    agree += 1;
                }
            }
            // Eval targets come from the eval set, never from a served teacher.
            Some(Target::Served { .. }) | None => {}
        }
    }
    let n = rows.max(1) as f64;
    EvalMetrics {
        rows,
        errors,
        accuracy: 1.0 - errors as f64 / n,
        ce: ce / n,
        agreement: teacher.map(|_| agree as f64 / n),
        kd: match teacher {
            Some(Target::Dense(_)) => Some(kd * kd_temperature * kd_temperature / n),
            _ => None,
        },
        infer_rows_per_s: None,
    }
}
