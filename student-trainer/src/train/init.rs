//! Seeded weight initialisation: a `VarBuilder` backend that creates each variable from a
//! generator seeded by `(seed, variable name)`, so the same seed gives the same weights
//! whatever order layers are built in (candle's own initialisers use an unseeded RNG).

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use trainer_data::seeds::{mix_seed, streams};

/// FNV-1a hash of a variable name.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn uniform(rng: &mut StdRng, n: usize, lo: f64, up: f64) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
}

fn normal(rng: &mut StdRng, n: usize, mean: f64, std: f64) -> Vec<f32> {
    // Box–Muller; rand_distr is not a dependency.
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((mean + std * r * th.cos()) as f32);
        if out.len() < n {
            out.push((mean + std * r * th.sin()) as f32);
        }
    }
    out
}

/// The initial values of variable `name` for `seed`.
pub fn init_values(shape: &Shape, name: &str, init: Init, seed: u64) -> Vec<f32> {
    let n = shape.elem_count();
    let mut rng = StdRng::seed_from_u64(mix_seed(seed, streams::INIT, name_hash(name)));
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => uniform(&mut rng, n, lo, up),
        Init::Randn { mean, stdev } => normal(&mut rng, n, mean, stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = match fan {
                FanInOut::FanIn => FanInOut::FanIn.for_shape(shape),
                FanInOut::FanOut => FanInOut::FanOut.for_shape(shape),
            };
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(&mut rng, n, -bound, bound)
                }
                NormalOrUniform::Normal => normal(&mut rng, n, 0.0, std),
            }
        }
    }
}

/// A `VarMap` filled with seeded initial values.
struct SeededInit {
    map: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "variable {name} requested with shape {s:?}, exists with {:?}",
                    v.shape()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let values = init_values(&s, name, h, self.seed);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("variable {name} must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// A `VarBuilder` creating seeded f32 variables into `map` on `dev`.
pub fn seeded_var_builder(map: &VarMap, seed: u64, dev: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededInit {
            map: map.clone(),
            seed,
        }),
        DType::F32,
        dev.clone(),
    )
}
