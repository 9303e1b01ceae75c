//! Shuffled mini-batches prepared on a background thread and handed over through a bounded
//! channel, so gathering rows (jitter, replayed views, the served teacher's answers) overlaps
//! with the forward/backward pass.
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

use crate::dataset::{Target, TrainData};
use crate::image::jitter::Jitter;
use crate::seeds::{mix_seed, order_key, streams};
use crate::DataError;

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

/// The permutation of row indices used in `epoch`.
pub fn epoch_order(rows: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, streams::SHUFFLE, epoch as u64));
    order.shuffle(&mut rng);
    order
}

/// The row order of `epoch` for rows known by id hashes: sorted by a seeded key of each hash
/// ([`crate::seeds::order_key`]), so the same rows stored in any order give the same batches.
pub fn hashed_order(hashes: &[u64], seed: u64, epoch: usize) -> Vec<usize> {
    let mut keyed: Vec<(u64, usize)> = hashes
        .iter()
        .enumerate()
        .map(|(i, &h)| (order_key(seed, epoch, h), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Row `r`'s teacher targets in `epoch`: its entry of the stored views, else row `r`.
fn target_rows(data: &TrainData, rows: &[usize], epoch: usize) -> Vec<usize> {
    match &data.views {
        Some(v) => rows.iter().map(|&r| v.entry(r, epoch)).collect(),
        None => rows.to_vec(),
    }
}

/// The inputs of `rows`: replayed views, served-teacher augmentation, random jitter or as
/// stored.
fn batch_inputs(
    data: &TrainData,
    rows: &[usize],
    epoch: usize,
    jitter: Option<(&Jitter, &mut StdRng)>,
) -> Vec<f32> {
    let d = data.input.cols;
    let mut x = vec![0f32; rows.len() * d];
    let pairs = x.chunks_exact_mut(d).zip(rows);
    if let Some(v) = &data.views {
        for (dst, &r) in pairs {
            v.input(v.entry(r, epoch), data.input.row(r), dst);
        }
    } else if let (Some(s), Some(hashes)) = (&data.served, &data.row_hashes) {
        for (dst, &r) in pairs {
            let seed = s.seed(hashes[r], epoch);
            s.augment.apply(s.layout, seed, data.input.row(r), dst);
        }
    } else if let Some((j, rng)) = jitter {
        for (dst, &r) in pairs {
            j.apply(data.input.row(r), dst, rng);
        }
    } else {
        for (dst, &r) in pairs {
            dst.copy_from_slice(data.input.row(r));
        }
    }
    x
}

fn make_batch(
    data: &TrainData,
    rows: &[usize],
    epoch: usize,
    jitter: Option<(&Jitter, &mut StdRng)>,
) -> Result<Batch, DataError> {
    let x = batch_inputs(data, rows, epoch, jitter);
    let served = match &data.served {
        Some(s) => {
            let what = format!("epoch {} batch of {} rows", epoch + 1, rows.len());
            Some(s.ask(&x, rows.len(), &what)?)
        }
        None => None,
    };
    let trows = target_rows(data, rows, epoch);
    let labels = data
        .labels
        .as_ref()
        .map(|l| rows.iter().map(|&r| l[r]).collect());
    let targets = data
        .targets
        .iter()
        .map(|t| match t {
            Target::Dense(m) => {
                let mut out = Vec::with_capacity(trows.len() * m.cols);
                for &r in &trows {
                    out.extend_from_slice(m.row(r));
                }
                Ok(BatchTarget::Dense {
                    width: m.cols,
                    data: out,
                })
            }
            Target::TopK {
                indices,
                values,
                logsumexp,
            } => {
                let k = values.cols;
                let mut idx = Vec::with_capacity(trows.len() * k);
                let mut vals = Vec::with_capacity(trows.len() * k);
                for &r in &trows {
                    idx.extend_from_slice(&indices[r * k..(r + 1) * k]);
                    vals.extend_from_slice(values.row(r));
                }
                Ok(BatchTarget::TopK {
                    k,
                    indices: idx,
                    values: vals,
                    logsumexp: trows.iter().map(|&r| logsumexp[r]).collect(),
                })
            }
            Target::Served { output, width } => {
                let (s, answer) =
                    data.served
                        .as_ref()
                        .zip(served.as_ref())
                        .ok_or_else(|| DataError::Config {
                            key: "data.served".into(),
                            message: format!("target {output:?} is served but no teacher is set"),
                        })?;
                let i = s.outputs.iter().position(|(o, _)| o == output).unwrap_or(0);
                Ok(BatchTarget::Dense {
                    width: *width,
                    data: answer[i].clone(),
                })
            }
        })
        .collect::<Result<_, DataError>>()?;
    Ok(Batch {
        rows: rows.len(),
        x,
        labels,
        targets,
    })
}

/// The batches of one epoch, produced on a background thread.
pub struct Loader {
    rx: Option<Receiver<Result<Batch, DataError>>>,
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
                let batch =
                    make_batch(&data, chunk, epoch, jitter.as_ref().map(|j| (j, &mut jrng)));
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return; // the trainer stopped early, or must stop
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
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
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
