//! The typed run configuration (`run.toml`): data sources, student architecture, loss terms
//! and training settings. Every table denies unknown keys, so a typo is an error naming the
//! key and the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::StudentConfig;

mod keys;
mod kind;
pub mod legacy;
pub mod modes;
mod validate;

pub use modes::{exit_name, OnlineConfig, SelfDistillConfig};

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
    /// The student architecture (owned by [`crate::model`]).
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

/// The `[data]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training rows: a label-store dataset folder, one Parquet file, or a glob of files.
    pub train: String,
    /// Held-out, hard-labelled rows evaluated each epoch (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<String>,
    /// Name of the input column: FixedSizeList of floats, or for a text student (`static`,
    /// `transformer`) the token-id column (List<Int32|Int64>, e.g. `input_ids`).
    pub input: String,
    /// Name of the hard-label column (integers); optional for pure distillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Extra teacher datasets joined to the training rows by `id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<TeacherSource>,
    /// Teacher outputs stored per augmented view (`distill-label label --views K`), replayed
    /// so the student sees the inputs the teacher scored ([`ViewsConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewsConfig>,
    /// A running teacher-server asked for the teacher's outputs of every augmented batch
    /// ([`ServedConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<ServedConfig>,
    /// Number of classes; inferred from the teacher logits width or the labels when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Shape of one input as `[H, W]` or `[C, H, W]`, used by `train.jitter`; a square
    /// single-channel image is assumed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<Vec<usize>>,
    /// Teacher-logits column of the eval set for agreement and eval KD loss; defaults to the
    /// first `kd` term's column when the eval set has it. For a text student: the embedding
    /// column teacher fidelity is measured against (default: the first term on the pooled
    /// embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_teacher: Option<String>,
    /// A finished scratch run's folder (a run without teacher terms on the same eval set):
    /// the teacher check compares the teacher with its eval errors. Without one, a run that
    /// learned from the teacher gets no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_run: Option<String>,
    /// Text: the token-type column (e.g. `token_type_ids`), fed to a transformer student;
    /// absent: every token has type 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_types: Option<String>,
    /// Text: sort each shuffle window by token count before cutting batches, then shuffle
    /// the batches (less padding per batch).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bucket_by_length: bool,
    /// Text: training rows held in memory per shuffle window (default 262144). A source with
    /// more rows is streamed: each epoch reads it once per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_window: Option<usize>,
    /// Text: hold out this fraction of the training source for eval, chosen by a hash of the
    /// row id (the same rows for every seed); an alternative to `data.eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_fraction: Option<f64>,
    /// Text: train on this fraction of the (non-held-out) rows only, chosen by a hash of the
    /// row id — the same subset for every seed and labelling order; a budget knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_fraction: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One extra teacher dataset (`[[data.teachers]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeacherSource {
    /// Short name; a loss term can address one teacher's column as `NAME:column`.
    pub name: String,
    /// A label-store dataset folder, Parquet file or glob, with an `id` column.
    pub path: String,
    /// Weight of this teacher's soft targets in the average.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// `[data.views]`: the teacher's outputs of K seeded augmented views of each training row.
///
/// Epoch `e` trains every row on its view `e mod K`: the input is rebuilt from the row's
/// un-augmented input (`data.train`) and the view's stored seed, and the loss terms' teacher
/// columns are read from that view's row, so student and teacher see the same input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViewsConfig {
    /// The label-store dataset folder (or Parquet file / glob) holding the views.
    pub path: String,
    /// Use views `0..count` only (default: all K the dataset holds for every row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `[data.served]`: the frozen teacher served online. Each training batch is augmented
/// (epoch `e` uses view `e` of each row, the seeds `distill-label label --views` uses), sent
/// to the server, and the loss terms' teacher columns are the server's outputs of that batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServedConfig {
    /// Base URL of the teacher-server, e.g. `http://127.0.0.1:8080` (token: `DISTILL_API_TOKEN`).
    pub server: String,
    /// The augmentation, e.g. `"jitter=2"` (as `distill-label label --augment`).
    pub augment: distill_proto::views::Augment,
    /// Base seed of the view seeds (`distill-label label --view-seed`).
    #[serde(default)]
    pub view_seed: u64,
    /// The model input the batch is sent as (default: `data.input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_input: Option<String>,
    /// Seconds one request may take before it is retried.
    #[serde(default = "default_served_timeout")]
    pub timeout_secs: f64,
}

fn default_served_timeout() -> f64 {
    60.0
}

/// Distance of a `feature` loss term; the parameter travels with the variant that uses it.
///
/// `distance = "mse"` or `distance = { kind = "smooth_l1", beta = 0.5 }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DistanceConfig {
    /// Mean squared error.
    // Empty braces, not unit variants: serde ignores extra keys of a tagged unit variant.
    Mse {},
    /// Mean absolute error.
    L1 {},
    /// Huber / smooth L1.
    SmoothL1 {
        /// Where the penalty turns from quadratic to linear.
        #[serde(default = "one")]
        beta: f64,
    },
    /// 1 - cosine similarity.
    Cosine {},
    /// KL divergence of the softmaxed features.
    Kl {
        /// Softmax temperature.
        #[serde(default = "one")]
        temperature: f64,
    },
}

impl Default for DistanceConfig {
    fn default() -> Self {
        DistanceConfig::Mse {}
    }
}

impl From<DistanceConfig> for crate::loss::FeatureDistance {
    fn from(d: DistanceConfig) -> Self {
        use crate::loss::FeatureDistance as F;
        match d {
            DistanceConfig::Mse {} => F::Mse,
            DistanceConfig::L1 {} => F::L1,
            DistanceConfig::SmoothL1 { beta } => F::SmoothL1 { beta },
            DistanceConfig::Cosine {} => F::Cosine,
            DistanceConfig::Kl { temperature } => F::Kl { temperature },
        }
    }
}
/// One `[[loss]]` term, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossTerm {
    /// Cross-entropy with the hard labels.
    Ce {
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// Hinton KD: batchmean KL(softmax(t/T) || softmax(s/T)) · T².
    Kd {
        /// Stored teacher-logits column (top-k columns are detected automatically).
        teacher: String,
        /// Softmax temperature.
        temperature: f64,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// Binary cross-entropy against sigmoid(t/T) (multi-label teachers).
    SoftBce {
        /// Stored teacher-logits column.
        teacher: String,
        /// Temperature.
        #[serde(default = "one")]
        temperature: f64,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// FitNets-style feature matching, with a learned linear projector when widths differ.
    Feature {
        /// Stored teacher feature column.
        teacher: String,
        /// Student hidden layer index (default: last hidden layer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student_layer: Option<usize>,
        /// Distance, with its own parameter (default `mse`).
        #[serde(default, deserialize_with = "kind::kind_or_table")]
        distance: DistanceConfig,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// Relational KD (distance and angle terms).
    Rkd {
        /// Stored teacher feature column.
        teacher: String,
        /// Student hidden layer index (default: last hidden layer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student_layer: Option<usize>,
        /// Weight of the distance term.
        #[serde(default = "one")]
        distance_weight: f64,
        /// Weight of the angle term.
        #[serde(default = "two")]
        angle_weight: f64,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// Similarity-preserving KD.
    Sp {
        /// Stored teacher feature column.
        teacher: String,
        /// Student hidden layer index (default: last hidden layer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student_layer: Option<usize>,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
    /// InfoNCE between projected student embeddings and teacher embeddings of the batch.
    Infonce {
        /// Stored teacher feature column.
        teacher: String,
        /// Student hidden layer index (default: last hidden layer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        student_layer: Option<usize>,
        /// Temperature.
        #[serde(default = "default_nce_temperature")]
        temperature: f64,
        /// Weight in the sum.
        #[serde(default = "one")]
        weight: f64,
    },
}

fn two() -> f64 {
    2.0
}

fn default_nce_temperature() -> f64 {
    0.1
}

impl LossTerm {
    /// The `kind` name as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            LossTerm::Ce { .. } => "ce",
            LossTerm::Kd { .. } => "kd",
            LossTerm::SoftBce { .. } => "soft_bce",
            LossTerm::Feature { .. } => "feature",
            LossTerm::Rkd { .. } => "rkd",
            LossTerm::Sp { .. } => "sp",
            LossTerm::Infonce { .. } => "infonce",
        }
    }

    /// The weight of the term in the sum.
    pub fn weight(&self) -> f64 {
        match self {
            LossTerm::Ce { weight }
            | LossTerm::Kd { weight, .. }
            | LossTerm::SoftBce { weight, .. }
            | LossTerm::Feature { weight, .. }
            | LossTerm::Rkd { weight, .. }
            | LossTerm::Sp { weight, .. }
            | LossTerm::Infonce { weight, .. } => *weight,
        }
    }

    /// The teacher column the term reads, if any.
    pub fn teacher(&self) -> Option<&str> {
        match self {
            LossTerm::Ce { .. } => None,
            LossTerm::Kd { teacher, .. }
            | LossTerm::SoftBce { teacher, .. }
            | LossTerm::Feature { teacher, .. }
            | LossTerm::Rkd { teacher, .. }
            | LossTerm::Sp { teacher, .. }
            | LossTerm::Infonce { teacher, .. } => Some(teacher),
        }
    }

    /// The student hidden layer the term reads (feature-like terms only), `None` = last.
    pub fn student_layer(&self) -> Option<Option<usize>> {
        match self {
            LossTerm::Feature { student_layer, .. }
            | LossTerm::Rkd { student_layer, .. }
            | LossTerm::Sp { student_layer, .. }
            | LossTerm::Infonce { student_layer, .. } => Some(*student_layer),
            _ => None,
        }
    }

    /// A short label for metrics, e.g. `kd:logits`.
    pub fn label(&self) -> String {
        match self.teacher() {
            Some(t) => format!("{}:{t}", self.kind()),
            None => self.kind().to_string(),
        }
    }
}

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
    #[serde(default, deserialize_with = "kind::kind_or_table")]
    pub optimizer: OptimizerConfig,
    /// `[train.schedule]`.
    #[serde(default, deserialize_with = "kind::kind_or_table")]
    pub schedule: ScheduleConfig,
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
