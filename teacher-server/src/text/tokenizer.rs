//! Text in, token ids out: a Hugging Face `tokenizer.json` loaded once at start and used on
//! the request path to turn a request's texts into the token rows the teacher sees.

use std::path::Path;

use distill_proto::store::{TokenRows, TokenizerFingerprint};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Longest sequence assumed when neither `--max-seq-len` nor the tokenizer file sets one: the
/// position-embedding size of BERT-family encoders.
pub const DEFAULT_MAX_SEQ_LEN: usize = 512;

/// Why a tokenizer file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read.
    #[error("cannot read tokenizer {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a tokenizer the `tokenizers` crate understands.
    #[error("{path} is not a usable tokenizer.json: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
}

/// Why one row of a request's text could not be tokenized; each names the row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextRowError {
    /// An empty (or whitespace-only) string.
    #[error("row {row} is an empty (or whitespace-only) string")]
    Empty {
        /// Row index in the request.
        row: usize,
    },
    /// Longer than the limit while truncation is off.
    #[error("row {row} has {tokens} tokens, more than --max-seq-len {limit} (truncation is off)")]
    TooLong {
        /// Row index in the request.
        row: usize,
        /// Tokens it needs, special tokens included.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
    /// The tokenizer itself failed.
    #[error("row {row}: the tokenizer failed: {message}")]
    Failed {
        /// Row index in the request.
        row: usize,
        /// What it said.
        message: String,
    },
}

/// A loaded tokenizer with the server's truncation policy.
pub struct TextTokenizer {
    inner: Tokenizer,
    fingerprint: TokenizerFingerprint,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Loads `path`. `max_seq_len` defaults to the file's own truncation length, else
    /// [`DEFAULT_MAX_SEQ_LEN`]; `truncate = false` refuses longer rows instead of cutting them.
    /// Padding set in the file is switched off: the batcher pads each run itself.
    pub fn load(
        path: &Path,
        max_seq_len: Option<usize>,
        truncate: bool,
    ) -> Result<Self, TokenizerError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Read {
            path: shown.clone(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let max_seq_len = max_seq_len
            .or_else(|| inner.get_truncation().map(|t| t.max_length))
            .unwrap_or(DEFAULT_MAX_SEQ_LEN);
        // Padded positions are masked out, so the pad id changes no result; use the file's.
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        inner.with_padding(None);
        let truncation = truncate.then_some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_seq_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        });
        inner
            .with_truncation(truncation)
            .map_err(|e| TokenizerError::Parse {
                path: shown,
                message: format!("cannot truncate to {max_seq_len} tokens: {e}"),
            })?;
        Ok(Self {
            inner,
            fingerprint: TokenizerFingerprint {
                sha256,
                max_seq_len,
                truncate,
            },
            pad_id,
        })
    }

    /// What decides the token ids (recorded in every dataset's fingerprint).
    pub fn fingerprint(&self) -> &TokenizerFingerprint {
        &self.fingerprint
    }

    /// Id of the padding token (the file's padding settings, else `[PAD]`, else 0).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes every text (special tokens added, no padding); `type_ids` says whether the
    /// model takes token type ids. The texts are kept in the result.
    pub fn encode(&self, texts: Vec<String>, type_ids: bool) -> Result<TokenRows, TextRowError> {
        if let Some(row) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(TextRowError::Empty { row });
        }
        let encodings = self
            .inner
            .encode_batch_fast(texts.iter().map(String::as_str).collect(), true)
            .map_err(|e| {
                // The batch call does not say which row failed: find it.
                let row = texts
                    .iter()
                    .position(|t| self.inner.encode_fast(t.as_str(), true).is_err())
                    .unwrap_or(0);
                TextRowError::Failed {
                    row,
                    message: e.to_string(),
                }
            })?;
        let limit = self.fingerprint.max_seq_len;
        let mut ids = Vec::with_capacity(encodings.len());
        let mut types = Vec::with_capacity(if type_ids { encodings.len() } else { 0 });
        for (row, e) in encodings.into_iter().enumerate() {
            if e.len() > limit {
                return Err(TextRowError::TooLong {
                    row,
                    tokens: e.len(),
                    limit,
                });
            }
            if type_ids {
                types.push(e.get_type_ids().to_vec());
            }
            ids.push(e.get_ids().to_vec());
        }
        Ok(TokenRows {
            text: Some(texts),
            ids,
            type_ids: type_ids.then_some(types),
        })
    }
}
