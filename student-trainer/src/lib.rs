//! The student trainer library: trains small students from a teacher's stored soft labels
//! with candle and exports them to ONNX. It sits on three layers: `trainer-core` (models,
//! losses, optimizers, ONNX graphs), `trainer-data` (sources, loaders) and `trainer-eval`
//! (ONNX Runtime runners, scores, text benchmarks).
//!
//! - [`config`]: the typed `run.toml`, composed of the tables each layer owns.
//! - [`train`]: the training loop, evaluation, checkpoints, resume, run-folder outputs.
//! - [`metrics`]: per-epoch metrics and the run summary; [`plot`]: `curves.png`.
//! - [`report`]: the comparison report of finished runs (`REPORT.md`, `REPORT.html`, charts).
//! - [`sweep`]: grids of settings over seeds from one data load, beside scratch baselines.
//! - [`cli`]: the command-line interface behind the thin `main.rs`, one file per subcommand.

pub mod config;
pub mod train;

pub mod cli;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod sweep;
