//! Prometheus metrics (prometheus-client), rendered as text by `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Matched route, e.g. `/v1/score`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// The method label of a request: one of the methods the API uses, else `OTHER`, so
/// unauthenticated clients cannot mint new label values (and series) at will.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Labels of a route-level latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route.
    pub route: String,
}

/// Labels of a per-stage timing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// The stage: one of [`Stage::name`].
    pub stage: &'static str,
}

/// The stages a stored row goes through, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Parsing the body (JSON or Arrow IPC) into tensors.
    Decode,
    /// Checking the request against the signature (and tokenizing text).
    Validate,
    /// From queueing a request until its inference run starts.
    QueueWait,
    /// One inference run (per run, not per request).
    Inference,
    /// Computing the input digests.
    Digest,
    /// Validating the rows and building the stored columns.
    Columns,
    /// Waiting for the dataset's lock.
    StoreLockWait,
    /// Encoding and writing the write-ahead log records.
    WalWrite,
    /// Waiting until the log records were fsync'd (group commit).
    Fsync,
    /// Encoding rows into the open Parquet shard.
    EncodeBacklogWait,
    /// Serialising the answer.
    Answer,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 11] = [
        Stage::Decode,
        Stage::Validate,
        Stage::QueueWait,
        Stage::Inference,
        Stage::Digest,
        Stage::Columns,
        Stage::StoreLockWait,
        Stage::WalWrite,
        Stage::Fsync,
        Stage::EncodeBacklogWait,
        Stage::Answer,
    ];

    /// The `stage` label value.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Validate => "validate",
            Stage::QueueWait => "queue_wait",
            Stage::Inference => "inference",
            Stage::Digest => "digest",
            Stage::Columns => "columns",
            Stage::StoreLockWait => "store_lock_wait",
            Stage::WalWrite => "wal_write",
            Stage::Fsync => "fsync",
            Stage::EncodeBacklogWait => "encode_backlog_wait",
            Stage::Answer => "answer",
        }
    }
}

/// Labels of the provider info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// Execution provider actually used.
    pub provider: String,
    /// ONNX Runtime version.
    pub ort_version: String,
    /// sha256 of the model file.
    pub model_sha256: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// 10 µs to ~5 s: stages of small requests take microseconds.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 2.0, 20))
}

/// All server metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route, seconds.
    pub request_seconds: HistogramFamily<RouteLabels>,
    /// Rows run through the teacher.
    pub rows_scored: Counter,
    /// Rows newly stored.
    pub rows_stored: Counter,
    /// Rows skipped as already stored.
    pub rows_duplicate: Counter,
    /// Rows per inference run.
    pub batch_rows: Histogram,
    /// Requests merged per inference run.
    pub batch_requests: Histogram,
    /// Inference time per run, seconds.
    pub inference_seconds: Histogram,
    /// Rows waiting for inference.
    pub queue_rows: Gauge,
    /// Requests refused because the queue was full.
    pub queue_rejections: Counter,
    /// Queued requests dropped unrun because their client had gone.
    pub requests_abandoned: Counter,
    /// Connections refused (503) because `--max-connections` were open.
    pub connections_refused: Counter,
    /// Always 1, labelled with the provider in use.
    pub provider_info: Family<ProviderLabels, Gauge>,
    /// Real tokens a text teacher ran (padding efficiency = real / padded).
    pub tokens_real: Counter,
    /// Tokens a text teacher ran including padding (rows x longest row, summed over runs).
    pub tokens_padded: Counter,
    /// Seconds per stage of a request (`_sum` / `rows_stored` is a stored row's cost there).
    pub stage_seconds: HistogramFamily<StageLabels>,
    /// fsync rounds of the label store's write-ahead logs (one per group commit).
    pub wal_fsyncs: Counter,
    /// Seconds the store's background encoders spent writing Parquet (set at each scrape).
    pub parquet_encode_seconds: Gauge<f64, AtomicU64>,
    /// Log bytes of rows waiting for the background encoders (set at each scrape).
    pub encode_backlog_bytes: Gauge,
    /// Datasets that cannot take writes now (disk full, read-only, a failed write).
    pub datasets_down: Gauge,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("distill");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        let rows_scored = Counter::default();
        registry.register(
            "rows_scored",
            "Rows run through the teacher",
            rows_scored.clone(),
        );
        let rows_stored = Counter::default();
        registry.register(
            "rows_stored",
            "Rows newly written to the label store",
            rows_stored.clone(),
        );
        let rows_duplicate = Counter::default();
        registry.register(
            "rows_duplicate",
            "Rows skipped because their id was already stored",
            rows_duplicate.clone(),
        );
        let batch_rows = Histogram::new(exponential_buckets(1.0, 2.0, 17));
        registry.register("batch_rows", "Rows per inference run", batch_rows.clone());
        let batch_requests = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "batch_requests",
            "Requests merged into one inference run",
            batch_requests.clone(),
        );
        let inference_seconds = latency_histogram();
        registry.register(
            "inference_duration_seconds",
            "Time of one inference run",
            inference_seconds.clone(),
        );
        let queue_rows = Gauge::default();
        registry.register(
            "queue_rows",
            "Rows waiting for inference",
            queue_rows.clone(),
        );
        let queue_rejections = Counter::default();
        registry.register(
            "queue_rejections",
            "Requests refused with 429 because the queue was full",
            queue_rejections.clone(),
        );
        let requests_abandoned = Counter::default();
        registry.register(
            "requests_abandoned",
            "Queued requests dropped unrun because their client had gone",
            requests_abandoned.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections answered 503 because --max-connections were open",
            connections_refused.clone(),
        );
        let provider_info = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "provider_info",
            "Execution provider in use (value 1)",
            provider_info.clone(),
        );
        let tokens_real = Counter::default();
        registry.register(
            "tokens_real",
            "Real tokens run through a text teacher (padding efficiency = tokens_real / tokens_padded)",
            tokens_real.clone(),
        );
        let tokens_padded = Counter::default();
        registry.register(
            "tokens_padded",
            "Tokens run through a text teacher including padding",
            tokens_padded.clone(),
        );
        let stage_seconds: HistogramFamily<StageLabels> =
            Family::new_with_constructor(stage_histogram);
        registry.register(
            "stage_duration_seconds",
            "Time per stage of a request: decode, validate, queue_wait, inference (per run), digest, columns, store_lock_wait, wal_write, fsync, encode_backlog_wait (waiting for room in the background Parquet encoder), answer",
            stage_seconds.clone(),
        );
        for s in Stage::ALL {
            // Every stage is listed from the start, so a scrape shows which ones are zero.
            let _ = stage_seconds.get_or_create(&StageLabels { stage: s.name() });
        }
        let wal_fsyncs = Counter::default();
        registry.register(
            "wal_fsync_rounds",
            "Group-commit fsync rounds of the label store's write-ahead logs",
            wal_fsyncs.clone(),
        );
        let parquet_encode_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "parquet_encode_seconds_total",
            "Time the label store's background encoders spent encoding Parquet and finishing shards (off the request path)",
            parquet_encode_seconds.clone(),
        );
        let encode_backlog_bytes = Gauge::default();
        registry.register(
            "encode_backlog_bytes",
            "Logged bytes of rows waiting for the background Parquet encoders",
            encode_backlog_bytes.clone(),
        );
        let datasets_down = Gauge::default();
        registry.register(
            "datasets_down",
            "Datasets that cannot take writes now (disk full, read-only data dir, a failed write); they recover in place",
            datasets_down.clone(),
        );
        Self {
            registry,
            stage_seconds,
            wal_fsyncs,
            parquet_encode_seconds,
            encode_backlog_bytes,
            datasets_down,
            tokens_real,
            tokens_padded,
            requests,
            request_seconds,
            rows_scored,
            rows_stored,
            rows_duplicate,
            batch_rows,
            batch_requests,
            inference_seconds,
            queue_rows,
            queue_rejections,
            requests_abandoned,
            connections_refused,
            provider_info,
        }
    }

    /// Records `d` under stage `s`.
    pub fn stage(&self, s: Stage, d: std::time::Duration) {
        self.stage_seconds
            .get_or_create(&StageLabels { stage: s.name() })
            .observe(d.as_secs_f64());
    }

    /// Records the store's share of one append.
    pub fn append_timings(&self, t: &distill_proto::store::AppendTimings) {
        self.stage(Stage::Digest, t.digest);
        self.stage(Stage::Columns, t.columns);
        self.stage(Stage::StoreLockWait, t.lock_wait);
        self.stage(Stage::WalWrite, t.wal_write);
        self.stage(Stage::EncodeBacklogWait, t.backlog_wait);
        self.stage(Stage::Fsync, t.fsync_wait);
        self.wal_fsyncs.inc_by(u64::from(t.fsync_rounds));
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::POST), "POST");
        for m in ["FOO", "X-1", "GETX"] {
            assert_eq!(
                method_label(&Method::from_bytes(m.as_bytes()).unwrap()),
                "OTHER"
            );
        }
    }

    #[test]
    fn render_lists_metrics() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/v1/score".into(),
                method: "POST".into(),
                status: 200,
            })
            .inc();
        m.provider_info
            .get_or_create(&ProviderLabels {
                provider: "cpu".into(),
                ort_version: "1.31.1".into(),
                model_sha256: "ab".into(),
            })
            .set(1);
        m.batch_rows.observe(3.0);
        let text = m.render();
        assert!(
            text.contains(
                "distill_http_requests_total{route=\"/v1/score\",method=\"POST\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("distill_provider_info{provider=\"cpu\""),
            "{text}"
        );
        assert!(text.contains("distill_batch_rows_count 1"), "{text}");
        assert!(text.contains("distill_queue_rows"), "{text}");
        m.stage(Stage::Fsync, std::time::Duration::from_millis(3));
        let text = m.render();
        for s in Stage::ALL {
            let line = format!(
                "distill_stage_duration_seconds_count{{stage=\"{}\"}}",
                s.name()
            );
            assert!(text.contains(&line), "{line} missing in {text}");
        }
        assert!(
            text.contains("distill_stage_duration_seconds_sum{stage=\"fsync\"} 0.003"),
            "{text}"
        );
    }
}
