//! Every error an HTTP request can meet, and the one place they become status codes and
//! [`ErrorBody`] JSON.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use distill_proto::api::{ErrorBody, ErrorDetail};
use distill_proto::arrow_codec::{ColumnError, ColumnProblem};
use distill_proto::store::{FaultKind, StoreError};

use crate::seq_limit::SeqLimitError;
use crate::teacher::TeacherError;
use crate::text::{TextRowError, TokenInputError};

/// A request input that is not what the model or the API expects (always 4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// Stable code, e.g. `invalid_shape`, `invalid_dtype`.
    pub code: &'static str,
    /// The request field at fault, e.g. `inputs.pixels`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl InvalidInput {
    /// Builds an input error.
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A request column that does not decode into its tensor: the field is the column as the
/// decoder named it (e.g. `inputs.pixels`), the code says which rule it broke.
impl From<ColumnError> for InvalidInput {
    fn from(e: ColumnError) -> Self {
        let code = match e.problem {
            ColumnProblem::Ragged { .. } | ColumnProblem::RowWidth { .. } => "ragged_array",
            ColumnProblem::Rank { .. } | ColumnProblem::Axes { .. } | ColumnProblem::Scalar => {
                "invalid_rank"
            }
            ColumnProblem::ElementType { .. }
            | ColumnProblem::NotStrings { .. }
            | ColumnProblem::Unstorable { .. } => "invalid_dtype",
            ColumnProblem::Width { .. }
            | ColumnProblem::FlatMismatch { .. }
            | ColumnProblem::FlatAmbiguous { .. }
            | ColumnProblem::EmptyAxis { .. }
            | ColumnProblem::TooLarge { .. }
            | ColumnProblem::Tensor(_) => "invalid_shape",
            ColumnProblem::Missing { .. }
            | ColumnProblem::Null { .. }
            | ColumnProblem::ValueCount { .. }
            | ColumnProblem::Arrow(_) => "invalid_arrow",
        };
        InvalidInput::new(code, e.column, e.problem.to_string())
    }
}

/// A text the tokenizer cannot take: empty (400) or too long without truncation (413);
/// names the row.
impl From<TextRowError> for ApiError {
    fn from(e: TextRowError) -> Self {
        let code = match e {
            TextRowError::Empty { .. } => "empty_text",
            TextRowError::TooLong { .. } => {
                return ApiError::SequenceTooLong {
                    field: "inputs.text".into(),
                    message: e.to_string(),
                }
            }
            TextRowError::Failed { .. } => "invalid_text",
        };
        ApiError::invalid(code, "inputs.text", e.to_string())
    }
}

/// Token ids sent to a text teacher that it cannot take: names the input and row (a row over
/// the limit is 413, the rest 400).
impl From<TokenInputError> for ApiError {
    fn from(e: TokenInputError) -> Self {
        let (code, field) = match &e {
            TokenInputError::Missing(name) => ("missing_input", name.clone()),
            TokenInputError::Shape { input, .. } => ("invalid_shape", input.clone()),
            TokenInputError::Mask { input, .. } => ("invalid_mask", input.clone()),
            TokenInputError::OutOfVocab { input, .. } => ("token_out_of_vocab", input.clone()),
            TokenInputError::TooLong { input, .. } => {
                return ApiError::SequenceTooLong {
                    field: format!("inputs.{input}"),
                    message: e.to_string(),
                }
            }
        };
        ApiError::invalid(code, format!("inputs.{field}"), e.to_string())
    }
}

/// Token inputs longer than the model's sequence limit (413): names the input and row.
impl From<SeqLimitError> for ApiError {
    fn from(e: SeqLimitError) -> Self {
        ApiError::SequenceTooLong {
            field: format!("inputs.{}", e.input()),
            message: e.to_string(),
        }
    }
}

/// Errors answered to HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON / Arrow, or a field has the wrong form.
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    /// A request over `--max-request-rows`.
    #[error("{rows} rows in one request, at most {limit} allowed")]
    TooManyRows {
        /// Rows sent.
        rows: usize,
        /// The limit.
        limit: usize,
    },
    /// A request over `--max-request-elements`.
    #[error("{elements} input elements in one request, at most {limit} allowed (--max-request-elements)")]
    TooManyElements {
        /// Elements sent (a text request: rows x longest row).
        elements: usize,
        /// The limit.
        limit: usize,
    },
    /// A dynamic axis over its `--max-dim` cap.
    #[error("{field}: {message}")]
    DimTooLarge {
        /// The input at fault.
        field: String,
        /// Which axis, its size and the cap.
        message: String,
    },
    /// A row of token inputs over the sequence limit (`--max-seq-len`, the model's position
    /// limit) that the request did not allow to be truncated.
    #[error("{field}: {message}")]
    SequenceTooLong {
        /// The input at fault.
        field: String,
        /// Which row, its length, the limit and where it came from.
        message: String,
    },
    /// The body did not arrive within `--body-timeout-secs`.
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout {
        /// The timeout.
        secs: u64,
    },
    /// A body over `--max-body-bytes`.
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A content type the endpoint does not take.
    #[error("unsupported content type {0:?}: expected application/json or application/vnd.apache.arrow.stream")]
    UnsupportedMediaType(String),
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such route.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// The inference queue is full.
    #[error("the inference queue is full ({queued} rows waiting); retry later")]
    QueueFull {
        /// Rows waiting.
        queued: usize,
    },
    /// The inference queue holds too many input elements.
    #[error("the inference queue is full ({queued} input elements waiting); retry later")]
    QueueFullElements {
        /// Elements waiting.
        queued: usize,
    },
    /// The dataset was computed on another execution provider than this server's.
    #[error("dataset {dataset:?} was computed on {dataset_provider} and this server runs on {provider}: rows of two execution providers are not mixed in one dataset (use another dataset, or start the server with --allow-mixed-providers)")]
    ProviderMismatch {
        /// The dataset.
        dataset: String,
        /// The provider its rows were computed on.
        dataset_provider: String,
        /// This server's provider.
        provider: String,
    },
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The label store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The teacher failed to run.
    #[error(transparent)]
    Teacher(#[from] TeacherError),
    /// A blocking task (decoding, a store call) panicked or was cancelled.
    #[error("internal error: {what} task failed: {source}")]
    Task {
        /// Which task: `decode`, `store`.
        what: &'static str,
        /// Why it did not finish.
        source: tokio::task::JoinError,
    },
    /// The inference thread went away before answering.
    #[error("internal error: the inference thread stopped")]
    InferenceStopped,
    /// A text-only route or input on a server started without `--tokenizer`.
    #[error("this needs a text teacher: start teacher-server with --tokenizer tokenizer.json")]
    NoTokenizer,
}

impl ApiError {
    /// Shorthand for an input error.
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Invalid(InvalidInput::new(code, field, message))
    }

    /// The status code, stable error code and field of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, Option<String>) {
        match self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, e.code, Some(e.field.clone())),
            ApiError::TooManyRows { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_rows",
                Some("inputs".into()),
            ),
            ApiError::TooManyElements { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_elements",
                Some("inputs".into()),
            ),
            ApiError::DimTooLarge { field, .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "dim_too_large",
                Some(field.clone()),
            ),
            ApiError::SequenceTooLong { field, .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "sequence_too_long",
                Some(field.clone()),
            ),
            ApiError::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "body_timeout", None),
            ApiError::BodyTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Some("content-type".into()),
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::QueueFull { .. } | ApiError::QueueFullElements { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "queue_full", None)
            }
            ApiError::ProviderMismatch { .. } => (
                StatusCode::CONFLICT,
                "provider_mismatch",
                Some("dataset".into()),
            ),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down", None),
            ApiError::Store(e) => store_parts(e),
            ApiError::Teacher(e) => match e {
                TeacherError::BadInput(_) => (
                    StatusCode::BAD_REQUEST,
                    "inference_rejected",
                    Some("inputs".into()),
                ),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "inference_failed", None),
            },
            ApiError::Task { .. } | ApiError::InferenceStopped => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
            ApiError::NoTokenizer => (StatusCode::BAD_REQUEST, "no_tokenizer", None),
        }
    }

    /// The JSON body of this error. A failing store's message leaves out the file it names:
    /// clients learn what failed, the server log (which has the full error) learns where.
    pub fn body(&self) -> ErrorBody {
        let (_, code, field) = self.parts();
        let message = match self {
            ApiError::Store(e @ StoreError::Io { source, .. }) => match e.fault_kind() {
                Some(k @ (FaultKind::NoSpace | FaultKind::ReadOnly)) => format!(
                    "the label store cannot write: {} ({source}); nothing of this request was stored, retry once the disk has room (the server log names the file)",
                    k.describe()
                ),
                _ => format!("the label store failed: {source} (the server log names the file)"),
            },
            ApiError::Store(StoreError::Corrupt { .. }) => {
                "the label store found a corrupt file (the server log names it)".to_string()
            }
            ApiError::Store(StoreError::Unavailable { dataset, fault }) => format!(
                "dataset {dataset:?} cannot take writes now: {}; acknowledged rows are safe in its write-ahead log and it recovers by itself once the cause is gone (the server log has the details); retry later",
                fault.kind.describe()
            ),
            _ => self.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                field,
            },
        }
    }
}

/// Status, code and field of a label store error.
fn store_parts(e: &StoreError) -> (StatusCode, &'static str, Option<String>) {
    match e {
        StoreError::InvalidName { .. } => (
            StatusCode::BAD_REQUEST,
            "invalid_dataset",
            Some("dataset".into()),
        ),
        StoreError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "dataset_not_found",
            Some("dataset".into()),
        ),
        StoreError::IdConflict { .. } => (StatusCode::CONFLICT, "id_conflict", Some("ids".into())),
        StoreError::SchemaMismatch { .. } => (
            StatusCode::CONFLICT,
            "schema_mismatch",
            Some("columns".into()),
        ),
        StoreError::TeacherMismatch { .. } => (
            StatusCode::CONFLICT,
            "teacher_mismatch",
            Some("dataset".into()),
        ),
        StoreError::InvalidRows(_) | StoreError::Column(_) => {
            (StatusCode::BAD_REQUEST, "invalid_rows", None)
        }
        StoreError::Unavailable { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Io { .. }
        | StoreError::Arrow(_)
        | StoreError::Parquet(_) => match e.fault_kind() {
            Some(FaultKind::NoSpace) => (StatusCode::INSUFFICIENT_STORAGE, "storage_full", None),
            Some(FaultKind::ReadOnly) => {
                (StatusCode::INSUFFICIENT_STORAGE, "storage_read_only", None)
            }
            _ if matches!(e, StoreError::Unavailable { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "dataset_unavailable", None)
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store_failed", None),
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = (status, Json(self.body())).into_response();
        match &self {
            ApiError::QueueFull { .. }
            | ApiError::QueueFullElements { .. }
            | ApiError::ShuttingDown
            | ApiError::Store(StoreError::Unavailable { .. }) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: ApiError) -> StatusCode {
        e.parts().0
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(
            status(ApiError::invalid("invalid_shape", "inputs.x", "bad")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(ApiError::TooManyRows { rows: 2, limit: 1 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(ApiError::BodyTooLarge { limit: 1 }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(status(ApiError::Unauthorized), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(ApiError::QueueFull { queued: 1 }),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status(ApiError::ShuttingDown),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(ApiError::UnsupportedMediaType("x".into())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let s = |e: StoreError| status(ApiError::Store(e));
        assert_eq!(
            s(StoreError::InvalidName { name: "..".into() }),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(s(StoreError::NotFound("d".into())), StatusCode::NOT_FOUND);
        assert_eq!(
            s(StoreError::IdConflict {
                dataset: "d".into(),
                id: "a".into()
            }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            s(StoreError::SchemaMismatch {
                dataset: "d".into(),
                message: "m".into()
            }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            s(StoreError::TeacherMismatch {
                dataset: "d".into(),
                message: "m".into()
            }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            s(StoreError::InvalidRows("x".into())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            s(StoreError::Io {
                path: "p".into(),
                source: std::io::Error::other("x")
            }),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(ApiError::Teacher(TeacherError::Run("x".into()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn body_names_field_and_code() {
        let body = ApiError::invalid("invalid_dtype", "inputs.ids", "expected i64").body();
        assert_eq!(body.error.code, "invalid_dtype");
        assert_eq!(body.error.field.as_deref(), Some("inputs.ids"));
        assert!(body.error.message.contains("expected i64"));
    }

    #[test]
    fn internal_errors_keep_their_source() {
        use std::error::Error;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let join = rt.block_on(async {
            let h = tokio::task::spawn(std::future::pending::<()>());
            h.abort();
            h.await.unwrap_err()
        });
        let e = ApiError::Task {
            what: "store",
            source: join,
        };
        assert_eq!(e.parts().0, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            e.to_string()
                .starts_with("internal error: store task failed"),
            "{e}"
        );
        assert!(e
            .source()
            .is_some_and(|s| s.to_string().contains("cancelled")));
        assert_eq!(
            status(ApiError::InferenceStopped),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn store_failures_do_not_show_server_paths() {
        let e = ApiError::Store(StoreError::Io {
            path: "/srv/secret/data/d/shard-00001.parquet".into(),
            source: std::io::Error::other("No space left on device"),
        });
        let body = e.body();
        assert!(!body.error.message.contains("/srv/secret"), "{body:?}");
        assert!(body.error.message.contains("No space left"), "{body:?}");
        let e = ApiError::Store(StoreError::Corrupt {
            path: "/srv/secret/x".into(),
            message: "bad frame in /srv/secret/x".into(),
        });
        assert!(!e.body().error.message.contains("/srv/secret"));
        // The log line still has it.
        assert!(e.to_string().contains("/srv/secret"), "{e}");
    }

    #[test]
    fn limits_and_timeouts_have_their_statuses() {
        assert_eq!(
            status(ApiError::TooManyElements {
                elements: 2,
                limit: 1
            }),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(ApiError::BodyTimeout { secs: 1 }),
            StatusCode::REQUEST_TIMEOUT
        );
        let resp = ApiError::QueueFullElements { queued: 9 }.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn queue_full_sets_retry_after() {
        let resp = ApiError::QueueFull { queued: 5 }.into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
