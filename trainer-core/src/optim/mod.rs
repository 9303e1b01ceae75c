//! Optimizers with inspectable state (for checkpoints) and learning-rate schedules.
//!
//! candle-nn's `AdamW` keeps its moment buffers private, so a checkpoint could not restore
//! it; these optimizers keep their state in plain `Vec<f32>`s and update each parameter in
//! place with one fused pass (no temporaries), see [`fused`].

pub mod config;
pub mod fused;
pub mod schedule;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use fused::{AdamWStep, SgdStep};

pub use config::{OptimizerConfig, ScheduleConfig};
pub use schedule::{lr_at, Schedule};

/// Errors of the optimizer.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A candle error while updating.
    #[error("optimizer update of {name}: {source}")]
    Candle {
        /// Parameter name.
        name: String,
        /// The cause.
        source: candle_core::Error,
    },
    /// A checkpoint's optimizer state does not fit the parameters.
    #[error("optimizer state in checkpoint: {0}")]
    State(String),
}

/// AdamW or SGD hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hyper {
    /// AdamW (PyTorch's formulation: decoupled weight decay, bias-corrected moments).
    AdamW {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
    /// SGD (PyTorch's formulation: L2 weight decay added to the gradient).
    Sgd {
        /// Momentum factor.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay.
        weight_decay: f64,
    },
}

impl From<OptimizerConfig> for Hyper {
    fn from(o: OptimizerConfig) -> Self {
        match o {
            OptimizerConfig::Adamw {
                betas: [beta1, beta2],
                eps,
                weight_decay,
            } => Hyper::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            },
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => Hyper::Sgd {
                momentum,
                nesterov,
                weight_decay,
            },
        }
    }
}

struct Param {
    name: String,
    var: Var,
    /// AdamW first moment, or the SGD momentum buffer.
    m: Vec<f32>,
    /// AdamW second moment (empty for SGD).
    v: Vec<f32>,
}

/// An optimizer over named variables.
pub struct Optimizer {
    hyper: Hyper,
    params: Vec<Param>,
    step: u64,
}

impl Optimizer {
    /// An optimizer over `vars` (sorted by name so state order never depends on hashing).
    pub fn new(hyper: Hyper, mut vars: Vec<(String, Var)>) -> Self {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                let n = var.elem_count();
                let v = match hyper {
                    Hyper::AdamW { .. } => vec![0f32; n],
                    Hyper::Sgd { .. } => Vec::new(),
                };
                Param {
                    name,
                    var,
                    m: vec![0f32; n],
                    v,
                }
            })
            .collect();
        Self {
            hyper,
            params,
            step: 0,
        }
    }

    /// Updates steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<(), OptimError> {
        self.step += 1;
        let t = self.step;
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let wrap = |source| OptimError::Candle {
                name: p.name.clone(),
                source,
            };
            let g = g.contiguous().map_err(wrap)?;
            match self.hyper {
                Hyper::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let op =
                        AdamWStep::new(&mut p.m, &mut p.v, lr, beta1, beta2, eps, weight_decay, t);
                    p.var.as_tensor().inplace_op2(&g, &op).map_err(wrap)?;
                }
                Hyper::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let op = SgdStep::new(&mut p.m, lr, momentum, nesterov, weight_decay, t == 1);
                    p.var.as_tensor().inplace_op2(&g, &op).map_err(wrap)?;
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`opt.m.NAME`, `opt.v.NAME`) for a checkpoint.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>, OptimError> {
        let mut out = HashMap::new();
        for p in &self.params {
            let shape = p.var.shape().clone();
            let wrap = |source| OptimError::Candle {
                name: p.name.clone(),
                source,
            };
            out.insert(
                format!("opt.m.{}", p.name),
                Tensor::from_slice(&p.m, shape.clone(), &Device::Cpu).map_err(wrap)?,
            );
            if !p.v.is_empty() {
                out.insert(
                    format!("opt.v.{}", p.name),
                    Tensor::from_slice(&p.v, shape, &Device::Cpu).map_err(wrap)?,
                );
            }
        }
        Ok(out)
    }

    /// Restores the state written by [`Optimizer::state_tensors`] after `steps` updates.
    pub fn load_state(
        &mut self,
        map: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<(), OptimError> {
        for p in &mut self.params {
            let read = |key: String, want: usize| -> Result<Vec<f32>, OptimError> {
                let t = map
                    .get(&key)
                    .ok_or_else(|| OptimError::State(format!("missing tensor {key}")))?;
                let v = t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| OptimError::State(format!("{key}: {e}")))?;
                if v.len() != want {
                    return Err(OptimError::State(format!(
                        "{key} has {} values, the parameter has {want}",
                        v.len()
                    )));
                }
                Ok(v)
            };
            let n = p.var.elem_count();
            p.m = read(format!("opt.m.{}", p.name), n)?;
            if !p.v.is_empty() {
                p.v = read(format!("opt.v.{}", p.name), n)?;
            }
        }
        self.step = steps;
        Ok(())
    }
}
