//! A loss term's teacher target as held in memory: dense rows, top-k storage, or served.

use crate::table::Matrix;

/// A teacher target of one loss term.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Full rows (logits or features).
    Dense(Matrix),
    /// Top-k logit storage.
    TopK {
        /// Class indices, `rows × k`.
        indices: Vec<u32>,
        /// Logit values of those classes, `rows × k`.
        values: Matrix,
        /// Log-sum-exp of all logits, one per row.
        logsumexp: Vec<f32>,
    },
    /// Asked of a running teacher-server for every batch (`[data.served]`).
    Served {
        /// The server's output name.
        output: String,
        /// Values per row.
        width: usize,
    },
}

impl Target {
    /// Values per row (k for top-k).
    pub fn width(&self) -> usize {
        match self {
            Target::Dense(m) => m.cols,
            Target::TopK { values, .. } => values.cols,
            Target::Served { width, .. } => *width,
        }
    }

    /// Rows held (`None` when served per batch).
    pub(super) fn rows(&self) -> Option<usize> {
        match self {
            Target::Dense(m) => Some(m.rows),
            Target::TopK { values, .. } => Some(values.rows),
            Target::Served { .. } => None,
        }
    }

    /// Reorders rows: row `i` of the result is row `order[i]` of `self`.
    pub(super) fn gather(&self, order: &[usize]) -> Target {
        let gather_m = |m: &Matrix| {
            let mut data = Vec::with_capacity(order.len() * m.cols);
            for &r in order {
                data.extend_from_slice(m.row(r));
            }
            Matrix {
                rows: order.len(),
                cols: m.cols,
                data,
            }
        };
        match self {
            Target::Dense(m) => Target::Dense(gather_m(m)),
            Target::TopK {
                indices,
                values,
                logsumexp,
            } => {
                let k = values.cols;
                let mut idx = Vec::with_capacity(order.len() * k);
                for &r in order {
                    idx.extend_from_slice(&indices[r * k..(r + 1) * k]);
                }
                Target::TopK {
                    indices: idx,
                    values: gather_m(values),
                    logsumexp: order.iter().map(|&r| logsumexp[r]).collect(),
                }
            }
            Target::Served { .. } => self.clone(),
        }
    }
}
