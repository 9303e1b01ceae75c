//! The static text student (Model2Vec / Tokenlearn): a `[vocab, dim]` token-embedding table,
//! masked mean pooling, and an optional linear map to the teacher's width.
//!
//! Weight names: `embeddings.weight [vocab, dim]`, `projector.weight [project_to, dim]`,
//! `projector.bias`.

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use super::config::StaticConfig;
use super::output::{masked_mean, TextOutput};
use crate::model::linear::linear;

/// A token-embedding table with masked mean pooling.
#[derive(Debug)]
pub struct StaticEmbed {
    config: StaticConfig,
    /// `[vocab, dim]`.
    pub table: Tensor,
    /// Optional map of the pooled row to `project_to`.
    pub projector: Option<Linear>,
}

impl StaticEmbed {
    /// Creates (or loads) the table and projector under `vb`. The caller has validated `config`.
    pub fn new(config: &StaticConfig, vb: VarBuilder) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let table = vb.get_with_hints((config.vocab, config.dim), "embeddings.weight", init)?;
        let projector = match config.project_to {
            Some(p) => Some(candle_nn::linear(config.dim, p, vb.pp("projector"))?),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            table,
            projector,
        })
    }

    /// The configuration this student was built from.
    pub fn config(&self) -> &StaticConfig {
        &self.config
    }

    /// Mean of the rows of the unmasked tokens, projected if configured. A static student has
    /// no layers: `hidden` and `tokens` are empty.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<TextOutput> {
        let (b, s) = ids.dims2()?;
        let rows = self.table.index_select(&ids.flatten_all()?, 0)?;
        let pooled = masked_mean(&rows.reshape((b, s, self.config.dim))?, mask)?;
        let embedding = match &self.projector {
            Some(p) => linear(p, &pooled)?,
            None => pooled,
        };
        Ok(TextOutput {
            embedding,
            hidden: Vec::new(),
            tokens: Vec::new(),
        })
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.table.elem_count()
            + self.projector.as_ref().map_or(0, |l| {
                l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count())
            })
    }
}
