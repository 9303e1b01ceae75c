//! PCA of an embedding table (the Model2Vec starting point): centre the rows, project them on
//! the top-`k` eigenvectors of their covariance. Cyclic Jacobi in f64: exact to rounding and
//! dependency-free: O(cols³) per sweep, independent of the number of rows.

use candle_core::{DType, Result, Tensor};

/// `table`: `[rows, cols]`; returns `[rows, k]` f32 (`k <= cols`), components by decreasing
/// variance, each signed so its largest-magnitude entry is positive. The covariance and the
/// projection go through candle's matmul (f64, then f32).
pub fn pca_reduce(table: &Tensor, k: usize) -> Result<Tensor> {
    let (_, cols) = table.dims2()?;
    let x = table.to_dtype(DType::F64)?;
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let cov = centred.t()?.matmul(&centred)?;
    let (values, vectors) = jacobi_eigen(cov.flatten_all()?.to_vec1::<f64>()?, cols);
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    // basis[i][c] = entry i of component c (column order[c] of `vectors`), sign-normalised.
    let mut basis = vec![0f64; cols * k];
    for (c, &col) in order[..k].iter().enumerate() {
        let v: Vec<f64> = (0..cols).map(|i| vectors[i * cols + col]).collect();
        let big = v
            .iter()
            .copied()
            .fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for (i, x) in v.iter().enumerate() {
            basis[i * k + c] = sign * x;
        }
    }
    let basis = Tensor::from_vec(basis, (cols, k), table.device())?;
    centred.matmul(&basis)?.to_dtype(DType::F32)
}

/// Eigenvalues and eigenvectors (columns of the returned row-major `[n, n]`) of a symmetric
/// matrix, by cyclic Jacobi rotations until the off-diagonal mass is negligible.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= total * 1e-30 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows on a line along (3, 4)/5 plus a small orthogonal wobble, uncorrelated with the
    /// position on the line (zero mean, zero dot product): the first component is
    /// the line's coordinate, the second the wobble.
    #[test]
    fn recovers_the_dominant_direction() {
        let ts = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
        let wobble = [0.1f32, -0.2, 0.0, 0.2, -0.1];
        let table: Vec<f32> = ts
            .iter()
            .zip(&wobble)
            .flat_map(|(&t, &w)| {
                [
                    3.0 * t / 5.0 - 4.0 * w / 5.0 + 1.0,
                    4.0 * t / 5.0 + 3.0 * w / 5.0 - 2.0,
                ]
            })
            .collect();
        let t = Tensor::from_vec(table, (5, 2), &candle_core::Device::Cpu).unwrap();
        let out = pca_reduce(&t, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (i, (&t, &w)) in ts.iter().zip(&wobble).enumerate() {
            assert!(
                (out[2 * i] - t).abs() < 1e-5,
                "row {i}: {} vs {t}",
                out[2 * i]
            );
            assert!((out[2 * i + 1].abs() - w.abs()).abs() < 1e-5);
        }
    }
}
