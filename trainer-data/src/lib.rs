//! The data pipeline: Parquet sources ([`source`]), column decoding ([`columns`]), the
//! in-memory training/eval sets ([`dataset`]), and the shuffled background batch loader
//! with image jitter ([`loader`], [`jitter`]); stored augmented views ([`views`]) and the
//! teacher asked per batch ([`served`]). Text students: ragged token columns
//! ([`tokens`]), rows streamed in shuffle windows keyed by id hash ([`text`]), padded
//! (optionally length-bucketed) batches on a background thread ([`text_loader`]).

pub mod columns;
pub mod dataset;
pub mod jitter;
pub mod loader;
pub mod served;
pub mod source;
pub mod text;
pub mod text_loader;
pub mod tokens;
pub mod views;

use std::path::PathBuf;

pub use dataset::{EvalData, Matrix, Target, TrainData};
pub use loader::{Batch, BatchTarget, Loader};
pub use source::ParquetSource;

/// Errors reading training or eval data; each names the file or source and the column.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No file or folder at the path, and it is not a glob.
    #[error("data source {path} not found (expected a dataset folder, a .parquet file or a glob)")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// The source holds no files or no rows.
    #[error("data source {source_path} is empty: {message}")]
    Empty {
        /// The path as given.
        source_path: String,
        /// What is empty.
        message: String,
    },
    /// An I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file that is not valid Parquet, or a manifest that does not parse.
    #[error("corrupt data file {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A column the run needs is absent.
    #[error("column {column:?} not found in {source_path} (columns: {available})")]
    MissingColumn {
        /// The column.
        column: String,
        /// The source.
        source_path: String,
        /// The columns that exist.
        available: String,
    },
    /// A column of the wrong type or width.
    #[error("column {column:?} in {source_path}: {message}")]
    BadColumn {
        /// The column.
        column: String,
        /// The source or file.
        source_path: String,
        /// What is wrong.
        message: String,
    },
    /// A null where a value is needed.
    #[error("column {column:?} in {source_path}: null value at row {row}")]
    NullValue {
        /// The column.
        column: String,
        /// The file.
        source_path: String,
        /// Row within the source.
        row: usize,
    },
    /// A NaN or infinite value.
    #[error("column {column:?} in {source_path}: non-finite value at row {row}")]
    NonFinite {
        /// The column.
        column: String,
        /// The file.
        source_path: String,
        /// Row within the source.
        row: usize,
    },
    /// Joining teacher datasets by id failed.
    #[error("joining teacher datasets by id: {message}")]
    Join {
        /// What failed.
        message: String,
    },
    /// The data does not fit the run configuration.
    #[error("config key `{key}`: {message}")]
    Config {
        /// The config key.
        key: String,
        /// What is wrong.
        message: String,
    },
}
