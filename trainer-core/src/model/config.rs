//! The `[student]` table of a run's TOML: which architecture to build, and its sizes.

use serde::{Deserialize, Serialize};

use super::text::config::{StaticConfig, TransformerConfig};
use super::ModelError;

/// A student architecture and its hyper-parameters (the `[student]` table, tagged by `arch`).
///
/// ```toml
/// [student]
/// arch = "mlp"
/// hidden = [800, 800]
/// dropout = 0.2
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase", deny_unknown_fields)]
pub enum StudentConfig {
    /// Fully connected: `Linear + ReLU (+ dropout)` per entry of `hidden`, then a linear head.
    Mlp {
        /// Width of each hidden layer, input side first. May be empty (a linear classifier).
        hidden: Vec<usize>,
        /// Dropout probability after each hidden activation (training only).
        #[serde(default)]
        dropout: f32,
        /// Dropout probability on the input features (training only).
        #[serde(default)]
        input_dropout: f32,
    },
    /// Convolutional: `conv3x3 (pad 1) + ReLU + maxpool 2x2` per entry of `channels`, then one
    /// hidden `Linear + ReLU (+ dropout)` of width `hidden`, then a linear head.
    Cnn {
        /// Output channels of each conv block, input side first. May be empty.
        channels: Vec<usize>,
        /// Width of the fully connected hidden layer after the conv blocks.
        hidden: usize,
        /// Dropout probability after the fully connected hidden activation (training only).
        #[serde(default)]
        dropout: f32,
        /// Shape `[C, H, W]` the flat input rows are read as (row-major, like numpy `reshape`).
        #[serde(default = "default_input_shape")]
        input_shape: [usize; 3],
    },
    /// Text: a token-embedding table with mean pooling ([`StaticConfig`]).
    Static(StaticConfig),
    /// Text: a BERT-style encoder with mean pooling ([`TransformerConfig`]).
    Transformer(TransformerConfig),
}

/// MNIST's `[1, 28, 28]`.
fn default_input_shape() -> [usize; 3] {
    [1, 28, 28]
}

impl StudentConfig {
    /// The architecture's name as written in the TOML (`mlp`, `cnn`).
    pub fn arch_name(&self) -> &'static str {
        match self {
            StudentConfig::Mlp { .. } => "mlp",
            StudentConfig::Cnn { .. } => "cnn",
            StudentConfig::Static(_) => "static",
            StudentConfig::Transformer(_) => "transformer",
        }
    }

    /// Whether this is a text student (trained on a token column against embeddings).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            StudentConfig::Static(_) | StudentConfig::Transformer(_)
        )
    }

    /// Checks sizes and probabilities, and that the architecture fits `input_dim` inputs.
    pub fn validate(&self, input_dim: usize, num_classes: usize) -> Result<(), ModelError> {
        let bad = |msg: String| Err(ModelError::Config(msg));
        if input_dim == 0 {
            return bad("input width must be at least 1".into());
        }
        if num_classes == 0 {
            return bad("number of classes must be at least 1".into());
        }
        match self {
            StudentConfig::Mlp {
                hidden,
                dropout,
                input_dropout,
            } => {
                if let Some(i) = hidden.iter().position(|&h| h == 0) {
                    return bad(format!(
                        "student.hidden[{i}] is 0; layer widths must be >= 1"
                    ));
                }
                check_prob("student.dropout", *dropout)?;
                check_prob("student.input_dropout", *input_dropout)?;
            }
            StudentConfig::Cnn {
                channels,
                hidden,
                dropout,
                input_shape,
            } => {
                let [c, h, w] = *input_shape;
                if c == 0 || h == 0 || w == 0 {
                    return bad(format!(
                        "student.input_shape {input_shape:?} has a zero dimension"
                    ));
                }
                if c * h * w != input_dim {
                    return bad(format!(
                        "student.input_shape {input_shape:?} holds {} values but the data rows have {input_dim} features",
                        c * h * w
                    ));
                }
                if let Some(i) = channels.iter().position(|&ch| ch == 0) {
                    return bad(format!(
                        "student.channels[{i}] is 0; channel counts must be >= 1"
                    ));
                }
                let (mut hh, mut ww) = (h, w);
                for i in 0..channels.len() {
                    if hh < 2 || ww < 2 {
                        return bad(format!(
                            "student.channels has {} conv blocks but the {hh}x{ww} map before block {i} is too small for a 2x2 max-pool (input {h}x{w})",
                            channels.len()
                        ));
                    }
                    hh /= 2;
                    ww /= 2;
                }
                if *hidden == 0 {
                    return bad("student.hidden is 0; the hidden layer width must be >= 1".into());
                }
                check_prob("student.dropout", *dropout)?;
            }
            StudentConfig::Static(c) => c.validate()?,
            StudentConfig::Transformer(c) => c.validate()?,
        }
        Ok(())
    }
}

/// A dropout probability must lie in `[0, 1)`.
fn check_prob(name: &str, p: f32) -> Result<(), ModelError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "{name} = {p} is not a probability in [0, 1)"
        )))
    }
}
