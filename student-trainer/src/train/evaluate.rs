//! Held-out evaluation of a candle student: eval-mode logits in chunks, scored on the host.

use candle_core::{Device, Tensor};

use super::TrainError;
use crate::metrics::{score_logits, EvalMetrics};
use trainer_core::model::Student;
use trainer_data::EvalData;

/// The student's eval-mode logits for all rows of `x` (`rows × classes`, row-major).
pub fn student_logits(
    student: &Student,
    x: &[f32],
    dim: usize,
    chunk_rows: usize,
) -> Result<Vec<f32>, TrainError> {
    let rows = x.len() / dim.max(1);
    let mut out = Vec::with_capacity(rows * student.num_classes());
    for start in (0..rows).step_by(chunk_rows.max(1)) {
        let end = (start + chunk_rows).min(rows);
        let t = Tensor::from_slice(&x[start * dim..end * dim], (end - start, dim), &Device::Cpu)?;
        let o = student.forward(&t, false)?;
        let v = o.logits.flatten_all().and_then(|l| l.to_vec1::<f32>())?;
        out.extend_from_slice(&v);
    }
    Ok(out)
}

/// Metrics of `student` on `eval`.
pub fn evaluate(
    student: &Student,
    eval: &EvalData,
    chunk_rows: usize,
    kd_temperature: f64,
) -> Result<EvalMetrics, TrainError> {
    let logits = student_logits(student, &eval.input.data, eval.input.cols, chunk_rows)?;
    Ok(score_logits(
        &logits,
        student.num_classes(),
        &eval.labels,
        eval.teacher.as_ref().map(|(_, t)| t),
        kd_temperature,
    ))
}
