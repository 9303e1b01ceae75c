//! The Parquet label store: one folder per dataset under a data dir, holding zstd Parquet
//! shards, a `_manifest.json` and a write-ahead log. Used by `teacher-server` (writes, through
//! [`LabelStore`]) and `student-trainer` (reads, through [`DatasetReader`]).
//!
//! # On-disk layout
//!
//! ```text
//! DATA_DIR/
//!   .lock                       flock'd by the one process that has the store open
//!   NAME/                       one folder per dataset, NAME = [A-Za-z0-9._-]{1,128}
//!     _manifest.json            Manifest: schema version, teacher fingerprint, columns, rows, shards
//!     shard-000000.parquet      finished shards (written as _shard-*.parquet.tmp, fsync'd, renamed)
//!     shard-000001.parquet
//!     _wal/shard-000002.wal     write-ahead log of the open shard (deleted once it is finished)
//! ```
//!
//! Everything that is not a finished shard starts with `_`, which pyarrow (and other
//! Hive-style readers) skip when reading a folder: `pyarrow.parquet.read_table("DATA_DIR/NAME")`
//! reads the shards even while the server is writing (tested).
//!
//! Every shard also carries the key-value metadata `distill.manifest`: the JSON of a
//! [`ShardMetadata`] (schema version, dataset, teacher fingerprint, columns), so one file
//! alone is self-describing. Shards are zstd-compressed, with row groups of
//! [`StoreOptions::row_group_rows`] rows, byte-stream-split encoding for float outputs and
//! dictionary encoding (Parquet's, falling back to plain pages by itself) for float inputs.
//!
//! # Columns, in order
//!
//! 1. `id` — Utf8, the row id given by the client (unique within a dataset).
//! 2. the model inputs as received, under their input names, in their own dtype (only when
//!    [`TeacherFingerprint::store_inputs`]).
//! 3. the teacher outputs under their stored names; float outputs as f32 or f16 per
//!    [`FeatureDType`], others in their own dtype. With `logits_topk = Some(TopK { output, k })`
//!    the column `output` is replaced by three: `{output}_topk_indices`
//!    (FixedSizeList<Int32, k>), `{output}_topk_values` (FixedSizeList<Float32, k>, largest
//!    first, ties by lower index) and `{output}_logsumexp` (Float32: log-sum-exp of ALL the
//!    row's logits, computed in f64), so `softmax_i = exp(v_i - logsumexp)` for kept classes.
//! 4. pass-through columns, as handed in (nullable), in the order of the dataset's first append.
//! 5. `_input_digest` — FixedSizeBinary(16): a 128-bit digest of the row's inputs (names,
//!    dtypes, shapes, values), used for idempotency even without stored inputs; XXH3-128 for
//!    new datasets, the first 16 bytes of a SHA-256 in datasets written before
//!    [`Manifest::input_digest`] existed (see [`digest`] for both and the collision argument).
//!
//! A text teacher (one served with a tokenizer, [`TeacherFingerprint::tokenizer`]) stores its
//! inputs differently: not the padded token tensors but, in place of 2., `text` (Utf8,
//! nullable: null for rows sent as token ids), `input_ids` (List<Int32>: the ids the teacher
//! saw, special tokens included, padding excluded) and, when the model takes them,
//! `token_type_ids` (List<Int32>). Its digest covers the ids, so a sentence sent as text and
//! the same ids sent directly are the same row.
//!
//! Tensor columns: a row of shape `[]` is a primitive column, `[d]` is
//! `FixedSizeList<T, d>`, `[a, b]` is `FixedSizeList<FixedSizeList<T, b>, a>`; an axis that is
//! dynamic in the model signature (e.g. the sequence length) is a `List` at its level. In
//! [`ColumnInfo::row_shape`] a dynamic axis is written as 0. List items are named `item` and
//! are not nullable. See [`crate::arrow_codec`] for the conversions.
//!
//! # Durability and idempotency
//!
//! [`LabelStore::append`] returns `Ok` only after the rows are in the dataset's WAL segment
//! and fsync'd (records framed with length + crc32, so a torn tail is detected and dropped).
//! Concurrent appends to one dataset share that fsync (group commit, `commit.rs`): each
//! waits, outside the dataset's lock, for an fsync that started after its records were
//! written. The rows are encoded into the open shard on the same call (see `dataset.rs`);
//! a shard is finished when it reaches [`StoreOptions::shard_max_rows`] rows (appends are split
//! at that boundary) or about [`StoreOptions::shard_max_bytes`] bytes, on [`LabelStore::seal`]
//! and on [`LabelStore::close`]. Finishing writes the footer, fsyncs, renames, updates the
//! manifest atomically (tmp + fsync + rename) and only then deletes the WAL segment.
//! [`LabelStore::open`] removes leftover `.tmp` files and replays every WAL segment into a
//! finished shard, so nothing acknowledged is lost after `kill -9`. Dropping a store without
//! [`LabelStore::close`] behaves like a crash (recovered at the next open).
//!
//! Each dataset keeps an in-memory map id -> input digest, rebuilt at open from the shards'
//! `id` and `_input_digest` columns and the WAL: a re-sent id with the same digest is skipped
//! (counted as a duplicate), with another digest the whole call fails with
//! [`StoreError::IdConflict`] and nothing of it is stored.

pub mod columns;
mod commit;
mod dataset;
pub mod digest;
mod encoder;
pub mod manifest;
pub mod reader;
mod rows;
mod shard;
pub mod topk;
mod wal;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use arrow::array::ArrayRef;
use serde::{Deserialize, Serialize};

use crate::api::{DatasetSummary, OutputSpec, TensorSpec};
use crate::{DType, NamedTensors};

// The codec's conversions, re-exported where the store's column conventions are documented.
pub use crate::arrow_codec::{
    array_to_tensor, array_to_tensor_dyn, column_array_to_tensor, column_arrow_type,
    column_to_tensor, element_arrow_type, tensor_to_column, ColumnError,
};
pub use columns::{stored_dtype, tensor_to_array};
pub use commit::StoreStats;
#[cfg(feature = "fault-injection")]
pub use commit::{FaultHook, FaultPoint, SyncHook, SyncPoint};
pub use digest::{
    row_digests, row_digests_with, row_digests_xxh3, token_digests, token_digests_with,
    token_digests_xxh3, DigestAlgorithm, RowDigest, DIGEST_LEN,
};
pub use manifest::{
    fingerprint_differences, read_manifest, ShardMetadata, MANIFEST_FILE, SHARD_METADATA_KEY,
};
pub use reader::{BatchIter, DatasetReader};
pub use rows::{topk_column_names, MAX_ID_BYTES};
pub use topk::{topk_rows, TopKRows};

/// Name of the per-row input digest column.
pub const DIGEST_COLUMN: &str = "_input_digest";

/// Version of the on-disk layout and column conventions.
pub const SCHEMA_VERSION: u32 = 1;

/// Element type of stored float features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum FeatureDType {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats (half the bytes).
    F16,
}

impl FeatureDType {
    /// The name used in flags and the manifest.
    pub fn name(self) -> &'static str {
        match self {
            FeatureDType::F32 => "f32",
            FeatureDType::F16 => "f16",
        }
    }
}

impl std::fmt::Display for FeatureDType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stored feature type that is neither `f32` nor `f16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature dtype {0:?}: expected f32 or f16")]
pub struct UnknownFeatureDType(pub String);

impl std::str::FromStr for FeatureDType {
    type Err = UnknownFeatureDType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(FeatureDType::F32),
            "f16" => Ok(FeatureDType::F16),
            other => Err(UnknownFeatureDType(other.to_string())),
        }
    }
}

/// Store only the top-K logits of one output (plus the log-sum-exp of all of them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The tokenizer of a text teacher; rows then carry [`TokenRows`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerFingerprint>,
}

/// What decides how a text teacher turned text into token ids.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerFingerprint {
    /// sha256 of the `tokenizer.json` file, hex.
    pub sha256: String,
    /// Most tokens per row (special tokens included).
    pub max_seq_len: usize,
    /// Whether longer texts were truncated to `max_seq_len` (else refused).
    pub truncate: bool,
}

/// Stored column of a text teacher's row text.
pub const TEXT_COLUMN: &str = "text";
/// Stored column of a text teacher's token ids.
pub const TOKEN_IDS_COLUMN: &str = "input_ids";
/// Stored column of a text teacher's token type ids.
pub const TOKEN_TYPE_IDS_COLUMN: &str = "token_type_ids";

/// A text teacher's rows as the teacher saw them: ragged, without padding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRows {
    /// The text of each row, when the request sent text (not token ids).
    pub text: Option<Vec<String>>,
    /// Token ids of each row, special tokens included, padding excluded.
    pub ids: Vec<Vec<u32>>,
    /// Token type ids of each row, when the model takes them.
    pub type_ids: Option<Vec<Vec<u32>>>,
}

impl TokenRows {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tokens of all rows together.
    pub fn tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
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
    /// How many bytes of logged rows (their size in the write-ahead log) may wait for the
    /// background Parquet encoder of a dataset before appends wait for it.
    #[serde(default = "default_backlog")]
    pub encode_backlog_bytes: u64,
}

fn default_backlog() -> u64 {
    StoreOptions::default().encode_backlog_bytes
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            shard_max_rows: 100_000,
            shard_max_bytes: 512 << 20,
            row_group_rows: 8192,
            encode_backlog_bytes: 64 << 20,
        }
    }
}

/// Why a dataset cannot take writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What kind of failure it was.
    pub kind: FaultKind,
    /// The error, as the store saw it (names server paths: for logs, not clients).
    pub message: String,
}

/// The kinds of [`Fault`], which decide the HTTP status a server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// No space left on the device (or a quota is exhausted).
    NoSpace,
    /// The data dir's filesystem is read-only.
    ReadOnly,
    /// Any other I/O or store failure.
    Io,
}

impl FaultKind {
    /// A short description for messages.
    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::NoSpace => "the disk is full",
            FaultKind::ReadOnly => "the data dir is read-only",
            FaultKind::Io => "a write failed",
        }
    }
}

impl Fault {
    /// The fault a store error amounts to.
    pub(crate) fn of(e: &StoreError) -> Self {
        Fault {
            kind: e.fault_kind().unwrap_or(FaultKind::Io),
            message: e.to_string(),
        }
    }

    pub(crate) fn io(message: String) -> Self {
        Fault {
            kind: FaultKind::Io,
            message,
        }
    }
}

/// One finished shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// `id`, `input`, `output`, `topk_indices`, `topk_values`, `logsumexp`, `passthrough`, `digest`.
    pub kind: String,
    /// Arrow data type, as Arrow prints it.
    pub arrow_type: String,
    /// Shape of one row's value (empty for scalars; 0 marks a dynamic `List` axis).
    pub row_shape: Vec<usize>,
    /// Element type of a tensor column as stored (`None` for `id`, pass-through, digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DType>,
}

/// `_manifest.json` of a dataset; the same facts sit in each shard's key-value metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// How the `_input_digest` column is computed; a manifest without the field predates it
    /// and used [`DigestAlgorithm::Sha256`].
    #[serde(default = "DigestAlgorithm::legacy")]
    pub input_digest: DigestAlgorithm,
}

/// The rows of one request, as the server hands them to the store.
#[derive(Debug, Clone, Default)]
pub struct LabelRows {
    /// One id per row.
    pub ids: Vec<String>,
    /// Model inputs by input name, as received (used for the row digest even when inputs
    /// are not stored).
    pub inputs: NamedTensors,
    /// Teacher outputs by stored name, after pooling, as the model produced them.
    pub outputs: NamedTensors,
    /// Pass-through columns by name, one value per row.
    pub columns: Vec<(String, ArrayRef)>,
    /// A text teacher's token rows (then `inputs` is empty: the digest covers the tokens).
    pub tokens: Option<TokenRows>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    /// Rows newly stored.
    pub stored: usize,
    /// Rows whose id the dataset already held with the same inputs (not stored again).
    pub duplicates: usize,
}

/// Where one append's time went, stage by stage (what the server's per-stage metrics show).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AppendTimings {
    /// Computing the input digests.
    pub digest: Duration,
    /// Validating the rows and building the stored columns (the digest excluded).
    pub columns: Duration,
    /// Waiting for the dataset's lock (other appends' log writes and encoding).
    pub lock_wait: Duration,
    /// Encoding and writing the write-ahead log records.
    pub wal_write: Duration,
    /// Waiting until the log records were fsync'd (the group commit).
    pub fsync_wait: Duration,
    /// Waiting for room in the dataset's background encoder backlog (non-zero only when
    /// Parquet encoding falls behind the appends).
    pub backlog_wait: Duration,
    /// fsync rounds this append ran itself (0 when another append's fsync covered it).
    pub fsync_rounds: u32,
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
    /// A tensor that does not convert to or from its column.
    #[error("invalid rows: {0}")]
    Column(#[from] ColumnError),
    /// A file of the store is unreadable or inconsistent.
    #[error("corrupt store file {path}: {message}")]
    Corrupt {
        /// The store file that is unreadable or inconsistent.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O error, with the path involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An Arrow error.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The dataset cannot take writes now (disk full, read-only, a failed write); its
    /// acknowledged rows are safe in the log and it recovers in place on a later call once
    /// the cause is gone. Reads keep working.
    #[error("dataset {dataset:?} cannot take writes now: {} ({}); acknowledged rows are safe in its write-ahead log and it recovers by itself once the cause is gone", fault.kind.describe(), fault.message)]
    Unavailable {
        /// Dataset name.
        dataset: String,
        /// What failed.
        fault: Fault,
    },
}

impl StoreError {
    /// Whether this error is the disk being full or read-only (anywhere in its source chain),
    /// or a dataset being unavailable; `None` for errors about the rows or the request.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        if let StoreError::Unavailable { fault, .. } = self {
            return Some(fault.kind);
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.raw_os_error() {
                    Some(libc::ENOSPC) | Some(libc::EDQUOT) => return Some(FaultKind::NoSpace),
                    Some(libc::EROFS) => return Some(FaultKind::ReadOnly),
                    _ => {}
                }
            }
            cur = e.source();
        }
        matches!(self, StoreError::Io { .. }).then_some(FaultKind::Io)
    }
}

/// A failed atomic write is an I/O error on the file of the step that failed.
impl From<crate::atomic::AtomicWriteError> for StoreError {
    fn from(e: crate::atomic::AtomicWriteError) -> Self {
        StoreError::Io {
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
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
    dir: PathBuf,
    teacher: TeacherFingerprint,
    options: StoreOptions,
    datasets: RwLock<BTreeMap<String, Arc<DatasetHandle>>>,
    counters: Arc<commit::Counters>,
    /// The digest algorithm of datasets this store creates.
    new_digest: DigestAlgorithm,
    /// Held (flock'd) while the store is open so a second process cannot write beside us.
    _lock: File,
}

/// One dataset in the map: its digest algorithm is fixed at creation, so it is read without
/// taking the dataset's lock.
struct DatasetHandle {
    digest: DigestAlgorithm,
    dir: PathBuf,
    state: Mutex<DatasetState>,
}

/// A dataset taking writes, or one that failed and waits to be recovered from disk.
enum DatasetState {
    // Boxed: a dataset is hundreds of bytes and Down is small.
    Ready(Box<dataset::Dataset>),
    Down {
        fault: Fault,
        /// When recovery was last tried (or the fault happened).
        since: Instant,
    },
}

/// How long a dataset that failed stays down before a call tries to recover it again.
const RECOVERY_RETRY: Duration = Duration::from_secs(1);

impl DatasetHandle {
    fn new(ds: dataset::Dataset, dir: PathBuf) -> Arc<Self> {
        Arc::new(DatasetHandle {
            digest: ds.digest(),
            dir,
            state: Mutex::new(DatasetState::Ready(Box::new(ds))),
        })
    }
}

fn config_err(msg: String) -> StoreError {
    StoreError::InvalidRows(format!("store configuration: {msg}"))
}

/// Checks options and teacher settings that would make every append fail.
fn validate_config(teacher: &TeacherFingerprint, options: &StoreOptions) -> Result<(), StoreError> {
    if options.shard_max_rows == 0 || options.row_group_rows == 0 || options.shard_max_bytes == 0 {
        return Err(config_err(format!(
            "shard_max_rows, shard_max_bytes and row_group_rows must be at least 1, got {options:?}"
        )));
    }
    let mut names: Vec<String> = vec!["id".into(), DIGEST_COLUMN.into()];
    if teacher.store_inputs {
        names.extend(teacher.inputs.iter().map(|i| i.name.clone()));
    }
    for o in &teacher.outputs {
        match &teacher.logits_topk {
            Some(tk) if tk.output == o.name => {
                let (a, b, c) = topk_column_names(&o.name);
                names.extend([a, b, c]);
            }
            _ => names.push(o.name.clone()),
        }
    }
    if let Some(tk) = &teacher.logits_topk {
        let Some(o) = teacher.outputs.iter().find(|o| o.name == tk.output) else {
            return Err(config_err(format!(
                "logits_topk names output {:?}, which is not a stored output",
                tk.output
            )));
        };
        if !o.dtype.is_float() {
            return Err(config_err(format!(
                "logits_topk output {:?} is {}, not a float",
                o.name, o.dtype
            )));
        }
        if tk.k == 0 || tk.k > i32::MAX as usize {
            return Err(config_err(format!(
                "logits_topk k must be at least 1, got {}",
                tk.k
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        if n.is_empty() || !seen.insert(n.as_str()) {
            return Err(config_err(format!(
                "two stored columns would be named {n:?} (id, inputs, outputs and {DIGEST_COLUMN} must differ)"
            )));
        }
    }
    Ok(())
}

/// Takes an exclusive, non-blocking flock on `DATA_DIR/.lock`.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| manifest::io_err(&path, e))?;
    // SAFETY: flock on a file descriptor we own and keep open for the store's lifetime.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(manifest::io_err(
            &path,
            std::io::Error::new(
                e.kind(),
                format!("the data dir is open in another store (process or handle): {e}"),
            ),
        ));
    }
    Ok(f)
}

fn poisoned(dir: &Path) -> StoreError {
    manifest::corrupt(
        dir,
        "an earlier call panicked while holding this dataset; reopen the store",
    )
}

impl LabelStore {
    /// Opens (creating if needed) the data dir and replays every dataset's write-ahead log
    /// into shards, so rows acknowledged before a crash are not lost. A dataset that cannot
    /// be recovered (e.g. the disk is full) does not stop the others: it stays down, its
    /// calls answer [`StoreError::Unavailable`], and recovery is retried on later calls.
    pub fn open(
        data_dir: &Path,
        teacher: TeacherFingerprint,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        validate_config(&teacher, &options)?;
        std::fs::create_dir_all(data_dir).map_err(|e| manifest::io_err(data_dir, e))?;
        let lock = lock_dir(data_dir)?;
        let counters = Arc::new(commit::Counters::default());
        let mut datasets = BTreeMap::new();
        for e in std::fs::read_dir(data_dir).map_err(|e| manifest::io_err(data_dir, e))? {
            let e = e.map_err(|e| manifest::io_err(data_dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if !path.is_dir() || validate_dataset_name(&name).is_err() {
                continue;
            }
            if !path.join(MANIFEST_FILE).is_file() {
                // A folder whose creation never finished (or not ours): not a dataset.
                continue;
            }
            let handle = match dataset::Dataset::recover(&path, &name, &options, counters.clone()) {
                Ok(ds) => DatasetHandle::new(ds, path),
                Err(e) => {
                    tracing::error!(dataset = %name, error = %e, "recovering the dataset failed; it stays down (other datasets are served) and recovery is retried on its next call");
                    let digest = read_manifest(&path.join(MANIFEST_FILE))
                        .map_or(DigestAlgorithm::CURRENT, |m| m.input_digest);
                    Arc::new(DatasetHandle {
                        digest,
                        dir: path,
                        state: Mutex::new(DatasetState::Down {
                            fault: Fault::of(&e),
                            since: Instant::now(),
                        }),
                    })
                }
            };
            datasets.insert(name, handle);
        }
        Ok(Self {
            dir: data_dir.to_path_buf(),
            teacher,
            options,
            datasets: RwLock::new(datasets),
            counters,
            new_digest: DigestAlgorithm::CURRENT,
            _lock: lock,
        })
    }

    /// Counters of the store's write-ahead logs and encoders since it was opened.
    pub fn stats(&self) -> StoreStats {
        self.counters.stats()
    }

    /// Calls `hook` around every write-ahead log fsync from now on (a failpoint for tests
    /// and diagnostics: it may sleep to simulate a slow disk).
    #[cfg(feature = "fault-injection")]
    pub fn observe_syncs(&self, hook: SyncHook) {
        self.counters.observe(hook);
    }

    /// Asks `hook` before every write the store makes from now on, failing the write with
    /// its error (`None` removes it): how tests put a full disk or a failing fsync at an
    /// exact point of the write path.
    #[cfg(feature = "fault-injection")]
    pub fn inject_faults(&self, hook: Option<FaultHook>) {
        self.counters.inject(hook);
    }

    /// The digest algorithm of datasets created from now on ([`DigestAlgorithm::CURRENT`]
    /// unless changed; existing datasets keep theirs). SHA-256 suits stores whose clients
    /// may craft inputs on purpose (see [`digest`]).
    pub fn set_new_dataset_digest(&mut self, algorithm: DigestAlgorithm) {
        self.new_digest = algorithm;
    }

    /// The teacher fingerprint new rows are written with.
    pub fn teacher(&self) -> &TeacherFingerprint {
        &self.teacher
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self, dataset: &str) -> Result<Arc<DatasetHandle>, StoreError> {
        validate_dataset_name(dataset)?;
        let map = self.datasets.read().map_err(|_| poisoned(&self.dir))?;
        map.get(dataset)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(dataset.to_string()))
    }

    /// The dataset of a handle, ready for writes: a dataset that failed is taken down (its
    /// encoder stopped) and, once [`RECOVERY_RETRY`] has passed, recovered from disk in
    /// place — the same replay of the log as at open.
    fn writable<'a>(
        &self,
        name: &str,
        handle: &'a DatasetHandle,
    ) -> Result<MutexGuard<'a, DatasetState>, StoreError> {
        let mut state = handle.state.lock().map_err(|_| poisoned(&handle.dir))?;
        if let DatasetState::Ready(ds) = &*state {
            if let Some(fault) = ds.fault() {
                // Dropping the dataset stops its encoder; the log keeps every logged row.
                *state = DatasetState::Down {
                    fault,
                    since: Instant::now(),
                };
            }
        }
        if let DatasetState::Down { fault, since } = &*state {
            if since.elapsed() < RECOVERY_RETRY {
                return Err(StoreError::Unavailable {
                    dataset: name.to_string(),
                    fault: fault.clone(),
                });
            }
            match dataset::Dataset::recover(&handle.dir, name, &self.options, self.counters.clone())
            {
                Ok(ds) => {
                    tracing::info!(dataset = %name, "recovered the dataset in place");
                    *state = DatasetState::Ready(Box::new(ds));
                }
                Err(e) => {
                    tracing::warn!(dataset = %name, error = %e, "the dataset is still down");
                    let fault = Fault::of(&e);
                    *state = DatasetState::Down {
                        fault: fault.clone(),
                        since: Instant::now(),
                    };
                    return Err(StoreError::Unavailable {
                        dataset: name.to_string(),
                        fault,
                    });
                }
            }
        }
        Ok(state)
    }

    /// Durably appends one request's rows: when this returns `Ok`, the rows survive a
    /// `kill -9`. Ids already stored with the same inputs are skipped; with different
    /// inputs the whole call fails with [`StoreError::IdConflict`] and nothing is stored.
    pub fn append(&self, dataset: &str, rows: LabelRows) -> Result<AppendOutcome, StoreError> {
        self.append_timed(dataset, rows).map(|(outcome, _)| outcome)
    }

    /// [`LabelStore::append`], also saying where its time went.
    ///
    /// Concurrent appends to one dataset share fsyncs (group commit): each writes its log
    /// records under the dataset's lock, then waits outside it until an fsync that began
    /// after its records were written has finished; none returns before that. Parquet
    /// encoding happens on the dataset's background encoder.
    pub fn append_timed(
        &self,
        dataset: &str,
        rows: LabelRows,
    ) -> Result<(AppendOutcome, AppendTimings), StoreError> {
        validate_dataset_name(dataset)?;
        let existing = match self.get(dataset) {
            Ok(handle) => Some(handle),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let algorithm = existing.as_ref().map_or(self.new_digest, |s| s.digest);
        // Validation and encoding of the request happen before any lock is taken.
        let t0 = Instant::now();
        let prepared = rows::prepare(&self.teacher, rows, algorithm)?;
        let mut timings = AppendTimings {
            digest: prepared.digest_time,
            columns: t0.elapsed().saturating_sub(prepared.digest_time),
            ..AppendTimings::default()
        };
        let handle = match existing {
            Some(handle) => handle,
            None => {
                let mut map = self.datasets.write().map_err(|_| poisoned(&self.dir))?;
                match map.get(dataset) {
                    Some(handle) => handle.clone(),
                    None => {
                        let ds = dataset::Dataset::create(
                            &self.dir,
                            dataset,
                            &self.teacher,
                            prepared.columns.clone(),
                            self.new_digest,
                            &self.options,
                            self.counters.clone(),
                        )?;
                        let handle = DatasetHandle::new(ds, self.dir.join(dataset));
                        map.insert(dataset.to_string(), handle.clone());
                        handle
                    }
                }
            }
        };
        let t0 = Instant::now();
        let logged = {
            let mut state = self.writable(dataset, &handle)?;
            timings.lock_wait = t0.elapsed();
            let DatasetState::Ready(ds) = &mut *state else {
                return Err(poisoned(&handle.dir));
            };
            ds.append(&self.teacher, prepared, &self.options)?
        };
        timings.wal_write = logged.wal_write;
        timings.backlog_wait = logged.backlog_wait;
        let t0 = Instant::now();
        let waited = logged.commit.wait(logged.ticket)?;
        timings.fsync_wait = t0.elapsed();
        timings.fsync_rounds = waited.rounds;
        Ok((logged.outcome, timings))
    }

    /// Closes the open shard of a dataset so every row stored so far is in a finished
    /// Parquet file; a no-op (still `Ok`) when nothing is open. A dataset that is down is
    /// recovered first (recovery itself writes every logged row into finished shards).
    pub fn seal(&self, dataset: &str) -> Result<Manifest, StoreError> {
        let handle = self.get(dataset)?;
        let mut state = self.writable(dataset, &handle)?;
        let DatasetState::Ready(ds) = &mut *state else {
            return Err(poisoned(&handle.dir));
        };
        ds.seal()
    }

    /// The manifest of one dataset (for a dataset that is down: as its file on disk says).
    pub fn manifest(&self, dataset: &str) -> Result<Manifest, StoreError> {
        let handle = self.get(dataset)?;
        let state = handle.state.lock().map_err(|_| poisoned(&handle.dir))?;
        match &*state {
            DatasetState::Ready(ds) => match ds.manifest() {
                Err(StoreError::Unavailable { .. }) => {
                    read_manifest(&handle.dir.join(MANIFEST_FILE))
                }
                r => r,
            },
            DatasetState::Down { .. } => read_manifest(&handle.dir.join(MANIFEST_FILE)),
        }
    }

    /// All datasets in the data dir.
    pub fn list(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        let map = self.datasets.read().map_err(|_| poisoned(&self.dir))?;
        let mut out = Vec::with_capacity(map.len());
        for (name, handle) in map.iter() {
            let state = handle.state.lock().map_err(|_| poisoned(&handle.dir))?;
            let (rows, shards) = match &*state {
                DatasetState::Ready(ds) => ds.summary(),
                DatasetState::Down { .. } => read_manifest(&handle.dir.join(MANIFEST_FILE))
                    .map_or((0, 0), |m| (m.rows, m.shards.len())),
            };
            out.push(DatasetSummary {
                name: name.clone(),
                rows,
                shards,
            });
        }
        Ok(out)
    }

    /// The datasets that cannot take writes now, with why (what a readiness check reports).
    pub fn faults(&self) -> Vec<(String, Fault)> {
        let Ok(map) = self.datasets.read() else {
            return Vec::new();
        };
        map.iter()
            .filter_map(|(name, handle)| {
                let state = handle.state.lock().ok()?;
                match &*state {
                    DatasetState::Ready(ds) => ds.fault(),
                    DatasetState::Down { fault, .. } => Some(fault.clone()),
                }
                .map(|f| (name.clone(), f))
            })
            .collect()
    }

    /// Seals every dataset (graceful shutdown); a dataset that is down gets one more
    /// recovery attempt, and if that fails its rows stay in its log for the next start.
    pub fn close(&self) -> Result<(), StoreError> {
        let all: Vec<(String, Arc<DatasetHandle>)> = {
            let map = self.datasets.read().map_err(|_| poisoned(&self.dir))?;
            map.iter().map(|(n, d)| (n.clone(), d.clone())).collect()
        };
        let mut first_err = None;
        for (name, handle) in all {
            if let Ok(mut state) = handle.state.lock() {
                if let DatasetState::Down { since, .. } = &mut *state {
                    // Try now rather than after the retry delay: this is the last chance.
                    if let Some(t) = Instant::now().checked_sub(RECOVERY_RETRY) {
                        *since = t;
                    }
                }
            }
            let r = self.seal(&name).map(|_| ());
            if let Err(e) = r {
                tracing::error!(dataset = %name, error = %e, "sealing failed at close; the logged rows stay in the write-ahead log and are recovered at the next start");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::FeatureDType;

    #[test]
    fn feature_dtype_parses_its_own_names() {
        for d in [FeatureDType::F32, FeatureDType::F16] {
            assert_eq!(d.name().parse::<FeatureDType>(), Ok(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.name());
        }
        let e = "bf16".parse::<FeatureDType>().unwrap_err();
        assert!(e.to_string().contains("expected f32 or f16"), "{e}");
    }
}
