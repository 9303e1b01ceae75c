//! The `[student]` tables of the text students (`arch = "static"`, `arch = "transformer"`):
//! sizes, and where their starting weights come from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ModelError;

/// The Hugging Face name of a BERT-family word-embedding table.
pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";

/// A token-embedding table with masked mean pooling (the Model2Vec / Tokenlearn student).
///
/// ```toml
/// [student]
/// arch = "static"
/// vocab = 30522
/// dim = 256
/// project_to = 384
/// init = { from = ".deps/models/minilm-l6/model.safetensors", pca = true }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Number of rows of the table (token ids must be below it).
    pub vocab: usize,
    /// Width of each row.
    pub dim: usize,
    /// If set, a linear map from `dim` to this width (the teacher's) after pooling.
    #[serde(default)]
    pub project_to: Option<usize>,
    /// Start from a teacher's token-embedding table instead of random rows.
    #[serde(default)]
    pub init: Option<StaticInit>,
}

/// Where a static student's starting table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticInit {
    /// A safetensors file holding the table.
    pub from: PathBuf,
    /// The table's tensor name in that file.
    #[serde(default = "default_table")]
    pub tensor: String,
    /// Reduce the table's width to `dim` by PCA (centred, top `dim` components). Without it the
    /// table's width must equal `dim`.
    #[serde(default)]
    pub pca: bool,
}

fn default_table() -> String {
    WORD_EMBEDDINGS.to_string()
}

/// A BERT-style encoder: embeddings, `layers` post-LayerNorm blocks, masked mean pooling.
///
/// ```toml
/// [student]
/// arch = "transformer"
/// layers = 3
/// hidden = 384
/// heads = 12
/// ffn = 1536
/// init = { from = ".deps/models/minilm-l6/model.safetensors", layers = [0, 2, 4] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Number of encoder blocks.
    pub layers: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Attention heads (`hidden` must be a multiple).
    pub heads: usize,
    /// Width of the feed-forward layer.
    pub ffn: usize,
    /// Vocabulary size.
    #[serde(default = "default_vocab")]
    pub vocab: usize,
    /// Longest sequence (rows of the position table).
    #[serde(default = "default_max_positions")]
    pub max_positions: usize,
    /// Rows of the token-type table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// If set, a linear map from `hidden` to this width after pooling.
    #[serde(default)]
    pub project_to: Option<usize>,
    /// Start from BERT-family safetensors (Hugging Face names).
    #[serde(default)]
    pub init: Option<TransformerInit>,
}

/// Where a transformer student's starting weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerInit {
    /// A BERT-family safetensors file (`embeddings.*`, `encoder.layer.N.*`).
    pub from: PathBuf,
    /// Which source layers become the student's blocks, in order; its length must equal
    /// `layers`. Default: `0..layers`.
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
}

fn default_vocab() -> usize {
    30522
}
fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl StaticConfig {
    /// Checks sizes.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.vocab == 0 || self.dim == 0 {
            return bad(format!(
                "student.vocab = {} and student.dim = {} must both be >= 1",
                self.vocab, self.dim
            ));
        }
        if self.project_to == Some(0) {
            return bad("student.project_to is 0; it must be >= 1".into());
        }
        Ok(())
    }

    /// Width of the pooled output.
    pub fn output_dim(&self) -> usize {
        self.project_to.unwrap_or(self.dim)
    }
}

impl TransformerConfig {
    /// Checks sizes and the `init.layers` list's length.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        for (k, v) in [
            ("layers", self.layers),
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("ffn", self.ffn),
            ("vocab", self.vocab),
            ("max_positions", self.max_positions),
            ("type_vocab", self.type_vocab),
        ] {
            if v == 0 {
                return bad(format!("student.{k} is 0; it must be >= 1"));
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(format!(
                "student.hidden = {} is not a multiple of student.heads = {}",
                self.hidden, self.heads
            ));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad(format!(
                "student.layer_norm_eps = {} must be > 0",
                self.layer_norm_eps
            ));
        }
        if self.project_to == Some(0) {
            return bad("student.project_to is 0; it must be >= 1".into());
        }
        if let Some(TransformerInit {
            layers: Some(l), ..
        }) = &self.init
        {
            if l.len() != self.layers {
                return bad(format!(
                    "student.init.layers lists {} source layers ({l:?}) but student.layers = {}",
                    l.len(),
                    self.layers
                ));
            }
        }
        Ok(())
    }

    /// Width of the pooled output.
    pub fn output_dim(&self) -> usize {
        self.project_to.unwrap_or(self.hidden)
    }

    /// The sizes of a Hugging Face BERT `config.json` (`hidden_size`, `num_hidden_layers`, ...).
    pub fn from_hf_config(json: &str) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct Hf {
            hidden_size: usize,
            num_hidden_layers: usize,
            num_attention_heads: usize,
            intermediate_size: usize,
            vocab_size: usize,
            max_position_embeddings: usize,
            #[serde(default = "default_type_vocab")]
            type_vocab_size: usize,
            #[serde(default = "default_eps")]
            layer_norm_eps: f64,
            #[serde(default)]
            hidden_act: Option<String>,
        }
        let hf: Hf = serde_json::from_str(json)
            .map_err(|e| ModelError::Config(format!("BERT config.json: {e}")))?;
        if let Some(act) = hf.hidden_act.as_deref() {
            if act != "gelu" {
                return Err(ModelError::Config(format!(
                    "BERT config.json: hidden_act = {act:?}; only \"gelu\" (erf) is supported"
                )));
            }
        }
        let cfg = Self {
            layers: hf.num_hidden_layers,
            hidden: hf.hidden_size,
            heads: hf.num_attention_heads,
            ffn: hf.intermediate_size,
            vocab: hf.vocab_size,
            max_positions: hf.max_position_embeddings,
            type_vocab: hf.type_vocab_size,
            layer_norm_eps: hf.layer_norm_eps,
            project_to: None,
            init: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
