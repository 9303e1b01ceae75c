//! Text teachers: a tokenizer in the server (`--tokenizer`), requests that send text or token
//! ids turned into ragged token rows, and token-budget batching of those rows.

pub mod batch;
pub mod tokenizer;

use distill_proto::store::TokenRows;
use distill_proto::{NamedTensors, Tensor, TensorData};

pub use batch::{Batching, TokenLayout};
pub use tokenizer::{TextRowError, TextTokenizer, TokenizerFileError};

/// Name of the text input a text teacher accepts beside its token inputs.
pub const TEXT_INPUT: &str = "text";

/// A text teacher's front: the tokenizer and where its ids go in the model.
#[derive(Debug)]
pub struct TextFront {
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// The model's token inputs and the batching of their runs.
    pub layout: TokenLayout,
}

impl TextFront {
    /// Token rows from token ids a request sent instead of text (padding stripped); with
    /// `truncate`, rows over the length in force are cut to it.
    pub fn rows_from_tensors(
        &self,
        inputs: &NamedTensors,
        truncate: bool,
    ) -> Result<TokenRows, TokenInputError> {
        rows_from_tensors(
            inputs,
            &self.layout,
            self.tokenizer.vocab_size(),
            self.tokenizer.fingerprint().max_seq_len,
            truncate,
        )
    }

    /// Token rows of `texts`.
    pub fn encode(&self, texts: Vec<String>) -> Result<TokenRows, TextRowError> {
        self.tokenizer.encode(texts, self.layout.type_ids.is_some())
    }
}

/// Why token ids sent directly cannot be turned into token rows; each names input and row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    /// A token input is missing.
    #[error("missing input {0:?} (send \"text\", or the token inputs)")]
    Missing(String),
    /// Not a `[batch, sequence]` tensor, or shapes disagree.
    #[error("input {input:?} has shape {shape:?}, expected [batch, sequence] like {like:?}")]
    Shape {
        /// The input.
        input: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The input it must match.
        like: String,
    },
    /// Mask values other than a run of ones followed by zeros.
    #[error(
        "input {input:?} row {row}: the attention mask must be ones then zeros (right padding)"
    )]
    Mask {
        /// The mask input.
        input: String,
        /// Row index.
        row: usize,
    },
    /// A negative id or one beyond the tokenizer's vocabulary.
    #[error("input {input:?} row {row}: token id {id} is outside the vocabulary (0..{vocab})")]
    OutOfVocab {
        /// The input.
        input: String,
        /// Row index.
        row: usize,
        /// The id.
        id: i64,
        /// Vocabulary size.
        vocab: usize,
    },
    /// More tokens than the limit.
    #[error("input {input:?} row {row} has {tokens} tokens, more than the limit of {limit} (the length in force, see /v1/model); send ?truncate=true to cut it to {limit}")]
    TooLong {
        /// The input.
        input: String,
        /// Row index.
        row: usize,
        /// Its tokens.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
}

fn values(t: &Tensor) -> Vec<i64> {
    match t.data() {
        TensorData::I64(v) => v.clone(),
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f32() as i64).collect(),
        TensorData::F64(v) => v.iter().map(|&x| x as i64).collect(),
    }
}

/// Strips the padding off token ids sent directly (`[batch, sequence]` ids, mask and type ids,
/// right-padded), so they batch and store exactly like the same text sent as text. A row over
/// `max_seq_len` is refused, or with `truncate` cut to its first `max_seq_len` ids (the
/// ids are not re-tokenized, so a closing special token is cut off with the rest).
pub fn rows_from_tensors(
    inputs: &NamedTensors,
    layout: &TokenLayout,
    vocab: usize,
    max_seq_len: usize,
    truncate: bool,
) -> Result<TokenRows, TokenInputError> {
    let get = |name: &str| {
        inputs
            .get(name)
            .ok_or_else(|| TokenInputError::Missing(name.to_string()))
    };
    let ids_t = get(&layout.ids)?;
    let mask_t = get(&layout.mask)?;
    let types_t = layout.type_ids.as_deref().map(get).transpose()?;
    let shape = ids_t.shape().to_vec();
    let [rows, seq] = shape[..] else {
        return Err(TokenInputError::Shape {
            input: layout.ids.clone(),
            shape,
            like: layout.ids.clone(),
        });
    };
    let mut others = vec![(&layout.mask, mask_t)];
    if let (Some(name), Some(t)) = (&layout.type_ids, types_t) {
        others.push((name, t));
    }
    for (name, t) in others {
        if t.shape() != [rows, seq] {
            return Err(TokenInputError::Shape {
                input: name.clone(),
                shape: t.shape().to_vec(),
                like: layout.ids.clone(),
            });
        }
    }
    let (ids, mask) = (values(ids_t), values(mask_t));
    let types = types_t.map(values);
    let mut out = TokenRows {
        text: None,
        ids: Vec::with_capacity(rows),
        type_ids: types.as_ref().map(|_| Vec::with_capacity(rows)),
    };
    for r in 0..rows {
        let m = &mask[r * seq..(r + 1) * seq];
        let len = m.iter().take_while(|&&x| x == 1).count();
        if m[len..].iter().any(|&x| x != 0) {
            return Err(TokenInputError::Mask {
                input: layout.mask.clone(),
                row: r,
            });
        }
        if len > max_seq_len && !truncate {
            return Err(TokenInputError::TooLong {
                input: layout.ids.clone(),
                row: r,
                tokens: len,
                limit: max_seq_len,
            });
        }
        let len = len.min(max_seq_len);
        let row = &ids[r * seq..r * seq + len];
        let mut kept = Vec::with_capacity(len);
        for &id in row {
            if id < 0 || id as u64 >= vocab as u64 {
                return Err(TokenInputError::OutOfVocab {
                    input: layout.ids.clone(),
                    row: r,
                    id,
                    vocab,
                });
            }
            kept.push(id as u32);
        }
        out.ids.push(kept);
        if let (Some(t), Some(dst)) = (&types, out.type_ids.as_mut()) {
            dst.push(
                t[r * seq..r * seq + len]
                    .iter()
                    .map(|&x| x.clamp(0, i64::from(u32::MAX)) as u32)
                    .collect(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::DType;

    fn layout() -> TokenLayout {
        TokenLayout {
            ids: "input_ids".into(),
            mask: "attention_mask".into(),
            type_ids: None,
            dtype: DType::I64,
            pad_id: 0,
            batching: Batching::Tokens,
            max_batch_tokens: 1000,
        }
    }

    fn t(shape: Vec<usize>, v: Vec<i64>) -> Tensor {
        Tensor::new(shape, TensorData::I64(v)).unwrap()
    }

    #[test]
    fn padding_is_stripped_by_the_mask() {
        let inputs: NamedTensors = vec![
            (
                "input_ids".to_string(),
                t(vec![2, 3], vec![101, 7, 102, 101, 102, 0]),
            ),
            (
                "attention_mask".to_string(),
                t(vec![2, 3], vec![1, 1, 1, 1, 1, 0]),
            ),
        ]
        .into();
        let r = rows_from_tensors(&inputs, &layout(), 200, 8, false).unwrap();
        assert_eq!(r.ids, vec![vec![101, 7, 102], vec![101, 102]]);
        assert!(r.text.is_none());
    }

    #[test]
    fn bad_token_inputs_name_the_row() {
        let ids = ("input_ids".to_string(), t(vec![2, 2], vec![1, 2, 3, 0]));
        let holes = (
            "attention_mask".to_string(),
            t(vec![2, 2], vec![1, 1, 0, 1]),
        );
        let named = |v: Vec<(String, Tensor)>| -> NamedTensors { v.into() };
        let e = rows_from_tensors(&named(vec![ids.clone(), holes]), &layout(), 200, 8, false)
            .unwrap_err();
        assert_eq!(
            e,
            TokenInputError::Mask {
                input: "attention_mask".into(),
                row: 1
            }
        );
        let mask = (
            "attention_mask".to_string(),
            t(vec![2, 2], vec![1, 1, 1, 0]),
        );
        let e = rows_from_tensors(
            &named(vec![ids.clone(), mask.clone()]),
            &layout(),
            3,
            8,
            false,
        )
        .unwrap_err();
        assert!(
            matches!(e, TokenInputError::OutOfVocab { row: 1, id: 3, .. }),
            "{e}"
        );
        let e = rows_from_tensors(
            &named(vec![ids.clone(), mask.clone()]),
            &layout(),
            200,
            1,
            false,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                TokenInputError::TooLong {
                    row: 0,
                    tokens: 2,
                    ..
                }
            ),
            "{e}"
        );
        let cut = rows_from_tensors(
            &named(vec![ids.clone(), mask.clone()]),
            &layout(),
            200,
            1,
            true,
        )
        .expect("truncated");
        assert_eq!(cut.ids, vec![vec![1], vec![3]]);
        let e = rows_from_tensors(&named(vec![ids]), &layout(), 200, 8, false).unwrap_err();
        assert_eq!(e, TokenInputError::Missing("attention_mask".into()));
    }
}
