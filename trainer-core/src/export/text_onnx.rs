//! Text student → ONNX graph (f32, exact: the same ops in the same order as candle).
//!
//! Inputs `input_ids`, `attention_mask` and, when asked for, `token_type_ids` (int64,
//! `[batch, sequence]`, both dims dynamic). Outputs `embedding [batch, output_dim]` (masked mean,
//! projected if configured) and, for the transformer, `hidden{i} [batch, hidden]`: the masked
//! mean of block `i`'s output (as [`TextOutput::hidden`](crate::model::TextOutput)).
//!
//! The residual stream is `[batch * sequence, hidden]` rows, so each dense layer is a
//! `Gemm(transB=1)` on the Hugging Face weight as stored; attention reshapes to
//! `[batch, heads, sequence, dh]`, adds `-10000 * (1 - mask)` to the scores, `Softmax` on the
//! last axis. LayerNorm is `LayerNormalization` (opset 17), GELU `0.5 x (1 + Erf(x / √2))`.
//! Initializers carry the student's weight names.
//!
//! A self-distillation exit after block `L` ([`text_exit_to_onnx`]) has the same inputs and
//! outputs, built from blocks `0..=L` only: `embedding` is the exit head (`exit.fc.*` Gemm →
//! Relu if configured, `exit.out.*` Gemm) on `hidden{L}`.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::Linear;
use distill_proto::api::Dim;
use distill_proto::onnx::{
    attr_float, attr_int, attr_ints, encode_model, GraphBuilder, ModelProto,
};
use distill_proto::DType;

use super::onnx_graph::{prop, HIDDEN_OUTPUT_PREFIX};
use super::ExportError;
use crate::model::text::static_embed::StaticEmbed;
use crate::model::text::transformer::{Block, Norm, Transformer, MASK_VALUE};
use crate::model::text::TextNetwork;
use crate::model::{ExitHead, TextStudent};
use distill_proto::atomic::write_atomic;

/// Token ids input.
pub const INPUT_IDS: &str = "input_ids";
/// Padding mask input (1 token, 0 padding).
pub const ATTENTION_MASK: &str = "attention_mask";
/// Segment ids input (transformer only, optional).
pub const TOKEN_TYPE_IDS: &str = "token_type_ids";
/// Pooled output.
pub const EMBEDDING: &str = "embedding";

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i64 = 1;

/// Builds the ONNX model of a text student. `token_type_ids` adds that input (transformer
/// only; without it every token has type 0, folded into a constant row).
pub fn text_student_to_onnx(
    student: &TextStudent,
    token_type_ids: bool,
) -> Result<ModelProto, ExportError> {
    text_model(student, token_type_ids, None)
}

/// Builds a transformer student's self-distillation exit as a standalone, truncated ONNX
/// model: the embeddings, blocks `0..=exit.layer()` (nothing deeper is in the graph) and the
/// exit head on `hidden{L}`, with the inputs and outputs of [`text_student_to_onnx`]
/// (`embedding` is the exit's; `hidden0..=hidden{L}`).
pub fn text_exit_to_onnx(
    student: &TextStudent,
    exit: &ExitHead,
    token_type_ids: bool,
) -> Result<ModelProto, ExportError> {
    text_model(student, token_type_ids, Some(exit))
}

/// The full student (`exit` = `None`) or the model truncated at `exit`.
fn text_model(
    student: &TextStudent,
    token_type_ids: bool,
    exit: Option<&ExitHead>,
) -> Result<ModelProto, ExportError> {
    let with_types = token_type_ids && matches!(student.network(), TextNetwork::Transformer(_));
    let mut b = Builder::with_inputs(student, exit, with_types);
    let (hidden_dims, params) = match (student.network(), exit) {
        (TextNetwork::Static(s), None) => {
            b.static_body(s)?;
            (Vec::new(), student.param_count())
        }
        (TextNetwork::Static(_), Some(e)) => {
            return Err(ExportError::InvalidExit(format!(
                "{}: the static student has no layers to take an exit",
                e.name()
            )))
        }
        (TextNetwork::Transformer(t), exit) => {
            let blocks = exported_blocks(t, exit)?;
            let names = b.transformer(t, blocks, with_types)?;
            let last = names.last().cloned().unwrap_or_default();
            let params = match exit {
                Some(e) => {
                    b.exit_head(e, &last)?;
                    student.exit_param_count(e)
                }
                None => {
                    match &t.projector {
                        Some(p) => b.gemm(p, "projector", &last, EMBEDDING)?,
                        None => b.g.node("Identity", &[&last], &[EMBEDDING], vec![]),
                    }
                    student.param_count()
                }
            };
            (vec![t.config().hidden; blocks], params)
        }
    };
    Ok(finish_model(b.g, student, exit, &hidden_dims, params))
}

/// How many encoder blocks the graph holds: all, or those up to `exit`'s (which must sit
/// before the last block).
fn exported_blocks(t: &Transformer, exit: Option<&ExitHead>) -> Result<usize, ExportError> {
    match exit {
        Some(e) if e.layer() + 1 < t.blocks.len() => Ok(e.layer() + 1),
        Some(e) => Err(ExportError::InvalidExit(format!(
            "{}: the student has {} blocks; an exit must sit before the last",
            e.name(),
            t.blocks.len()
        ))),
        None => Ok(t.blocks.len()),
    }
}

/// Declares the `embedding` and `hidden{i}` outputs and stamps the model's description and
/// `distill.student.*` metadata.
fn finish_model(
    mut g: GraphBuilder,
    student: &TextStudent,
    exit: Option<&ExitHead>,
    hidden_dims: &[usize],
    params: usize,
) -> ModelProto {
    let batch = || Dim::Dynamic("batch".into());
    g.output(
        EMBEDDING,
        DType::F32,
        &[batch(), Dim::Fixed(student.output_dim())],
    );
    for (i, d) in hidden_dims.iter().enumerate() {
        g.output(
            &format!("{HIDDEN_OUTPUT_PREFIX}{i}"),
            DType::F32,
            &[batch(), Dim::Fixed(*d)],
        );
    }
    let mut model = g.finish();
    model.doc_string = match exit {
        Some(e) => format!(
            "distill text student ({}) truncated at {}, {params} parameters",
            student.arch_name(),
            e.name()
        ),
        None => format!(
            "distill text student ({}), {params} parameters",
            student.arch_name()
        ),
    };
    let config = match student.network() {
        TextNetwork::Static(s) => serde_json::to_string(s.config()),
        TextNetwork::Transformer(t) => serde_json::to_string(t.config()),
    }
    .unwrap_or_else(|e| format!("unserialisable config: {e}"));
    model.metadata_props = vec![
        prop("distill.student.arch", student.arch_name()),
        prop("distill.student.config", &config),
        prop(
            "distill.student.output_dim",
            &student.output_dim().to_string(),
        ),
    ];
    if let Some(e) = exit {
        model
            .metadata_props
            .push(prop("distill.student.exit", &e.name()));
    }
    model
}

/// Writes a text student as an ONNX file at `path` (atomically).
pub fn export_text_onnx(
    student: &TextStudent,
    token_type_ids: bool,
    path: &Path,
) -> Result<(), ExportError> {
    let model = text_student_to_onnx(student, token_type_ids)?;
    Ok(write_atomic(path, &encode_model(&model))?)
}

/// Writes a transformer student's exit as a truncated ONNX file at `path` (atomically).
pub fn export_text_exit_onnx(
    student: &TextStudent,
    exit: &ExitHead,
    token_type_ids: bool,
    path: &Path,
) -> Result<(), ExportError> {
    let model = text_exit_to_onnx(student, exit, token_type_ids)?;
    Ok(write_atomic(path, &encode_model(&model))?)
}

struct Builder {
    g: GraphBuilder,
}

impl Builder {
    /// A graph named after the student (and exit) with the token inputs and the mask
    /// tensors pooling needs.
    fn with_inputs(student: &TextStudent, exit: Option<&ExitHead>, with_types: bool) -> Self {
        let tokens = || {
            [
                Dim::Dynamic("batch".into()),
                Dim::Dynamic("sequence".into()),
            ]
        };
        let mut name = format!("distill_student_{}", student.arch_name());
        if let Some(e) = exit {
            name.push_str(&format!("_{}", e.name()));
        }
        let mut g = GraphBuilder::new(&name);
        g.input(INPUT_IDS, DType::I64, &tokens());
        g.input(ATTENTION_MASK, DType::I64, &tokens());
        if with_types {
            g.input(TOKEN_TYPE_IDS, DType::I64, &tokens());
        }
        let mut b = Builder { g };
        b.pooling_inputs();
        b
    }

    /// The static student: table lookup, masked mean, optional projector → `embedding`.
    fn static_body(&mut self, s: &StaticEmbed) -> Result<(), ExportError> {
        self.init("embeddings.weight", &s.table)?;
        self.g.node(
            "Gather",
            &["embeddings.weight", INPUT_IDS],
            &["tokens"],
            vec![],
        );
        self.masked_mean("tokens", "pooled")?;
        match &s.projector {
            Some(p) => self.gemm(p, "projector", "pooled", EMBEDDING)?,
            None => self.g.node("Identity", &["pooled"], &[EMBEDDING], vec![]),
        }
        Ok(())
    }

    /// A transformer exit's head on its block's pooled states `last` → `embedding`.
    fn exit_head(&mut self, e: &ExitHead, last: &str) -> Result<(), ExportError> {
        let head_in = match e.fc() {
            Some(fc) => {
                self.gemm(fc, "exit.fc", last, "exit.fc.out")?;
                self.g
                    .node("Relu", &["exit.fc.out"], &["exit.fc.relu"], vec![]);
                "exit.fc.relu".to_string()
            }
            None => last.to_string(),
        };
        self.gemm(e.out(), "exit.out", &head_in, EMBEDDING)
    }

    fn init(&mut self, name: &str, t: &Tensor) -> Result<(), ExportError> {
        let data = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.g.initializer_f32(name, t.dims(), &data);
        Ok(())
    }

    fn scalar(&mut self, name: &str, v: f32) {
        self.g.initializer_f32(name, &[], &[v]);
    }

    /// The float mask `[b, s]`, its `[b, s, 1]` form and the clamped token count `[b, 1]`.
    fn pooling_inputs(&mut self) {
        let g = &mut self.g;
        g.node(
            "Cast",
            &[ATTENTION_MASK],
            &["mask.f"],
            vec![attr_int("to", ONNX_FLOAT)],
        );
        g.initializer_i64("axes.1", &[1], &[1]);
        g.initializer_i64("axes.2", &[1], &[2]);
        g.node("Unsqueeze", &["mask.f", "axes.2"], &["mask.bs1"], vec![]);
        g.node(
            "ReduceSum",
            &["mask.f", "axes.1"],
            &["mask.count.raw"],
            vec![attr_int("keepdims", 1)],
        );
        g.initializer_f32("mask.count.min", &[], &[1e-9]);
        g.node(
            "Max",
            &["mask.count.raw", "mask.count.min"],
            &["mask.count"],
            vec![],
        );
    }

    /// `out [b, d]` = masked mean of `x [b, s, d]`.
    fn masked_mean(&mut self, x: &str, out: &str) -> Result<(), ExportError> {
        let (m, s) = (format!("{out}.masked"), format!("{out}.sum"));
        self.g.node("Mul", &[x, "mask.bs1"], &[&m], vec![]);
        self.g.node(
            "ReduceSum",
            &[&m, "axes.1"],
            &[&s],
            vec![attr_int("keepdims", 0)],
        );
        self.g.node("Div", &[&s, "mask.count"], &[out], vec![]);
        Ok(())
    }

    fn gemm(&mut self, l: &Linear, prefix: &str, x: &str, out: &str) -> Result<(), ExportError> {
        let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        self.init(&w, l.weight())?;
        let mut inputs = vec![x.to_string(), w];
        if let Some(bias) = l.bias() {
            self.init(&b, bias)?;
            inputs.push(b);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.g
            .node("Gemm", &inputs, &[out], vec![attr_int("transB", 1)]);
        Ok(())
    }

    fn layer_norm(
        &mut self,
        n: &Norm,
        prefix: &str,
        x: &str,
        out: &str,
        eps: f32,
    ) -> Result<(), ExportError> {
        let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        self.init(&w, &n.weight)?;
        self.init(&b, &n.bias)?;
        self.g.node(
            "LayerNormalization",
            &[x, &w, &b],
            &[out],
            vec![attr_int("axis", -1), attr_float("epsilon", eps)],
        );
        Ok(())
    }

    /// The embeddings and the first `blocks` encoder blocks; returns the `hidden{i}` names.
    fn transformer(
        &mut self,
        t: &Transformer,
        blocks: usize,
        with_types: bool,
    ) -> Result<Vec<String>, ExportError> {
        let c = t.config();
        let (d, h) = (c.hidden, c.heads);
        let dh = d / h;
        let eps = c.layer_norm_eps as f32;
        self.shape_constants(d, h, dh);
        self.embeddings(t, with_types, eps)?;
        self.attention_constants(dh);
        let mut x = "x.0".to_string();
        let mut names = Vec::with_capacity(t.blocks.len());
        for (i, blk) in t.blocks.iter().take(blocks).enumerate() {
            let out = self.encoder_block(i, blk, &x, eps)?;
            let hidden = format!("{HIDDEN_OUTPUT_PREFIX}{i}");
            self.masked_mean(&format!("encoder.layer.{i}.tokens"), &hidden)?;
            names.push(hidden);
            x = out;
        }
        if names.is_empty() {
            self.g
                .node("Reshape", &[&x, "shape.bsd"], &["tokens"], vec![]);
            self.masked_mean("tokens", "pooled")?;
            names.push("pooled".to_string());
        }
        Ok(names)
    }

    /// The runtime shapes the blocks reshape with: `[b, s, heads, dh]`, `[b, s, d]` and the
    /// flat `[b·s, d]` rows.
    fn shape_constants(&mut self, d: usize, h: usize, dh: usize) {
        let g = &mut self.g;
        g.node("Shape", &[INPUT_IDS], &["shape.bs"], vec![]);
        g.node(
            "Shape",
            &[INPUT_IDS],
            &["shape.s"],
            vec![attr_int("start", 1), attr_int("end", 2)],
        );
        g.initializer_i64("shape.hd", &[2], &[h as i64, dh as i64]);
        g.initializer_i64("shape.d", &[1], &[d as i64]);
        g.initializer_i64("shape.rows", &[2], &[-1, d as i64]);
        g.initializer_i64("zero.1", &[1], &[0]);
        g.node(
            "Concat",
            &["shape.bs", "shape.hd"],
            &["shape.bshd"],
            vec![attr_int("axis", 0)],
        );
        g.node(
            "Concat",
            &["shape.bs", "shape.d"],
            &["shape.bsd"],
            vec![attr_int("axis", 0)],
        );
    }

    /// Word + position + token-type embeddings, LayerNorm, as flat rows `x.0 [b·s, d]`.
    fn embeddings(
        &mut self,
        t: &Transformer,
        with_types: bool,
        eps: f32,
    ) -> Result<(), ExportError> {
        self.init("embeddings.word_embeddings.weight", &t.word_embeddings)?;
        self.init(
            "embeddings.position_embeddings.weight",
            &t.position_embeddings,
        )?;
        self.g.node(
            "Gather",
            &["embeddings.word_embeddings.weight", INPUT_IDS],
            &["emb.words"],
            vec![],
        );
        self.g.node(
            "Slice",
            &[
                "embeddings.position_embeddings.weight",
                "zero.1",
                "shape.s",
                "zero.1",
            ],
            &["emb.positions"],
            vec![],
        );
        self.g
            .node("Add", &["emb.words", "emb.positions"], &["emb.wp"], vec![]);
        if with_types {
            self.init(
                "embeddings.token_type_embeddings.weight",
                &t.token_type_embeddings,
            )?;
            self.g.node(
                "Gather",
                &["embeddings.token_type_embeddings.weight", TOKEN_TYPE_IDS],
                &["emb.types"],
                vec![],
            );
        } else {
            self.init(
                "embeddings.token_type_embeddings.row0",
                &t.token_type_embeddings.get(0)?,
            )?;
            self.g.node(
                "Identity",
                &["embeddings.token_type_embeddings.row0"],
                &["emb.types"],
                vec![],
            );
        }
        self.g
            .node("Add", &["emb.wp", "emb.types"], &["emb.sum"], vec![]);
        self.layer_norm(
            &t.embeddings_norm,
            "embeddings.LayerNorm",
            "emb.sum",
            "emb.norm",
            eps,
        )?;
        self.g
            .node("Reshape", &["emb.norm", "shape.rows"], &["x.0"], vec![]);
        Ok(())
    }

    /// The scalars the blocks share and the `[b, 1, 1, s]` additive attention mask.
    fn attention_constants(&mut self, dh: usize) {
        self.scalar("one", 1.0);
        self.scalar("mask.value", MASK_VALUE);
        self.scalar("attn.scale", (1.0 / (dh as f64).sqrt()) as f32);
        self.scalar("gelu.sqrt2", std::f32::consts::SQRT_2);
        self.scalar("half", 0.5);
        self.g.initializer_i64("axes.1.2", &[2], &[1, 2]);
        self.g
            .node("Sub", &["one", "mask.f"], &["mask.inv"], vec![]);
        self.g
            .node("Mul", &["mask.inv", "mask.value"], &["mask.add.bs"], vec![]);
        self.g.node(
            "Unsqueeze",
            &["mask.add.bs", "axes.1.2"],
            &["mask.add"],
            vec![],
        );
    }

    /// Encoder block `i` on the flat rows `x`: attention, feed-forward, each with its residual
    /// and LayerNorm. Returns the output rows' name (`x.{i+1}`); the block's `[b, s, d]` token
    /// states are `encoder.layer.{i}.tokens`.
    fn encoder_block(
        &mut self,
        i: usize,
        blk: &Block,
        x: &str,
        eps: f32,
    ) -> Result<String, ExportError> {
        let p = format!("encoder.layer.{i}");
        let n = |s: &str| format!("{p}.{s}");
        self.attention(&p, blk, x)?;
        self.g
            .node("Add", &[&n("attn.proj"), x], &[&n("attn.res")], vec![]);
        self.layer_norm(
            &blk.attn_norm,
            &n("attention.output.LayerNorm"),
            &n("attn.res"),
            &n("attn.norm"),
            eps,
        )?;
        self.feed_forward(&p, blk)?;
        self.g.node(
            "Add",
            &[&n("ffn.down"), &n("attn.norm")],
            &[&n("ffn.res")],
            vec![],
        );
        let out = format!("x.{}", i + 1);
        self.layer_norm(
            &blk.ffn_norm,
            &n("output.LayerNorm"),
            &n("ffn.res"),
            &out,
            eps,
        )?;
        self.g
            .node("Reshape", &[&out, "shape.bsd"], &[&n("tokens")], vec![]);
        Ok(out)
    }

    /// Multi-head self-attention of block `p` on rows `x`, projected: `{p}.attn.proj`.
    fn attention(&mut self, p: &str, blk: &Block, x: &str) -> Result<(), ExportError> {
        let n = |s: &str| format!("{p}.{s}");
        for (lin, which, perm) in [
            (&blk.query, "query", [0i64, 2, 1, 3]),
            (&blk.key, "key", [0, 2, 3, 1]),
            (&blk.value, "value", [0, 2, 1, 3]),
        ] {
            let base = n(&format!("attention.self.{which}"));
            self.gemm(lin, &base, x, &format!("{base}.out"))?;
            self.g.node(
                "Reshape",
                &[&format!("{base}.out"), "shape.bshd"],
                &[&format!("{base}.bshd")],
                vec![],
            );
            self.g.node(
                "Transpose",
                &[&format!("{base}.bshd")],
                &[&format!("{base}.heads")],
                vec![attr_ints("perm", &perm)],
            );
        }
        let q = n("attention.self.query.heads");
        let k = n("attention.self.key.heads");
        let v = n("attention.self.value.heads");
        let g = &mut self.g;
        g.node("MatMul", &[&q, &k], &[&n("attn.scores.raw")], vec![]);
        g.node(
            "Mul",
            &[&n("attn.scores.raw"), "attn.scale"],
            &[&n("attn.scores.scaled")],
            vec![],
        );
        g.node(
            "Add",
            &[&n("attn.scores.scaled"), "mask.add"],
            &[&n("attn.scores")],
            vec![],
        );
        g.node(
            "Softmax",
            &[&n("attn.scores")],
            &[&n("attn.probs")],
            vec![attr_int("axis", -1)],
        );
        g.node(
            "MatMul",
            &[&n("attn.probs"), &v],
            &[&n("attn.ctx.heads")],
            vec![],
        );
        g.node(
            "Transpose",
            &[&n("attn.ctx.heads")],
            &[&n("attn.ctx.bshd")],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        );
        g.node(
            "Reshape",
            &[&n("attn.ctx.bshd"), "shape.rows"],
            &[&n("attn.ctx")],
            vec![],
        );
        self.gemm(
            &blk.attn_out,
            &n("attention.output.dense"),
            &n("attn.ctx"),
            &n("attn.proj"),
        )
    }

    /// The exact-erf GELU feed-forward of block `p` on `{p}.attn.norm`: `{p}.ffn.down`.
    fn feed_forward(&mut self, p: &str, blk: &Block) -> Result<(), ExportError> {
        let n = |s: &str| format!("{p}.{s}");
        self.gemm(
            &blk.ffn_in,
            &n("intermediate.dense"),
            &n("attn.norm"),
            &n("ffn.up"),
        )?;
        let g = &mut self.g;
        g.node(
            "Div",
            &[&n("ffn.up"), "gelu.sqrt2"],
            &[&n("gelu.scaled")],
            vec![],
        );
        g.node("Erf", &[&n("gelu.scaled")], &[&n("gelu.erf")], vec![]);
        g.node("Add", &[&n("gelu.erf"), "one"], &[&n("gelu.erf1")], vec![]);
        g.node("Mul", &[&n("ffn.up"), "half"], &[&n("gelu.half")], vec![]);
        g.node(
            "Mul",
            &[&n("gelu.half"), &n("gelu.erf1")],
            &[&n("ffn.act")],
            vec![],
        );
        self.gemm(
            &blk.ffn_out,
            &n("output.dense"),
            &n("ffn.act"),
            &n("ffn.down"),
        )
    }
}
