//! The one loader of a Hugging Face `tokenizer.json` that both sides use (the server's text
//! front, the trainer's text eval): read and hashed, padding switched off (each caller pads
//! its own batches) and truncation set as the caller asks, so the same file and settings give
//! the same token ids everywhere.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Longest sequence assumed when neither the caller nor the tokenizer file sets one: the
/// position-embedding size of BERT-family encoders.
pub const DEFAULT_MAX_SEQ_LEN: usize = 512;

/// Why a tokenizer file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerFileError {
    /// The file could not be read.
    #[error("cannot read tokenizer {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a tokenizer the `tokenizers` crate understands.
    #[error("{} is not a usable tokenizer.json: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The tokenizer refused the truncation length.
    #[error("{}: cannot truncate to {max_seq_len} tokens: {message}", path.display())]
    Truncation {
        /// The file.
        path: PathBuf,
        /// The length asked for.
        max_seq_len: usize,
        /// What the tokenizer said.
        message: String,
    },
}

/// A loaded `tokenizer.json`: no padding, truncation at `max_seq_len` when asked.
pub struct RowTokenizer {
    inner: Tokenizer,
    sha256: String,
    pad_id: u32,
    file_max_len: Option<usize>,
    max_seq_len: usize,
    truncate: bool,
}

impl std::fmt::Debug for RowTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowTokenizer")
            .field("sha256", &self.sha256)
            .field("max_seq_len", &self.max_seq_len)
            .field("truncate", &self.truncate)
            .finish_non_exhaustive()
    }
}

impl RowTokenizer {
    /// Loads `path`. `max_seq_len` (special tokens included) defaults to the file's own
    /// truncation length, else [`DEFAULT_MAX_SEQ_LEN`]; with `truncate` longer texts are cut
    /// to it (right side, longest first), without it they come out whole for the caller to
    /// refuse. Padding set in the file is switched off.
    pub fn load(
        path: &Path,
        max_seq_len: Option<usize>,
        truncate: bool,
    ) -> Result<Self, TokenizerFileError> {
        let bytes = std::fs::read(path).map_err(|source| TokenizerFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let file_max_len = inner.get_truncation().map(|t| t.max_length);
        let max_seq_len = max_seq_len.or(file_max_len).unwrap_or(DEFAULT_MAX_SEQ_LEN);
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
            .map_err(|e| TokenizerFileError::Truncation {
                path: path.to_path_buf(),
                max_seq_len,
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            sha256,
            pad_id,
            file_max_len,
            max_seq_len,
            truncate,
        })
    }

    /// The tokenizer, set up as loaded.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner
    }

    /// sha256 of the file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Id of the padding token (the file's padding settings, else `[PAD]`, else 0).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The truncation length the file itself sets, if any (before the caller's choice).
    pub fn file_max_len(&self) -> Option<usize> {
        self.file_max_len
    }

    /// The length in force, special tokens included.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Whether longer texts are cut to [`Self::max_seq_len`].
    pub fn truncate(&self) -> bool {
        self.truncate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm() -> PathBuf {
        distill_tests::paths::repo_root().join(".deps/models/minilm-l6/tokenizer.json")
    }

    #[test]
    fn the_files_settings_are_defaults_and_padding_is_off() {
        let path = minilm();
        if !path.exists() {
            eprintln!(
                "skipped: {} missing (scripts/fetch_text.sh)",
                path.display()
            );
            return;
        }
        let t = RowTokenizer::load(&path, None, true).expect("load");
        assert_eq!((t.file_max_len(), t.max_seq_len()), (Some(128), 128));
        assert_eq!(t.pad_id(), 0);
        assert!(t.tokenizer().get_padding().is_none());
        let long = "word ".repeat(300);
        let e = t
            .tokenizer()
            .encode_fast(long.as_str(), true)
            .expect("encode");
        assert_eq!(e.len(), 128);
        let t = RowTokenizer::load(&path, Some(256), false).expect("load");
        let e = t
            .tokenizer()
            .encode_fast(long.as_str(), true)
            .expect("encode");
        assert_eq!(e.len(), 302, "300 words and [CLS]/[SEP], not truncated");
        let short = t.tokenizer().encode_fast("a b", true).expect("encode");
        assert_eq!(short.len(), 4, "no padding");
    }

    #[test]
    fn unreadable_and_unparsable_files_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("none.json");
        let e = RowTokenizer::load(&missing, None, true).unwrap_err();
        assert!(
            matches!(e, TokenizerFileError::Read { .. }) && e.to_string().contains("none.json")
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{}").expect("write");
        let e = RowTokenizer::load(&bad, None, true).unwrap_err();
        assert!(matches!(e, TokenizerFileError::Parse { .. }), "{e}");
    }
}
