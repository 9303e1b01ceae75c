//! Relation-based losses: compare how samples of a batch relate to each other,
//! so student and teacher feature widths may differ.

use super::ops::{l2_normalize_last, off_diagonal, pairwise_distances, smooth_l1_mean, NORM_EPS};
use super::{check, LossError, LossResult};
use candle_core::Tensor;

/// Flattens `[b, ...]` to `[b, n]` after checking both inputs; returns the pair and `b`.
fn flat_pair(
    loss: &'static str,
    student: &Tensor,
    teacher: &Tensor,
    min_batch: usize,
) -> LossResult<(Tensor, Tensor, usize)> {
    let expected = "a non-empty tensor [batch, features...]";
    let b = check::batched(loss, "student", student, 2, expected)?;
    check::batched(loss, "teacher", teacher, 2, expected)?;
    check::same_batch(loss, "student", student, "teacher", teacher)?;
    check::compatible(loss, "student", student, "teacher", teacher)?;
    if b < min_batch {
        return Err(LossError::BadShape {
            loss,
            name: "student",
            shape: student.dims().to_vec(),
            expected: if min_batch == 2 {
                "a batch of at least 2 samples"
            } else {
                "a batch of at least 3 samples"
            },
        });
    }
    let s = student.reshape((b, ()))?;
    let t = teacher.detach().reshape((b, ()))?;
    Ok((s, t, b))
}

/// `x` minus its mean over the batch. Distances and angles between samples do not change,
/// but the Gram-matrix identities below subtract large nearly equal terms when the features
/// share a common offset: in f32, features at 50 ± 0.1 lose most of their digits to
/// cancellation (angle cosines off by ~0.1); centred, they keep them.
fn centred(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_sub(&x.mean_keepdim(0)?)
}

/// RKD distance loss (Park et al. 2019).
///
/// For each side, the `[b, b]` matrix of Euclidean distances between samples
/// is divided by its mean over the `b (b - 1)` off-diagonal pairs (the mean is
/// clamped at 1e-12 so identical samples give zeros, not NaN); the loss is the
/// smooth-L1 (Huber, delta 1) between the two normalised matrices, averaged
/// over all `b^2` entries as in the authors' reference code. Inputs are
/// `[b, ...]`, flattened per sample; widths may differ; `b >= 2`.
pub fn rkd_distance(student: &Tensor, teacher: &Tensor) -> LossResult<Tensor> {
    let (s, t, b) = flat_pair("rkd_distance", student, teacher, 2)?;
    let (s, t) = (centred(&s)?, centred(&t)?);
    let pairs = (b * (b - 1)) as f64;
    let normalised = |x: &Tensor| -> candle_core::Result<Tensor> {
        let d = pairwise_distances(x)?;
        let mean = d.sum_all()?.affine(1.0 / pairs, 0.0)?.maximum(NORM_EPS)?;
        d.broadcast_div(&mean)
    };
    let ds = normalised(&s)?;
    let dt = normalised(&t)?;
    Ok(smooth_l1_mean(&ds.sub(&dt)?, 1.0)?)
}

/// RKD angle loss (Park et al. 2019).
///
/// For each side, `cos[i, j, k] = <e_ij, e_ik>` with `e_ij` the unit vector
/// from sample `i` to sample `j` (zero when `j = i`); the loss is the
/// smooth-L1 (Huber, delta 1) between the two `[b, b, b]` tensors, averaged
/// over all `b^3` entries as in the reference code. Computed from the Gram
/// matrix (`<x_j - x_i, x_k - x_i> = G_jk - G_ij - G_ik + G_ii`), so memory is
/// `b^3`, not `b^2 n`; the batch is centred first (see [`centred`]). Inputs are
/// `[b, ...]`, widths may differ; `b >= 3`.
pub fn rkd_angle(student: &Tensor, teacher: &Tensor) -> LossResult<Tensor> {
    let (s, t, _) = flat_pair("rkd_angle", student, teacher, 3)?;
    let (s, t) = (centred(&s)?, centred(&t)?);
    let cs = angle_cosines(&s)?;
    let ct = angle_cosines(&t)?;
    Ok(smooth_l1_mean(&cs.sub(&ct)?, 1.0)?)
}

/// `[b, b, b]` cosines of the angle at `x_i` between `x_j` and `x_k`.
fn angle_cosines(x: &Tensor) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    let gram = x.matmul(&x.t()?)?; // [b, b]
    let half_sq = x.sqr()?.sum_keepdim(1)?.affine(0.5, 0.0)?; // [b, 1]: G_ii / 2
                                                              // a_ij = G_ij - G_ii / 2, so the numerator is G_jk - a_ij - a_ik.
    let a = gram.broadcast_sub(&half_sq)?;
    // 1 / |x_j - x_i| off the diagonal, 0 on it (a zero vector has cosine 0).
    let inv = pairwise_distances(x)?
        .maximum(NORM_EPS)?
        .recip()?
        .mul(&off_diagonal(b, x)?)?;
    let num = gram
        .unsqueeze(0)?
        .broadcast_sub(&a.unsqueeze(2)?)?
        .broadcast_sub(&a.unsqueeze(1)?)?;
    num.broadcast_mul(&inv.unsqueeze(2)?)?
        .broadcast_mul(&inv.unsqueeze(1)?)
}

/// The RKD term of a training step: `distance_weight * rkd_distance + angle_weight *
/// rkd_angle`, over batches of any size. A batch too small for a part contributes zero for
/// that part (distances need 2 samples, angles 3): the last batch of an epoch can hold 1 or
/// 2 rows (1,025 rows at batch 128), and failing the run there would lose the epoch. The
/// zero keeps the graph linked to the student, so the step still has (zero) gradients.
pub fn rkd(
    student: &Tensor,
    teacher: &Tensor,
    distance_weight: f64,
    angle_weight: f64,
) -> LossResult<Tensor> {
    let b = student.dims().first().copied().unwrap_or(0);
    // A multiplication by a zero tensor (candle drops an affine by 0 from the graph).
    let zero = || -> LossResult<Tensor> {
        let z = Tensor::zeros((), student.dtype(), student.device())?;
        Ok(student.sum_all()?.mul(&z)?)
    };
    let d = if b >= 2 {
        rkd_distance(student, teacher)?.affine(distance_weight, 0.0)?
    } else {
        zero()?
    };
    let a = if b >= 3 {
        rkd_angle(student, teacher)?.affine(angle_weight, 0.0)?
    } else {
        zero()?
    };
    Ok((d + a)?)
}

/// Similarity-preserving loss (Tung & Mori 2019).
///
/// `G = A Aᵀ` (`[b, b]`) for each side's flattened features `A`, each row
/// L2-normalised; loss `= ||G_s - G_t||_F^2 / b^2`. Inputs are `[b, ...]`,
/// widths may differ.
pub fn sp(student: &Tensor, teacher: &Tensor) -> LossResult<Tensor> {
    let (s, t, b) = flat_pair("sp", student, teacher, 1)?;
    let gs = l2_normalize_last(&s.matmul(&s.t()?)?)?;
    let gt = l2_normalize_last(&t.matmul(&t.t()?)?)?;
    Ok(gs
        .sub(&gt)?
        .sqr()?
        .sum_all()?
        .affine(1.0 / (b * b) as f64, 0.0)?)
}
