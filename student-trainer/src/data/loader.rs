//! Shuffled mini-batches prepared on a background thread and handed over through a bounded
//! channel, so gathering rows (and jitter) overlaps with the forward/backward pass.
//!
//! Every random choice derives from `(seed, epoch)`, so an epoch's batches are the same
//! whether the run was resumed or not. Rows with ids are ordered by a seeded hash of the id
//! ([`hashed_order`]), not by their position in the files; rows without ids fall back to a
//! seeded permutation of positions ([`epoch_order`]).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::dataset::{Target, TrainData};
use super::jitter::Jitter;

/// Batches in flight between the loader thread and the trainer.
const QUEUE_DEPTH: usize = 4;

/// One batch of a loss term's teacher target.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchTarget {
    /// `rows × width` values.
    Dense {
        /// Values per row.
        width: usize,
        /// Row-major values.
        data: Vec<f32>,
    },
    /// Top-k storage.
    TopK {
        /// k.
        k: usize,
        /// `rows × k` class indices.
        indices: Vec<u32>,
        /// `rows × k` logits.
        values: Vec<f32>,
        /// One log-sum-exp per row.
        logsumexp: Vec<f32>,
    },
}

/// One mini-batch, row-major host buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Rows in the batch.
    pub rows: usize,
    /// `rows × input width` inputs.
    pub x: Vec<f32>,
    /// Hard labels, when the run has them.
    pub labels: Option<Vec<u32>>,
    /// One entry per [`TrainData::targets`] entry.
    pub targets: Vec<BatchTarget>,
}

/// SplitMix64 finaliser: a well-mixed 64-bit value from `(seed, a, b)`.
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream ids for [`mix_seed`].
pub mod streams {
    /// Epoch permutation.
    pub const SHUFFLE: u64 = 1;
    /// Jitter offsets.
    pub const JITTER: u64 = 2;
    /// Dropout masks.
    pub const DROPOUT: u64 = 3;
    /// Weight initialisation.
    pub const INIT: u64 = 4;
}

/// The permutation of row indices used in `epoch`.
pub fn epoch_order(rows: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, streams::SHUFFLE, epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// The row order of `epoch` for rows known by id hashes: sorted by a seeded key of each hash
/// ([`super::text::order_key`]), so the same rows stored in any order give the same batches.
pub fn hashed_order(hashes: &[u64], seed: u64, epoch: usize) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = hashes
        .iter()
        .enumerate()
        .map(|(i, &h)| (super::text::order_key(seed, epoch, h), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

fn make_batch(data: &TrainData, rows: &[usize], jitter: Option<(&Jitter, &mut StdRng)>) -> Batch {
    let d = data.input.cols;
    let mut x = vec![0f32; rows.len() * d];
    match jitter {
        Some((j, rng)) => {
            for (dst, &r) in x.chunks_exact_mut(d).zip(rows) {
                j.apply(data.input.row(r), dst, rng);
            }
        }
        None => {
            for (dst, &r) in x.chunks_exact_mut(d).zip(rows) {
                dst.copy_from_slice(data.input.row(r));
            }
        }
    }
    let labels = data
        .labels
        .as_ref()
        .map(|l| rows.iter().map(|&r| l[r]).collect());
    let targets = data
        .targets
        .iter()
        .map(|t| match t {
            Target::Dense(m) => {
                let mut out = Vec::with_capacity(rows.len() * m.cols);
                for &r in rows {
                    out.extend_from_slice(m.row(r));
                }
                BatchTarget::Dense {
                    width: m.cols,
                    data: out,
                }
            }
            Target::TopK {
                indices,
                values,
                logsumexp,
            } => {
                let k = values.cols;
                let mut idx = Vec::with_capacity(rows.len() * k);
                let mut vals = Vec::with_capacity(rows.len() * k);
                for &r in rows {
                    idx.extend_from_slice(&indices[r * k..(r + 1) * k]);
                    vals.extend_from_slice(values.row(r));
                }
                BatchTarget::TopK {
                    k,
                    indices: idx,
                    values: vals,
                    logsumexp: rows.iter().map(|&r| logsumexp[r]).collect(),
                }
            }
        })
        .collect();
    Batch {
        rows: rows.len(),
        x,
        labels,
        targets,
    }
}

/// The batches of one epoch, produced on a background thread.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
    steps: usize,
}

impl Loader {
    /// Starts producing the batches of `epoch` (the last batch may be smaller).
    pub fn epoch(
        data: Arc<TrainData>,
        batch_size: usize,
        seed: u64,
        epoch: usize,
        jitter: Option<Jitter>,
    ) -> Self {
        let rows = data.rows();
        let steps = rows.div_ceil(batch_size);
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let handle = std::thread::spawn(move || {
            let order = match &data.row_hashes {
                Some(h) => hashed_order(h, seed, epoch),
                None => epoch_order(rows, seed, epoch),
            };
            let mut jrng = StdRng::seed_from_u64(mix_seed(seed, streams::JITTER, epoch as u64));
            for chunk in order.chunks(batch_size) {
                let batch = make_batch(&data, chunk, jitter.as_ref().map(|j| (j, &mut jrng)));
                if tx.send(batch).is_err() {
                    return; // the trainer stopped early
                }
            }
        });
        Self {
            rx: Some(rx),
            handle: Some(handle),
            steps,
        }
    }

    /// Number of batches this epoch.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel first lets a blocked producer exit, then we wait for it.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
