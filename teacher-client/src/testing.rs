//! Test support (feature `testing`): a tiny HTTP/1.1 server on 127.0.0.1 whose every request
//! is recorded and answered by a handler, one request per connection (`Connection: close`),
//! and the small batch and client settings the client's and `distill-label`'s tests share.
//! Test code: it panics where a test should fail (a port that cannot be bound).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use crate::{ClientConfig, RetryPolicy};

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with query string.
    pub target: String,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    /// The body bytes (`Content-Length` of them).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, JSON body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers beyond `content-type`, `content-length` and `connection`.
    pub headers: Vec<(String, String)>,
    /// The body, sent as `application/json`.
    pub body: String,
}

impl Response {
    /// An answer with `status` and `body`.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    /// The same answer with one more header.
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

type Handler = dyn Fn(usize, &Request) -> Response + Send + Sync;

/// A running stub; `url()` is its base URL, `requests()` what it received so far.
pub struct Stub {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Stub {
    /// Starts the stub; `handler(n, request)` answers the n-th request (0-based).
    pub fn start(handler: impl Fn(usize, &Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let seen: Arc<Mutex<Vec<Request>>> = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen2.clone();
                let handler = handler.clone();
                thread::spawn(move || serve(stream, &seen, handler.as_ref()));
            }
        });
        Self { port, seen }
    }

    /// The stub's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("stub lock").clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Request>>, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let req = Request {
        method,
        target,
        headers,
        body,
    };
    let n = {
        let mut s = seen.lock().expect("stub lock");
        s.push(req.clone());
        s.len() - 1
    };
    let resp = handler(n, &req);
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&resp.body);
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

/// A `ScoreResponse` JSON for `rows` rows all newly stored.
pub fn ok_body(rows: usize, dataset: &str) -> String {
    format!(
        r#"{{"rows":{rows},"dataset":"{dataset}","stored":{rows},"duplicates":0,"outputs":{{}}}}"#
    )
}

/// Client settings for a stub at `url`: token `secret`, `retries` retries 20 ms apart at first.
pub fn stub_config(url: String, retries: u32) -> ClientConfig {
    ClientConfig {
        server: url,
        api_token: Some("secret".to_string()),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            retries,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        },
    }
}

/// A small batch in the shape the server takes: `id` (`r-START`, ...), `x`
/// FixedSizeList<f32, 3> (row i holds `1.5 i`, `1.5 i + 0.5`, `1.5 i + 1`), `label` (i mod 10).
pub fn sample_batch(start: usize, rows: usize) -> RecordBatch {
    let ids: StringArray = (start..start + rows)
        .map(|i| Some(format!("r-{i}")))
        .collect();
    let values: Float32Array = (0..rows * 3)
        .map(|i| (start * 3 + i) as f32 * 0.5)
        .collect();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let x = FixedSizeListArray::try_new(item.clone(), 3, Arc::new(values), None)
        .expect("a valid FixedSizeList");
    let labels: Int64Array = (start..start + rows).map(|i| (i % 10) as i64).collect();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("x", DataType::FixedSizeList(item, 3), false),
        Field::new("label", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(ids), Arc::new(x), Arc::new(labels)],
    )
    .expect("a valid batch")
}
