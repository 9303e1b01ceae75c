//! Bounded work per request, timeouts, connection limits, a shutdown deadline, safe defaults
//! and overload shedding (issue 11), each checked against the real `teacher-server` over
//! loopback. The overload test runs 5 s here; `DISTILL_OVERLOAD_SECS=60` gives the full form
//! (see docs/results/reliability.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distill_tests::{bin_path, ids, ort_lib, run_python, test_model, Rng, Server};
use serde_json::{json, Value};

/// A `[rows, seq]` token request for `tokens.onnx` (ids below its vocabulary of 50).
fn tokens_body(rows: usize, seq: usize) -> Value {
    let ids: Vec<Vec<i64>> = (0..rows)
        .map(|r| (0..seq).map(|j| ((r + j) % 50) as i64).collect())
        .collect();
    let mask: Vec<Vec<i64>> = (0..rows).map(|_| vec![1; seq]).collect();
    json!({"inputs": {"input_ids": ids, "attention_mask": mask}})
}

/// A counter of `/metrics`, 0 when absent.
fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").expect_status(200).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Reads from `s` until EOF or an error; true when the server closed the connection within
/// `within` (a read timeout means it is still open).
fn closed_within(s: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (false, got)
            }
            // A reset is a close too.
            Err(_) => return (true, got),
        }
    }
}

#[test]
fn element_and_axis_caps_are_refused_before_inference() {
    let server = Server::start(
        &test_model("tokens.onnx"),
        &[
            "--ep",
            "cpu",
            "--max-dim",
            "seq=8",
            "--max-request-elements",
            "100",
        ],
    );
    // 6 rows x 8 tokens x 2 inputs = 96 elements: within both caps.
    server.score(&tokens_body(6, 8)).expect_status(200);
    let scored = metric(&server, "distill_rows_scored_total");
    assert_eq!(scored, 6.0);
    let e = server.score(&tokens_body(1, 9)).expect_status(413).error();
    assert_eq!(e.error.code, "dim_too_large");
    assert_eq!(e.error.field.as_deref(), Some("inputs.input_ids"));
    assert!(e.error.message.contains("seq=8"), "{e:?}");
    // 7 x 8 x 2 = 112 elements.
    let e = server.score(&tokens_body(7, 8)).expect_status(413).error();
    assert_eq!(e.error.code, "too_many_elements");
    assert!(e.error.message.contains("112"), "{e:?}");
    assert_eq!(
        metric(&server, "distill_rows_scored_total"),
        scored,
        "a refused request reached the teacher"
    );
    // A --max-dim naming no axis of the model is a start-up error, not a silent no-op.
    let e = Server::try_start(
        &test_model("tokens.onnx"),
        &["--ep", "cpu", "--max-dim", "sequence=8"],
    )
    .err()
    .expect("an unknown --max-dim symbol must be refused");
    assert!(
        e.to_string()
            .contains("no input has a dynamic axis named \"sequence\""),
        "{e:#}"
    );
}

#[test]
fn ids_over_the_limit_are_refused_before_inference() {
    let server = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let x = Rng::new(1).matrix(2, 16);
    let body = json!({
        "dataset": "d",
        "ids": ["ok", "x".repeat(1025)],
        "inputs": {"x": x},
    });
    let e = server.score(&body).expect_status(400).error();
    assert_eq!(e.error.code, "invalid_ids");
    assert_eq!(metric(&server, "distill_rows_scored_total"), 0.0);
}

#[test]
fn header_and_idle_timeouts_close_connections() {
    let server = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--header-timeout-secs", "1"],
    );
    // Headers that never end.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let (closed, _) = closed_within(&mut s, Duration::from_secs(6));
    assert!(closed, "a connection stuck in its headers was kept open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A kept-alive connection that goes quiet after one request.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let (closed, got) = closed_within(&mut s, Duration::from_secs(6));
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{got:?}"
    );
    assert!(closed, "an idle kept-alive connection was kept open");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_slow_body_gets_408() {
    let server = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--body-timeout-secs", "1"],
    );
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(
        b"POST /v1/score HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"inputs\":",
    )
    .unwrap();
    let started = Instant::now();
    let (_, got) = closed_within(&mut s, Duration::from_secs(6));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn connections_over_the_cap_get_503_with_retry_after() {
    let server = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--max-connections", "2"],
    );
    // The helper's client may keep a pooled connection from start-up: three held raw
    // connections fill both slots whatever it holds.
    let hold: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    // Let the server accept them before the next one arrives.
    std::thread::sleep(Duration::from_millis(200));
    let fresh = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = server.send(fresh.get(server.url("/health")));
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(r.text().contains("too_many_connections"), "{r:?}");
    drop(hold);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if server.send(fresh.get(server.url("/health"))).status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&server, "distill_connections_refused_total") >= 1.0);
}

#[test]
fn the_shutdown_deadline_closes_stalled_connections_and_still_seals() {
    let mut server = Server::start(
        &test_model("mlp.onnx"),
        &[
            "--ep",
            "cpu",
            "--shutdown-timeout-secs",
            "1",
            "--body-timeout-secs",
            "600",
        ],
    );
    let x = Rng::new(2).matrix(5, 16);
    server
        .score(&json!({"dataset": "d", "ids": ids("r", 0..5), "inputs": {"x": x}}))
        .expect_status(200);
    // A client stalled in the middle of its body holds a connection.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"POST /v1/score HTTP/1.1\r\nHost: x\r\ncontent-length: 1000\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(20));
    let status =
        status.unwrap_or_else(|| panic!("no exit within 20 s of SIGTERM; log:\n{}", server.log()));
    assert!(status.success(), "{status}; log:\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(server.dataset_dir("d").join("_manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(
        (manifest["rows"].as_u64(), manifest["pending_rows"].as_u64()),
        (Some(5), Some(0)),
        "{manifest}"
    );
    drop(s);
}

#[test]
fn tokens_metrics_and_health_are_hardened() {
    let server = Server::start(
        &test_model("mlp.onnx"),
        &["--ep", "cpu", "--api-token", "s3cret"],
    );
    let get = |auth: Option<&str>| {
        let mut rb = server.client().get(server.url("/v1/model"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        rb.send().unwrap().status().as_u16()
    };
    assert_eq!(get(Some("Bearer s3cret")), 200);
    assert_eq!(
        get(Some("bearer s3cret")),
        200,
        "the scheme is case-insensitive"
    );
    assert_eq!(get(Some("Bearer s3cre")), 401);
    assert_eq!(get(Some("Bearer s3cret-and-more")), 401);
    assert_eq!(get(None), 401);
    // Readiness without a token, naming the provider and the inference thread.
    let h = server.client().get(server.url("/health")).send().unwrap();
    assert_eq!(h.status().as_u16(), 200);
    let h: Value = h.json().unwrap();
    assert_eq!(
        (
            h["status"].as_str(),
            h["provider"].as_str(),
            h["inference"].as_str()
        ),
        (Some("ok"), Some("cpu"), Some("running")),
        "{h}"
    );
    // Made-up methods do not become metric label values.
    for m in ["BREW", "XYZZY"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        server.send(server.client().request(method, server.url("/v1/model")));
    }
    let text = server.get("/metrics").expect_status(200).text();
    assert!(!text.contains("BREW") && !text.contains("XYZZY"), "{text}");
    assert!(text.contains("method=\"OTHER\""), "{text}");
}

#[test]
fn binding_beyond_loopback_needs_a_token() {
    let out = Command::new(bin_path("teacher-server"))
        .args(["serve", "--ep", "cpu", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .arg("--model")
        .arg(test_model("mlp.onnx"))
        .env("ORT_DYLIB_PATH", ort_lib())
        .env_remove("DISTILL_API_TOKEN")
        .env_remove("DISTILL_ALLOW_NO_TOKEN")
        .output()
        .expect("run teacher-server");
    assert!(
        !out.status.success(),
        "it served on 0.0.0.0 without a token"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("beyond loopback") && err.contains("--api-token"),
        "{err}"
    );
}

/// A teacher heavy enough for the inference thread to be the bottleneck on this machine:
/// x [batch, 16] -> 2048 -> 2048 -> 10 (about 8.5 MFLOP a row).
fn heavy_model(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("heavy.onnx");
    let code = r#"
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
rng = np.random.default_rng(0)
w = lambda *s: numpy_helper.from_array((rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32))
inits = [w(16, 2048), w(2048, 2048), w(2048, 10)]
for t, n in zip(inits, ["w1", "w2", "w3"]):
    t.name = n
nodes = [
    helper.make_node("MatMul", ["x", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["a1"]),
    helper.make_node("MatMul", ["a1", "w2"], ["h2"]), helper.make_node("Relu", ["h2"], ["a2"]),
    helper.make_node("MatMul", ["a2", "w3"], ["logits"]),
]
g = helper.make_graph(nodes, "heavy",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
"#;
    run_python(code, &[path.as_os_str()]).expect("python writes the heavy model");
    path
}

/// Peak resident memory of a process (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Resident memory the server must stay under while overloaded.
const RSS_BOUND: u64 = 1 << 30;

#[test]
fn overload_is_shed_with_retry_after_and_bounded_memory() {
    let secs: u64 = std::env::var("DISTILL_OVERLOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let model = heavy_model(dir.path());
    let server = Server::start(
        &model,
        &[
            "--ep",
            "cpu",
            "--intra-threads",
            "1",
            "--queue-capacity",
            "256",
            "--max-batch-rows",
            "64",
        ],
    );
    let pid = server.pid().expect("the server runs");
    const ROWS: usize = 64;
    const CLIENTS: usize = 6;
    let body = Arc::new(
        serde_json::to_vec(&json!({"inputs": {"x": Rng::new(3).matrix(ROWS, 16)}})).unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let shed = Arc::new(AtomicU64::new(0));
    let shed_without_retry_after = Arc::new(AtomicU64::new(0));
    let other = Arc::new(Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let url = server.url("/v1/score");
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (body, stop, attempts, shed, no_ra, other, latencies, url) = (
                body.clone(),
                stop.clone(),
                attempts.clone(),
                shed.clone(),
                shed_without_retry_after.clone(),
                other.clone(),
                latencies.clone(),
                url.clone(),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.as_ref().clone())
                        .send();
                    match r {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let has_ra = resp.headers().contains_key("retry-after");
                            let _ = resp.bytes();
                            match status {
                                200 => latencies.lock().unwrap().push(t.elapsed().as_secs_f64()),
                                429 | 503 => {
                                    shed.fetch_add(1, Ordering::Relaxed);
                                    if !has_ra {
                                        no_ra.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                s => other.lock().unwrap().push(format!("HTTP {s}")),
                            }
                        }
                        Err(e) => other.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    // distill-label labels a dataset through the same overload: it must retry until every
    // row is stored once.
    let input = dir.path().join("input.parquet");
    write_input(&input, 64);
    let label_started = Instant::now();
    let label = Command::new(bin_path("distill-label"))
        .args([
            "label",
            "--server",
            &server.url(""),
            "--dataset",
            "under-load",
        ])
        .arg("--data")
        .arg(&input)
        .args([
            "--batch-rows",
            "32",
            "--concurrency",
            "2",
            "--retries",
            "1000",
            "--seal",
            "--quiet",
        ])
        .output()
        .expect("run distill-label");
    let label_secs = label_started.elapsed().as_secs_f64();
    let remaining = Duration::from_secs(secs).saturating_sub(started.elapsed());
    std::thread::sleep(remaining);
    let mut peak = 0;
    peak = peak.max(peak_rss(pid));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    peak = peak.max(peak_rss(pid));

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let admitted = lat.len() as f64;
    let attempts = attempts.load(Ordering::Relaxed) as f64;
    let shed = shed.load(Ordering::Relaxed);
    let capacity = admitted / elapsed;
    let offered = attempts / elapsed;
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "overload: {elapsed:.1} s, {CLIENTS} clients x {ROWS}-row requests: offered {offered:.1} req/s, \
         admitted {capacity:.1} req/s ({:.0} rows/s), ratio {:.1}, shed {shed} (429/503), \
         admitted p50 {:.1} ms p99 {:.1} ms, server peak RSS {:.0} MiB; distill-label 64 rows \
         in {label_secs:.1} s; load average {}",
        capacity * ROWS as f64,
        offered / capacity.max(1e-9),
        p50 * 1e3,
        p99 * 1e3,
        peak as f64 / (1 << 20) as f64,
        load.trim()
    );
    assert!(
        label.status.success(),
        "distill-label failed under overload: {}\n{}",
        String::from_utf8_lossy(&label.stdout),
        String::from_utf8_lossy(&label.stderr)
    );
    let other = other.lock().unwrap();
    assert!(
        other.is_empty(),
        "answers other than 200/429/503: {:?}",
        &other[..other.len().min(5)]
    );
    assert!(admitted > 0.0, "nothing was admitted");
    assert!(
        shed > 0,
        "nothing was shed: the load did not exceed capacity"
    );
    assert_eq!(
        shed_without_retry_after.load(Ordering::Relaxed),
        0,
        "shed answers without Retry-After"
    );
    assert!(
        offered >= 3.0 * capacity,
        "offered {offered:.1} req/s is under 3x the admitted {capacity:.1} req/s"
    );
    assert!(
        peak > 0 && peak < RSS_BOUND,
        "server peak RSS {peak} bytes (bound {RSS_BOUND})"
    );
    let manifest = server
        .get("/v1/datasets/under-load")
        .expect_status(200)
        .json();
    assert_eq!(
        (manifest["rows"].as_u64(), manifest["pending_rows"].as_u64()),
        (Some(64), Some(0)),
        "{manifest}"
    );
}

/// `rows` rows (`id`, `x` as fixed_size_list<float>[16]) written by pyarrow.
fn write_input(path: &std::path::Path, rows: usize) {
    let code = r#"
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n = int(sys.argv[2])
x = np.random.default_rng(4).standard_normal((n, 16)).astype(np.float32)
pq.write_table(pa.table({
    "id": pa.array([f"row-{i}" for i in range(n)]),
    "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
}), sys.argv[1])
"#;
    run_python(
        code,
        &[path.as_os_str(), std::ffi::OsStr::new(&rows.to_string())],
    )
    .expect("pyarrow writes the input file");
}
