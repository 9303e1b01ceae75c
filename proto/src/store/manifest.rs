//! `_manifest.json` and the per-shard key-value metadata: atomic writes, reading, and the
//! comparison of teacher fingerprints.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ColumnInfo, DigestAlgorithm, Manifest, StoreError, TeacherFingerprint};
use crate::atomic::write_atomic;

/// File name of a dataset's manifest.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// Parquet key-value metadata key holding a [`ShardMetadata`] as JSON.
pub const SHARD_METADATA_KEY: &str = "distill.manifest";

/// What every shard carries about itself, so a single file is self-describing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMetadata {
    /// [`super::SCHEMA_VERSION`] the shard was written with.
    pub schema_version: u32,
    /// Dataset the shard belongs to.
    pub dataset: String,
    /// How the rows were produced.
    pub teacher: TeacherFingerprint,
    /// Stored columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// How the `_input_digest` column is computed (absent in shards written before it existed,
    /// which used SHA-256).
    #[serde(default = "DigestAlgorithm::legacy")]
    pub input_digest: DigestAlgorithm,
}

/// The [`ShardMetadata`] JSON a shard of the dataset described by `m` (in `dir`) carries;
/// `provider` is the execution provider that computed the shard's rows (a dataset's shards
/// may differ there when the server ran with mixed providers allowed).
pub(crate) fn shard_metadata(
    m: &Manifest,
    dir: &Path,
    provider: &str,
) -> Result<String, StoreError> {
    let mut teacher = m.teacher.clone();
    teacher.provider = provider.to_string();
    serde_json::to_string(&ShardMetadata {
        schema_version: super::SCHEMA_VERSION,
        dataset: m.dataset.clone(),
        teacher,
        columns: m.columns.clone(),
        input_digest: m.input_digest,
    })
    .map_err(|e| corrupt(dir, e.to_string()))
}

/// An I/O error naming `path`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A corruption error naming `path`.
pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// fsyncs a directory so renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    Ok(crate::atomic::sync_dir(dir)?)
}

/// Writes a dataset's `_manifest.json` atomically.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), StoreError> {
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(m).map_err(|e| corrupt(&path, e.to_string()))?;
    Ok(write_atomic(&path, &json)?)
}

/// Reads and parses a `_manifest.json`.
pub fn read_manifest(path: &Path) -> Result<Manifest, StoreError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(path, format!("not a valid manifest: {e}")))?;
    if m.schema_version != super::SCHEMA_VERSION {
        return Err(corrupt(
            path,
            format!(
                "schema version {} is not supported (this build reads {})",
                m.schema_version,
                super::SCHEMA_VERSION
            ),
        ));
    }
    Ok(m)
}

/// What differs between two fingerprints in the fields that decide the rows (model, inputs,
/// outputs, feature dtype, top-k, store_inputs); ORT version and provider are ignored.
pub fn fingerprint_differences(
    dataset: &TeacherFingerprint,
    current: &TeacherFingerprint,
) -> Vec<String> {
    let mut out = Vec::new();
    if dataset.model_sha256 != current.model_sha256 {
        out.push(format!(
            "model sha256 {} (dataset) vs {} (now)",
            dataset.model_sha256, current.model_sha256
        ));
    }
    if dataset.inputs != current.inputs {
        out.push(format!(
            "inputs {} (dataset) vs {} (now)",
            to_json(&dataset.inputs),
            to_json(&current.inputs)
        ));
    }
    if dataset.outputs != current.outputs {
        out.push(format!(
            "outputs {} (dataset) vs {} (now)",
            to_json(&dataset.outputs),
            to_json(&current.outputs)
        ));
    }
    if dataset.feature_dtype != current.feature_dtype {
        out.push(format!(
            "feature dtype {:?} (dataset) vs {:?} (now)",
            dataset.feature_dtype, current.feature_dtype
        ));
    }
    if dataset.logits_topk != current.logits_topk {
        out.push(format!(
            "logits_topk {} (dataset) vs {} (now)",
            to_json(&dataset.logits_topk),
            to_json(&current.logits_topk)
        ));
    }
    if dataset.tokenizer != current.tokenizer {
        out.push(format!(
            "tokenizer {} (dataset) vs {} (now)",
            to_json(&dataset.tokenizer),
            to_json(&current.tokenizer)
        ));
    }
    if dataset.store_inputs != current.store_inputs {
        out.push(format!(
            "store_inputs {} (dataset) vs {} (now)",
            dataset.store_inputs, current.store_inputs
        ));
    }
    out
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}
