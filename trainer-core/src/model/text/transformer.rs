//! The BERT-style text student: word + position + token-type embeddings and a LayerNorm, then
//! post-LayerNorm blocks of multi-head self-attention (padding masked additively on the scores)
//! and a GELU (erf) feed-forward, then masked mean pooling and an optional projector.
//!
//! The residual stream is kept as `[batch * seq, hidden]` rows, so every dense layer is one
//! fused linear node ([`crate::model::linear`]); only attention reshapes to `[batch, heads, seq, dh]`.
//! LayerNorm, softmax and GELU are single nodes too ([`crate::model::fused`]).
//!
//! Weight names are Hugging Face's (`embeddings.word_embeddings.weight`,
//! `encoder.layer.N.attention.self.query.weight`, ...), so BERT safetensors load as they are;
//! the projector is `projector.weight` / `projector.bias`.

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

use super::config::TransformerConfig;
use super::output::{masked_mean, TextOutput};
use crate::model::fused;
use crate::model::linear::linear;

/// Added to the attention scores of padded keys: `exp` of it underflows to exactly 0 in f32.
pub const MASK_VALUE: f32 = -10000.0;

/// A LayerNorm's scale and shift.
#[derive(Debug)]
pub struct Norm {
    /// Scale, `[hidden]`.
    pub weight: Tensor,
    /// Shift, `[hidden]`.
    pub bias: Tensor,
}

/// One encoder block's layers.
#[derive(Debug)]
pub struct Block {
    /// Attention query, key, value projections.
    pub query: Linear,
    /// See `query`.
    pub key: Linear,
    /// See `query`.
    pub value: Linear,
    /// Attention output projection (`attention.output.dense`).
    pub attn_out: Linear,
    /// LayerNorm after attention + residual.
    pub attn_norm: Norm,
    /// Feed-forward up projection (`intermediate.dense`).
    pub ffn_in: Linear,
    /// Feed-forward down projection (`output.dense`).
    pub ffn_out: Linear,
    /// LayerNorm after the feed-forward + residual.
    pub ffn_norm: Norm,
}

/// A BERT-style encoder with masked mean pooling.
#[derive(Debug)]
pub struct Transformer {
    config: TransformerConfig,
    /// `[vocab, hidden]`.
    pub word_embeddings: Tensor,
    /// `[max_positions, hidden]`.
    pub position_embeddings: Tensor,
    /// `[type_vocab, hidden]`.
    pub token_type_embeddings: Tensor,
    /// LayerNorm over the summed embeddings.
    pub embeddings_norm: Norm,
    /// The encoder blocks, input side first.
    pub blocks: Vec<Block>,
    /// Optional map of the pooled embedding to `project_to`.
    pub projector: Option<Linear>,
}

fn norm(size: usize, vb: VarBuilder) -> Result<Norm> {
    Ok(Norm {
        weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
    })
}

fn embedding(rows: usize, d: usize, vb: VarBuilder) -> Result<Tensor> {
    // BERT's initializer_range.
    let init = Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    vb.get_with_hints((rows, d), "weight", init)
}

impl Transformer {
    /// Creates (or loads, depending on `vb`'s backend) the layers under `vb`. The caller has
    /// validated `config`.
    pub fn new(config: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (config.hidden, config.ffn);
        let e = vb.pp("embeddings");
        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let s = a.pp("self");
            blocks.push(Block {
                query: candle_nn::linear(d, d, s.pp("query"))?,
                key: candle_nn::linear(d, d, s.pp("key"))?,
                value: candle_nn::linear(d, d, s.pp("value"))?,
                attn_out: candle_nn::linear(d, d, a.pp("output.dense"))?,
                attn_norm: norm(d, a.pp("output.LayerNorm"))?,
                ffn_in: candle_nn::linear(d, f, l.pp("intermediate.dense"))?,
                ffn_out: candle_nn::linear(f, d, l.pp("output.dense"))?,
                ffn_norm: norm(d, l.pp("output.LayerNorm"))?,
            });
        }
        let projector = match config.project_to {
            Some(p) => Some(candle_nn::linear(d, p, vb.pp("projector"))?),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            word_embeddings: embedding(config.vocab, d, e.pp("word_embeddings"))?,
            position_embeddings: embedding(config.max_positions, d, e.pp("position_embeddings"))?,
            token_type_embeddings: embedding(config.type_vocab, d, e.pp("token_type_embeddings"))?,
            embeddings_norm: norm(d, e.pp("LayerNorm"))?,
            blocks,
            projector,
        })
    }

    /// The configuration this encoder was built from.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// Runs the encoder. `ids`, `type_ids`: u32 `[batch, seq]`; `mask`: f32 `[batch, seq]` (1 for
    /// a token, 0 for padding). The caller has checked shapes and id ranges.
    pub(crate) fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        type_ids: Option<&Tensor>,
    ) -> Result<TextOutput> {
        let (b, s) = ids.dims2()?;
        let d = self.config.hidden;
        let eps = self.config.layer_norm_eps as f32;
        let words = self.word_embeddings.index_select(&ids.flatten_all()?, 0)?;
        let positions = self.position_embeddings.narrow(0, 0, s)?;
        let mut x = words.reshape((b, s, d))?.broadcast_add(&positions)?;
        x = match type_ids {
            Some(t) => {
                let types = self
                    .token_type_embeddings
                    .index_select(&t.flatten_all()?, 0)?;
                (x + types.reshape((b, s, d))?)?
            }
            None => x.broadcast_add(&self.token_type_embeddings.narrow(0, 0, 1)?)?,
        };
        let mut x = layer_norm(&x.reshape((b * s, d))?, &self.embeddings_norm, eps)?;
        // [b, 1, 1, s]: 0 on tokens, MASK_VALUE on padding, broadcast over heads and queries.
        let mask_add = ((mask.ones_like()? - mask)? * MASK_VALUE as f64)?.reshape((b, 1, 1, s))?;
        let mut hidden = Vec::with_capacity(self.blocks.len());
        let mut tokens = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = self.block(block, &x, &mask_add, b, s, eps)?;
            let t = x.reshape((b, s, d))?;
            hidden.push(masked_mean(&t, mask)?);
            tokens.push(t);
        }
        let pooled = match hidden.last() {
            Some(p) => p.clone(),
            None => masked_mean(&x.reshape((b, s, d))?, mask)?,
        };
        let embedding = match &self.projector {
            Some(p) => linear(p, &pooled)?,
            None => pooled,
        };
        Ok(TextOutput {
            embedding,
            hidden,
            tokens,
        })
    }

    fn block(
        &self,
        blk: &Block,
        x: &Tensor,
        mask_add: &Tensor,
        b: usize,
        s: usize,
        eps: f32,
    ) -> Result<Tensor> {
        let (d, h) = (self.config.hidden, self.config.heads);
        let dh = d / h;
        let heads = |l: &Linear| -> Result<Tensor> {
            linear(l, x)?
                .reshape((b, s, h, dh))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (heads(&blk.query)?, heads(&blk.key)?, heads(&blk.value)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?.broadcast_add(mask_add)?;
        let probs = softmax(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, d))?;
        let a = layer_norm(&(linear(&blk.attn_out, &ctx)? + x)?, &blk.attn_norm, eps)?;
        let f = fused::gelu_erf(&linear(&blk.ffn_in, &a)?)?;
        layer_norm(&(linear(&blk.ffn_out, &f)? + &a)?, &blk.ffn_norm, eps)
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        let lin = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        self.encoder_param_count(self.blocks.len()) + self.projector.as_ref().map_or(0, lin)
    }

    /// Trainable scalars of the embeddings and the first `blocks` encoder blocks (what a
    /// model truncated after block `blocks - 1` keeps; the projector excluded).
    pub fn encoder_param_count(&self, blocks: usize) -> usize {
        let lin = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        let nrm = |n: &Norm| n.weight.elem_count() + n.bias.elem_count();
        let blocks: usize = self
            .blocks
            .iter()
            .take(blocks)
            .map(|b| {
                lin(&b.query)
                    + lin(&b.key)
                    + lin(&b.value)
                    + lin(&b.attn_out)
                    + nrm(&b.attn_norm)
                    + lin(&b.ffn_in)
                    + lin(&b.ffn_out)
                    + nrm(&b.ffn_norm)
            })
            .sum();
        self.word_embeddings.elem_count()
            + self.position_embeddings.elem_count()
            + self.token_type_embeddings.elem_count()
            + nrm(&self.embeddings_norm)
            + blocks
    }
}

fn layer_norm(x: &Tensor, n: &Norm, eps: f32) -> Result<Tensor> {
    fused::layer_norm(x, &n.weight, &n.bias, eps)
}

fn softmax(x: &Tensor) -> Result<Tensor> {
    fused::softmax_last_dim(x)
}
