//! A blocking HTTP client for teacher-server's API with retries: 408/429/5xx and transport
//! errors are resent with backoff (honouring `Retry-After`), other 4xx fail at once with the
//! server's own error message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use distill_proto::api::{ErrorBody, ModelInfo, ScoreResponse, ARROW_STREAM_MEDIA_TYPE};
use reqwest::blocking::{Client, RequestBuilder};

use crate::retry::{classify, retry_after_at, RetryPolicy, Verdict};

/// Errors talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a status that retrying will not change.
    #[error("{what}: server answered {status}{}: {message}{}",
        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
        field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Rejected {
        /// Which request was refused (as the caller described it).
        what: String,
        /// HTTP status.
        status: u16,
        /// The server's error code, when it sent a JSON error body.
        code: Option<String>,
        /// The server's message (or the raw body).
        message: String,
        /// The request field at fault, if the server named one.
        field: Option<String>,
    },
    /// Every attempt failed with a transient error.
    #[error("{what}: giving up after {attempts} attempts; last error: {last}")]
    GaveUp {
        /// Which request was given up (as the caller described it).
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        last: String,
    },
    /// A 2xx answer whose body is not what the API promises.
    #[error("{what}: unexpected answer from server: {message}")]
    BadResponse {
        /// Which request got the answer (as the caller described it).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built or the URL is invalid.
    #[error("invalid client setup: {0}")]
    Setup(String),
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Server base URL, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// Bearer token sent as `Authorization: Bearer ...`.
    pub api_token: Option<String>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// A client for one server; cheap to share between threads (`&ScoreClient` is `Sync`).
pub struct ScoreClient {
    http: Client,
    base: String,
    token: Option<String>,
    retry: RetryPolicy,
    retries: AtomicU64,
}

impl ScoreClient {
    /// Builds the client; fails on a URL that is not `http://...` (this build has no TLS:
    /// an `https://` URL is refused here rather than failing obscurely on the first request).
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let base = config.server.trim_end_matches('/').to_string();
        if base
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        {
            return Err(ClientError::Setup(format!(
                "server URL {:?}: distill-label has no TLS support; use http:// on a trusted \
                 network, or put a TLS-terminating proxy (or an SSH tunnel) in front and point \
                 distill-label at its http:// side",
                config.server
            )));
        }
        if !base.starts_with("http://") {
            return Err(ClientError::Setup(format!(
                "server URL {:?} must start with http://",
                config.server
            )));
        }
        let http = Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token: config.api_token.clone(),
            retry: config.retry,
            retries: AtomicU64::new(0),
        })
    }

    /// Retries made so far by every call of this client.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// `POST /v1/score?dataset=NAME&return=A,B` with an Arrow IPC stream body.
    pub fn score_arrow(
        &self,
        dataset: Option<&str>,
        returning: Option<&str>,
        body: &Bytes,
        what: &str,
    ) -> Result<ScoreResponse, ClientError> {
        let url = format!("{}/v1/score", self.base);
        let bytes = self.send(what, || {
            let mut req = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, ARROW_STREAM_MEDIA_TYPE)
                .body(body.clone());
            if let Some(d) = dataset {
                req = req.query(&[("dataset", d)]);
            }
            if let Some(r) = returning {
                req = req.query(&[("return", r)]);
            }
            req
        })?;
        parse_json(what, &bytes)
    }

    /// `POST /v1/score` with a JSON `ScoreRequest` body (already serialised).
    pub fn score_json(&self, body: &Bytes, what: &str) -> Result<ScoreResponse, ClientError> {
        let url = format!("{}/v1/score", self.base);
        let bytes = self.send(what, || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })?;
        parse_json(what, &bytes)
    }

    /// `POST /v1/datasets/{name}/seal`; returns the server's answer (the manifest) as JSON.
    pub fn seal(&self, dataset: &str) -> Result<serde_json::Value, ClientError> {
        let what = format!("sealing dataset {dataset:?}");
        let url = format!("{}/v1/datasets/{}/seal", self.base, dataset);
        let bytes = self.send(&what, || self.http.post(&url))?;
        parse_json(&what, &bytes)
    }

    /// `GET /v1/model`.
    pub fn model(&self) -> Result<ModelInfo, ClientError> {
        let what = "reading the model signature (GET /v1/model)";
        let url = format!("{}/v1/model", self.base);
        let bytes = self.send(what, || self.http.get(&url))?;
        parse_json(what, &bytes)
    }

    /// Sends a request built by `make` until it succeeds, fails for good, or the retries
    /// are spent; returns the body of the 2xx answer.
    fn send(&self, what: &str, make: impl Fn() -> RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = make();
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let (retry_after, last) = match req.send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after_at(v, std::time::SystemTime::now()));
                    let body = resp.bytes().map(|b| b.to_vec());
                    match (classify(status, retry_after), body) {
                        (Verdict::Done, Ok(b)) => return Ok(b),
                        (Verdict::Done, Err(e)) => {
                            (None, format!("reading the {status} answer failed: {e}"))
                        }
                        (Verdict::Fail, body) => {
                            return Err(rejected(what, status, &body.unwrap_or_default()))
                        }
                        (Verdict::Retry { retry_after }, body) => (
                            retry_after,
                            rejected(what, status, &body.unwrap_or_default()).to_string(),
                        ),
                    }
                }
                Err(e) => (None, format!("{e}{}", source_chain(&e))),
            };
            if attempt > self.retry.retries {
                return Err(ClientError::GaveUp {
                    what: what.to_string(),
                    attempts: attempt,
                    last,
                });
            }
            let wait = self.retry.delay(attempt, retry_after);
            tracing::debug!(%what, attempt, ?wait, %last, "retrying");
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
    }
}

/// The causes of a transport error (reqwest's own message omits them).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// A non-2xx answer as an error, using the server's `ErrorBody` when the body is one.
fn rejected(what: &str, status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Rejected {
            what: what.to_string(),
            status,
            code: Some(e.error.code),
            message: e.error.message,
            field: e.error.field,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                "(empty body)".to_string()
            } else {
                text.chars().take(500).collect()
            };
            ClientError::Rejected {
                what: what.to_string(),
                status,
                code: None,
                message,
                field: None,
            }
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadResponse {
        what: what.to_string(),
        message: format!(
            "{e}; body starts with {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> Result<ScoreClient, ClientError> {
        ScoreClient::new(&ClientConfig {
            server: server.into(),
            api_token: None,
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        })
    }

    #[test]
    fn https_is_refused_with_the_way_out() {
        for url in ["https://teacher:8443", "HTTPS://teacher"] {
            let e = client(url).err().expect("https must be refused");
            let text = e.to_string();
            assert!(
                text.contains("no TLS support") && text.contains("proxy"),
                "{text}"
            );
        }
        assert!(client("ftp://x").is_err());
        assert!(client("http://127.0.0.1:1").is_ok());
    }
}
