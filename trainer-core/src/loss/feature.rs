//! Feature-based losses: distances between student and teacher inner features
//! (FitNets-style hints). Shapes must match exactly: project the student first.

use super::ops::{l2_normalize_last, smooth_l1_mean};
use super::response::kd_unchecked;
use super::{check, LossError, LossResult};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// How [`feature()`] compares a student feature tensor with the teacher's.
///
/// In config: `{ kind = "mse" }`, `{ kind = "l1" }`, `{ kind = "smooth_l1",
/// beta = 1.0 }`, `{ kind = "cosine" }`, `{ kind = "kl", temperature = 2.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureDistance {
    /// Mean squared error over all elements.
    Mse,
    /// Mean absolute error over all elements.
    L1,
    /// Mean smooth-L1 (Huber) over all elements, PyTorch's `smooth_l1_loss(beta)`;
    /// `beta = 0` is L1.
    SmoothL1 {
        /// Where the penalty switches from quadratic to linear (>= 0).
        #[serde(default = "default_beta")]
        beta: f64,
    },
    /// `mean_i (1 - cos(s_i, t_i))` with each sample flattened to a vector.
    Cosine,
    /// [`kd`](super::kd) over each sample's flattened feature vector, treated as logits.
    Kl {
        /// Softmax temperature (> 0).
        temperature: f64,
    },
}

fn default_beta() -> f64 {
    1.0
}

/// Distance between `student_feat` and `teacher_feat` (same shape `[b, ...]`,
/// teacher detached). Element-wise kinds average over all elements; `Cosine`
/// and `Kl` flatten each sample to a vector and average over the batch.
pub fn feature(
    student_feat: &Tensor,
    teacher_feat: &Tensor,
    kind: FeatureDistance,
) -> LossResult<Tensor> {
    const LOSS: &str = "feature";
    let expected = "a non-empty tensor [batch, ...]";
    let b = check::batched(LOSS, "student_feat", student_feat, 1, expected)?;
    check::batched(LOSS, "teacher_feat", teacher_feat, 1, expected)?;
    check::matching(
        LOSS,
        "student_feat",
        student_feat,
        "teacher_feat",
        teacher_feat,
    )?;
    let teacher = teacher_feat.detach();
    let loss = match kind {
        FeatureDistance::Mse => student_feat.sub(&teacher)?.sqr()?.mean_all()?,
        FeatureDistance::L1 => student_feat.sub(&teacher)?.abs()?.mean_all()?,
        FeatureDistance::SmoothL1 { beta } => {
            if !(beta.is_finite() && beta >= 0.0) {
                return Err(LossError::BadParam {
                    loss: LOSS,
                    name: "beta",
                    value: beta,
                    expected: "a finite number >= 0",
                });
            }
            let diff = student_feat.sub(&teacher)?;
            if beta == 0.0 {
                diff.abs()?.mean_all()?
            } else {
                smooth_l1_mean(&diff, beta)?
            }
        }
        FeatureDistance::Cosine => {
            let s = l2_normalize_last(&student_feat.reshape((b, ()))?)?;
            let t = l2_normalize_last(&teacher.reshape((b, ()))?)?;
            s.mul(&t)?.sum_all()?.affine(-1.0 / b as f64, 1.0)?
        }
        FeatureDistance::Kl { temperature } => {
            let t = check::positive(LOSS, "temperature", temperature)?;
            kd_unchecked(
                &student_feat.reshape((b, ()))?,
                &teacher.reshape((b, ()))?,
                t,
                b,
            )?
        }
    };
    Ok(loss)
}
