//! A property-test generator over the request decoders (JSON and Arrow IPC) and validation:
//! valid bodies mutated byte by byte, truncated, spliced, deeply nested, and random JSON
//! trees. Every case must come back as `Ok` or a 4xx error, never a panic. The seed and the
//! case count are fixed (`DISTILL_FUZZ_CASES` raises the count), so a failure replays.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use distill_proto::api::{Dim, OutputSource, OutputSpec, Pooling, TensorSpec};
use distill_proto::DType;
use teacher_server::decode::arrow_ipc::{self, ArrowQuery};
use teacher_server::decode::{json, DecodeOptions};
use teacher_server::outputs::OutputPlan;
use teacher_server::validate::{validate, Limits};
use teacher_server::Signature;

/// xorshift64*: deterministic, no dependency.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn sig() -> Signature {
    let batch = || Dim::Dynamic("batch".into());
    Signature {
        inputs: vec![
            TensorSpec {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![batch(), Dim::Fixed(4)],
            },
            TensorSpec {
                name: "ids".into(),
                dtype: DType::I64,
                shape: vec![batch(), Dim::Dynamic("seq".into())],
            },
        ],
        outputs: vec![],
        unsupported_outputs: vec![],
    }
}

fn plan() -> OutputPlan {
    OutputPlan {
        specs: vec![OutputSpec {
            name: "logits".into(),
            tensor: "logits".into(),
            source: OutputSource::Output,
            dtype: DType::F32,
            shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(3)],
            pooling: Pooling::None,
            normalize: false,
        }],
        mask_input: None,
    }
}

fn limits() -> Limits {
    Limits {
        max_request_rows: 64,
        allow_non_finite: false,
        max_request_elements: 4096,
        max_dims: vec![("seq".into(), 32)],
    }
}

fn cases() -> usize {
    std::env::var("DISTILL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

const JSON_SEEDS: &[&str] = &[
    r#"{"dataset":"d","ids":["a","b"],"inputs":{"x":[[1,2,3,4],[5,6,7,8]],"ids":[[1,2],[3,4]]},"columns":{"label":[1,2]},"return":["logits"]}"#,
    r#"{"inputs":{"x":[[0.5,-1e-3,2e10,0]],"ids":[[9]]}}"#,
    r#"{"inputs":{"x":[],"ids":[]}}"#,
];

/// Random pieces of JSON spliced into bodies.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "1e400",
    "-0",
    "NaN",
    "\"x\"",
    "[[[[[[[[",
    "]]]]]]]]",
    "\\u0000",
    "\u{1F600}",
    "99999999999999999999999",
    "\"inputs\"",
    "\"ids\"",
];

/// A random JSON value tree, up to `depth` levels.
fn random_json(g: &mut Gen, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match g.below(if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(g.below(2) == 1),
        2 => serde_json::json!((g.next() as i64) >> g.below(64)),
        3 => Value::String(["x", "ids", "inputs", "", "d"][g.below(5)].to_string()),
        4 => Value::Array((0..g.below(5)).map(|_| random_json(g, depth - 1)).collect()),
        _ => {
            let keys = ["inputs", "ids", "dataset", "columns", "return", "x", "zz"];
            Value::Object(
                (0..g.below(4))
                    .map(|_| {
                        (
                            keys[g.below(keys.len())].to_string(),
                            random_json(g, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// One mutation of `base`: byte flips, truncation, token splices or duplication.
fn mutate(g: &mut Gen, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + g.below(4) {
        if b.is_empty() {
            b.push(b'{');
        }
        match g.below(5) {
            0 => {
                let i = g.below(b.len());
                b[i] ^= 1 << g.below(8);
            }
            1 => b.truncate(g.below(b.len())),
            2 => {
                let i = g.below(b.len());
                let t = TOKENS[g.below(TOKENS.len())].as_bytes();
                b.splice(i..i, t.iter().copied());
            }
            3 => {
                let i = g.below(b.len());
                b[i] = (g.next() & 0xff) as u8;
            }
            _ => {
                let (i, j) = (g.below(b.len()), g.below(b.len()));
                let (lo, hi) = (i.min(j), i.max(j));
                let piece: Vec<u8> = b[lo..hi].to_vec();
                b.splice(hi..hi, piece);
            }
        }
    }
    b
}

/// Decodes and validates; Ok or an error with a 4xx status. Panics propagate.
fn json_case(body: &[u8]) -> Result<(), u16> {
    let opts = DecodeOptions::default();
    let decoded = match json::decode(body, &sig(), opts) {
        Ok(d) => d,
        Err(_) => return Err(400),
    };
    match validate(decoded, &sig(), &plan(), &limits()) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.parts().0.as_u16()),
    }
}

#[test]
fn json_decoding_never_panics() {
    let mut g = Gen(0x5EED_0001);
    let (mut ok, mut refused, mut panics) = (0usize, 0usize, Vec::new());
    let n = cases();
    for i in 0..n {
        let body: Vec<u8> = match i % 4 {
            // Structured random trees, wrapped in the request shape half the time.
            0 => {
                let v = random_json(&mut g, 6);
                let v = if g.below(2) == 0 {
                    serde_json::json!({ "inputs": v })
                } else {
                    v
                };
                serde_json::to_vec(&v).unwrap()
            }
            // Deep nesting.
            1 if g.below(8) == 0 => {
                let depth = 1 + g.below(100_000);
                let mut s = String::from(r#"{"inputs":{"x":"#);
                s.push_str(&"[".repeat(depth));
                s.push_str(&"]".repeat(g.below(depth + 1)));
                s.into_bytes()
            }
            _ => {
                let seed = JSON_SEEDS[g.below(JSON_SEEDS.len())].as_bytes();
                mutate(&mut g, seed)
            }
        };
        match catch_unwind(AssertUnwindSafe(|| json_case(&body))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(status)) => {
                assert!(
                    (400..500).contains(&status),
                    "case {i}: status {status} for {:?}",
                    String::from_utf8_lossy(&body)
                );
                refused += 1;
            }
            Err(_) => {
                panics.push(String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
            }
        }
    }
    eprintln!(
        "json fuzz: {n} cases, {ok} accepted, {refused} refused (4xx), {} panics",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{} panics, e.g. {:?}",
        panics.len(),
        &panics[..panics.len().min(3)]
    );
    assert!(
        ok > 0 && refused > 0,
        "the generator must reach both outcomes"
    );
}

fn arrow_stream(rows: usize) -> Vec<u8> {
    let x = Float32Array::from((0..rows * 4).map(|i| i as f32).collect::<Vec<_>>());
    let x = FixedSizeListArray::new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        4,
        Arc::new(x),
        None,
    );
    let ids = Int64Array::from((0..rows * 2).map(|i| (i % 7) as i64).collect::<Vec<_>>());
    let ids = FixedSizeListArray::new(
        Arc::new(Field::new("item", DataType::Int64, true)),
        2,
        Arc::new(ids),
        None,
    );
    let id = StringArray::from((0..rows).map(|i| format!("r{i}")).collect::<Vec<_>>());
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(id)),
        ("x", Arc::new(x)),
        ("ids", Arc::new(ids)),
    ];
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let schema: Arc<Schema> = batch.schema();
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    buf
}

fn arrow_case(body: Vec<u8>) -> Result<(), u16> {
    let q = ArrowQuery {
        dataset: Some("d".into()),
        return_outputs: None,
        truncate: None,
    };
    let decoded = match arrow_ipc::decode(Bytes::from(body), &sig(), q, DecodeOptions::default()) {
        Ok(d) => d,
        Err(_) => return Err(400),
    };
    match validate(decoded, &sig(), &plan(), &limits()) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.parts().0.as_u16()),
    }
}

#[test]
fn arrow_ipc_decoding_never_panics() {
    let seeds = [arrow_stream(3), arrow_stream(1), arrow_stream(40)];
    assert_eq!(
        arrow_case(seeds[0].clone()),
        Ok(()),
        "the seed itself must be valid"
    );
    let mut g = Gen(0x5EED_0002);
    let (mut ok, mut refused, mut panics) = (0usize, 0usize, Vec::new());
    let n = cases();
    for i in 0..n {
        let pick = g.below(seeds.len());
        let body = mutate(&mut g, &seeds[pick]);
        match catch_unwind(AssertUnwindSafe(|| arrow_case(body.clone()))) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(status)) => {
                assert!((400..500).contains(&status), "case {i}: status {status}");
                refused += 1;
            }
            Err(_) => panics.push(i),
        }
    }
    eprintln!(
        "arrow fuzz: {n} cases, {ok} accepted, {refused} refused (4xx), {} panics",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{} panics, cases {:?}",
        panics.len(),
        &panics[..panics.len().min(10)]
    );
    assert!(refused > 0, "the generator must reach refusals");
}
