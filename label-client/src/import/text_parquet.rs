//! What the text importers share: content-derived row ids, the error type naming the file and
//! line, and a streaming writer of all-Utf8 Parquet files (zstd, written atomically).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use distill_proto::atomic::AtomicFile;
use parquet::arrow::ArrowWriter;
use sha2::{Digest, Sha256};

use super::{existing_rows, finish_parquet, parquet_writer, ROW_GROUP_ROWS};

/// Hex digits of a content-derived id: 64 bits of SHA-256, so a million distinct sentences
/// collide with probability below 3e-8.
pub const CONTENT_ID_HEX: usize = 16;

/// The id of a row derived from its text: the first [`CONTENT_ID_HEX`] hex digits of the
/// SHA-256 of the text's UTF-8 bytes. The same sentence always gets the same id, in any file.
pub fn content_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = hex::encode(&digest[..CONTENT_ID_HEX / 2]);
    id.truncate(CONTENT_ID_HEX);
    id
}

/// Errors of the text importers; each names the file and, for bad input, the line or row.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file or folder cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input is malformed at a given place.
    #[error("{path} {at}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where: `line 12` (1-based) or `row 7` (0-based, Parquet).
        at: String,
        /// What is wrong.
        message: String,
    },
    /// The input is unusable as a whole (no such column, no rows, ...).
    #[error("{path}: {message}")]
    Input {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl TextError {
    /// A malformed-input error at a 1-based line.
    pub fn at_line(path: &Path, line: u64, message: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.to_path_buf(),
            at: format!("line {line}"),
            message: message.into(),
        }
    }
}

/// An all-Utf8, non-null Parquet file written row by row, in row groups of 8,192 rows, under a
/// temporary name renamed over `path` by [`Utf8ParquetWriter::finish`] (a crash never leaves a
/// half file under the final name; a writer dropped unfinished removes its temporary file).
pub struct Utf8ParquetWriter {
    path: PathBuf,
    schema: SchemaRef,
    /// `None` once finished.
    writer: Option<ArrowWriter<AtomicFile>>,
    builders: Vec<StringBuilder>,
    pending: usize,
    rows: usize,
}

impl Utf8ParquetWriter {
    /// Creates `path`'s temporary file with one Utf8 column per name.
    pub fn create(path: &Path, columns: &[&str]) -> Result<Self, TextError> {
        let fail = |message: String| TextError::Write {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(format!("create folder: {e}")))?;
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let writer = parquet_writer(path, schema.clone()).map_err(fail)?;
        Ok(Self {
            path: path.to_path_buf(),
            builders: columns.iter().map(|_| StringBuilder::new()).collect(),
            schema,
            writer: Some(writer),
            pending: 0,
            rows: 0,
        })
    }

    /// Appends one row: one value per column, in the order given to [`Self::create`].
    pub fn push(&mut self, values: &[&str]) -> Result<(), TextError> {
        if values.len() != self.builders.len() {
            return Err(TextError::Write {
                path: self.path.clone(),
                message: format!(
                    "a row of {} values for {} columns",
                    values.len(),
                    self.builders.len()
                ),
            });
        }
        for (b, v) in self.builders.iter_mut().zip(values) {
            b.append_value(v);
        }
        self.pending += 1;
        self.rows += 1;
        if self.pending == ROW_GROUP_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn flush_batch(&mut self) -> Result<(), TextError> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let fail = |message: String| TextError::Write {
            path: self.path.clone(),
            message,
        };
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| fail(e.to_string()))?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| fail("writer already finished".to_string()))?;
        writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        self.pending = 0;
        Ok(())
    }

    /// Writes the last rows and the footer, syncs, and renames the file to its final name.
    /// Returns the number of rows written.
    pub fn finish(mut self) -> Result<usize, TextError> {
        self.flush_batch()?;
        let path = self.path.clone();
        let fail = |message: String| TextError::Write {
            path: path.clone(),
            message,
        };
        let writer = self
            .writer
            .take()
            .ok_or_else(|| fail("writer already finished".to_string()))?;
        finish_parquet(writer).map_err(fail)?;
        Ok(self.rows)
    }
}

/// Row count of an existing Parquet file, from its footer (for outputs kept without `--force`).
pub fn parquet_rows(path: &Path) -> Result<usize, TextError> {
    existing_rows(path).map_err(|message| TextError::Write {
        path: path.to_path_buf(),
        message,
    })
}
