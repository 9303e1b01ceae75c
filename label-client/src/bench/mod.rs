//! Benchmarks of the server path.
//!
//! - [`loadgen`]: the `bench-load` command (concurrent requests, latency and throughput).
//! - [`raw_ort`]: the raw ONNX Runtime baseline the server is compared with (`ort-bench`).

pub mod loadgen;
pub mod raw_ort;
