//! The scores of the text benchmarks on plain vectors: cosine, Pearson, Spearman (average
//! ranks for ties), L2 normalisation and nearest-centroid accuracy. All sums in f64.

use super::TextEvalError;

/// A row-major `[rows, dim]` matrix of embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Number of rows.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// `rows * dim` values.
    pub data: Vec<f32>,
}

impl Embeddings {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Divides every row by its L2 norm (rows of norm 0 stay zero).
    pub fn l2_normalize(&mut self) {
        if self.dim == 0 {
            return;
        }
        for row in self.data.chunks_mut(self.dim) {
            let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
            }
        }
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// Pearson correlation of `x` and `y`. Fails when their lengths differ, when there are fewer
/// than 2 values, or when either is constant (the correlation is undefined).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64, TextEvalError> {
    if x.len() != y.len() {
        return Err(TextEvalError::Input(format!(
            "correlation of {} values with {} values",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 2 {
        return Err(TextEvalError::Input(format!(
            "a correlation needs at least 2 pairs, got {}",
            x.len()
        )));
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(TextEvalError::Input(
            "a correlation with a constant series is undefined".into(),
        ));
    }
    Ok(sxy / (sxx.sqrt() * syy.sqrt()))
}

/// 1-based ranks of `x`; tied values all get the mean of the ranks they span.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman rank correlation: Pearson of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64, TextEvalError> {
    if x.len() != y.len() {
        return Err(TextEvalError::Input(format!(
            "correlation of {} values with {} values",
            x.len(),
            y.len()
        )));
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Checks that `labels` has one class index below `classes` per row of `x`.
pub(crate) fn check_labels(
    what: &str,
    x: &Embeddings,
    labels: &[usize],
    classes: usize,
) -> Result<(), TextEvalError> {
    if labels.len() != x.rows {
        return Err(TextEvalError::Input(format!(
            "{what}: {} labels for {} embeddings",
            labels.len(),
            x.rows
        )));
    }
    if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(TextEvalError::Input(format!(
            "{what}: label {bad} is not below the {classes} classes"
        )));
    }
    Ok(())
}

/// Nearest-centroid accuracy: each class's centroid is the mean of its L2-normalised train rows;
/// a test row is assigned the class whose centroid is most cosine-similar (ties: lowest class).
pub fn nearest_centroid_accuracy(
    train: &Embeddings,
    train_labels: &[usize],
    test: &Embeddings,
    test_labels: &[usize],
    classes: usize,
) -> Result<f64, TextEvalError> {
    check_labels("train", train, train_labels, classes)?;
    check_labels("test", test, test_labels, classes)?;
    if train.dim != test.dim {
        return Err(TextEvalError::Input(format!(
            "train embeddings have width {}, test {}",
            train.dim, test.dim
        )));
    }
    if test.rows == 0 {
        return Err(TextEvalError::Input("no test rows".into()));
    }
    let d = train.dim;
    let mut sums = vec![0.0f64; classes * d];
    let mut counts = vec![0usize; classes];
    let mut normed = train.clone();
    normed.l2_normalize();
    for (i, &l) in train_labels.iter().enumerate() {
        counts[l] += 1;
        for (s, &v) in sums[l * d..(l + 1) * d].iter_mut().zip(normed.row(i)) {
            *s += v as f64;
        }
    }
    if let Some(empty) = counts.iter().position(|&c| c == 0) {
        return Err(TextEvalError::Input(format!(
            "class {empty} has no train rows: no centroid"
        )));
    }
    let centroids: Vec<f32> = sums
        .chunks(d)
        .zip(&counts)
        .flat_map(|(s, &c)| s.iter().map(move |&v| (v / c as f64) as f32))
        .collect();
    let mut correct = 0usize;
    for (i, &want) in test_labels.iter().enumerate() {
        let x = test.row(i);
        let mut best = (0usize, f64::NEG_INFINITY);
        for (c, centroid) in centroids.chunks(d).enumerate() {
            let s = cosine(x, centroid);
            if s > best.1 {
                best = (c, s);
            }
        }
        correct += usize::from(best.0 == want);
    }
    Ok(correct as f64 / test.rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_the_mean_rank() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn undefined_correlations_are_errors() {
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(pearson(&[1.0], &[2.0]).is_err());
        assert!(spearman(&[1.0, 2.0], &[1.0]).is_err());
    }
}
