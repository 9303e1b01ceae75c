//! Texts → token rows ([`EvalTokenizer`], a Hugging Face `tokenizer.json`) → one embedding per
//! text ([`Embedder`], any text encoder ONNX run by ONNX Runtime).
//!
//! The model output used: `--output` if given, else `embedding` (the project's exported
//! students), else `last_hidden_state` (Hugging Face BERT exports), else the model's only
//! output. A 2-D `[batch, dim]` output is taken as it is; a 3-D `[batch, seq, dim]` output is
//! mean-pooled over the attention mask (sentence-transformers' mean pooling).

use std::path::{Path, PathBuf};

use distill_proto::tokenizer::{RowTokenizer, TokenizerFileError};
use tokenizers::Tokenizer;

use super::metrics::Embeddings;
use super::TextEvalError;
use crate::ort_text::{OnnxTextEncoder, TokenBatch};

/// A tokenizer with truncation at `max_seq_len` (special tokens included) and no padding
/// (padding and truncation settings stored in the file are replaced).
pub struct EvalTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    path: PathBuf,
    max_seq_len: usize,
}

impl std::fmt::Debug for EvalTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalTokenizer")
            .field("path", &self.path)
            .field("max_seq_len", &self.max_seq_len)
            .finish_non_exhaustive()
    }
}

impl EvalTokenizer {
    /// Loads `path`.
    pub fn load(path: &Path, max_seq_len: usize) -> Result<Self, TextEvalError> {
        let err = |message: String| TextEvalError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        if max_seq_len < 2 {
            return Err(err(format!(
                "--max-seq-len {max_seq_len}: it must leave room for the special tokens (>= 2)"
            )));
        }
        let loaded = RowTokenizer::load(path, Some(max_seq_len), true).map_err(|e| match e {
            TokenizerFileError::Read { path, source } => TextEvalError::Io { path, source },
            other => err(other.to_string()),
        })?;
        let (inner, pad_id) = (loaded.tokenizer().clone(), loaded.pad_id());
        Ok(Self {
            inner,
            pad_id,
            path: path.to_path_buf(),
            max_seq_len,
        })
    }

    /// Token ids of each text, special tokens added.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, TextEvalError> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.iter().map(String::as_str).collect(), true)
            .map_err(|e| TextEvalError::Tokenizer {
                path: self.path.clone(),
                message: format!("encoding failed: {e}"),
            })?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The truncation length.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }
}

/// How the chosen output became one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// A 2-D output, used as it is.
    Model,
    /// A 3-D output, mean-pooled over the attention mask.
    MaskedMean,
}

/// A text encoder ONNX and the output it is read from.
#[derive(Debug)]
pub struct Embedder {
    encoder: OnnxTextEncoder,
    path: PathBuf,
    output: String,
    normalize: bool,
    pad_id: u32,
    pooling: Option<Pooling>,
}

/// Picks the output to read (see the module docs).
fn choose_output(
    path: &Path,
    names: &[String],
    wanted: Option<&str>,
) -> Result<String, TextEvalError> {
    let listed = names.join(", ");
    if let Some(w) = wanted {
        return names
            .iter()
            .find(|n| *n == w)
            .cloned()
            .ok_or_else(|| TextEvalError::Model {
                path: path.to_path_buf(),
                message: format!("it has no output `{w}` (outputs: {listed})"),
            });
    }
    for preferred in ["embedding", "last_hidden_state"] {
        if let Some(n) = names.iter().find(|n| *n == preferred) {
            return Ok(n.clone());
        }
    }
    match names {
        [only] => Ok(only.clone()),
        _ => Err(TextEvalError::Model {
            path: path.to_path_buf(),
            message: format!(
                "none of its outputs ({listed}) is `embedding` or `last_hidden_state`: name the \
                 one to use with --output"
            ),
        }),
    }
}

impl Embedder {
    /// Loads the model; `output` as `--output`; `threads`: ONNX Runtime intra-op threads.
    pub fn load(
        path: &Path,
        output: Option<&str>,
        normalize: bool,
        pad_id: u32,
        threads: usize,
        ort_lib: Option<&Path>,
    ) -> Result<Self, TextEvalError> {
        let encoder = OnnxTextEncoder::load_with_threads(path, ort_lib, Some(threads))?;
        let output = choose_output(path, encoder.output_names(), output)?;
        Ok(Self {
            encoder,
            path: path.to_path_buf(),
            output,
            normalize,
            pad_id,
            pooling: None,
        })
    }

    /// The output read.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// How the output was pooled (known after the first batch).
    pub fn pooling(&self) -> Option<Pooling> {
        self.pooling
    }

    /// Embeds token rows, `batch` at a time; rows are grouped by length so that a batch pads
    /// little (padding is masked: the grouping changes no value beyond rounding).
    pub fn embed(&mut self, rows: &[Vec<u32>], batch: usize) -> Result<Embeddings, TextEvalError> {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| (rows[i].len(), i));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); rows.len()];
        for chunk in order.chunks(batch.max(1)) {
            let refs: Vec<&[u32]> = chunk.iter().map(|&i| rows[i].as_slice()).collect();
            let (dim, data) = self.run_batch(&refs)?;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = data[k * dim..(k + 1) * dim].to_vec();
            }
        }
        let dim = out.first().map_or(0, Vec::len);
        Ok(Embeddings {
            rows: rows.len(),
            dim,
            data: out.concat(),
        })
    }

    /// One padded batch through the model: `(dim, [rows, dim] values)`, normalised if asked.
    pub fn run_batch(&mut self, rows: &[&[u32]]) -> Result<(usize, Vec<f32>), TextEvalError> {
        let b = rows.len();
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if b == 0 || seq == 0 {
            return Err(TextEvalError::Input(
                "an empty batch or a text with no tokens".into(),
            ));
        }
        let mut batch = TokenBatch {
            rows: b,
            seq,
            input_ids: vec![self.pad_id as i64; b * seq],
            attention_mask: vec![0; b * seq],
            token_type_ids: vec![0; b * seq],
        };
        for (r, ids) in rows.iter().enumerate() {
            for (t, &id) in ids.iter().enumerate() {
                batch.input_ids[r * seq + t] = id as i64;
                batch.attention_mask[r * seq + t] = 1;
            }
        }
        let mut outs = self.encoder.run(&batch, &[self.output.as_str()])?;
        let out = outs.pop().ok_or_else(|| TextEvalError::Model {
            path: self.path.clone(),
            message: format!("the run returned no output `{}`", self.output),
        })?;
        let bad_shape = |why: &str| TextEvalError::Model {
            path: self.path.clone(),
            message: format!(
                "output `{}` has shape {:?} for a batch of {b} x {seq} tokens: {why}",
                self.output, out.shape
            ),
        };
        let (dim, mut data, pooling) =
            match out.shape[..] {
                [rb, d] if rb == b && d > 0 => (d, out.data, Pooling::Model),
                [rb, s, d] if rb == b && s == seq && d > 0 => {
                    let mut pooled = vec![0f32; b * d];
                    for r in 0..b {
                        let mut acc = vec![0f64; d];
                        let mut n = 0f64;
                        for t in 0..seq {
                            if batch.attention_mask[r * seq + t] == 0 {
                                continue;
                            }
                            n += 1.0;
                            let base = (r * seq + t) * d;
                            for (a, &v) in acc.iter_mut().zip(&out.data[base..base + d]) {
                                *a += v as f64;
                            }
                        }
                        for (p, a) in pooled[r * d..(r + 1) * d].iter_mut().zip(&acc) {
                            *p = (a / n.max(1.0)) as f32;
                        }
                    }
                    (d, pooled, Pooling::MaskedMean)
                }
                _ => return Err(bad_shape(
                    "expected [batch, dim] (an embedding) or [batch, seq, dim] (token states to \
                     mean-pool)",
                )),
            };
        if data.len() != b * dim || data.iter().any(|v| !v.is_finite()) {
            return Err(bad_shape("it holds missing or non-finite values"));
        }
        if self.normalize {
            let mut e = Embeddings { rows: b, dim, data };
            e.l2_normalize();
            data = e.data;
        }
        self.pooling = Some(pooling);
        Ok((dim, data))
    }
}
