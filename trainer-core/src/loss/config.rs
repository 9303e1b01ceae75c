//! The `[[loss]]` tables of a run: which loss terms, on which teacher columns, with what
//! weights and parameters.

use serde::{Deserialize, Serialize};

use super::FeatureDistance;

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

impl From<DistanceConfig> for FeatureDistance {
    fn from(d: DistanceConfig) -> Self {
        use FeatureDistance as F;
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
        #[serde(default, deserialize_with = "crate::serde_kind::kind_or_table")]
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

fn one() -> f64 {
    1.0
}
