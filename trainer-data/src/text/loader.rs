//! Padded token batches of one epoch, assembled on a background thread.
//!
//! Per shuffle window: rows sorted by their seeded order key ([`crate::seeds::order_key`]),
//! cut into batches of `batch_size`; with `bucket_by_length`, the window is first sorted by
//! token count (ties in key order), cut into batches of similar length, and the batches are
//! shuffled. Each batch is padded to its own longest row, never to a global maximum. The last
//! batch of each window may be smaller. All host buffers of a batch are filled on the loader
//! thread, so the trainer only wraps them as tensors.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::rows::{TextRows, TextTrainData};
use crate::seeds::{mix_seed, order_key, streams};
use crate::DataError;

/// Batches in flight between the loader thread and the trainer.
const QUEUE_DEPTH: usize = 4;

/// Id written into padding positions (masked out; any valid id would do).
pub const PAD_ID: u32 = 0;

/// One padded batch, row-major host buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct TextBatch {
    /// Rows in the batch.
    pub rows: usize,
    /// Padded length: the longest row of this batch.
    pub seq: usize,
    /// `rows × seq` token ids, [`PAD_ID`] after each row's end.
    pub ids: Vec<u32>,
    /// `rows × seq`: 1 for a token, 0 for padding.
    pub mask: Vec<f32>,
    /// `rows × seq` token types (0 in padding), when the run reads them.
    pub types: Option<Vec<u32>>,
    /// One `rows × width` buffer per target column.
    pub targets: Vec<Vec<f32>>,
    /// Id hashes of the rows, in batch order (tests and determinism checks).
    pub hashes: Vec<u64>,
}

/// Pads the rows `idx` of `rows` into one batch.
pub fn make_text_batch(rows: &TextRows, idx: &[usize]) -> TextBatch {
    let seq = idx
        .iter()
        .map(|&i| rows.tokens.len_of(i))
        .max()
        .unwrap_or(0);
    let n = idx.len();
    let mut ids = vec![PAD_ID; n * seq];
    let mut mask = vec![0f32; n * seq];
    let mut types = rows.types.as_ref().map(|_| vec![0u32; n * seq]);
    for (r, &i) in idx.iter().enumerate() {
        let row = rows.tokens.row(i);
        ids[r * seq..r * seq + row.len()].copy_from_slice(row);
        mask[r * seq..r * seq + row.len()].fill(1.0);
        if let (Some(dst), Some(src)) = (types.as_mut(), rows.types.as_ref()) {
            let t = src.row(i);
            dst[r * seq..r * seq + t.len()].copy_from_slice(t);
        }
    }
    let targets = rows
        .targets
        .iter()
        .map(|m| {
            let mut out = Vec::with_capacity(n * m.cols);
            for &i in idx {
                out.extend_from_slice(m.row(i));
            }
            out
        })
        .collect();
    TextBatch {
        rows: n,
        seq,
        ids,
        mask,
        types,
        targets,
        hashes: idx.iter().map(|&i| rows.hashes[i]).collect(),
    }
}

/// The batches (as row indices into `rows`) of window `w` of `epoch`.
pub fn window_batches(
    rows: &TextRows,
    batch_size: usize,
    bucket_by_length: bool,
    seed: u64,
    epoch: usize,
    w: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<(u64, usize)> = (0..rows.rows())
        .map(|i| (order_key(seed, epoch, rows.hashes[i]), i))
        .collect();
    order.sort_unstable();
    let mut idx: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    let bs = batch_size.max(1);
    if !bucket_by_length {
        return idx.chunks(bs).map(<[usize]>::to_vec).collect();
    }
    idx.sort_by_key(|&i| rows.tokens.len_of(i));
    let mut batches: Vec<Vec<usize>> = idx.chunks(bs).map(<[usize]>::to_vec).collect();
    let mut rng = StdRng::seed_from_u64(mix_seed(
        seed,
        streams::BUCKETS,
        mix_seed(epoch as u64, w as u64, 0),
    ));
    batches.shuffle(&mut rng);
    batches
}

/// How an epoch is batched.
#[derive(Debug, Clone, Copy)]
pub struct EpochPlan {
    /// Rows per batch.
    pub batch_size: usize,
    /// Sort each window by length before cutting batches.
    pub bucket_by_length: bool,
    /// `train.seed`.
    pub seed: u64,
    /// 0-based epoch.
    pub epoch: usize,
}

/// The batches of one epoch, produced on a background thread (reading windows from the
/// source when the rows are not resident).
pub struct TextLoader {
    rx: Option<Receiver<Result<TextBatch, DataError>>>,
    handle: Option<JoinHandle<usize>>,
}

impl TextLoader {
    /// Starts producing the batches of `plan.epoch`.
    pub fn epoch(data: Arc<TextTrainData>, plan: EpochPlan) -> Self {
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let handle = std::thread::spawn(move || {
            let mut peak = 0usize;
            for w in 0..data.windows() {
                let rows = match &data.resident {
                    Some(r) => r.clone(),
                    None => match data.read_window(plan.seed, plan.epoch, w) {
                        Ok(r) => Arc::new(r),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return peak;
                        }
                    },
                };
                peak = peak.max(rows.rows());
                let batches = window_batches(
                    &rows,
                    plan.batch_size,
                    plan.bucket_by_length,
                    plan.seed,
                    plan.epoch,
                    w,
                );
                for b in batches {
                    if tx.send(Ok(make_text_batch(&rows, &b))).is_err() {
                        return peak; // the trainer stopped early
                    }
                }
            }
            peak
        });
        Self {
            rx: Some(rx),
            handle: Some(handle),
        }
    }

    /// Ends the epoch and returns the most rows one window held (the loader's memory bound).
    pub fn finish(mut self) -> usize {
        self.rx.take();
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or(0)
    }
}

impl Iterator for TextLoader {
    type Item = Result<TextBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for TextLoader {
    fn drop(&mut self) {
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokens::Ragged;
    use crate::Matrix;

    fn rows(lens: &[usize]) -> TextRows {
        let mut tokens = Ragged::new();
        let mut types = Ragged::new();
        let mut emb = Vec::new();
        for (i, &l) in lens.iter().enumerate() {
            let row: Vec<u32> = (0..l as u32).map(|t| 100 + t).collect();
            tokens.push(&row);
            types.push(&vec![1; l]);
            emb.extend_from_slice(&[i as f32, -(i as f32)]);
        }
        TextRows {
            hashes: (0..lens.len() as u64).map(|i| i * 7919 + 1).collect(),
            tokens,
            types: Some(types),
            targets: vec![Matrix {
                rows: lens.len(),
                cols: 2,
                data: emb,
            }],
        }
    }

    #[test]
    fn a_batch_is_padded_to_its_own_longest_row() {
        let r = rows(&[3, 1, 5, 2]);
        let b = make_text_batch(&r, &[0, 1, 3]);
        assert_eq!((b.rows, b.seq), (3, 3));
        assert_eq!(
            b.ids,
            [100, 101, 102, 100, PAD_ID, PAD_ID, 100, 101, PAD_ID]
        );
        assert_eq!(b.mask, [1., 1., 1., 1., 0., 0., 1., 1., 0.]);
        assert_eq!(b.types.as_deref(), Some(&[1, 1, 1, 1, 0, 0, 1, 1, 0][..]));
        assert_eq!(b.targets[0], [0., -0., 1., -1., 3., -3.]);
    }

    #[test]
    fn every_row_once_and_buckets_group_similar_lengths() {
        let lens: Vec<usize> = (0..200).map(|i| 1 + (i * 37) % 40).collect();
        let r = rows(&lens);
        for bucket in [false, true] {
            let batches = window_batches(&r, 16, bucket, 5, 0, 0);
            let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..200).collect::<Vec<_>>());
            let padded: usize = batches
                .iter()
                .map(|b| b.len() * b.iter().map(|&i| lens[i]).max().unwrap_or(0))
                .sum();
            let real: usize = lens.iter().sum();
            let eff = real as f64 / padded as f64;
            if bucket {
                assert!(eff > 0.9, "bucketed padding efficiency {eff}");
            } else {
                assert!(eff < 0.7, "unbucketed padding efficiency {eff}");
            }
        }
        // Bucketed batches are shuffled, not in length order.
        let b = window_batches(&r, 16, true, 5, 0, 0);
        let firsts: Vec<usize> = b.iter().map(|x| lens[x[0]]).collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_ne!(firsts, sorted);
        // Same seed and epoch: same batches; another epoch: others.
        assert_eq!(b, window_batches(&r, 16, true, 5, 0, 0));
        assert_ne!(b, window_batches(&r, 16, true, 5, 1, 0));
    }
}
