//! The student trainer library: trains small students from a teacher's stored soft labels
//! with candle and exports them to ONNX.
//!
//! - [`config`]: the typed `run.toml`.
//! - [`data`]: Parquet sources → in-memory training/eval sets → shuffled background batches.
//! - [`model`]: student architectures; [`loss`]: loss functions; [`export`]: ONNX export/eval.
//! - [`optim`]: AdamW/SGD with checkpointable state, LR schedules.
//! - [`train`]: the training loop, evaluation, checkpoints, resume, run-folder outputs.
//! - [`metrics`]: per-epoch metrics and the run summary; [`plot`]: `curves.png`.
//! - [`text_eval`]: text encoders scored on Lee-50, WordSim-353, BBC News, fidelity, speed.
//! - [`sweep`]: grids of settings over seeds from one data load, beside scratch baselines.
//! - [`cli`]: the command-line interface behind the thin `main.rs`.

pub mod export;
pub mod loss;
pub mod model;

pub mod config;
pub mod data;
pub mod optim;
pub mod train;

pub mod cli;
pub mod metrics;
pub mod plot;
pub mod sweep;
pub mod text_eval;
