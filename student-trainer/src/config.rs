//! The typed run configuration (`run.toml`): data sources, student architecture, loss terms
//! and training settings. Every table denies unknown keys, so a typo is an error naming the
//! key and the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::StudentConfig;

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
    /// The TOML does not parse or does not fit the schema (toml's message names the key).
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, naming the key and line.
        message: String,
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
    /// Name of the input column (FixedSizeList of floats).
    pub input: String,
    /// Name of the hard-label column (integers); optional for pure distillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Extra teacher datasets joined to the training rows by `id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<TeacherSource>,
    /// Number of classes; inferred from the teacher logits width or the labels when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Shape of one input as `[H, W]` or `[C, H, W]`, used by `train.jitter`; a square
    /// single-channel image is assumed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<Vec<usize>>,
    /// Teacher-logits column of the eval set for agreement and eval KD loss; defaults to the
    /// first `kd` term's column when the eval set has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_teacher: Option<String>,
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

/// Distance of a `feature` loss term.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DistanceKind {
    /// Mean squared error.
    #[default]
    Mse,
    /// Mean absolute error.
    L1,
    /// Huber / smooth L1 with `beta`.
    SmoothL1,
    /// 1 - cosine similarity.
    Cosine,
    /// KL divergence of softmaxed features with `temperature`.
    Kl,
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
        /// Distance.
        #[serde(default)]
        distance: DistanceKind,
        /// Beta of `smooth_l1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beta: Option<f64>,
        /// Temperature of `kl`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
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

/// Optimizer kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW with decoupled weight decay.
    #[default]
    Adamw,
    /// SGD with optional (Nesterov) momentum.
    Sgd,
}

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant learning rate.
    #[default]
    Constant,
    /// Cosine decay to `min_lr` at the last step.
    Cosine,
    /// Multiply by `gamma` every `step_epochs` epochs.
    Step,
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
    /// `adamw` or `sgd`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled (AdamW) or L2 (SGD) weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW betas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub betas: Option<[f64; 2]>,
    /// AdamW epsilon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// SGD momentum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// SGD Nesterov momentum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    /// `constant`, `cosine` or `step`.
    #[serde(default)]
    pub schedule: ScheduleKind,
    /// Linear warm-up length in epochs (fractions allowed).
    #[serde(default)]
    pub warmup_epochs: f64,
    /// Floor of the cosine schedule.
    #[serde(default)]
    pub min_lr: f64,
    /// Period of the step schedule, in epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_epochs: Option<usize>,
    /// Factor of the step schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Seed of initialisation, shuffling and jitter.
    #[serde(default)]
    pub seed: u64,
    /// ±N-pixel random translation of image inputs.
    #[serde(default)]
    pub jitter: usize,
    /// Optional early stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
}

fn default_batch() -> usize {
    128
}

fn default_eval_batch() -> usize {
    1024
}

impl TrainConfig {
    /// AdamW betas (default 0.9, 0.999).
    pub fn betas(&self) -> (f64, f64) {
        let b = self.betas.unwrap_or([0.9, 0.999]);
        (b[0], b[1])
    }
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
        let cfg: RunConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The config as TOML (what `config.toml` of a run folder holds).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<resolved config>"),
            message: e.to_string(),
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
    }

    /// Range and consistency checks serde cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let t = &self.train;
        if t.epochs == 0 {
            return Err(bad("train.epochs", "must be at least 1".into()));
        }
        if t.batch_size == 0 {
            return Err(bad("train.batch_size", "must be at least 1".into()));
        }
        if t.eval_batch_size == 0 {
            return Err(bad("train.eval_batch_size", "must be at least 1".into()));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad("train.lr", format!("must be positive, got {}", t.lr)));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(bad("train.weight_decay", "must be >= 0".into()));
        }
        if !(t.warmup_epochs.is_finite() && t.warmup_epochs >= 0.0) {
            return Err(bad("train.warmup_epochs", "must be >= 0".into()));
        }
        if !(t.min_lr.is_finite() && t.min_lr >= 0.0 && t.min_lr <= t.lr) {
            return Err(bad("train.min_lr", "must be in [0, lr]".into()));
        }
        match t.optimizer {
            OptimizerKind::Adamw => {
                if t.momentum.is_some() {
                    return Err(bad(
                        "train.momentum",
                        "applies to optimizer = \"sgd\" only".into(),
                    ));
                }
                if t.nesterov.is_some() {
                    return Err(bad(
                        "train.nesterov",
                        "applies to optimizer = \"sgd\" only".into(),
                    ));
                }
                let (b1, b2) = t.betas();
                if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
                    return Err(bad("train.betas", "each beta must be in [0, 1)".into()));
                }
                if let Some(eps) = t.eps {
                    if !(eps.is_finite() && eps > 0.0) {
                        return Err(bad("train.eps", "must be positive".into()));
                    }
                }
            }
            OptimizerKind::Sgd => {
                if t.betas.is_some() {
                    return Err(bad(
                        "train.betas",
                        "applies to optimizer = \"adamw\" only".into(),
                    ));
                }
                if t.eps.is_some() {
                    return Err(bad(
                        "train.eps",
                        "applies to optimizer = \"adamw\" only".into(),
                    ));
                }
                let m = t.momentum.unwrap_or(0.0);
                if !(0.0..1.0).contains(&m) {
                    return Err(bad("train.momentum", "must be in [0, 1)".into()));
                }
                if t.nesterov == Some(true) && m == 0.0 {
                    return Err(bad(
                        "train.nesterov",
                        "needs a positive train.momentum".into(),
                    ));
                }
            }
        }
        match t.schedule {
            ScheduleKind::Step => {
                if t.step_epochs.unwrap_or(0) == 0 {
                    return Err(bad(
                        "train.step_epochs",
                        "schedule = \"step\" needs step_epochs >= 1".into(),
                    ));
                }
                let g = t.gamma.unwrap_or(0.1);
                if !(g > 0.0 && g <= 1.0) {
                    return Err(bad("train.gamma", "must be in (0, 1]".into()));
                }
            }
            _ => {
                if t.step_epochs.is_some() {
                    return Err(bad(
                        "train.step_epochs",
                        "applies to schedule = \"step\" only".into(),
                    ));
                }
                if t.gamma.is_some() {
                    return Err(bad(
                        "train.gamma",
                        "applies to schedule = \"step\" only".into(),
                    ));
                }
            }
        }
        if let Some(es) = &t.early_stopping {
            if es.patience == 0 {
                return Err(bad(
                    "train.early_stopping.patience",
                    "must be at least 1".into(),
                ));
            }
            if self.data.eval.is_none() {
                return Err(bad(
                    "train.early_stopping",
                    "needs data.eval (a held-out set to watch)".into(),
                ));
            }
        }
        if let Some(shape) = &self.data.image_shape {
            if !(shape.len() == 2 || shape.len() == 3) || shape.contains(&0) {
                return Err(bad(
                    "data.image_shape",
                    "must be [H, W] or [C, H, W] with positive sizes".into(),
                ));
            }
        }
        if self.data.num_classes == Some(0) {
            return Err(bad("data.num_classes", "must be at least 1".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, tsrc) in self.data.teachers.iter().enumerate() {
            let key = format!("data.teachers[{i}]");
            if tsrc.name.is_empty() || tsrc.name.contains(':') {
                return Err(bad(
                    &format!("{key}.name"),
                    "must be non-empty and contain no ':'".into(),
                ));
            }
            if !names.insert(tsrc.name.as_str()) {
                return Err(bad(
                    &format!("{key}.name"),
                    format!("duplicate teacher name {:?}", tsrc.name),
                ));
            }
            if !(tsrc.weight.is_finite() && tsrc.weight > 0.0) {
                return Err(bad(&format!("{key}.weight"), "must be positive".into()));
            }
        }
        if self.losses.is_empty() {
            return Err(bad(
                "loss",
                "no [[loss]] terms; add e.g. [[loss]] kind = \"ce\"".into(),
            ));
        }
        for (i, term) in self.losses.iter().enumerate() {
            let key = |k: &str| format!("loss[{i}].{k}");
            let w = term.weight();
            if !(w.is_finite() && w >= 0.0) {
                return Err(bad(&key("weight"), "must be >= 0".into()));
            }
            if let Some(teacher) = term.teacher() {
                if teacher.is_empty() {
                    return Err(bad(&key("teacher"), "must name a column".into()));
                }
            }
            match term {
                LossTerm::Ce { .. } => {
                    if self.data.label.is_none() {
                        return Err(bad(
                            &key("kind"),
                            "a \"ce\" term needs data.label (the hard-label column)".into(),
                        ));
                    }
                }
                LossTerm::Kd { temperature, .. }
                | LossTerm::SoftBce { temperature, .. }
                | LossTerm::Infonce { temperature, .. } => {
                    if !(temperature.is_finite() && *temperature > 0.0) {
                        return Err(bad(&key("temperature"), "must be positive".into()));
                    }
                }
                LossTerm::Feature {
                    distance,
                    beta,
                    temperature,
                    ..
                } => {
                    if beta.is_some() && *distance != DistanceKind::SmoothL1 {
                        return Err(bad(
                            &key("beta"),
                            "applies to distance = \"smooth_l1\" only".into(),
                        ));
                    }
                    if temperature.is_some() && *distance != DistanceKind::Kl {
                        return Err(bad(
                            &key("temperature"),
                            "applies to distance = \"kl\" only".into(),
                        ));
                    }
                    if let Some(b) = beta {
                        if !(b.is_finite() && *b > 0.0) {
                            return Err(bad(&key("beta"), "must be positive".into()));
                        }
                    }
                    if let Some(tt) = temperature {
                        if !(tt.is_finite() && *tt > 0.0) {
                            return Err(bad(&key("temperature"), "must be positive".into()));
                        }
                    }
                }
                LossTerm::Rkd {
                    distance_weight,
                    angle_weight,
                    ..
                } => {
                    if !(*distance_weight >= 0.0 && *angle_weight >= 0.0) {
                        return Err(bad(
                            &key("distance_weight"),
                            "distance_weight and angle_weight must be >= 0".into(),
                        ));
                    }
                }
                LossTerm::Sp { .. } => {}
            }
        }
        Ok(())
    }
}
