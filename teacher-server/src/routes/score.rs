//! `POST /v1/score`: decode (JSON or Arrow IPC) → validate → batcher → store → answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use distill_proto::api::{
    ErrorBody, ScoreQuery, ScoreRequest, ScoreResponse, ARROW_STREAM_MEDIA_TYPE,
};
use distill_proto::store::LabelRows;
use distill_proto::NamedTensors;
use serde::Serialize;

use crate::batcher::JobInputs;
use crate::decode::arrow_ipc;
use crate::decode::{json, DecodedRequest};
use crate::encode::NestedTensor;
use crate::error::ApiError;
use crate::metrics::Stage;
use crate::openapi::ArrowStream;
use crate::state::{AppState, SharedState};
use crate::validate::{validate, validate_text, ScoreJob};

/// The body format of a score request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Arrow,
}

fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let ct = ct.to_str().unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        // curl -d sends form-urlencoded by default; the body is still JSON.
        "application/json" | "application/x-www-form-urlencoded" | "text/plain" | "" => {
            Ok(Format::Json)
        }
        e if e.ends_with("+json") => Ok(Format::Json),
        e if e == ARROW_STREAM_MEDIA_TYPE => Ok(Format::Arrow),
        _ => Err(ApiError::UnsupportedMediaType(ct.to_string())),
    }
}

/// Most bytes of an oversized body read and discarded before answering 413.
const OVERSIZE_DRAIN_BYTES: usize = 16 << 20;

/// [`read_body`] under the server's configured body limit and timeout, as every route reads it.
pub(crate) async fn read_request_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    read_body(headers, body, state.max_body_bytes, state.body_timeout).await
}

/// Reads the body within `timeout` (408 after it: a slow-loris body cannot hold a
/// connection and its buffer for ever), refusing (413) anything over the limit before
/// buffering it all.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(timeout, read_body_unbounded(headers, body, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            secs: timeout.as_secs(),
        })?
}

async fn read_body_unbounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // Read and discard (up to a bound) what the client is still sending, so it gets the
        // 413 instead of a connection reset from closing on unread data.
        let _ = to_bytes(body, OVERSIZE_DRAIN_BYTES).await;
        return Err(ApiError::BodyTooLarge { limit });
    }
    to_bytes(body, limit).await.map_err(|e| {
        // http-body-util's LengthLimitError says "length limit exceeded"; look down the chain.
        let mut too_large = false;
        let mut cur: Option<&dyn std::error::Error> = Some(&e);
        while let Some(err) = cur {
            too_large |= err.to_string().contains("length limit exceeded");
            cur = err.source();
        }
        if too_large {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::invalid(
                "invalid_body",
                "body",
                format!("reading the body failed: {e}"),
            )
        }
    })
}

/// The answer, serialized like [`ScoreResponse`] straight from the tensors (a test holds the
/// two equal).
#[derive(Serialize)]
struct ScoreReply<'a> {
    rows: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,
    stored: usize,
    duplicates: usize,
    outputs: BTreeMap<&'a str, NestedTensor<'a>>,
}

/// Scores a batch, stores it when a dataset is named, and echoes the requested outputs.
#[utoipa::path(
    post,
    path = "/v1/score",
    tag = "score",
    security((), ("bearer" = [])),
    params(ScoreQuery),
    request_body(
        description = "A JSON `ScoreRequest`, or an Arrow IPC stream with `?dataset=&return=` in the query",
        content(
            (ScoreRequest = "application/json"),
            (ArrowStream = ARROW_STREAM_MEDIA_TYPE)
        )
    ),
    responses(
        (status = 200, description = "Scored; stored when a dataset is given", body = ScoreResponse),
        (status = "4XX", description = "Bad request (invalid body, shape, dtype, ids...), too large, conflicting with the stored dataset, or queue full (429 with Retry-After)", body = ErrorBody),
        (status = "5XX", description = "Inference or the store failed, or the server is shutting down (503)", body = ErrorBody)
    )
)]
pub async fn score(State(state): State<SharedState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let format = format_of(&parts.headers)?;
    let query = match format {
        Format::Arrow => Some(parse_query(&parts.uri)?),
        Format::Json => None,
    };
    let truncate = match &query {
        Some(q) => q.truncate,
        None => parse_truncate(&parts.uri)?,
    }
    .unwrap_or(false);
    let bytes = read_request_body(&state, &parts.headers, body).await?;
    // Parsing a large body is CPU work: keep it off the async executor.
    let st = state.clone();
    let job = tokio::task::spawn_blocking(move || -> Result<ScoreJob, ApiError> {
        let t0 = Instant::now();
        let decoded: DecodedRequest = match query {
            Some(q) => arrow_ipc::decode(bytes, &st.signature, q, st.decode),
            None => json::decode(&bytes, &st.signature, st.decode),
        }?;
        st.metrics.stage(Stage::Decode, t0.elapsed());
        let t0 = Instant::now();
        let job = match &st.text {
            // Tokenizing is CPU work too: it stays off the executor with the decoding.
            Some(front) => validate_text(
                decoded,
                front,
                &st.signature,
                &st.plan,
                &st.limits,
                truncate,
            ),
            None => validate(decoded, &st.signature, &st.plan, &st.limits).and_then(|mut job| {
                if let Some(seq) = &st.seq {
                    seq.apply(&mut job.inputs, truncate)?;
                }
                Ok(job)
            }),
        };
        st.metrics.stage(Stage::Validate, t0.elapsed());
        job
    })
    .await
    .map_err(|source| ApiError::Task {
        what: "decode",
        source,
    })??;

    // Refused before the teacher runs: nothing would be stored.
    if let Some(dataset_provider) = job
        .dataset
        .as_ref()
        .and_then(|d| state.foreign_provider.get(d))
    {
        return Err(ApiError::ProviderMismatch {
            dataset: job.dataset.clone().unwrap_or_default(),
            dataset_provider: dataset_provider.clone(),
            provider: state.model_info.provider.clone(),
        });
    }
    let inputs = match job.tokens {
        Some(t) => JobInputs::Tokens(Arc::new(t)),
        None => JobInputs::Dense(Arc::new(job.inputs)),
    };
    let rx = state.batcher.submit(inputs.clone(), job.rows)?;
    let outputs = rx.await.map_err(|_| ApiError::InferenceStopped)??;

    let (mut stored, mut duplicates) = (0, 0);
    let returned: NamedTensors = outputs
        .iter()
        .filter(|(n, _)| job.return_outputs.contains(n))
        .cloned()
        .collect();
    if let (Some(dataset), Some(ids)) = (&job.dataset, job.ids) {
        // The inference thread has dropped its share by now; fall back to a copy otherwise.
        let (inputs, tokens) = match inputs {
            JobInputs::Dense(d) => (Arc::try_unwrap(d).unwrap_or_else(|a| (*a).clone()), None),
            JobInputs::Tokens(t) => (
                NamedTensors::new(),
                Some(Arc::try_unwrap(t).unwrap_or_else(|a| (*a).clone())),
            ),
        };
        let rows = LabelRows {
            ids,
            inputs,
            outputs,
            columns: job.columns,
            tokens,
        };
        let store = state.store.clone();
        let name = dataset.clone();
        let (outcome, timings) =
            tokio::task::spawn_blocking(move || store.append_timed(&name, rows))
                .await
                .map_err(|source| ApiError::Task {
                    what: "store",
                    source,
                })??;
        state.metrics.append_timings(&timings);
        stored = outcome.stored;
        duplicates = outcome.duplicates;
        state.metrics.rows_stored.inc_by(stored as u64);
        state.metrics.rows_duplicate.inc_by(duplicates as u64);
    }
    let t0 = Instant::now();
    let reply = ScoreReply {
        rows: job.rows,
        dataset: job.dataset,
        stored,
        duplicates,
        outputs: returned
            .iter()
            .map(|(n, t)| (n.as_str(), NestedTensor(t)))
            .collect(),
    };
    let response = Json(reply).into_response();
    state.metrics.stage(Stage::Answer, t0.elapsed());
    Ok(response)
}

/// `?truncate=true|false` of a JSON request (its other fields are in the body).
fn parse_truncate(uri: &Uri) -> Result<Option<bool>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Truncate {
        truncate: Option<bool>,
    }
    axum::extract::Query::<Truncate>::try_from_uri(uri)
        .map(|q| q.0.truncate)
        .map_err(|e| {
            ApiError::invalid(
                "invalid_query",
                "query",
                format!("{e} (expected ?truncate=true or false)"),
            )
        })
}

fn parse_query(uri: &Uri) -> Result<ScoreQuery, ApiError> {
    axum::extract::Query::<ScoreQuery>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| {
            ApiError::invalid(
                "invalid_query",
                "query",
                format!("{e} (expected ?dataset=NAME&return=a,b)"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(format_of(&h).unwrap(), Format::Json);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(format_of(&h).unwrap(), Format::Json);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apache.arrow.stream"),
        );
        assert_eq!(format_of(&h).unwrap(), Format::Arrow);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        assert!(matches!(
            format_of(&h),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn reply_is_a_score_response() {
        let t = distill_proto::Tensor::new(
            vec![2, 2],
            distill_proto::TensorData::F32(vec![1.0, 2.5, -3.0, 0.0]),
        )
        .unwrap();
        for dataset in [None, Some("d".to_string())] {
            let reply = ScoreReply {
                rows: 2,
                dataset: dataset.clone(),
                stored: 1,
                duplicates: 1,
                outputs: BTreeMap::from([("logits", NestedTensor(&t))]),
            };
            let text = serde_json::to_string(&reply).unwrap();
            let parsed: ScoreResponse = serde_json::from_str(&text).unwrap();
            let want = ScoreResponse {
                rows: 2,
                dataset,
                stored: 1,
                duplicates: 1,
                outputs: BTreeMap::from([(
                    "logits".to_string(),
                    serde_json::json!([[1.0, 2.5], [-3.0, 0.0]]),
                )]),
            };
            assert_eq!(parsed, want);
            // Field for field: serialising the API type gives the same text.
            assert_eq!(text, serde_json::to_string(&want).unwrap());
        }
    }

    #[test]
    fn arrow_query() {
        let q = parse_query(&"/v1/score?dataset=d&return=a,b".parse().unwrap()).unwrap();
        assert_eq!(q.dataset.as_deref(), Some("d"));
        assert_eq!(q.return_outputs.as_deref(), Some("a,b"));
        assert!(parse_query(&"/v1/score?bogus=1".parse().unwrap()).is_err());
    }
}
