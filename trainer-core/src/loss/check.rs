//! Input validation shared by the losses, so that bad input is a typed error
//! naming the offending tensor instead of a candle error deep inside an op.

use super::{LossError, LossResult};
use candle_core::{DType, Tensor};

/// A float tensor of rank 2 with non-empty dims; returns `(rows, cols)`.
pub(crate) fn matrix(
    loss: &'static str,
    name: &'static str,
    t: &Tensor,
) -> LossResult<(usize, usize)> {
    float(loss, name, t)?;
    match *t.dims() {
        [b, c] if b > 0 && c > 0 => Ok((b, c)),
        _ => Err(LossError::BadShape {
            loss,
            name,
            shape: t.dims().to_vec(),
            expected: "a non-empty matrix [batch, dim]",
        }),
    }
}

/// A float tensor of rank >= `min_rank` with no empty dim; returns the batch size.
pub(crate) fn batched(
    loss: &'static str,
    name: &'static str,
    t: &Tensor,
    min_rank: usize,
    expected: &'static str,
) -> LossResult<usize> {
    float(loss, name, t)?;
    let dims = t.dims();
    if dims.len() < min_rank || dims.contains(&0) {
        return Err(LossError::BadShape {
            loss,
            name,
            shape: dims.to_vec(),
            expected,
        });
    }
    Ok(dims[0])
}

/// The tensor holds floating-point values.
pub(crate) fn float(loss: &'static str, name: &'static str, t: &Tensor) -> LossResult<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(LossError::BadDType {
            loss,
            name,
            dtype: t.dtype(),
            expected: "a float dtype (f16, bf16, f32, f64)",
        })
    }
}

/// Both tensors have exactly the same shape.
pub(crate) fn same_shape(
    loss: &'static str,
    lhs: &'static str,
    a: &Tensor,
    rhs: &'static str,
    b: &Tensor,
) -> LossResult<()> {
    shape_rule(
        loss,
        lhs,
        a,
        rhs,
        b,
        a.dims() == b.dims(),
        "shapes must be equal",
    )
}

/// Both tensors have the same shape, dtype and device: the check every
/// element-wise student/teacher comparison needs before its first op.
pub(crate) fn matching(
    loss: &'static str,
    lhs: &'static str,
    a: &Tensor,
    rhs: &'static str,
    b: &Tensor,
) -> LossResult<()> {
    same_shape(loss, lhs, a, rhs, b)?;
    compatible(loss, lhs, a, rhs, b)
}

/// Both tensors have the same leading (batch) dimension.
pub(crate) fn same_batch(
    loss: &'static str,
    lhs: &'static str,
    a: &Tensor,
    rhs: &'static str,
    b: &Tensor,
) -> LossResult<()> {
    let ok = a.dims().first() == b.dims().first();
    shape_rule(
        loss,
        lhs,
        a,
        rhs,
        b,
        ok,
        "batch sizes (dim 0) must be equal",
    )
}

/// `Ok` when `holds`, else a [`LossError::ShapeMismatch`] naming both tensors
/// and the `rule` that relates their shapes (the caller decides the rule).
pub(crate) fn shape_rule(
    loss: &'static str,
    lhs: &'static str,
    a: &Tensor,
    rhs: &'static str,
    b: &Tensor,
    holds: bool,
    rule: &'static str,
) -> LossResult<()> {
    if holds {
        Ok(())
    } else {
        Err(LossError::ShapeMismatch {
            loss,
            lhs,
            lhs_shape: a.dims().to_vec(),
            rhs,
            rhs_shape: b.dims().to_vec(),
            rule,
        })
    }
}

/// Both tensors share dtype and device (candle refuses mixed binary ops).
pub(crate) fn compatible(
    loss: &'static str,
    lhs: &'static str,
    a: &Tensor,
    rhs: &'static str,
    b: &Tensor,
) -> LossResult<()> {
    if a.dtype() != b.dtype() {
        return Err(LossError::DTypeMismatch {
            loss,
            lhs,
            lhs_dtype: a.dtype(),
            rhs,
            rhs_dtype: b.dtype(),
        });
    }
    if !a.device().same_device(b.device()) {
        return Err(LossError::DeviceMismatch {
            loss,
            lhs,
            lhs_device: format!("{:?}", a.device().location()),
            rhs,
            rhs_device: format!("{:?}", b.device().location()),
        });
    }
    Ok(())
}

/// A finite, strictly positive scalar parameter.
pub(crate) fn positive(loss: &'static str, name: &'static str, value: f64) -> LossResult<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(LossError::BadParam {
            loss,
            name,
            value,
            expected: "a finite number > 0",
        })
    }
}

/// Copies integer class indices (u8, u32 or i64) to the host, row-major.
///
/// Index tensors are small (`[b]` or `[b, k]`); checking them on the host is
/// what keeps an out-of-range or padding index (candle's gather silently
/// reads `u32::MAX` as 0) from turning into a wrong loss.
fn indices_to_host(loss: &'static str, name: &'static str, t: &Tensor) -> LossResult<Vec<i64>> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?.into_iter().map(i64::from).collect(),
        DType::U32 => flat.to_vec1::<u32>()?.into_iter().map(i64::from).collect(),
        DType::I64 => flat.to_vec1::<i64>()?,
        dtype => {
            return Err(LossError::BadDType {
                loss,
                name,
                dtype,
                expected: "an integer index dtype (u8, u32, i64)",
            })
        }
    })
}

/// Every index of the `[rows, cols]` index tensor lies in `0..bound`; with
/// `distinct`, no row repeats an index.
pub(crate) fn class_indices(
    loss: &'static str,
    name: &'static str,
    t: &Tensor,
    bound: usize,
    distinct: bool,
) -> LossResult<()> {
    let values = indices_to_host(loss, name, t)?;
    let cols = t.dims().get(1).copied().unwrap_or(1).max(1);
    // One flag per class, cleared after each row so it is allocated once.
    let mut seen = if distinct {
        vec![false; bound]
    } else {
        Vec::new()
    };
    for (row, chunk) in values.chunks(cols).enumerate() {
        for &index in chunk {
            if index < 0 || index as u64 >= bound as u64 {
                return Err(LossError::IndexOutOfRange {
                    loss,
                    name,
                    row,
                    index,
                    bound,
                });
            }
            if distinct {
                let slot = &mut seen[index as usize];
                if *slot {
                    return Err(LossError::DuplicateIndex {
                        loss,
                        name,
                        row,
                        index,
                    });
                }
                *slot = true;
            }
        }
        if distinct {
            for &index in chunk {
                seen[index as usize] = false;
            }
        }
    }
    Ok(())
}
