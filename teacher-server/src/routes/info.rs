//! `GET /health`, `/v1/model`, `/metrics`, `/openapi.json`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
use distill_proto::api::{DatasetDown, ErrorBody, Health, ModelInfo};

use crate::state::SharedState;

/// The OpenAPI document, rendered once when the router is built.
#[derive(Clone)]
pub struct OpenApiJson(pub Bytes);

/// Readiness: the inference thread is running; says which execution provider it runs on and
/// which datasets cannot take writes now (the server stays ready: scoring and the other
/// datasets work, and those datasets recover by themselves).
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses(
        (status = 200, description = "Ready: the inference thread runs (no token needed)", body = Health),
        (status = 503, description = "Not ready: the inference thread has stopped", body = Health)
    )
)]
pub async fn health(State(state): State<SharedState>) -> (StatusCode, Json<Health>) {
    let alive = state.batcher.is_alive();
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if alive { "ok" } else { "unavailable" }.to_string(),
            provider: Some(state.model_info.provider.clone()),
            inference: Some(if alive { "running" } else { "stopped" }.to_string()),
            datasets_down: state
                .store
                .faults()
                .into_iter()
                .map(|(name, f)| DatasetDown {
                    name,
                    reason: f.kind.describe().to_string(),
                })
                .collect(),
        }),
    )
}

/// The model, its outputs and the provider in use.
#[utoipa::path(
    get,
    path = "/v1/model",
    tag = "ops",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The model's inputs, served outputs, execution provider and limits", body = ModelInfo),
        (status = "4XX", description = "Refused (e.g. a missing token)", body = ErrorBody)
    )
)]
pub async fn model(State(state): State<SharedState>) -> Json<ModelInfo> {
    Json(state.model_info.clone())
}

/// Prometheus text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus metrics", content_type = "text/plain", body = String),
        (status = "4XX", description = "Refused (e.g. a missing token)", body = ErrorBody)
    )
)]
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let m = &state.metrics;
    m.queue_rows.set(state.batcher.queued_rows() as i64);
    let stats = state.store.stats();
    m.parquet_encode_seconds
        .set(stats.parquet_encode.as_secs_f64());
    m.encode_backlog_bytes
        .set(stats.encode_backlog_bytes as i64);
    m.datasets_down.set(state.store.faults().len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = serde_json::Value),
        (status = "4XX", description = "Refused (e.g. a missing token)", body = ErrorBody)
    )
)]
pub async fn openapi(Extension(doc): Extension<OpenApiJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0)
}
