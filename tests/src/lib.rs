//! Shared test helpers: locate binaries and test data, start and stop servers.
//!
//! - [`paths`]: the repository root, built binaries, the ONNX Runtime library, the venv python.
//! - [`python`]: running independent reference computations (numpy, onnxruntime, pyarrow).
//! - [`models`]: the generated test models (made once per script version) and foreign models.
//! - [`server`]: a guard running the real `teacher-server` binary on loopback.

pub mod models;
pub mod paths;
pub mod python;
pub mod server;

pub use models::{foreign_model, test_model};
pub use paths::{bin_path, ort_lib, python_bin, repo_root};
pub use python::{python_json, reference_outputs, run_python};
pub use server::{Reply, Server};

/// Largest absolute difference between two JSON nested arrays of numbers, failing (with the
/// path that differs) when their shapes or kinds differ.
pub fn max_abs_diff(a: &serde_json::Value, b: &serde_json::Value) -> anyhow::Result<f64> {
    fn walk(
        a: &serde_json::Value,
        b: &serde_json::Value,
        path: &mut String,
    ) -> anyhow::Result<f64> {
        use serde_json::Value;
        match (a, b) {
            (Value::Array(xa), Value::Array(xb)) => {
                anyhow::ensure!(
                    xa.len() == xb.len(),
                    "length differs at {path}: {} vs {}",
                    xa.len(),
                    xb.len()
                );
                let mut m = 0f64;
                for (i, (ea, eb)) in xa.iter().zip(xb).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    m = m.max(walk(ea, eb, path)?);
                    path.truncate(len);
                }
                Ok(m)
            }
            (Value::Bool(x), Value::Bool(y)) => Ok(if x == y { 0.0 } else { f64::INFINITY }),
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                anyhow::ensure!(x.is_finite() && y.is_finite(), "non-finite at {path}");
                Ok((x - y).abs())
            }
            _ => anyhow::bail!("kinds differ at {path}: {a} vs {b}"),
        }
    }
    walk(a, b, &mut String::from("$"))
}

/// Asserts two nested numeric arrays agree to `tol` (absolute), naming `what` on failure.
pub fn assert_close(what: &str, got: &serde_json::Value, want: &serde_json::Value, tol: f64) {
    match max_abs_diff(got, want) {
        Ok(d) => assert!(d <= tol, "{what}: max |diff| {d:e} > {tol:e}"),
        Err(e) => panic!("{what}: {e:#}"),
    }
}

/// Shape of a nested JSON array (lengths along the first element of each level).
pub fn json_shape(v: &serde_json::Value) -> Vec<usize> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let serde_json::Value::Array(items) = cur {
        shape.push(items.len());
        match items.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    shape
}

/// A small deterministic generator (SplitMix64) for test inputs, so a failing case can be
/// reproduced from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[lo, hi)`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo) as u64) as i64
    }

    /// A `[rows, cols]` JSON matrix of f32-representable values in `[-2, 2)`.
    pub fn matrix(&mut self, rows: usize, cols: usize) -> serde_json::Value {
        serde_json::Value::Array(
            (0..rows)
                .map(|_| {
                    serde_json::Value::Array(
                        (0..cols)
                            .map(|_| serde_json::json!(self.uniform(-2.0, 2.0) as f32))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// Ids `PREFIX-0 .. PREFIX-(n-1)` as a JSON array.
pub fn ids(prefix: &str, range: std::ops::Range<usize>) -> serde_json::Value {
    serde_json::Value::Array(
        range
            .map(|i| serde_json::json!(format!("{prefix}-{i}")))
            .collect(),
    )
}
