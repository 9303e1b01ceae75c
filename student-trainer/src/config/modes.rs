//! The `[online]` training-mode table: several networks trained in one loop, each learning
//! from the others. (`[self_distill]` lives with the exits it configures:
//! [`trainer_core::model::exits::SelfDistillConfig`].)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use trainer_core::model::StudentConfig;

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
