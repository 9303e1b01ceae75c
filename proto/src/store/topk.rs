//! Top-K logit storage: the K largest logits of a row (descending, ties by lower index), their
//! indices, and the log-sum-exp of all the row's logits so a full softmax denominator survives.

use super::StoreError;
use crate::{Tensor, TensorData};

/// Top-K of every row of a `[rows, classes]` float tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKRows {
    /// `rows * k` class indices, row-major, largest logit first.
    pub indices: Vec<i32>,
    /// `rows * k` logits matching `indices`.
    pub values: Vec<f32>,
    /// One log-sum-exp of all logits per row (computed in f64).
    pub logsumexp: Vec<f32>,
}

/// Computes the top-`k` logits of each row of `t` (`[rows, classes]`, a float dtype);
/// `output` names the tensor in errors. NaN logits are refused.
pub fn topk_rows(output: &str, t: &Tensor, k: usize) -> Result<TopKRows, StoreError> {
    let bad = |m: String| StoreError::InvalidRows(format!("output {output:?}: {m}"));
    let shape = t.shape();
    if shape.len() != 2 {
        return Err(bad(format!(
            "top-k storage needs a [rows, classes] tensor, got shape {shape:?}"
        )));
    }
    let (rows, classes) = (shape[0], shape[1]);
    if k == 0 || k > classes {
        return Err(bad(format!(
            "top-k with k={k} needs 1 <= k <= {classes} (the number of classes)"
        )));
    }
    if classes > i32::MAX as usize {
        return Err(bad(format!("{classes} classes do not fit Int32 indices")));
    }
    let vals: Vec<f64> = match t.data() {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::F64(v) => v.clone(),
        other => {
            return Err(bad(format!(
                "top-k storage needs float logits, got {}",
                other.dtype()
            )))
        }
    };
    let mut out = TopKRows {
        indices: Vec::with_capacity(rows * k),
        values: Vec::with_capacity(rows * k),
        logsumexp: Vec::with_capacity(rows),
    };
    let mut idx: Vec<usize> = Vec::with_capacity(classes);
    for r in 0..rows {
        let row = &vals[r * classes..(r + 1) * classes];
        if let Some(c) = row.iter().position(|x| x.is_nan()) {
            return Err(bad(format!("row {r} has a NaN logit at class {c}")));
        }
        idx.clear();
        idx.extend(0..classes);
        // Descending by value, ascending by index among equal values: a total order.
        let cmp = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
        if k < classes {
            idx.select_nth_unstable_by(k - 1, cmp);
        }
        idx[..k].sort_unstable_by(cmp);
        for &i in &idx[..k] {
            out.indices.push(i as i32);
            out.values.push(row[i] as f32);
        }
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = if m.is_infinite() {
            m
        } else {
            m + row.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
        };
        out.logsumexp.push(lse as f32);
    }
    Ok(out)
}
