//! `student-trainer train`: trains a student as a run config says, into a run folder.

use std::path::PathBuf;

use clap::Args;

use crate::train::{self, RunOutcome, TrainOptions};

/// `train` flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run config (TOML). Optional with --resume (the run folder's config.toml is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder [default: runs/<config file stem>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bars or per-epoch lines (CI).
    #[arg(long)]
    pub quiet: bool,
    /// Pause (resumably) once this many epochs are done in total.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Skip writing student.onnx.
    #[arg(long)]
    pub no_onnx: bool,
}

/// Runs `train` and prints the summary (or where it paused).
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let opts = TrainOptions {
        config: a.config,
        out: a.out,
        resume: a.resume,
        quiet: a.quiet,
        stop_after: a.stop_after,
        export_onnx: !a.no_onnx,
        plot: true,
    };
    match train::run(&opts)? {
        RunOutcome::Finished(s) => println!("{}", serde_json::to_string_pretty(&s)?),
        RunOutcome::Paused { epochs } => {
            println!("paused after {epochs} epochs; continue with --resume")
        }
    }
    Ok(())
}
