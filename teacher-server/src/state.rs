//! What every handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use distill_proto::api::ModelInfo;
use distill_proto::store::LabelStore;

use crate::batcher::Batcher;
use crate::decode::DecodeOptions;
use crate::metrics::Metrics;
use crate::outputs::OutputPlan;
use crate::teacher::Signature;
use crate::text::TextFront;
use crate::validate::Limits;

/// Shared server state.
pub struct AppState {
    /// The model's signature.
    pub signature: Signature,
    /// Served outputs.
    pub plan: OutputPlan,
    /// Queue and inference thread.
    pub batcher: Batcher,
    /// The label store.
    pub store: Arc<LabelStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `GET /v1/model`.
    pub model_info: ModelInfo,
    /// Request limits.
    pub limits: Limits,
    /// Decoding options.
    pub decode: DecodeOptions,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Longest a body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Bearer token, when required.
    pub api_token: Option<String>,
    /// Name of the served model (its file name without extension), echoed by `/v1/embeddings`.
    pub model_name: String,
    /// The tokenizer of a text teacher.
    pub text: Option<Arc<TextFront>>,
    /// The sequence limit of a dense teacher's token inputs (a text teacher's is its front's).
    pub seq: Option<crate::seq_limit::SeqLimit>,
    /// Datasets computed on another execution provider than this server's, with theirs:
    /// writes to them are refused (empty with `--allow-mixed-providers`).
    pub foreign_provider: HashMap<String, String>,
}

/// Handle given to axum.
pub type SharedState = Arc<AppState>;
