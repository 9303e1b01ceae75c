//! A hand-built OpenAPI 3.1 document listing every route (the request and answer bodies are
//! the serde types of `distill_proto::api`).

use serde_json::{json, Map, Value};

use crate::routes::ROUTES;

/// Summary of each route.
fn summary(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("POST", "/v1/score") => "Score a batch (JSON ScoreRequest or Arrow IPC stream with ?dataset=&return=); stores it when a dataset is given",
        ("GET", "/v1/model") => "The model's inputs, served outputs, execution provider and limits (ModelInfo)",
        ("GET", "/v1/datasets") => "Datasets in the label store (list of DatasetSummary)",
        ("GET", "/v1/datasets/{name}") => "Manifest of one dataset",
        ("POST", "/v1/datasets/{name}/seal") => "Finish the open shard of a dataset; returns its manifest",
        ("GET", "/health") => "Liveness (no token needed)",
        ("GET", "/metrics") => "Prometheus metrics",
        ("GET", "/openapi.json") => "This document",
        _ => "",
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let mut op = json!({
            "summary": summary(method, path),
            "responses": {
                "200": { "description": "success" },
                "4XX": { "description": "bad request; body is ErrorBody {error: {code, message, field}}",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } }
            }
        });
        if path.contains("{name}") {
            op["parameters"] = json!([{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }]);
        }
        if *path == "/v1/score" {
            op["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/ScoreRequest" } },
                    "application/vnd.apache.arrow.stream": { "schema": { "type": "string", "format": "binary" } }
                }
            });
            op["parameters"] = json!([
                { "name": "dataset", "in": "query", "required": false, "schema": { "type": "string" } },
                { "name": "return", "in": "query", "required": false, "schema": { "type": "string" } }
            ]);
        }
        entry[method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "distill teacher-server", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "ErrorBody": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": "string" } } } }
                },
                "ScoreRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "additionalProperties": false,
                    "properties": {
                        "dataset": { "type": "string" },
                        "ids": { "type": "array", "items": { "type": "string" } },
                        "inputs": { "type": "object", "additionalProperties": { "type": "array" } },
                        "columns": { "type": "object", "additionalProperties": { "type": "array" } },
                        "return": { "type": "array", "items": { "type": "string" } }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_route() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method.to_ascii_lowercase()].is_object(),
                "{method} {path} missing"
            );
            assert!(!summary(method, path).is_empty());
        }
    }
}
