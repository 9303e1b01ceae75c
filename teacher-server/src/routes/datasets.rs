//! `GET /v1/datasets`, `GET /v1/datasets/{name}`, `POST /v1/datasets/{name}/seal`.

use axum::extract::{Path, State};
use axum::Json;
use distill_proto::api::DatasetSummary;
use distill_proto::store::{validate_dataset_name, Manifest};

use crate::error::ApiError;
use crate::state::SharedState;

/// Runs a blocking store call off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, distill_proto::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Every dataset in the data dir.
pub async fn list(State(state): State<SharedState>) -> Result<Json<Vec<DatasetSummary>>, ApiError> {
    let store = state.store.clone();
    Ok(Json(blocking(move || store.list()).await?))
}

/// One dataset's manifest.
pub async fn manifest(
    State(state): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Json<Manifest>, ApiError> {
    validate_dataset_name(&name)?;
    let store = state.store.clone();
    Ok(Json(blocking(move || store.manifest(&name)).await?))
}

/// Finishes the open shard so every stored row is in Parquet; returns the manifest.
pub async fn seal(
    State(state): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Json<Manifest>, ApiError> {
    validate_dataset_name(&name)?;
    let store = state.store.clone();
    Ok(Json(blocking(move || store.seal(&name)).await?))
}
