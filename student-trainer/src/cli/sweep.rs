//! `student-trainer sweep`: a grid of settings over seeds from one data load.

use std::path::PathBuf;

use clap::Args;

/// `sweep` flags.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The base run config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// A swept setting as KEY=[v1, v2, ...] (repeatable): a dotted config path such as
    /// train.lr, student.hidden, loss.kd.temperature (a [[loss]] term by kind) or
    /// loss[1].weight (by index); the values are TOML.
    #[arg(long = "grid", required = true)]
    pub grid: Vec<String>,
    /// Seeds every setting is trained with [default: the config's train.seed].
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Runs trained at once [default: the available cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Train this many grid points drawn at random (without repeats) instead of all.
    #[arg(long)]
    pub sample: Option<usize>,
    /// Seed of the --sample draw.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Train at most this many grid-point runs (whole points over all seeds; the scratch
    /// baselines are always trained and not counted).
    #[arg(long)]
    pub budget_runs: Option<usize>,
    /// Start no new run after this many seconds; rerun to continue.
    #[arg(long)]
    pub budget_time: Option<f64>,
    /// Sweep folder [default: sweeps/<config file stem>]; rerunning with it continues the sweep.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No per-run lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `sweep` and prints its table and folder.
pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    let o = crate::sweep::run(&crate::sweep::SweepOptions {
        config: a.config,
        grid: a.grid,
        seeds: a.seeds,
        jobs: a.jobs,
        sample: a.sample,
        sample_seed: a.sample_seed,
        budget_runs: a.budget_runs,
        budget_time_s: a.budget_time,
        out: a.out,
        quiet: a.quiet,
    })?;
    print!("{}", o.report);
    println!("\nwrote {}", o.out.display());
    Ok(())
}
