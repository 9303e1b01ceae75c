//! The trainer's data layer: Parquet sources ([`source`]), column decoding ([`columns`],
//! [`table`]), every seeded draw's stream ([`seeds`]), the in-memory training/eval sets
//! ([`dataset`]) and the shuffled background batch loader ([`loader`]). Image students
//! ([`image`]): jitter, stored augmented views and the teacher asked per batch. Text students
//! ([`text`]): ragged token columns, rows streamed in shuffle windows keyed by id hash, padded
//! (optionally length-bucketed) batches on a background thread. The `[data]` table is
//! [`config::DataConfig`].

pub mod columns;
pub mod config;
pub mod dataset;
pub mod image;
pub mod loader;
pub mod seeds;
pub mod source;
pub mod table;
pub mod text;

use std::path::PathBuf;

pub use dataset::{EvalData, Target, TrainData};
pub use loader::{Batch, BatchTarget, Loader};
pub use source::ParquetSource;
pub use table::Matrix;

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
