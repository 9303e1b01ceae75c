//! `GET /v1/datasets`, `GET /v1/datasets/{name}`, `POST /v1/datasets/{name}/seal`.

use axum::extract::{Path, State};
use axum::Json;
use distill_proto::api::{DatasetSummary, ErrorBody};
use distill_proto::store::{validate_dataset_name, Manifest};

use crate::error::ApiError;
use crate::state::SharedState;

/// Runs a blocking store call off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, distill_proto::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| ApiError::Task {
            what: "store",
            source,
        })?
        .map_err(ApiError::from)
}

/// Every dataset in the data dir.
#[utoipa::path(
    get,
    path = "/v1/datasets",
    tag = "datasets",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Datasets in the label store", body = Vec<DatasetSummary>),
        (status = "4XX", description = "Refused (e.g. a missing token)", body = ErrorBody),
        (status = "5XX", description = "The store failed", body = ErrorBody)
    )
)]
pub async fn list(State(state): State<SharedState>) -> Result<Json<Vec<DatasetSummary>>, ApiError> {
    let store = state.store.clone();
    Ok(Json(blocking(move || store.list()).await?))
}

/// One dataset's manifest.
#[utoipa::path(
    get,
    path = "/v1/datasets/{name}",
    tag = "datasets",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "Dataset name")),
    responses(
        (status = 200, description = "The dataset's manifest", body = Manifest),
        (status = "4XX", description = "Invalid name, no such dataset, or refused", body = ErrorBody),
        (status = "5XX", description = "The store failed", body = ErrorBody)
    )
)]
pub async fn manifest(
    State(state): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Json<Manifest>, ApiError> {
    validate_dataset_name(&name)?;
    let store = state.store.clone();
    Ok(Json(blocking(move || store.manifest(&name)).await?))
}

/// Finishes the open shard so every stored row is in Parquet; returns the manifest.
#[utoipa::path(
    post,
    path = "/v1/datasets/{name}/seal",
    tag = "datasets",
    security((), ("bearer" = [])),
    params(("name" = String, Path, description = "Dataset name")),
    responses(
        (status = 200, description = "The open shard is finished; the dataset's manifest", body = Manifest),
        (status = "4XX", description = "Invalid name, no such dataset, or refused", body = ErrorBody),
        (status = "5XX", description = "The store failed", body = ErrorBody)
    )
)]
pub async fn seal(
    State(state): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Json<Manifest>, ApiError> {
    validate_dataset_name(&name)?;
    let store = state.store.clone();
    Ok(Json(blocking(move || store.seal(&name)).await?))
}
