//! Seeded inverted dropout for the training forward pass.

use std::sync::Mutex;

use candle_core::{Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inverted dropout with its own seeded generator, so a seeded run drops the same units again.
///
/// Builds the `{0, 1/(1-p)}` mask in one pass over a `Vec` and multiplies once: two tensor
/// allocations per call where `candle_nn::ops::dropout` makes five (rand, broadcast p, compare,
/// cast, scale) — the forward runs every step and element-wise work dominates on CPU.
#[derive(Debug)]
pub struct Dropout {
    rng: Mutex<StdRng>,
}

impl Dropout {
    /// A dropout source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Restarts the generator from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.lock() = StdRng::seed_from_u64(seed);
    }

    /// Zeroes each element of `x` with probability `p` and scales the rest by `1/(1-p)`;
    /// `p == 0` returns `x` itself (no copy).
    pub fn apply(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        if p >= 1.0 || p.is_nan() {
            candle_core::bail!("dropout probability has to be in [0, 1), got {p}");
        }
        let scale = 1.0 / (1.0 - p);
        let n = x.elem_count();
        let mask: Vec<f32> = {
            let mut rng = self.lock();
            (0..n)
                .map(|_| if rng.random::<f32>() >= p { scale } else { 0.0 })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }

    /// The generator, even if another thread panicked while holding it (its state is still valid).
    fn lock(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }
}
