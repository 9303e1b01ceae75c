//! Pooling of 3-D outputs `[batch, seq, dim]` into one vector per row.

use distill_proto::api::Pooling;
use distill_proto::{Tensor, TensorData};
use half::f16;

/// Why an output could not be pooled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pooling {output:?}: {message}")]
pub struct PoolError {
    /// The output being pooled.
    pub output: String,
    /// What was wrong.
    pub message: String,
}

/// Element values of a tensor as f64 (for masks).
fn as_f64(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
    }
}

/// Pools `output` `[batch, seq, dim]`; mean pooling weights positions by `mask` `[batch, seq]`
/// (rows whose mask is all zero pool to zeros, as sentence-transformers does).
pub fn pool(
    name: &str,
    output: Tensor,
    how: Pooling,
    mask: Option<&Tensor>,
) -> Result<Tensor, PoolError> {
    if how == Pooling::None {
        return Ok(output);
    }
    let err = |message: String| PoolError {
        output: name.to_string(),
        message,
    };
    let &[b, s, d] = output.shape() else {
        return Err(err(format!(
            "expected a 3-D output [batch, seq, dim], got shape {:?}",
            output.shape()
        )));
    };
    let weights: Vec<f64> = match how {
        Pooling::Cls => {
            let mut w = vec![0.0; b * s];
            for row in 0..b {
                if s > 0 {
                    w[row * s] = 1.0;
                }
            }
            w
        }
        Pooling::Mean => {
            let mask =
                mask.ok_or_else(|| err("mean pooling needs the attention-mask input".into()))?;
            if mask.shape() != [b, s] {
                return Err(err(format!(
                    "attention mask has shape {:?}, expected [{b}, {s}] to match the output",
                    mask.shape()
                )));
            }
            as_f64(mask.data())
        }
        Pooling::None => unreachable!("returned above"),
    };
    // Accumulate in f64 whatever the output type, then convert back once.
    let values = match output.data() {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::F64(v) => v.clone(),
        other => {
            return Err(err(format!(
                "only float outputs can be pooled, this one is {}",
                other.dtype()
            )))
        }
    };
    let mut pooled = vec![0.0f64; b * d];
    for row in 0..b {
        let mut total = 0.0;
        let acc = &mut pooled[row * d..(row + 1) * d];
        for pos in 0..s {
            let w = weights[row * s + pos];
            if w == 0.0 {
                continue;
            }
            total += w;
            let src = &values[(row * s + pos) * d..(row * s + pos + 1) * d];
            for (a, &x) in acc.iter_mut().zip(src) {
                *a += w * x;
            }
        }
        let denom = total.max(1e-9);
        for a in acc.iter_mut() {
            *a /= denom;
        }
    }
    let data = match output.data() {
        TensorData::F32(_) => TensorData::F32(pooled.iter().map(|&x| x as f32).collect()),
        TensorData::F16(_) => TensorData::F16(pooled.iter().map(|&x| f16::from_f64(x)).collect()),
        _ => TensorData::F64(pooled),
    };
    Tensor::new(vec![b, d], data).map_err(|e| err(e.to_string()))
}

/// Scales every vector along the last axis of a float output to unit L2 norm (computed in
/// f64; all-zero vectors stay zero, as `torch.nn.functional.normalize` leaves them).
pub fn l2_normalize(name: &str, output: Tensor) -> Result<Tensor, PoolError> {
    let err = |message: String| PoolError {
        output: name.to_string(),
        message,
    };
    let d = output.shape().last().copied().unwrap_or(0);
    if output.shape().len() < 2 || d == 0 {
        return Err(err(format!(
            "L2 normalisation needs [batch, ..., dim] with dim > 0, got shape {:?}",
            output.shape()
        )));
    }
    fn scale<T: Copy>(v: &mut [T], d: usize, get: impl Fn(T) -> f64, put: impl Fn(f64) -> T) {
        for row in v.chunks_mut(d) {
            let norm = row.iter().map(|&x| get(x) * get(x)).sum::<f64>().sqrt();
            let k = 1.0 / norm.max(1e-12);
            for x in row.iter_mut() {
                *x = put(get(*x) * k);
            }
        }
    }
    let (shape, mut data) = output.into_parts();
    match &mut data {
        TensorData::F32(v) => scale(v, d, f64::from, |x| x as f32),
        TensorData::F16(v) => scale(v, d, |x| x.to_f64(), f16::from_f64),
        TensorData::F64(v) => scale(v, d, |x| x, |x| x),
        other => {
            return Err(err(format!(
                "only float outputs can be normalised, this one is {}",
                other.dtype()
            )))
        }
    }
    Tensor::new(shape, data).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::new(shape, TensorData::F32(v)).unwrap()
    }

    #[test]
    fn mean_pooling_weights_by_mask() {
        // Row 0 uses positions 0 and 1, row 1 only position 0.
        let out = t(
            vec![2, 3, 2],
            vec![1., 2., 3., 4., 100., 100., 5., 6., 7., 8., 9., 9.],
        );
        let mask = Tensor::new(vec![2, 3], TensorData::I64(vec![1, 1, 0, 1, 0, 0])).unwrap();
        let p = pool("e", out, Pooling::Mean, Some(&mask)).unwrap();
        assert_eq!(p, t(vec![2, 2], vec![2., 3., 5., 6.]));
    }

    #[test]
    fn mean_pooling_of_empty_mask_is_zero() {
        let out = t(vec![1, 2, 1], vec![3., 4.]);
        let mask = Tensor::new(vec![1, 2], TensorData::Bool(vec![false, false])).unwrap();
        let p = pool("e", out, Pooling::Mean, Some(&mask)).unwrap();
        assert_eq!(p, t(vec![1, 1], vec![0.]));
    }

    #[test]
    fn cls_takes_first_position() {
        let out = t(vec![2, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]);
        let p = pool("e", out, Pooling::Cls, None).unwrap();
        assert_eq!(p, t(vec![2, 2], vec![1., 2., 5., 6.]));
    }

    #[test]
    fn f16_output_stays_f16() {
        let out = Tensor::new(
            vec![1, 2, 1],
            TensorData::F16(vec![f16::from_f32(1.0), f16::from_f32(2.0)]),
        )
        .unwrap();
        let mask = Tensor::new(vec![1, 2], TensorData::F32(vec![1.0, 1.0])).unwrap();
        let p = pool("e", out, Pooling::Mean, Some(&mask)).unwrap();
        assert_eq!(p.data(), &TensorData::F16(vec![f16::from_f32(1.5)]));
    }

    #[test]
    fn l2_normalisation_gives_unit_rows() {
        let out = t(vec![2, 2], vec![3., 4., 0., 0.]);
        let n = l2_normalize("e", out).unwrap();
        assert_eq!(n, t(vec![2, 2], vec![0.6, 0.8, 0., 0.]));
        assert!(l2_normalize("e", t(vec![2], vec![1., 2.])).is_err());
        let ints = Tensor::new(vec![1, 2], TensorData::I64(vec![1, 2])).unwrap();
        assert!(l2_normalize("e", ints).is_err());
    }

    #[test]
    fn errors_name_the_problem() {
        let out = t(vec![2, 2], vec![1., 2., 3., 4.]);
        assert!(pool("e", out.clone(), Pooling::Mean, None)
            .unwrap_err()
            .message
            .contains("3-D"));
        assert_eq!(pool("e", out.clone(), Pooling::None, None).unwrap(), out);
        let out3 = t(vec![1, 2, 1], vec![1., 2.]);
        let bad_mask = Tensor::new(vec![1, 3], TensorData::I64(vec![1, 1, 1])).unwrap();
        assert!(pool("e", out3.clone(), Pooling::Mean, Some(&bad_mask)).is_err());
        assert!(pool("e", out3, Pooling::Mean, None)
            .unwrap_err()
            .message
            .contains("attention-mask"));
    }
}
