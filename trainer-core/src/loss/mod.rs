//! Distillation losses: plain, differentiable functions over candle tensors.
//!
//! Every loss returns a scalar (rank-0) tensor built only from candle ops, so
//! `loss.backward()` reaches the student's parameters. Teacher-side inputs are
//! treated as constants (detached). Reductions are batch means: a per-sample
//! loss (summed over classes/labels where that is the natural unit) averaged
//! over the batch; each function's doc says exactly what it sums and averages.
//!
//! Families, one file each:
//! - [`response`]: losses on output logits — [`ce`], [`kd`], [`kd_topk`],
//!   [`soft_bce`], [`infonce`].
//! - [`feature`]: distances between (projected) inner features — [`feature()`].
//! - [`relation`]: losses on relations between the samples of a batch —
//!   [`rkd_distance`], [`rkd_angle`], [`sp`].
//!
//! Inputs are validated before any arithmetic: a wrong rank, shape, dtype,
//! device, index or parameter is a [`LossError`] naming what was wrong (and both
//! shapes for a mismatch), never a panic.

pub mod config;
pub mod feature;
mod ops;
pub mod relation;
pub mod response;

mod check;
#[cfg(test)]
mod tests;

pub use config::{DistanceConfig, LossTerm};
pub use feature::{feature, FeatureDistance};
pub use relation::{rkd, rkd_angle, rkd_distance, sp};
pub use response::{ce, infonce, kd, kd_topk, soft_bce, BceTarget};

use candle_core::DType;

/// Result of a loss function.
pub type LossResult<T> = std::result::Result<T, LossError>;

/// Why a loss could not be computed from its inputs.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Two inputs whose shapes must agree do not; both shapes are named.
    #[error("{loss}: {lhs} has shape {lhs_shape:?} but {rhs} has shape {rhs_shape:?} ({rule})")]
    ShapeMismatch {
        loss: &'static str,
        lhs: &'static str,
        lhs_shape: Vec<usize>,
        rhs: &'static str,
        rhs_shape: Vec<usize>,
        rule: &'static str,
    },
    /// One input has a rank or size the loss cannot use.
    #[error("{loss}: {name} must be {expected}, got shape {shape:?}")]
    BadShape {
        loss: &'static str,
        name: &'static str,
        shape: Vec<usize>,
        expected: &'static str,
    },
    /// One input has a dtype the loss cannot use.
    #[error("{loss}: {name} has dtype {dtype:?}, expected {expected}")]
    BadDType {
        loss: &'static str,
        name: &'static str,
        dtype: DType,
        expected: &'static str,
    },
    /// Two inputs that must share a dtype do not.
    #[error(
        "{loss}: {lhs} has dtype {lhs_dtype:?} but {rhs} has dtype {rhs_dtype:?}; they must match"
    )]
    DTypeMismatch {
        loss: &'static str,
        lhs: &'static str,
        lhs_dtype: DType,
        rhs: &'static str,
        rhs_dtype: DType,
    },
    /// Two inputs live on different devices.
    #[error("{loss}: {lhs} is on {lhs_device} but {rhs} is on {rhs_device}")]
    DeviceMismatch {
        loss: &'static str,
        lhs: &'static str,
        lhs_device: String,
        rhs: &'static str,
        rhs_device: String,
    },
    /// A scalar parameter (temperature, beta, ...) is out of its domain.
    #[error("{loss}: {name} = {value} is invalid, expected {expected}")]
    BadParam {
        loss: &'static str,
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// A class index (label or top-k index) lies outside `0..bound`.
    #[error("{loss}: {name} row {row} holds index {index}, outside 0..{bound}")]
    IndexOutOfRange {
        loss: &'static str,
        name: &'static str,
        row: usize,
        index: i64,
        bound: usize,
    },
    /// A top-k row names the same class twice.
    #[error("{loss}: {name} row {row} repeats class {index}; top-k indices must be distinct")]
    DuplicateIndex {
        loss: &'static str,
        name: &'static str,
        row: usize,
        index: i64,
    },
    /// Stored teacher values that must be finite are not.
    #[error("{loss}: {name} row {row} holds a non-finite value ({value})")]
    NonFinite {
        loss: &'static str,
        name: &'static str,
        row: usize,
        value: f64,
    },
    /// Stored teacher values that contradict each other.
    #[error("{loss}: row {row}: {what}")]
    Inconsistent {
        loss: &'static str,
        row: usize,
        what: String,
    },
    /// A candle operation failed after validation (e.g. out of device memory).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
