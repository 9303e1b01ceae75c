//! The Parquet label store: one folder per dataset under a data dir, holding zstd Parquet
//! shards, a `manifest.json` and a write-ahead log. Used by `teacher-server` (writes) and
//! `student-trainer` (reads).
//!
//! Layout of a dataset folder `DATA_DIR/NAME/`:
//! - `manifest.json` — [`Manifest`]: teacher fingerprint, columns, shards, row count.
//! - `shard-000000.parquet`, ... — finished shards (written as `*.parquet.tmp`, then renamed).
//! - `wal/` — write-ahead log of rows acknowledged but not yet in a finished shard.
//!
//! INTERFACE FILE: the public items below are the contract the server and trainer code
//! against; bodies are filled in by the store implementation.

use std::path::Path;

use arrow::array::ArrayRef;
use serde::{Deserialize, Serialize};

use crate::api::{DatasetSummary, OutputSpec, TensorSpec};
use crate::Tensor;

/// Version of the on-disk layout and column conventions.
pub const SCHEMA_VERSION: u32 = 1;

/// Element type of stored float features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeatureDType {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats (half the bytes).
    F16,
}

/// Store only the top-K logits of one output (plus the log-sum-exp of all of them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopK {
    /// Stored output name the option applies to (e.g. `logits`).
    pub output: String,
    /// How many logits to keep per row.
    pub k: usize,
}

/// Everything that decides how a dataset's rows were produced; a dataset only ever takes rows
/// from one fingerprint (the provider and ORT version are recorded but may change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherFingerprint {
    /// sha256 of the ONNX file, hex.
    pub model_sha256: String,
    /// Model inputs.
    pub inputs: Vec<TensorSpec>,
    /// Stored outputs (roles, taps, pooling).
    pub outputs: Vec<OutputSpec>,
    /// ONNX Runtime version that computed the rows.
    pub ort_version: String,
    /// Execution provider that computed the rows.
    pub provider: String,
    /// Element type of stored float features.
    pub feature_dtype: FeatureDType,
    /// Top-K logit storage, if any.
    pub logits_topk: Option<TopK>,
    /// Whether the inputs are stored beside the outputs.
    pub store_inputs: bool,
}

/// Shard rolling and Parquet layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreOptions {
    /// Roll to a new shard after this many rows.
    pub shard_max_rows: usize,
    /// Roll to a new shard after about this many bytes of Parquet.
    pub shard_max_bytes: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            shard_max_rows: 100_000,
            shard_max_bytes: 512 << 20,
            row_group_rows: 8192,
        }
    }
}

/// One finished shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the dataset folder.
    pub file: String,
    /// Rows in the shard.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// One stored column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// `id`, `input`, `output`, `topk_indices`, `topk_values`, `logsumexp`, `passthrough`, `digest`.
    pub kind: String,
    /// Arrow data type, as Arrow prints it.
    pub arrow_type: String,
    /// Shape of one row's value (empty for scalars).
    pub row_shape: Vec<usize>,
}

/// `manifest.json` of a dataset; the same facts sit in each shard's key-value metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`] it was written with.
    pub schema_version: u32,
    /// Dataset name.
    pub dataset: String,
    /// How the rows were produced.
    pub teacher: TeacherFingerprint,
    /// Stored columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// Rows in finished shards.
    pub rows: u64,
    /// Rows acknowledged but not yet in a finished shard (in the open shard or the log).
    pub pending_rows: u64,
    /// Finished shards, in order.
    pub shards: Vec<ShardInfo>,
}

/// The rows of one request, as the server hands them to the store.
#[derive(Debug, Clone)]
pub struct LabelRows {
    /// One id per row.
    pub ids: Vec<String>,
    /// Model inputs by input name, as received (used for the row digest even when inputs
    /// are not stored).
    pub inputs: Vec<(String, Tensor)>,
    /// Teacher outputs by stored name, after pooling, as the model produced them.
    pub outputs: Vec<(String, Tensor)>,
    /// Pass-through columns by name, one value per row.
    pub columns: Vec<(String, ArrayRef)>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    /// Rows newly stored.
    pub stored: usize,
    /// Rows whose id the dataset already held with the same inputs (not stored again).
    pub duplicates: usize,
}

/// Errors of the label store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A dataset name outside `[A-Za-z0-9._-]{1,128}` or one that would leave the data dir.
    #[error("invalid dataset name {name:?}: expected 1-128 characters of [A-Za-z0-9._-], not '.' or '..'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No such dataset.
    #[error("dataset {0:?} does not exist")]
    NotFound(String),
    /// The id is already stored with different inputs.
    #[error("id {id:?} is already stored in dataset {dataset:?} with different inputs")]
    IdConflict {
        /// Dataset name.
        dataset: String,
        /// The conflicting id.
        id: String,
    },
    /// The rows do not fit the dataset's columns (e.g. a pass-through column changed type).
    #[error("rows do not fit dataset {dataset:?}: {message}")]
    SchemaMismatch {
        /// Dataset name.
        dataset: String,
        /// What differs.
        message: String,
    },
    /// The dataset was produced by another teacher or other storage options.
    #[error("dataset {dataset:?} was produced by another teacher: {message}")]
    TeacherMismatch {
        /// Dataset name.
        dataset: String,
        /// What differs.
        message: String,
    },
    /// Bad rows handed in (lengths disagree, duplicate ids, ...).
    #[error("invalid rows: {0}")]
    InvalidRows(String),
    /// A file of the store is unreadable or inconsistent.
    #[error("corrupt store file {path}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O error, with the path involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An Arrow error.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Checks a dataset name: `[A-Za-z0-9._-]{1,128}`, and not `.` or `..`.
pub fn validate_dataset_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=128).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// All datasets under one data dir, written by one teacher. Thread-safe; methods block on
/// disk I/O (call them off the async executor).
pub struct LabelStore {
    _private: (),
}

impl LabelStore {
    /// Opens (creating if needed) the data dir and replays every dataset's write-ahead log
    /// into shards, so rows acknowledged before a crash are not lost.
    pub fn open(
        data_dir: &Path,
        teacher: TeacherFingerprint,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let _ = (data_dir, teacher, options);
        unimplemented!("store implementation")
    }

    /// Durably appends one request's rows: when this returns `Ok`, the rows survive a
    /// `kill -9`. Ids already stored with the same inputs are skipped; with different
    /// inputs the whole call fails with [`StoreError::IdConflict`] and nothing is stored.
    pub fn append(&self, dataset: &str, rows: LabelRows) -> Result<AppendOutcome, StoreError> {
        let _ = (dataset, rows);
        unimplemented!("store implementation")
    }

    /// Closes the open shard of a dataset so every row stored so far is in a finished
    /// Parquet file; a no-op (still `Ok`) when nothing is open.
    pub fn seal(&self, dataset: &str) -> Result<Manifest, StoreError> {
        let _ = dataset;
        unimplemented!("store implementation")
    }

    /// The manifest of one dataset.
    pub fn manifest(&self, dataset: &str) -> Result<Manifest, StoreError> {
        let _ = dataset;
        unimplemented!("store implementation")
    }

    /// All datasets in the data dir.
    pub fn list(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        unimplemented!("store implementation")
    }

    /// Seals every dataset (graceful shutdown).
    pub fn close(&self) -> Result<(), StoreError> {
        unimplemented!("store implementation")
    }
}

// Reader side (used by student-trainer), to be provided by the store implementation:
//
// pub struct DatasetReader;
// impl DatasetReader {
//     /// A dataset folder (manifest + shards), one `.parquet` file, or a glob of files.
//     /// Checks every shard has the same schema and teacher fingerprint (error names the file).
//     pub fn open(path: &Path) -> Result<Self, StoreError>;
//     pub fn schema(&self) -> arrow::datatypes::SchemaRef;
//     pub fn rows(&self) -> u64;
//     pub fn manifest(&self) -> Option<&Manifest>;
//     pub fn files(&self) -> &[std::path::PathBuf];
//     /// Streams record batches of the named columns, shard by shard, never the whole set.
//     pub fn batches(&self, columns: &[&str], batch_rows: usize)
//         -> Result<impl Iterator<Item = Result<arrow::record_batch::RecordBatch, StoreError>>, StoreError>;
// }
//
// Column conversions (store/columns.rs), used by the server's Arrow IPC path and the trainer:
//     pub fn tensor_to_array(t: &Tensor, feature: FeatureDType) -> Result<ArrayRef, StoreError>;
//     pub fn array_to_tensor(a: &dyn arrow::array::Array, dtype: DType, row_shape: &[usize]) -> Result<Tensor, StoreError>;
