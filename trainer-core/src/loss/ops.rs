//! Differentiable building blocks shared by the loss families.

use candle_core::{Result, Tensor, D};

/// Norms are clamped to at least this before dividing (as `F.normalize`).
pub(crate) const NORM_EPS: f64 = 1e-12;

/// `log(sum(exp(x)))` over `dim`, keeping the dim; stable for large |x|.
///
/// The shift by the row maximum is detached: it cancels out of the value and
/// of the gradient, so tracking it would only add backward work.
pub(crate) fn logsumexp_keepdim(x: &Tensor, dim: D) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    let sum = x.broadcast_sub(&max)?.exp()?.sum_keepdim(dim)?;
    sum.log()?.broadcast_add(&max)
}

/// Log-probabilities over the last dimension.
pub(crate) fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    x.broadcast_sub(&logsumexp_keepdim(x, D::Minus1)?)
}

/// Divides each row (last dim) by `max(||row||_2, NORM_EPS)`.
///
/// The squared norm is clamped (to `NORM_EPS^2`) before the square root so a
/// zero row has a zero, not NaN, gradient.
pub(crate) fn l2_normalize_last(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .maximum(NORM_EPS * NORM_EPS)?
        .sqrt()?;
    x.broadcast_div(&norm)
}

/// Mean of the smooth-L1 (Huber) penalty of `diff`, as PyTorch's
/// `smooth_l1_loss(beta)`: `0.5 d^2 / beta` for `|d| < beta`, else `|d| - 0.5 beta`.
///
/// Written as `(0.5 / beta) (d^2 - relu(|d| - beta)^2)`, the same piecewise
/// function with no mask or scalar-broadcast tensor: RKD-angle applies it to
/// `b^3` elements, where every extra full-size op (and its backward) shows.
pub(crate) fn smooth_l1_mean(diff: &Tensor, beta: f64) -> Result<Tensor> {
    let n = diff.elem_count() as f64;
    let squares = diff.sqr()?.sum_all()?;
    let excess = diff.abs()?.affine(1.0, -beta)?.relu()?.sqr()?.sum_all()?;
    squares.sub(&excess)?.affine(0.5 / (beta * n), 0.0)
}

/// Euclidean distances between the rows of `x` `[b, n]` → `[b, b]`, zero diagonal.
///
/// Uses the Gram matrix (`|a|^2 + |b|^2 - 2ab`, clamped at `NORM_EPS` before
/// the square root as Park et al.'s reference does) so memory is `b^2`, not
/// `b^2 n`.
pub(crate) fn pairwise_distances(x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    let sq = x.sqr()?.sum_keepdim(1)?; // [b, 1]
    let gram = x.matmul(&x.t()?)?;
    let d2 = sq
        .broadcast_add(&sq.t()?)?
        .sub(&gram.affine(2.0, 0.0)?)?
        .maximum(NORM_EPS)?;
    d2.sqrt()?.mul(&off_diagonal(b, x)?)
}

/// `1 - I` of size `b`, in `like`'s dtype and device.
pub(crate) fn off_diagonal(b: usize, like: &Tensor) -> Result<Tensor> {
    Tensor::eye(b, like.dtype(), like.device())?.affine(-1.0, 1.0)
}
