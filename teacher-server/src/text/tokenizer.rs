//! Text in, token ids out: a Hugging Face `tokenizer.json` loaded once at start and used on
//! the request path to turn a request's texts into the token rows the teacher sees.

use std::path::Path;

use distill_proto::store::{TokenRows, TokenizerFingerprint};
use distill_proto::tokenizer::RowTokenizer;
pub use distill_proto::tokenizer::{TokenizerFileError, DEFAULT_MAX_SEQ_LEN};

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
    #[error("row {row} has {tokens} tokens, more than the limit of {limit} (--no-truncate: longer texts are refused, not cut)")]
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
    inner: RowTokenizer,
    fingerprint: TokenizerFingerprint,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Loads `path` with the shared loader ([`RowTokenizer::load`]): `max_seq_len` defaults
    /// to the file's own truncation length, else [`DEFAULT_MAX_SEQ_LEN`]; `truncate = false`
    /// refuses longer rows instead of cutting them. The batcher pads each run itself.
    pub fn load(
        path: &Path,
        max_seq_len: Option<usize>,
        truncate: bool,
    ) -> Result<Self, TokenizerFileError> {
        let inner = RowTokenizer::load(path, max_seq_len, truncate)?;
        let fingerprint = TokenizerFingerprint {
            sha256: inner.sha256().to_string(),
            max_seq_len: inner.max_seq_len(),
            truncate,
        };
        Ok(Self { inner, fingerprint })
    }

    /// The truncation length the file itself sets, if any.
    pub fn file_max_len(&self) -> Option<usize> {
        self.inner.file_max_len()
    }

    /// What decides the token ids (recorded in every dataset's fingerprint).
    pub fn fingerprint(&self) -> &TokenizerFingerprint {
        &self.fingerprint
    }

    /// Id of the padding token (the file's padding settings, else `[PAD]`, else 0).
    pub fn pad_id(&self) -> u32 {
        self.inner.pad_id()
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.tokenizer().get_vocab_size(true)
    }

    /// Tokenizes every text (special tokens added, no padding); `type_ids` says whether the
    /// model takes token type ids. The texts are kept in the result.
    pub fn encode(&self, texts: Vec<String>, type_ids: bool) -> Result<TokenRows, TextRowError> {
        if let Some(row) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(TextRowError::Empty { row });
        }
        let encodings = self
            .inner
            .tokenizer()
            .encode_batch_fast(texts.iter().map(String::as_str).collect(), true)
            .map_err(|e| {
                // The batch call does not say which row failed: find it.
                let row = texts
                    .iter()
                    .position(|t| {
                        self.inner
                            .tokenizer()
                            .encode_fast(t.as_str(), true)
                            .is_err()
                    })
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
