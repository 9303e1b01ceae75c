//! The command line: `student-trainer train`, `eval`, `eval-text`, `report`, `plot`,
//! `sweep`, `export-bert` and `export-init`, one file per subcommand (its flags and its run).

pub mod eval;
pub mod eval_text;
pub mod export_bert;
pub mod export_init;
pub mod plot;
pub mod report;
pub mod sweep;
pub mod train;

use clap::{Parser, Subcommand};

pub use eval::{eval, eval_line, EvalArgs};
pub use eval_text::EvalTextArgs;
pub use export_bert::ExportBertArgs;
pub use export_init::ExportInitArgs;
pub use plot::{plot, PlotArgs};
pub use report::{report, ReportArgs};
pub use sweep::SweepArgs;
pub use train::TrainArgs;

/// Trains small students from a teacher's stored soft labels, and evaluates them.
#[derive(Debug, Parser)]
#[command(name = "student-trainer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a student as a run config says; writes a run folder.
    Train(TrainArgs),
    /// Evaluate a student (ONNX or safetensors) on a labelled Parquet set.
    Eval(EvalArgs),
    /// Compare finished runs (Markdown table, charts, HTML), re-scoring each on one eval set.
    Report(ReportArgs),
    /// Redraw a run folder's curves.png from its metrics.jsonl and steps.jsonl.
    Plot(PlotArgs),
    /// Train a grid of settings over several seeds from one data load, beside scratch
    /// baselines; writes a sweep folder (table, chart, best config). Resumable.
    Sweep(SweepArgs),
    /// Write a BERT-family encoder (Hugging Face safetensors + config.json) as an f32 ONNX
    /// text encoder with mean pooling (all layers, or the `--layers` subset).
    ExportBert(ExportBertArgs),
    /// Write a text run config's student as initialised (its `init`: teacher layers, PCA
    /// table), untrained, as ONNX — the "before distillation" model to evaluate.
    ExportInit(ExportInitArgs),
    /// Score a text encoder ONNX on real text: Lee-50, WordSim-353, BBC News, fidelity to a
    /// teacher, size and speed (docs/text-eval.md).
    EvalText(EvalTextArgs),
}

/// The error and its causes on one line, each cause only once: most error types here already
/// print their source in their own message, which `{:#}` would repeat.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Report(a) => report::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::ExportBert(a) => export_bert::run(a),
        Command::ExportInit(a) => export_init::run(a),
        Command::EvalText(a) => eval_text::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = || std::io::Error::other("disk full");
        let e = anyhow::Error::new(Repeats { source: io() });
        assert_eq!(error_text(&e), "outer: disk full");
        let e = anyhow::Error::new(io()).context("writing x");
        assert_eq!(error_text(&e), "writing x: disk full");
    }
}
