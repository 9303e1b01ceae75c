//! JSON types of the teacher-server HTTP API (the contract: extend it, don't break it).
//!
//! These types are the one definition of the API: the server's OpenAPI document is derived
//! from them (feature `openapi`), its streaming JSON decoder matches the field names of
//! [`ScoreRequest`] through the `FIELD_*` constants, and the label client builds its bodies
//! with the same constants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DType;

/// Media type of the Arrow IPC stream body accepted by `POST /v1/score`.
pub const ARROW_STREAM_MEDIA_TYPE: &str = "application/vnd.apache.arrow.stream";

/// `POST /v1/score` with a JSON body.
///
/// The server does not deserialize this type (its decoder reads the nested arrays straight
/// into typed buffers), so its field names are also given as constants
/// ([`ScoreRequest::FIELD_INPUTS`], ...), which a test holds equal to what serde writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(example = json!({
        "dataset": "mnist-train",
        "ids": ["train-0", "train-1"],
        "inputs": {"x": [[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]},
        "columns": {"label": [7, 2]}
    }))
)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// Dataset to store the rows in; without it nothing is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// One id per row; required when `dataset` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// One nested array `[batch, ...]` per model input, by input name.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Vec<serde_json::Value>>))]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Per-row pass-through values (numbers, strings or booleans, one type per column) stored
    /// beside the teacher's outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Vec<serde_json::Value>>,
    /// Outputs to echo back; default: none when a dataset is given, all otherwise.
    #[serde(default, rename = "return", skip_serializing_if = "Option::is_none")]
    pub return_outputs: Option<Vec<String>>,
}

impl ScoreRequest {
    /// JSON name of [`ScoreRequest::dataset`].
    pub const FIELD_DATASET: &'static str = "dataset";
    /// JSON name of [`ScoreRequest::ids`].
    pub const FIELD_IDS: &'static str = "ids";
    /// JSON name of [`ScoreRequest::inputs`].
    pub const FIELD_INPUTS: &'static str = "inputs";
    /// JSON name of [`ScoreRequest::columns`].
    pub const FIELD_COLUMNS: &'static str = "columns";
    /// JSON name of [`ScoreRequest::return_outputs`].
    pub const FIELD_RETURN: &'static str = "return";
    /// Every JSON field name, in declaration order.
    pub const FIELDS: [&'static str; 5] = [
        Self::FIELD_DATASET,
        Self::FIELD_IDS,
        Self::FIELD_INPUTS,
        Self::FIELD_COLUMNS,
        Self::FIELD_RETURN,
    ];
}

/// Query parameters of `POST /v1/score` with an Arrow IPC body (a JSON body carries these
/// in [`ScoreRequest`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ScoreQuery {
    /// Dataset to store the rows in (Arrow bodies only); without it nothing is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Comma-separated outputs to echo back (Arrow bodies only).
    #[serde(default, rename = "return", skip_serializing_if = "Option::is_none")]
    pub return_outputs: Option<String>,
    /// Cut token rows over the sequence limit to it instead of refusing them with 413 (JSON
    /// and Arrow bodies alike; see `/v1/model` `sequence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
}

/// Answer to `POST /v1/score`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Vec<serde_json::Value>>))]
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Details of an error answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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

impl Pooling {
    /// The name used in flags, the manifest and the API.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::None => "none",
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A pooling name that is none of `mean`, `cls`, `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pooling {0:?}: expected mean, cls or none")]
pub struct UnknownPooling(pub String);

impl std::str::FromStr for Pooling {
    type Err = UnknownPooling;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "none" => Ok(Pooling::None),
            other => Err(UnknownPooling(other.to_string())),
        }
    }
}

/// Where a stored output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OutputSource {
    /// One of the graph's own outputs.
    Output,
    /// An inner tensor exposed with `--tap`.
    Tap,
}

/// A teacher output as served and stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Scaled to unit L2 norm (after pooling) before storing and returning.
    #[serde(default, skip_serializing_if = "is_false")]
    pub normalize: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The text input of a text teacher (one served with a tokenizer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextInputInfo {
    /// Name of the text input (`inputs.text` in JSON, a Utf8 column in Arrow IPC).
    pub input: String,
    /// sha256 of the `tokenizer.json`, hex.
    pub tokenizer_sha256: String,
    /// Most tokens per row, special tokens included.
    pub max_seq_len: usize,
    /// Where `max_seq_len` came from: `--max-seq-len`, a `sentence_bert_config.json`, the
    /// tokenizer file's truncation, the model's position limit, or the default.
    #[serde(default)]
    pub max_seq_len_source: String,
    /// Whether longer texts are truncated (else refused).
    pub truncate: bool,
    /// Model inputs the server feeds from the text: ids, mask and (if any) type ids.
    pub token_inputs: Vec<String>,
    /// Most padded tokens per inference run.
    pub max_batch_tokens: usize,
    /// How merged rows are cut into runs (`tokens` or `rows`).
    pub batching: String,
}

/// `GET /v1/model`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The text input, when the server has a tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInputInfo>,
    /// Where ONNX Runtime placed the graph's nodes (measured at start-up).
    #[serde(default)]
    pub placement: Placement,
    /// The limit on token inputs, when the model has them and a limit is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceInfo>,
    /// The pooling of each pooled output and where it was set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pooling: Vec<PoolingInfo>,
}

/// The sequence limit of a model's token inputs (`[batch, sequence]`): a longer row is
/// refused with 413 `sequence_too_long`, or cut to it when the request sends `truncate=true`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SequenceInfo {
    /// Most tokens per row.
    pub max_seq_len: usize,
    /// Where it came from (`--max-seq-len`, a file, the model graph).
    pub source: String,
    /// The model's position limit, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_limit: Option<usize>,
    /// Where the position limit was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_limit_source: Option<String>,
    /// The token inputs the limit applies to.
    pub inputs: Vec<String>,
}

/// How one stored output is pooled, and where that was set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolingInfo {
    /// The stored output.
    pub output: String,
    /// The pooling.
    pub pooling: Pooling,
    /// `--pool`, or the sentence-transformers `1_Pooling/config.json` it was read from.
    pub source: String,
}

/// Which execution provider ONNX Runtime ran each node of the graph on, read from the
/// session's profile of one warm-up run at start-up (nodes are those of the optimised graph:
/// a fused node appears once, under its fused name).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placement {
    /// Whether the placement was measured; when not, `error` says why and the lists are empty.
    pub measured: bool,
    /// Why the placement could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Nodes per execution provider, by ONNX Runtime's name (`CPUExecutionProvider`, ...).
    pub providers: BTreeMap<String, usize>,
    /// Every node run, in the order of the profile.
    pub nodes: Vec<NodePlacement>,
}

/// One node of the optimised graph and the execution provider that ran it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodePlacement {
    /// Node name.
    pub node: String,
    /// Operator (e.g. `Gemm`, `FusedGemm`).
    pub op: String,
    /// Execution provider, by ONNX Runtime's name.
    pub provider: String,
}

/// `GET /health`: readiness (200 `ok`, or 503 `unavailable` once the server cannot score).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` while requests can be scored, `unavailable` otherwise.
    pub status: String,
    /// The execution provider the session runs on (`cpu`, `cuda`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The inference thread: `running`, or `stopped` once it has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<String>,
    /// Datasets that cannot take writes now (e.g. the disk is full); they recover by
    /// themselves once the cause is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets_down: Vec<DatasetDown>,
}

/// A dataset that cannot take writes now, in [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetDown {
    /// Dataset name.
    pub name: String,
    /// Why: `the disk is full`, `the data dir is read-only`, `a write failed`.
    pub reason: String,
}

/// One entry of `GET /v1/datasets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetSummary {
    /// Dataset name.
    pub name: String,
    /// Rows stored (sealed shards, open shard and write-ahead log together).
    pub rows: u64,
    /// Finished shards.
    pub shards: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_constants_are_the_serde_names() {
        let full = ScoreRequest {
            dataset: Some("d".into()),
            ids: Some(vec!["a".into()]),
            inputs: BTreeMap::from([("x".into(), serde_json::json!([[1.0]]))]),
            columns: BTreeMap::from([("label".into(), vec![serde_json::json!(1)])]),
            return_outputs: Some(vec!["logits".into()]),
        };
        let value = serde_json::to_value(&full).unwrap();
        let mut written: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut declared = ScoreRequest::FIELDS.to_vec();
        written.sort_unstable();
        declared.sort_unstable();
        assert_eq!(written, declared);
        // And serde reads back exactly those names (deny_unknown_fields refuses others).
        let back: ScoreRequest = serde_json::from_value(value).unwrap();
        assert_eq!(back, full);
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"inputs": {}, "bogus": 1}"#).is_err());
    }

    #[test]
    fn query_names_match_the_request_fields() {
        let q = ScoreQuery {
            dataset: Some("d".into()),
            return_outputs: Some("a,b".into()),
            truncate: None,
        };
        let value = serde_json::to_value(&q).unwrap();
        let obj = value.as_object().unwrap();
        assert!(obj.contains_key(ScoreRequest::FIELD_DATASET));
        assert!(obj.contains_key(ScoreRequest::FIELD_RETURN));
        assert_eq!(obj.len(), 2);
    }

    #[test]
    fn pooling_parses_its_own_names() {
        for p in [Pooling::None, Pooling::Mean, Pooling::Cls] {
            assert_eq!(p.name().parse::<Pooling>(), Ok(p));
            // The serde name is the same word.
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        let e = "max".parse::<Pooling>().unwrap_err();
        assert!(e.to_string().contains("unknown pooling"), "{e}");
    }
}
