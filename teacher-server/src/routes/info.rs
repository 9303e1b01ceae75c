//! `GET /health`, `/v1/model`, `/metrics`, `/openapi.json`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use distill_proto::api::ModelInfo;

use crate::openapi;
use crate::state::SharedState;

/// Liveness: the server is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The model, its outputs and the provider in use.
pub async fn model(State(state): State<SharedState>) -> Json<ModelInfo> {
    Json(state.model_info.clone())
}

/// Prometheus text.
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    state
        .metrics
        .queue_rows
        .set(state.batcher.queued_rows() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The OpenAPI document.
pub async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
}
