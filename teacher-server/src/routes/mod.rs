//! The HTTP routes, the bearer-token check and per-request metrics.

pub mod datasets;
pub mod embeddings;
pub mod info;
pub mod score;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::{method_label, RequestLabels, RouteLabels};
use crate::openapi::{specialise, ApiDoc};
use crate::state::SharedState;

/// Every route with its OpenAPI operation: `routes!` registers the handler at the path of
/// its `#[utoipa::path]` and adds that operation to the document, so the router and
/// `/openapi.json` come from this one list.
fn api() -> OpenApiRouter<SharedState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(score::score))
        .routes(routes!(embeddings::embeddings))
        .routes(routes!(info::model))
        .routes(routes!(datasets::list))
        .routes(routes!(datasets::manifest))
        .routes(routes!(datasets::seal))
        .routes(routes!(info::health))
        .routes(routes!(info::metrics))
        .routes(routes!(info::openapi))
}

/// The OpenAPI document of every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// Builds the router with auth and metrics middleware.
pub fn router(state: SharedState) -> Router {
    let (routes, doc) = api().split_for_parts();
    // Serialising plain data cannot fail; should it, the route says so instead of panicking.
    let doc = Bytes::from(match serde_json::to_value(&doc) {
        Ok(mut doc) => {
            let inputs = state
                .text
                .is_none()
                .then_some(state.signature.inputs.as_slice());
            let outputs: Vec<String> = state.plan.specs.iter().map(|o| o.name.clone()).collect();
            specialise(&mut doc, inputs, &outputs, state.limits.max_request_rows);
            doc.to_string()
        }
        Err(e) => {
            serde_json::json!({ "error": format!("cannot render the document: {e}") }).to_string()
        }
    });
    routes
        .layer(Extension(info::OpenApiJson(doc)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_string())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} {}", uri.path()))
}

/// Refuses requests without the bearer token (when one is set); `/health` stays open.
async fn auth(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.api_token {
        if req.uri().path() != "/health" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_credentials);
            if !given.is_some_and(|g| tokens_match(g.as_bytes(), token.as_bytes())) {
                return ApiError::Unauthorized.into_response();
            }
        }
    }
    next.run(req).await
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110 section 11.1).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then_some(rest.trim())
}

/// Compares the SHA-256 digests of the two tokens without an early exit: the time taken
/// depends on neither the position of the first differing byte nor the token's length.
fn tokens_match(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Counts requests by route and status and times them.
async fn track(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method()).to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    m.request_seconds
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secret", b"secret2"));
        assert!(!tokens_match(b"", b"secret"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_credentials("Bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_credentials("Basic abc"), None);
        assert_eq!(bearer_credentials("Bearerabc"), None);
    }

    #[test]
    fn document_lists_each_route_once_with_a_summary() {
        let doc = openapi_document();
        let mut ops = Vec::new();
        for (path, item) in &doc.paths.paths {
            let json = serde_json::to_value(item).unwrap();
            for (method, op) in json.as_object().unwrap() {
                assert!(
                    op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path} has no summary: {op}"
                );
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        ops.sort();
        assert_eq!(
            ops,
            [
                "GET /health",
                "GET /metrics",
                "GET /openapi.json",
                "GET /v1/datasets",
                "GET /v1/datasets/{name}",
                "GET /v1/model",
                "POST /v1/datasets/{name}/seal",
                "POST /v1/embeddings",
                "POST /v1/score",
            ]
        );
    }

    #[test]
    fn security_requirements_name_the_declared_scheme() {
        let doc = serde_json::to_value(openapi_document()).unwrap();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert!(schemes.contains_key(crate::openapi::BEARER));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for req in op["security"].as_array().into_iter().flatten() {
                    for name in req.as_object().unwrap().keys() {
                        assert!(
                            schemes.contains_key(name),
                            "{method} {path}: unknown scheme {name}"
                        );
                    }
                }
                // Only /health is open whatever the token.
                assert_eq!(
                    op.get("security").is_none(),
                    path == "/health",
                    "{method} {path}"
                );
            }
        }
    }
}
