//! Operating the server: bearer token, overload (429 + Retry-After), `/metrics`,
//! `/openapi.json`, `/health`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use distill_tests::{foreign_model, ids, test_model, Rng, Server};
use serde_json::json;

#[test]
fn bearer_token_guards_every_route_but_health() {
    let token = "s3cret-token";
    let s = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--api-token", token],
    );
    let c = s.client();
    let status =
        |rb: reqwest::blocking::RequestBuilder| rb.send().expect("request").status().as_u16();
    assert_eq!(status(c.get(s.url("/health"))), 200, "/health stays open");
    let body = json!({"inputs": {"x": Rng::new(40).matrix(1, 16)}});
    let routes: Vec<(&str, &str)> = vec![
        ("GET", "/v1/model"),
        ("GET", "/v1/datasets"),
        ("GET", "/v1/datasets/x"),
        ("POST", "/v1/datasets/x/seal"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/score"),
    ];
    for (method, path) in &routes {
        let rb = |c: &reqwest::blocking::Client| match *method {
            "GET" => c.get(s.url(path)),
            _ => c.post(s.url(path)).json(&body),
        };
        let r = rb(c).send().expect("request");
        assert_eq!(r.status().as_u16(), 401, "{method} {path} without a token");
        let e: distill_proto::api::ErrorBody = r.json().expect("401 body is a JSON error");
        assert!(!e.error.message.is_empty());
        assert_eq!(
            rb(c)
                .bearer_auth("wrong")
                .send()
                .expect("request")
                .status()
                .as_u16(),
            401,
            "{method} {path} with a wrong token"
        );
    }
    // With the token everything works (the guard's helpers attach it).
    s.get("/v1/model").expect_status(200);
    s.score(&body).expect_status(200);
}

#[test]
fn overload_answers_429_with_retry_after() {
    // A real 17 M-parameter encoder at sequence length 256 keeps each run busy for a while;
    // a queue of 8 rows then overflows under 24 concurrent 8-row requests.
    let model = foreign_model("minilm");
    let s = Arc::new(Server::start(
        &model,
        &[
            "--ep",
            "cpu",
            "--output",
            "embedding=461",
            "--queue-capacity",
            "8",
            "--max-batch-rows",
            "8",
            "--max-wait-ms",
            "0",
        ],
    ));
    let seq = 256;
    let ids_row: Vec<i64> = (0..seq).map(|j| 1000 + j as i64).collect();
    let body = Arc::new(json!({"inputs": {
        "input_ids": vec![ids_row.clone(); 8],
        "attention_mask": vec![vec![1i64; seq]; 8],
    }}));
    let ok = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..24)
        .map(|_| {
            let (s, body, ok, rejected) = (s.clone(), body.clone(), ok.clone(), rejected.clone());
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let r = s.score(&body);
                    match r.status {
                        200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => {
                            let retry = r
                                .headers
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<u64>().ok());
                            assert!(retry.is_some(), "429 without a numeric Retry-After: {r:?}");
                            let e = r.error();
                            assert!(!e.error.code.is_empty(), "{r:?}");
                            rejected.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => panic!("unexpected answer under load: {r:?}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread panicked");
    }
    let (ok, rejected) = (ok.load(Ordering::Relaxed), rejected.load(Ordering::Relaxed));
    assert!(rejected > 0, "no 429 under overload ({ok} answered 200)");
    assert!(
        ok > 0,
        "nothing was served under overload ({rejected} got 429)"
    );
    // Once the burst is over, the server serves again and counted the rejections.
    s.score(&body).expect_status(200);
    let metrics = s.get("/metrics").expect_status(200).text();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("distill_queue_rejections_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(
        counted,
        Some(rejected as f64),
        "rejections in /metrics:\n{metrics}"
    );
}

#[test]
fn metrics_expose_counters_and_the_provider() {
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let x = Rng::new(41).matrix(6, 16);
    s.score(&json!({"dataset": "met", "ids": ids("m", 0..6), "inputs": {"x": x}}))
        .expect_status(200);
    s.score(&json!({"dataset": "met", "ids": ids("m", 0..6), "inputs": {"x": x}}))
        .expect_status(200);
    let r = s.get("/metrics").expect_status(200);
    let ctype = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        ctype.starts_with("text/plain") || ctype.contains("openmetrics"),
        "content-type {ctype}"
    );
    let text = r.text();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    };
    for name in [
        "distill_http_requests_total",
        "distill_http_request_duration_seconds",
        "distill_rows_scored_total",
        "distill_rows_stored_total",
        "distill_rows_duplicate_total",
        "distill_batch_rows",
        "distill_inference_duration_seconds",
        "distill_queue_rows",
        "distill_provider_info",
    ] {
        assert!(text.contains(name), "metric {name} missing:\n{text}");
    }
    assert!(
        text.contains("provider=\"cpu\""),
        "provider label missing:\n{text}"
    );
    assert_eq!(value("distill_rows_scored_total"), 12.0, "\n{text}");
    assert_eq!(value("distill_rows_stored_total"), 6.0, "\n{text}");
    assert_eq!(value("distill_rows_duplicate_total"), 6.0, "\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("distill_http_requests_total{")
                && l.contains("/v1/score")
                && l.contains("200")),
        "no per-route request count:\n{text}"
    );
}

#[test]
fn openapi_lists_every_route() {
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let doc = s.get("/openapi.json").expect_status(200).json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3: {:.300}",
        doc.to_string()
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in [
        ("post", "/v1/score"),
        ("get", "/v1/model"),
        ("get", "/v1/datasets"),
        ("get", "/v1/datasets/{name}"),
        ("post", "/v1/datasets/{name}/seal"),
        ("get", "/health"),
        ("get", "/metrics"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "/openapi.json lacks {method} {path}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    // The score route documents both body types.
    let content = &doc["paths"]["/v1/score"]["post"]["requestBody"]["content"];
    assert!(
        content.get("application/json").is_some(),
        "score lacks a JSON body: {content}"
    );
    assert!(
        content
            .get(distill_proto::api::ARROW_STREAM_MEDIA_TYPE)
            .is_some(),
        "score lacks the Arrow body: {content}"
    );
}

#[test]
fn unknown_routes_and_methods_get_json_errors() {
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let r = s.get("/v1/nope");
    assert_eq!(r.status, 404, "{r:?}");
    r.error();
    let r = s.get("/v1/score");
    assert_eq!(r.status, 405, "{r:?}");
    r.error();
    let r = s.get("/v1/datasets/never-written");
    assert_eq!(r.status, 404, "{r:?}");
    r.error();
}

#[test]
fn ep_auto_falls_back_to_cpu_and_reports_it() {
    // The Docker image runs `--ep auto`; with the CPU build of ONNX Runtime (or no GPU) the
    // server must still come up, on the CPU provider, and say so.
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "auto"]);
    let info = s.get("/v1/model").expect_status(200).json();
    assert_eq!(info["provider"], "cpu", "{info}");
    let metrics = s.get("/metrics").expect_status(200).text();
    assert!(metrics.contains("provider=\"cpu\""), "{metrics}");
    s.score(&json!({"inputs": {"x": Rng::new(42).matrix(2, 16)}}))
        .expect_status(200);
}

#[test]
fn ep_cuda_without_cuda_refuses_to_start_with_a_clear_message() {
    // The test machines load the CPU build of ONNX Runtime: CUDA can never be registered, so
    // `--ep cuda` (CUDA or nothing) must exit with an error that names CUDA, not serve on CPU.
    match Server::try_start(&test_model("mlp.onnx"), &["--ep", "cuda"]) {
        Ok(s) => panic!(
            "--ep cuda started without CUDA: {}",
            s.get("/v1/model").text()
        ),
        Err(e) => {
            // Only the server's own words count, not the echo of its command line.
            let text = format!("{e:#}");
            let said: String = text
                .lines()
                .filter(|l| !l.starts_with("=== start"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                said.contains("CUDA") && said.contains("error"),
                "the failure must be an error naming CUDA:\n{text}"
            );
        }
    }
}
