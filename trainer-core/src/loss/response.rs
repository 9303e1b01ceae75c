//! Response-based losses: on the outputs (logits or embeddings) of student and teacher.

use super::ops::{l2_normalize_last, log_softmax_last, logsumexp_keepdim};
use super::{check, LossError, LossResult};
use candle_core::{DType, Tensor, D};

/// Teacher log-probabilities below this are clamped before being multiplied by
/// their probability; `exp` of it is exactly 0 in every float dtype, so the
/// clamp only turns `0 * -inf` (NaN) into the intended `0 * log 0 = 0`.
const LOG_ZERO: f64 = -1e4;

/// Hard-label cross entropy: `mean_i [-log softmax(logits_i)[labels_i]]`.
///
/// `logits` is `[b, c]` (float), `labels` is `[b]` of u32/i64/u8 class indices in
/// `0..c`; labels are checked on the host (candle's gather reads `u32::MAX`
/// as a zero row instead of failing).
pub fn ce(logits: &Tensor, labels: &Tensor) -> LossResult<Tensor> {
    const LOSS: &str = "ce";
    let (b, c) = check::matrix(LOSS, "logits", logits)?;
    check::shape_rule(
        LOSS,
        "logits",
        logits,
        "labels",
        labels,
        labels.dims() == [b],
        "labels must be [batch] for logits [batch, classes]",
    )?;
    check::class_indices(LOSS, "labels", labels, c, false)?;
    let log_p = log_softmax_last(logits)?;
    let picked = log_p.gather(&labels.unsqueeze(1)?.contiguous()?, 1)?;
    Ok(picked.sum_all()?.affine(-1.0 / b as f64, 0.0)?)
}

/// Knowledge distillation (Hinton et al. 2015):
/// `T^2 * mean_i sum_j q_ij (log q_ij - log p_ij)` with `q = softmax(teacher/T)`,
/// `p = softmax(student/T)`.
///
/// Both logits are `[b, c]`. The KL is summed over classes and averaged over
/// the batch ("batchmean"); the `T^2` factor keeps gradient magnitudes
/// comparable across temperatures. The teacher is a constant (detached), so
/// `d loss / d student = (T / b) (p - q)`.
pub fn kd(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> LossResult<Tensor> {
    const LOSS: &str = "kd";
    let (b, _) = check::matrix(LOSS, "student_logits", student_logits)?;
    check::matrix(LOSS, "teacher_logits", teacher_logits)?;
    check::matching(
        LOSS,
        "student_logits",
        student_logits,
        "teacher_logits",
        teacher_logits,
    )?;
    let t = check::positive(LOSS, "temperature", temperature)?;
    kd_unchecked(student_logits, teacher_logits, t, b)
}

/// [`kd`] after validation; shared with the feature-KL distance.
pub(crate) fn kd_unchecked(
    student: &Tensor,
    teacher: &Tensor,
    t: f64,
    b: usize,
) -> LossResult<Tensor> {
    let log_p = log_softmax_last(&student.affine(1.0 / t, 0.0)?)?;
    let log_q = log_softmax_last(&teacher.detach().affine(1.0 / t, 0.0)?)?;
    kl_sum(&log_q, &log_p, t * t / b as f64)
}

/// `scale * sum(q (log q - log p))` for teacher log-probs `log_q` (constant)
/// and student log-probs `log_p`, with `0 log 0 = 0`.
fn kl_sum(log_q: &Tensor, log_p: &Tensor, scale: f64) -> LossResult<Tensor> {
    let q = log_q.exp()?;
    let log_q = log_q.maximum(LOG_ZERO)?;
    let kl = q.mul(&log_q.sub(log_p)?)?.sum_all()?;
    Ok(kl.affine(scale, 0.0)?)
}

/// KD from a teacher's stored top-K logits (the label store keeps only the K
/// largest logits and the log-partition of all `c` of them).
///
/// Inputs: `student_logits` `[b, c]`; `topk_indices` `[b, k]` (u32/i64/u8,
/// distinct classes in `0..c` per row, checked); `topk_values` `[b, k]`, the
/// teacher's raw (untempered) logits of those classes; `logsumexp` `[b]`,
/// `L = log sum_j exp(z_j)` over all `c` raw teacher logits.
///
/// The KL is taken over `k + 1` buckets: the `k` stored classes and one
/// "tail" bucket holding the other `c - k` classes together.
///
/// Teacher side (constant). At `T = 1` everything is exact: head probability
/// `exp(v_i - L)`, tail mass `m = 1 - sum_i exp(v_i - L)` (clamped to
/// `[0, 1]`). At `T != 1` the tempered partition needs the tail logits, which
/// were not stored; **approximation**: the `c - k` tail logits are taken to be
/// equal, at the value `u = L + log(m / (c - k))` that reproduces the exact
/// `T = 1` tail mass. (If the true tail logits are all below the smallest
/// stored one, so is `u`.) Then, with `lse_T = log(sum_i exp(v_i / T) +
/// (c - k) exp(u / T))`, the teacher's buckets are
/// `q_i = exp(v_i / T - lse_T)` and `q_tail = (c - k) exp(u / T - lse_T)`;
/// they sum to 1. For `T > 1` equal tail logits maximise the tempered tail
/// mass (Jensen), so this is an upper bound on the true `q_tail`.
///
/// Student side (exact): `p_i = softmax(s / T)` at the stored classes and
/// `p_tail = sum` of its softmax over the other `c - k` classes, computed as a
/// log-sum-exp over those classes alone (stable even when the head holds
/// almost all the mass).
///
/// Loss: `T^2 * mean_b [sum_i q_i (log q_i - log p_i) + q_tail (log q_tail -
/// log p_tail)]`. With `k = c` there is no tail bucket and this is exactly
/// [`kd`] on the full teacher logits (`L` is then unused).
///
/// The teacher buckets are computed on the host in f64 (`b (k + 1)` numbers;
/// in f32 the tail mass `1 - sum exp(v - L)` loses most of its digits when the
/// tail is small). Non-finite stored values, or an `L` clearly below the
/// log-sum-exp of the stored values (i.e. not the partition of all `c` logits
/// at T = 1), are errors; rounding-sized excesses are clamped to `m = 0`.
pub fn kd_topk(
    student_logits: &Tensor,
    topk_indices: &Tensor,
    topk_values: &Tensor,
    logsumexp: &Tensor,
    temperature: f64,
) -> LossResult<Tensor> {
    const LOSS: &str = "kd_topk";
    let (b, c) = check::matrix(LOSS, "student_logits", student_logits)?;
    let (vb, k) = check::matrix(LOSS, "topk_values", topk_values)?;
    check::compatible(
        LOSS,
        "student_logits",
        student_logits,
        "topk_values",
        topk_values,
    )?;
    check::compatible(
        LOSS,
        "student_logits",
        student_logits,
        "logsumexp",
        logsumexp,
    )?;
    check::shape_rule(
        LOSS,
        "student_logits",
        student_logits,
        "topk_values",
        topk_values,
        vb == b && k <= c,
        "topk_values must be [batch, k] with k <= classes",
    )?;
    check::same_shape(
        LOSS,
        "topk_values",
        topk_values,
        "topk_indices",
        topk_indices,
    )?;
    check::shape_rule(
        LOSS,
        "student_logits",
        student_logits,
        "logsumexp",
        logsumexp,
        logsumexp.dims() == [b],
        "logsumexp must be [batch]",
    )?;
    check::class_indices(LOSS, "topk_indices", topk_indices, c, true)?;
    let t = check::positive(LOSS, "temperature", temperature)?;
    let inv_t = 1.0 / t;
    let indices = topk_indices.contiguous()?;

    // Teacher buckets (constants), on the host in f64: the tail mass
    // `1 - sum exp(v - L)` cancels badly in f32 when the tail is small.
    let values = topk_values
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let lse = logsumexp.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let buckets = if k == c { k } else { k + 1 };
    let log_q = teacher_log_buckets(&values, &lse, c, k, t)?;
    let log_q = Tensor::from_vec(log_q, (b, buckets), student_logits.device())?
        .to_dtype(student_logits.dtype())?;

    // Student: tempered log-probs of the stored classes ...
    let s_t = student_logits.affine(inv_t, 0.0)?;
    let s_lse = logsumexp_keepdim(&s_t, D::Minus1)?; // [b, 1]
    let s_head = s_t.gather(&indices, 1)?.broadcast_sub(&s_lse)?; // [b, k]
    if k == c {
        return kl_sum(&log_q, &s_head, t * t / b as f64);
    }
    // ... and of the tail: log-sum-exp over the non-stored classes only (stored
    // ones pushed to -inf by an additive mask, which passes them no gradient).
    let mask_src =
        Tensor::zeros((b, k), s_t.dtype(), s_t.device())?.affine(0.0, f64::NEG_INFINITY)?;
    let mask =
        Tensor::zeros((b, c), s_t.dtype(), s_t.device())?.scatter_add(&indices, &mask_src, 1)?;
    let s_tail = logsumexp_keepdim(&s_t.add(&mask)?, D::Minus1)?.sub(&s_lse)?; // [b, 1]
    let log_p = Tensor::cat(&[&s_head, &s_tail], 1)?;
    kl_sum(&log_q, &log_p, t * t / b as f64)
}

/// The teacher's bucket log-probabilities for [`kd_topk`], row-major
/// `[b, k]` (k = c) or `[b, k + 1]` (tail last), as documented there.
fn teacher_log_buckets(
    values: &[f64],
    lse: &[f64],
    c: usize,
    k: usize,
    t: f64,
) -> LossResult<Vec<f64>> {
    const LOSS: &str = "kd_topk";
    let inv_t = 1.0 / t;
    let tail_count = (c - k) as f64;
    let mut out = Vec::with_capacity(lse.len() * (k + 1));
    for (row, (v, &l)) in values.chunks(k).zip(lse).enumerate() {
        if let Some(&bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(LossError::NonFinite {
                loss: LOSS,
                name: "topk_values",
                row,
                value: bad,
            });
        }
        let start = out.len();
        out.extend(v.iter().map(|x| x * inv_t));
        if k < c {
            if !l.is_finite() {
                return Err(LossError::NonFinite {
                    loss: LOSS,
                    name: "logsumexp",
                    row,
                    value: l,
                });
            }
            // log sum_i exp(v_i - L), shifted by max(v) so only O(1) numbers meet.
            let v_max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let head_log_mass = v.iter().map(|x| (x - v_max).exp()).sum::<f64>().ln() - (l - v_max);
            // Rounding of stored f32 values can push it a hair above 0; more
            // than that means L is not the log-partition of all the logits.
            if head_log_mass > 1e-3 {
                return Err(LossError::Inconsistent {
                    loss: LOSS,
                    row,
                    what: format!(
                        "logsumexp {l} is below the log-sum-exp of the top-k values ({}); \
                         it must cover all classes at temperature 1",
                        l + head_log_mass
                    ),
                });
            }
            let tail_mass = (-head_log_mass.exp_m1()).clamp(0.0, 1.0);
            // log((c-k) exp(u/T)) with u = L + log(m / (c-k)); -inf when m = 0.
            out.push((l + tail_mass.ln()) * inv_t + tail_count.ln() * (1.0 - inv_t));
        }
        let z = &mut out[start..];
        let z_max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse_t = z_max + z.iter().map(|x| (x - z_max).exp()).sum::<f64>().ln();
        z.iter_mut().for_each(|x| *x -= lse_t);
    }
    Ok(out)
}

/// Soft-target source for [`soft_bce`].
#[derive(Debug, Clone, Copy)]
pub enum BceTarget<'a> {
    /// Target probabilities in `[0, 1]`, same shape as the student logits; the
    /// student logits are used as they are (no temperature, no scaling).
    Probs(&'a Tensor),
    /// Teacher logits: targets are `sigmoid(teacher / T)`, the student logits
    /// are softened the same way (`student / T`) and the loss is scaled by
    /// `T^2`, as in [`kd`], so gradient size does not shrink with `T`.
    Logits {
        logits: &'a Tensor,
        temperature: f64,
    },
}

/// Binary cross entropy with logits against soft (multi-label) targets.
///
/// Per element `max(x, 0) - x y + log(1 + exp(-|x|))`, which equals
/// `-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]` but never takes the log
/// of an underflowed sigmoid, so it stays finite (value and gradient) for
/// logits of any size (candle-nn's version NaNs at |x| ~ 100, issue #2561).
/// Summed over all non-batch elements (labels), averaged over the batch
/// (dim 0), like [`kd`]. See [`BceTarget`] for where `x` and `y` come from.
pub fn soft_bce(student_logits: &Tensor, target: BceTarget<'_>) -> LossResult<Tensor> {
    const LOSS: &str = "soft_bce";
    let b = check::batched(
        LOSS,
        "student_logits",
        student_logits,
        1,
        "a non-empty tensor [batch, ...]",
    )?;
    let (x, y, scale) = match target {
        BceTarget::Probs(probs) => {
            check::float(LOSS, "target_probs", probs)?;
            check::matching(
                LOSS,
                "student_logits",
                student_logits,
                "target_probs",
                probs,
            )?;
            (student_logits.clone(), probs.detach(), 1.0)
        }
        BceTarget::Logits {
            logits,
            temperature,
        } => {
            check::float(LOSS, "teacher_logits", logits)?;
            check::matching(
                LOSS,
                "student_logits",
                student_logits,
                "teacher_logits",
                logits,
            )?;
            let t = check::positive(LOSS, "temperature", temperature)?;
            let y = candle_nn::ops::sigmoid(&logits.detach().affine(1.0 / t, 0.0)?)?;
            (student_logits.affine(1.0 / t, 0.0)?, y, t * t)
        }
    };
    let softplus_neg_abs = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let per_elem = x.relu()?.sub(&x.mul(&y)?)?.add(&softplus_neg_abs)?;
    Ok(per_elem.sum_all()?.affine(scale / b as f64, 0.0)?)
}

/// InfoNCE with in-batch negatives (student → teacher direction).
///
/// Both embeddings are `[b, d]` (project the student first if dims differ)
/// and are L2-normalised per row; `logits = s tᵀ / τ` (`[b, b]`); the loss is
/// `mean_i [logsumexp_j logits_ij - logits_ii]`, i.e. cross entropy where row
/// `i`'s positive is teacher sample `i` and the other rows are negatives.
/// The teacher embeddings are constants.
pub fn infonce(student_emb: &Tensor, teacher_emb: &Tensor, temperature: f64) -> LossResult<Tensor> {
    const LOSS: &str = "infonce";
    check::matrix(LOSS, "student_emb", student_emb)?;
    check::matrix(LOSS, "teacher_emb", teacher_emb)?;
    check::matching(LOSS, "student_emb", student_emb, "teacher_emb", teacher_emb)?;
    let tau = check::positive(LOSS, "temperature", temperature)?;
    let s = l2_normalize_last(student_emb)?;
    let t = l2_normalize_last(&teacher_emb.detach())?;
    let logits = s.matmul(&t.t()?)?.affine(1.0 / tau, 0.0)?;
    // The diagonal of `logits`, as row-wise dot products (no [b, b] mask).
    let positives = s.mul(&t)?.sum_keepdim(1)?.affine(1.0 / tau, 0.0)?;
    Ok(logsumexp_keepdim(&logits, D::Minus1)?
        .sub(&positives)?
        .mean_all()?)
}
