//! The training-mode tables beside offline distillation: `[online]` (several networks trained
//! in one loop, each learning from the others) and `[self_distill]` (auxiliary exits of one
//! network taught by its deepest exit).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::StudentConfig;

/// The `[online]` table, tagged by `mode`.
///
/// ```toml
/// [online]
/// mode = "mutual"
/// temperature = 1.0
/// [online.peers.peer1]
/// arch = "mlp"
/// hidden = [800, 800]
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum OnlineConfig {
    /// Deep mutual learning (Zhang et al. 2018): the `[student]` and every peer learn from
    /// their own loss and the mean KL to the others' softened outputs.
    Mutual {
        /// Softmax temperature of the KL terms (scaled by T²).
        #[serde(default = "one")]
        temperature: f64,
        /// Weight of the KL term in each network's loss.
        #[serde(default = "one")]
        weight: f64,
        /// The other networks by name (`[online.peers.NAME]`, each a `[student]`-style table).
        peers: BTreeMap<String, StudentConfig>,
    },
    /// A larger teacher and the `[student]` trained jointly; the teacher trains alone for
    /// `warmup_epochs` epochs first, then the student learns from its softened outputs.
    TeacherStudent {
        /// Softmax temperature of the KL terms (scaled by T²).
        #[serde(default = "one")]
        temperature: f64,
        /// Weight of the student's KL term toward the teacher.
        #[serde(default = "one")]
        weight: f64,
        /// Epochs the teacher trains alone before `train.epochs` joint epochs.
        #[serde(default)]
        warmup_epochs: usize,
        /// Weight of a KL term from the student back into the teacher's loss (0: the teacher
        /// learns from the hard labels only).
        #[serde(default)]
        teacher_weight: f64,
        /// The teacher network (a `[student]`-style table).
        teacher: StudentConfig,
    },
}

fn one() -> f64 {
    1.0
}

fn default_kd_weight() -> f64 {
    0.5
}

impl OnlineConfig {
    /// The `mode` name as written in the config.
    pub fn mode(&self) -> &'static str {
        match self {
            OnlineConfig::Mutual { .. } => "mutual",
            OnlineConfig::TeacherStudent { .. } => "teacher_student",
        }
    }

    /// The softmax temperature of the online KL terms.
    pub fn temperature(&self) -> f64 {
        match self {
            OnlineConfig::Mutual { temperature, .. }
            | OnlineConfig::TeacherStudent { temperature, .. } => *temperature,
        }
    }

    /// The networks beside the `[student]`, by name, with their configs.
    pub fn others(&self) -> Vec<(String, StudentConfig)> {
        match self {
            OnlineConfig::Mutual { peers, .. } => {
                peers.iter().map(|(n, c)| (n.clone(), c.clone())).collect()
            }
            OnlineConfig::TeacherStudent { teacher, .. } => {
                vec![("teacher".to_string(), teacher.clone())]
            }
        }
    }

    /// Teacher warm-up epochs (0 for mutual learning).
    pub fn warmup_epochs(&self) -> usize {
        match self {
            OnlineConfig::Mutual { .. } => 0,
            OnlineConfig::TeacherStudent { warmup_epochs, .. } => *warmup_epochs,
        }
    }
}

/// The `[self_distill]` table (Zhang et al. 2019, "Be Your Own Teacher").
///
/// ```toml
/// [self_distill]
/// exits = [0]          # a head after hidden layer 0 (MLP) / conv / transformer block 0
/// temperature = 3.0    # image students only
/// kd_weight = 0.5      # exit loss: (1 - kd_weight)·task + kd_weight·KD(deepest exit)
/// hint_weight = 0.0    # + hint_weight·MSE(projected exit features, deepest features)
/// ```
///
/// Image students: the task loss is `ce`, KD the softened KL (`temperature`, default 3).
/// Transformer students: the task loss is the run's `[[loss]]` terms on the pooled embedding,
/// KD the cosine distance to the deepest embedding, which has no temperature (the key is
/// refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfDistillConfig {
    /// Hidden layers (MLP), conv blocks (CNN) or encoder blocks (transformer) after which an
    /// exit head sits; the deepest exit is the network's own head.
    pub exits: Vec<usize>,
    /// Width of a ReLU hidden layer inside each exit head (absent: a linear head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hidden: Option<usize>,
    /// Softmax temperature of the KD term from the deepest exit (scaled by T²; image students
    /// only, absent: [`SelfDistillConfig::DEFAULT_TEMPERATURE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Share of KD in an exit's loss: `(1 - kd_weight)·task + kd_weight·kd`.
    #[serde(default = "default_kd_weight")]
    pub kd_weight: f64,
    /// Weight of the feature hint: MSE between a learned projection of the exit's features
    /// and the deepest hidden representation (0 = no hint).
    #[serde(default)]
    pub hint_weight: f64,
}

impl SelfDistillConfig {
    /// The image exits' KD temperature when `temperature` is absent.
    pub const DEFAULT_TEMPERATURE: f64 = 3.0;

    /// The image exits' KD temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature.unwrap_or(Self::DEFAULT_TEMPERATURE)
    }
}

/// Name of exit `layer` in metrics, files and variable names (`exit0`, `exit1`, …).
pub fn exit_name(layer: usize) -> String {
    format!("exit{layer}")
}
