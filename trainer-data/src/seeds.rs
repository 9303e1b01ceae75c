//! Every seeded draw of the trainer comes from [`mix_seed`] of a base seed, a stream id and a
//! counter; rows are known by [`id_hash`] of their id. The stream ids live in ONE table
//! ([`streams`]), so two draws can never share a stream by accident.

pub use distill_proto::views::{id_hash, mix_seed};

/// Stream ids for [`mix_seed`]; every value is distinct (checked by a test).
pub mod streams {
    /// Epoch permutation.
    pub const SHUFFLE: u64 = 1;
    /// Jitter offsets.
    pub const JITTER: u64 = 2;
    /// Dropout masks.
    pub const DROPOUT: u64 = 3;
    /// Weight initialisation.
    pub const INIT: u64 = 4;
    /// The held-out split of text rows (seed-independent).
    pub const HOLDOUT: u64 = 12;
    /// Epoch order keys of rows known by id hash.
    pub const ORDER: u64 = 13;
    /// Shuffling the batches of a bucketed text window.
    pub const BUCKETS: u64 = 14;
    /// The training subset (`data.train_fraction`, seed-independent).
    pub const SUBSET: u64 = 15;

    /// All of them, for the distinctness check.
    #[cfg(test)]
    pub(crate) const ALL: [u64; 8] = [
        SHUFFLE, JITTER, DROPOUT, INIT, HOLDOUT, ORDER, BUCKETS, SUBSET,
    ];
}

/// Whether the row with hash `h` belongs to the held-out `fraction` (the same rows for every
/// seed, so runs with different seeds evaluate on the same text).
pub fn is_held_out(h: u64, fraction: f64) -> bool {
    let u = (mix_seed(h, streams::HOLDOUT, 0) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// Whether the row with hash `h` is in the training subset `fraction` (`data.train_fraction`;
/// independent of the held-out split's draw and of the seed).
pub fn in_subset(h: u64, fraction: f64) -> bool {
    let u = (mix_seed(h, streams::SUBSET, 0) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// The sort key of the row with hash `h` in `epoch`: a seeded permutation of the ids.
pub fn order_key(seed: u64, epoch: usize, h: u64) -> u64 {
    mix_seed(mix_seed(seed, streams::ORDER, epoch as u64), h, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_distinct() {
        let mut ids = streams::ALL.to_vec();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), streams::ALL.len());
    }

    #[test]
    fn holdout_is_close_to_its_fraction_and_seed_free() {
        let n = 20_000;
        let held = (0..n)
            .filter(|i| is_held_out(id_hash(&format!("row-{i}")), 0.1))
            .count();
        assert!((1700..2300).contains(&held), "{held}");
        assert!(!is_held_out(id_hash("x"), 0.0));
        assert!(is_held_out(id_hash("x"), 1.0));
    }

    #[test]
    fn order_keys_change_with_seed_and_epoch() {
        let h = id_hash("a");
        assert_ne!(order_key(0, 0, h), order_key(1, 0, h));
        assert_ne!(order_key(0, 0, h), order_key(0, 1, h));
        assert_eq!(order_key(3, 2, h), order_key(3, 2, id_hash("a")));
    }
}
