//! `student-trainer plot`: redraws a run folder's `curves.png`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::RunConfig;

/// `plot` flags.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
}

/// Redraws `curves.png` of a run folder (e.g. one trained before the charts changed).
pub fn plot(run: &Path) -> anyhow::Result<PathBuf> {
    let cfg = RunConfig::load(&run.join("config.toml"))?;
    // The [student]'s lines: online and self-distillation runs also log their other networks.
    let history =
        crate::train::student_lines(crate::metrics::read_epochs(&run.join("metrics.jsonl"))?);
    let steps = crate::metrics::steps::read_steps(&run.join("steps.jsonl"))?;
    let sp = run.join("summary.json");
    let text = std::fs::read_to_string(&sp)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e} (is the run finished?)", sp.display()))?;
    let summary: crate::metrics::Summary = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", sp.display()))?;
    let title = crate::plot::run_title(run, &cfg, summary.param_count);
    let path = run.join("curves.png");
    crate::plot::write_curves(&path, &title, &history, &steps)?;
    Ok(path)
}

/// Runs `plot` and prints the file it wrote.
pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    let path = plot(&a.run)?;
    println!("wrote {}", path.display());
    Ok(())
}
