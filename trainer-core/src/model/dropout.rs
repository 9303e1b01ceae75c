//! Seeded inverted dropout for the training forward pass.

use std::sync::Mutex;

use candle_core::{Result, Tensor};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Inverted dropout with its own seeded generator, so a seeded run drops the same units again
/// (with the same build: `SmallRng`'s stream is not promised stable across `rand` versions).
///
/// Builds the `{0, 1/(1-p)}` mask in one pass over a `Vec` — two 32-bit integer draws per
/// 64-bit random word compared with a threshold — and multiplies once: two tensor allocations
/// per call where `candle_nn::ops::dropout` makes five (rand, broadcast p, compare, cast, scale);
/// the forward runs every step and element-wise work dominates on CPU.
#[derive(Debug)]
pub struct Dropout {
    rng: Mutex<SmallRng>,
}

impl Dropout {
    /// A dropout source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// Restarts the generator from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.lock() = SmallRng::seed_from_u64(seed);
    }

    /// Zeroes each element of `x` with probability `p` and scales the rest by `1/(1-p)`;
    /// `p == 0` returns `x` itself (no copy).
    pub fn apply(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            candle_core::bail!("dropout probability has to be in [0, 1), got {p}");
        }
        if p == 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        // Drop when a uniform u32 falls below p * 2^32.
        let threshold = ((p as f64) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        let keep = |r: u32| if r >= threshold { scale } else { 0.0 };
        let n = x.elem_count();
        let mut mask = Vec::with_capacity(n);
        {
            let mut rng = self.lock();
            for _ in 0..n / 2 {
                let r = rng.next_u64();
                mask.push(keep(r as u32));
                mask.push(keep((r >> 32) as u32));
            }
            if n % 2 == 1 {
                mask.push(keep(rng.next_u32()));
            }
        }
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }

    /// The generator, even if another thread panicked while holding it (its state is still valid).
    fn lock(&self) -> std::sync::MutexGuard<'_, SmallRng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }
}
