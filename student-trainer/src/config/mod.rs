//! The typed run configuration (`run.toml`): data sources, student architecture, loss terms
//! and training settings. Every table denies unknown keys, so a typo is an error naming the
//! key and the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use trainer_core::model::StudentConfig;
use trainer_core::optim::Schedule;
use trainer_core::serde_kind;

mod keys;
pub mod legacy;
pub mod modes;
mod validate;

pub use modes::OnlineConfig;
// The run config composes the tables each layer owns; re-exported so `config::X` names them all.
pub use trainer_core::loss::{DistanceConfig, LossTerm};
pub use trainer_core::model::exits::{exit_name, SelfDistillConfig};
pub use trainer_core::optim::{OptimizerConfig, ScheduleConfig};
pub use trainer_data::config::{DataConfig, ServedConfig, TeacherSource, ViewsConfig};

/// Errors reading or checking a run configuration; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not TOML at all (toml's message names the line).
    #[error("invalid config {path}: {source}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// toml's error, with the line and a snippet (boxed: it is large).
        source: Box<toml::de::Error>,
    },
    /// The TOML does not fit the schema: an unknown or missing key, a wrong type or kind.
    #[error("invalid config {path}: key `{key}`: {source}")]
    Schema {
        /// The config file.
        path: PathBuf,
        /// Dotted key, e.g. `train.optimizer.momentum` or `loss[1].distance`.
        key: String,
        /// toml's error, naming the field and the expected ones.
        source: Box<toml::de::Error>,
    },
    /// The file uses the flat optimizer/schedule/distance keys of earlier versions.
    #[error("invalid config {path}: {legacy}")]
    OldFormat {
        /// The config file.
        path: PathBuf,
        /// Which keys moved where, and the converted tables.
        legacy: legacy::OldFormat,
    },
    /// The TOML parses but a value is out of range or inconsistent.
    #[error("invalid config {path}: key `{key}`: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted key, e.g. `train.lr` or `loss[1].temperature`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The resolved config could not be written as TOML.
    #[error("cannot write the resolved config as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}
/// A whole run configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Where the rows come from.
    pub data: DataConfig,
    /// The student architecture (owned by [`trainer_core::model`]).
    pub student: StudentConfig,
    /// Loss terms, summed with their weights.
    #[serde(rename = "loss", default)]
    pub losses: Vec<LossTerm>,
    /// Optimisation settings.
    pub train: TrainConfig,
    /// Online distillation: more networks trained in the same loop ([`OnlineConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineConfig>,
    /// Self-distillation: auxiliary exits taught by the deepest one ([`SelfDistillConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_distill: Option<SelfDistillConfig>,
}

/// Metric watched by early stopping (lower is better for all).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    /// Eval misclassification count.
    EvalError,
    /// Eval cross-entropy with the hard labels.
    EvalLoss,
    /// Eval KD loss against the eval teacher column.
    EvalKd,
}

/// `early_stopping = { patience = 5, metric = "eval_error" }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The watched metric.
    pub metric: StopMetric,
}

/// The `[train]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Rows per eval forward pass.
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up length in epochs (fractions allowed), before any schedule.
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Seed of initialisation, shuffling and jitter.
    #[serde(default)]
    pub seed: u64,
    /// ±N-pixel random translation of image inputs.
    #[serde(default)]
    pub jitter: usize,
    /// Optional early stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// `[train.optimizer]`.
    #[serde(default, deserialize_with = "serde_kind::kind_or_table")]
    pub optimizer: OptimizerConfig,
    /// `[train.schedule]`.
    #[serde(default, deserialize_with = "serde_kind::kind_or_table")]
    pub schedule: ScheduleConfig,
}

/// The learning-rate schedule of a `[train]` table.
impl From<&TrainConfig> for Schedule {
    fn from(t: &TrainConfig) -> Self {
        Schedule {
            lr: t.lr,
            epochs: t.epochs,
            warmup_epochs: t.warmup_epochs,
            schedule: t.schedule,
        }
    }
}

fn default_batch() -> usize {
    128
}

fn default_eval_batch() -> usize {
    1024
}

impl RunConfig {
    /// Reads, parses and checks a config file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let syntax = |source| ConfigError::Syntax {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        // The untyped tree: to spot the old flat layout, and to name keys in schema errors.
        let raw: toml::Table = toml::from_str(text).map_err(syntax)?;
        if let Some(legacy) = legacy::OldFormat::find(&raw) {
            return Err(ConfigError::OldFormat {
                path: path.to_path_buf(),
                legacy,
            });
        }
        let de = toml::de::Deserializer::parse(text).map_err(syntax)?;
        let cfg: RunConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = keys::error_key(&raw, e.path(), e.inner().message());
            ConfigError::Schema {
                path: path.to_path_buf(),
                key,
                source: Box::new(e.into_inner()),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The config as TOML (what `config.toml` of a run folder holds).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Range and consistency checks serde cannot express; see [`validate`].
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        validate::run_config(self).map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        })
    }

    /// Makes relative data paths absolute against `base` (the working directory), so the
    /// resolved config in a run folder still works from elsewhere.
    pub fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut String| {
            let pb = Path::new(p.as_str());
            if pb.is_relative() {
                *p = base.join(pb).to_string_lossy().into_owned();
            }
        };
        abs(&mut self.data.train);
        if let Some(e) = self.data.eval.as_mut() {
            abs(e);
        }
        for t in &mut self.data.teachers {
            abs(&mut t.path);
        }
        if let Some(v) = self.data.views.as_mut() {
            abs(&mut v.path);
        }
        if let Some(r) = self.data.scratch_run.as_mut() {
            abs(r);
        }
    }
}
