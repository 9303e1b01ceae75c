//! Text students behind one API: token ids in, a pooled embedding (plus per-layer outputs) out.
//! The trainer's token data path and the text evaluators build on [`TextStudent::forward`].

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

pub mod config;
pub mod output;
pub mod pca;
pub mod static_embed;
pub mod transformer;
pub mod weights;

use crate::model::{ExitHead, ModelError, StudentConfig};
use static_embed::StaticEmbed;
use transformer::Transformer;

pub use config::{StaticConfig, TransformerConfig};
pub use output::{masked_mean, TextOutput};

/// The architecture inside a [`TextStudent`].
#[derive(Debug)]
pub enum TextNetwork {
    /// Token-embedding table + mean pooling.
    Static(StaticEmbed),
    /// BERT-style encoder + mean pooling.
    Transformer(Transformer),
}

/// A text student: its layers (weights in the `VarMap` it was built with).
#[derive(Debug)]
pub struct TextStudent {
    network: TextNetwork,
}

impl TextStudent {
    /// Builds the layers of a `static` or `transformer` config under `vb` (fresh weights from a
    /// `VarBuilder::from_varmap`, or loaded from a checkpoint). Initial weights from `init`
    /// are applied separately by [`TextStudent::init_from_config`].
    pub fn new(config: &StudentConfig, vb: VarBuilder) -> Result<Self, ModelError> {
        let network = match config {
            StudentConfig::Static(c) => {
                c.validate()?;
                TextNetwork::Static(StaticEmbed::new(c, vb)?)
            }
            StudentConfig::Transformer(c) => {
                c.validate()?;
                TextNetwork::Transformer(Transformer::new(c, vb)?)
            }
            other => {
                return Err(ModelError::Config(format!(
                    "arch `{}` is not a text student (expected `static` or `transformer`)",
                    other.arch_name()
                )))
            }
        };
        Ok(Self { network })
    }

    /// A fresh student in a new `VarMap` on the CPU, with the config's `init` applied.
    pub fn build(config: &StudentConfig) -> Result<(VarMap, Self), ModelError> {
        let vm = VarMap::new();
        let s = Self::new(
            config,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )?;
        s.init_from_config(&vm)?;
        Ok((vm, s))
    }

    /// Overwrites the variables in `vm` (which this student was built from) with the weights
    /// the config's `init` names; does nothing without an `init`.
    pub fn init_from_config(&self, vm: &VarMap) -> Result<(), ModelError> {
        match &self.network {
            TextNetwork::Static(s) => match &s.config().init {
                Some(init) => weights::init_static(vm, s.config(), init),
                None => Ok(()),
            },
            TextNetwork::Transformer(t) => match &t.config().init {
                Some(init) => weights::init_transformer(vm, t.config(), init),
                None => Ok(()),
            },
        }
    }

    /// Runs the student. `ids`: u32 or i64 `[batch, seq]` token ids; `mask`: `[batch, seq]`,
    /// 1 for a token and 0 for padding (any numeric dtype); `type_ids`: like `ids`, or `None`
    /// for all zeros (the static student ignores them).
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        type_ids: Option<&Tensor>,
    ) -> Result<TextOutput, ModelError> {
        let (b, s) = ids.dims2().map_err(|_| {
            ModelError::TextInput(format!(
                "input_ids has shape {:?}, expected [batch, seq]",
                ids.dims()
            ))
        })?;
        if b == 0 || s == 0 {
            return Err(ModelError::TextInput(format!(
                "input_ids has shape [{b}, {s}]; batch and sequence must be >= 1"
            )));
        }
        if mask.dims() != ids.dims() {
            return Err(ModelError::TextInput(format!(
                "attention_mask has shape {:?}, input_ids {:?}",
                mask.dims(),
                ids.dims()
            )));
        }
        let ids = check_ids("input_ids", ids, self.vocab())?;
        let mask = mask.to_dtype(DType::F32)?;
        match &self.network {
            TextNetwork::Static(st) => Ok(st.forward(&ids, &mask)?),
            TextNetwork::Transformer(t) => {
                let c = t.config();
                if s > c.max_positions {
                    return Err(ModelError::TextInput(format!(
                        "sequence length {s} exceeds the student's max_positions {}",
                        c.max_positions
                    )));
                }
                let types = match type_ids {
                    Some(tt) => {
                        if tt.dims() != ids.dims() {
                            return Err(ModelError::TextInput(format!(
                                "token_type_ids has shape {:?}, input_ids {:?}",
                                tt.dims(),
                                ids.dims()
                            )));
                        }
                        Some(check_ids("token_type_ids", tt, c.type_vocab)?)
                    }
                    None => None,
                };
                Ok(t.forward(&ids, &mask, types.as_ref())?)
            }
        }
    }

    /// Rows of the token table: ids must be below it.
    pub fn vocab(&self) -> usize {
        match &self.network {
            TextNetwork::Static(s) => s.config().vocab,
            TextNetwork::Transformer(t) => t.config().vocab,
        }
    }

    /// Width of [`TextOutput::embedding`].
    pub fn output_dim(&self) -> usize {
        match &self.network {
            TextNetwork::Static(s) => s.config().output_dim(),
            TextNetwork::Transformer(t) => t.config().output_dim(),
        }
    }

    /// Width of each entry of [`TextOutput::hidden`].
    pub fn feature_dims(&self) -> Vec<usize> {
        match &self.network {
            TextNetwork::Static(_) => Vec::new(),
            TextNetwork::Transformer(t) => vec![t.config().hidden; t.config().layers],
        }
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        match &self.network {
            TextNetwork::Static(s) => s.param_count(),
            TextNetwork::Transformer(t) => t.param_count(),
        }
    }

    /// Trainable scalars of the model truncated at a self-distillation `exit`: embeddings,
    /// the blocks up to the exit's and the exit head (the projector excluded).
    pub fn exit_param_count(&self, exit: &ExitHead) -> usize {
        let encoder = match &self.network {
            TextNetwork::Static(_) => 0,
            TextNetwork::Transformer(t) => t.encoder_param_count(exit.layer() + 1),
        };
        encoder + exit.param_count()
    }

    /// The architecture's name (`static`, `transformer`).
    pub fn arch_name(&self) -> &'static str {
        match &self.network {
            TextNetwork::Static(_) => "static",
            TextNetwork::Transformer(_) => "transformer",
        }
    }

    /// The layers (the exporter reads the weights from here).
    pub fn network(&self) -> &TextNetwork {
        &self.network
    }
}

/// `ids` as u32, after checking every id is below `limit` (candle's gather would fail on it
/// deep inside with no name).
fn check_ids(what: &str, ids: &Tensor, limit: usize) -> Result<Tensor, ModelError> {
    let ids = match ids.dtype() {
        DType::U32 => ids.clone(),
        DType::I64 => {
            let min = ids.flatten_all()?.min(0)?.to_scalar::<i64>()?;
            if min < 0 {
                return Err(ModelError::TextInput(format!(
                    "{what} holds a negative id {min}"
                )));
            }
            ids.to_dtype(DType::U32)?
        }
        other => {
            return Err(ModelError::TextInput(format!(
                "{what} has dtype {other:?}, expected u32 or i64"
            )))
        }
    };
    let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
    if max >= limit {
        return Err(ModelError::TextInput(format!(
            "{what} holds id {max}, but the student's table has {limit} rows"
        )));
    }
    Ok(ids)
}

/// Pads ragged token rows into `(ids u32 [b, max_len], mask f32 [b, max_len])` with id `pad`.
pub fn pad_batch(rows: &[Vec<u32>], pad: u32) -> Result<(Tensor, Tensor), ModelError> {
    let len = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * len);
    let mut mask = Vec::with_capacity(rows.len() * len);
    for r in rows {
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(pad, len - r.len()));
        mask.extend(std::iter::repeat_n(1f32, r.len()));
        mask.extend(std::iter::repeat_n(0f32, len - r.len()));
    }
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (rows.len(), len), &dev)?,
        Tensor::from_vec(mask, (rows.len(), len), &dev)?,
    ))
}
