//! `ort-bench`: rows/s of ONNX Runtime's `Session::run` on a model, without any server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use label_client::bench::raw_ort::{run_raw, RawOptions};
use label_client::label::source::InputMapping;

#[derive(Parser)]
#[command(
    name = "ort-bench",
    about = "Raw ONNX Runtime throughput on a Parquet input column"
)]
struct Cli {
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_library: PathBuf,
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Parquet file with the input rows.
    #[arg(long)]
    data: PathBuf,
    /// Input column: COLUMN or COLUMN=MODEL_INPUT.
    #[arg(long, default_value = "pixels")]
    input: InputMapping,
    /// Rows per run.
    #[arg(long, default_value_t = 1024)]
    batch_rows: usize,
    /// Distinct batches cycled through.
    #[arg(long, default_value_t = 8)]
    batches: usize,
    /// Untimed runs.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    iters: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = RawOptions {
        ort_library: cli.ort_library,
        model: cli.model,
        data: cli.data,
        input: cli.input,
        batch_rows: cli.batch_rows,
        batches: cli.batches,
        warmup: cli.warmup,
        iters: cli.iters,
    };
    match run_raw(&options).and_then(|r| {
        serde_json::to_string(&r)
            .map_err(|e| label_client::bench::raw_ort::RawBenchError::Input(e.to_string()))
    }) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
