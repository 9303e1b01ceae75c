//! The `[train.optimizer]` and `[train.schedule]` tables.

use serde::{Deserialize, Serialize};

/// The `[train.optimizer]` table, tagged by `kind`; `optimizer = "sgd"` is short for
/// `{ kind = "sgd" }`. Absent: AdamW with its defaults.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// AdamW with decoupled weight decay (PyTorch's formulation).
    Adamw {
        /// β₁ and β₂.
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        /// ε added to the second-moment root.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Decoupled weight decay.
        #[serde(default)]
        weight_decay: f64,
    },
    /// SGD with optional (Nesterov) momentum.
    Sgd {
        /// Momentum factor (0 = plain SGD).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum (needs a positive `momentum`).
        #[serde(default)]
        nesterov: bool,
        /// L2 weight decay added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adamw {
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// The `kind` name as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            OptimizerConfig::Adamw { .. } => "adamw",
            OptimizerConfig::Sgd { .. } => "sgd",
        }
    }
}

/// The `[train.schedule]` table: the learning rate after warm-up, tagged by `kind`;
/// `schedule = "cosine"` is short for `{ kind = "cosine" }`. Absent: constant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Constant learning rate.
    Constant {},
    /// Cosine decay from `train.lr` to `min_lr` at the last step.
    Cosine {
        /// Floor reached at the last step.
        #[serde(default)]
        min_lr: f64,
    },
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step {
        /// Period, in epochs.
        step_epochs: usize,
        /// Factor applied each period.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
}

fn default_gamma() -> f64 {
    0.1
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig::Constant {}
    }
}

impl ScheduleConfig {
    /// The `kind` name as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduleConfig::Constant {} => "constant",
            ScheduleConfig::Cosine { .. } => "cosine",
            ScheduleConfig::Step { .. } => "step",
        }
    }
}
