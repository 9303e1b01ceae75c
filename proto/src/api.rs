//! JSON types of the teacher-server HTTP API (the contract: extend it, don't break it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DType;

/// Media type of the Arrow IPC stream body accepted by `POST /v1/score`.
pub const ARROW_STREAM_MEDIA_TYPE: &str = "application/vnd.apache.arrow.stream";

/// `POST /v1/score` with a JSON body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Dataset to store the rows in; without it nothing is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// One id per row; required when `dataset` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// One nested array `[batch, ...]` per model input, by input name.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Per-row pass-through values stored beside the teacher's outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Vec<serde_json::Value>>,
    /// Outputs to echo back; default: none when a dataset is given, all otherwise.
    #[serde(default, rename = "return", skip_serializing_if = "Option::is_none")]
    pub return_outputs: Option<Vec<String>>,
}

/// Answer to `POST /v1/score`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScoreResponse {
    /// Rows scored.
    pub rows: usize,
    /// The dataset written to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Rows newly stored (rows whose id the dataset already held are not stored again).
    pub stored: usize,
    /// Rows skipped because the dataset already held their id with the same inputs.
    #[serde(default)]
    pub duplicates: usize,
    /// Echoed outputs by stored name, each a nested array `[batch, ...]`.
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Details of an error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_shape`, `queue_full`.
    pub code: String,
    /// Human-readable message naming what was wrong and what was expected.
    pub message: String,
    /// The request field at fault, e.g. `inputs.pixels`, `ids`, `dataset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One axis of a tensor signature: a fixed size or a named dynamic axis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A dynamic axis, by its symbolic name (`batch`, `sequence`, or `?`).
    Dynamic(String),
}

/// A shape as text, e.g. `[batch, 784]`: fixed sizes as numbers, dynamic axes by name.
pub fn dims_text(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Dynamic(s) => s.clone(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Name, element type and shape of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, axis 0 being the batch axis.
    pub shape: Vec<Dim>,
}

/// How a 3-D output `[batch, seq, dim]` becomes one vector per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Stored as it is.
    #[default]
    None,
    /// Mean over the sequence axis, weighted by the attention-mask input.
    Mean,
    /// The first position of the sequence axis.
    Cls,
}

/// Where a stored output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputSource {
    /// One of the graph's own outputs.
    Output,
    /// An inner tensor exposed with `--tap`.
    Tap,
}

/// A teacher output as served and stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Stored name (the role, e.g. `logits`, `embedding`).
    pub name: String,
    /// Tensor name in the ONNX graph.
    pub tensor: String,
    /// Graph output or tapped inner tensor.
    pub source: OutputSource,
    /// Element type as the model produces it.
    pub dtype: DType,
    /// Shape as the model produces it (before pooling).
    pub shape: Vec<Dim>,
    /// Pooling applied before storing and returning.
    pub pooling: Pooling,
}

/// `GET /v1/model`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Path of the model file as given.
    pub model_path: String,
    /// sha256 of the model file as given (before taps are added), hex.
    pub model_sha256: String,
    /// The model's inputs.
    pub inputs: Vec<TensorSpec>,
    /// The outputs served and stored, in order.
    pub outputs: Vec<OutputSpec>,
    /// Execution provider the session actually runs on (`cuda` or `cpu`).
    pub provider: String,
    /// ONNX Runtime version loaded.
    pub ort_version: String,
    /// Largest number of rows merged into one run.
    pub max_batch_rows: usize,
    /// Largest number of rows accepted in one request.
    pub max_request_rows: usize,
}

/// One entry of `GET /v1/datasets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetSummary {
    /// Dataset name.
    pub name: String,
    /// Rows stored (sealed shards, open shard and write-ahead log together).
    pub rows: u64,
    /// Finished shards.
    pub shards: usize,
}
