//! `student-trainer sweep`: trains a grid (or a random sample of it) of settings over several
//! seeds from one data load, beside scratch baselines under the same budget, and writes a
//! sweep folder: `table.md`, `report.md`, `summary.json`, `sweep.png`, `best.toml`, and one
//! run folder per run under `runs/`.
//!
//! - [`keys`]: `--grid` key paths into the config; [`plan`]: points, scratch groups, runs and
//!   their configs; [`store`]: the folder and resuming; [`table`]: mean ± std over seeds;
//!   [`chart`]: `sweep.png`.
//! - Determinism: each run is an ordinary run of its own config (seeded init, shuffling,
//!   dropout), sharing only read-only data, so a seed gives the same numbers whatever `--jobs`.
//! - The teacher check ([`trainer_eval::teacher`]) compares the teacher's own eval errors
//!   with each scratch baseline's mean.

pub mod chart;
pub mod keys;
pub mod plan;
pub mod store;
pub mod table;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use distill_proto::atomic::write_atomic;
use serde::Serialize;

use crate::config::{ConfigError, RunConfig};
use crate::plot::PlotError;
use crate::train::setup::{self, Setup};
use crate::train::{RunOutcome, TrainError, TrainOptions};
use plan::{Grid, RunKind, Task};
use store::RunResult;
use table::{Row, Stat};
use trainer_data::{EvalData, TrainData};
use trainer_eval::teacher::{TeacherCheck, TeacherEval};

/// Errors of a sweep; each names the key, spec, run or file.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A `--grid` key path that does not address the config.
    #[error("--grid key `{key}`: {message}")]
    Key {
        /// The path as written.
        key: String,
        /// What is wrong and what exists there.
        message: String,
    },
    /// A `--grid` spec that does not parse.
    #[error("--grid {spec:?}: {message}")]
    Grid {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// `--seeds` or another flag is unusable.
    #[error("{0}")]
    Flags(String),
    /// The base config is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A point's values make an invalid config (e.g. a negative temperature).
    #[error("the config of sweep point {point}: {source}")]
    PointConfig {
        /// `key = value, ...`.
        point: String,
        /// The config error.
        source: Box<ConfigError>,
    },
    /// Loading the data failed.
    #[error("loading the sweep's data: {0}")]
    Load(#[source] Box<TrainError>),
    /// A run failed.
    #[error("sweep run {run} ({label}): {source}")]
    Run {
        /// Run folder name.
        run: String,
        /// `key = value, ...`.
        label: String,
        /// The training error.
        source: Box<TrainError>,
    },
    /// The sweep folder is unusable.
    #[error("sweep folder {path}: {message}")]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record file could not be replaced atomically.
    #[error(transparent)]
    Atomic(#[from] distill_proto::atomic::AtomicWriteError),
    /// `sweep.png` could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A bug: an invariant of the sweep does not hold.
    #[error("internal: {0}")]
    Internal(String),
}

/// How to run a sweep (the `sweep` flags).
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// The base run config.
    pub config: PathBuf,
    /// `KEY=[v1, v2, ...]` specs.
    pub grid: Vec<String>,
    /// Seeds of every setting (default: the config's `train.seed`).
    pub seeds: Option<Vec<u64>>,
    /// Runs trained at once (default: the available cores).
    pub jobs: Option<usize>,
    /// Draw this many grid points at random instead of all.
    pub sample: Option<usize>,
    /// Seed of the draw.
    pub sample_seed: u64,
    /// Train at most this many grid-point runs in all (whole points, each over all seeds;
    /// scratch runs are always trained and not counted).
    pub budget_runs: Option<usize>,
    /// Start no run after this many seconds of this session.
    pub budget_time_s: Option<f64>,
    /// Sweep folder (default `sweeps/<config file stem>`).
    pub out: Option<PathBuf>,
    /// No per-run lines.
    pub quiet: bool,
}

/// The best setting and where its config was written.
#[derive(Debug, Clone, Serialize)]
pub struct Best {
    /// `key = value, ...` (or the scratch baseline).
    pub label: String,
    /// Its test errors over seeds.
    pub errors: Stat,
    /// Whether it is a scratch baseline (no setting with the teacher did better).
    pub scratch: bool,
    /// The file, inside the sweep folder.
    pub file: String,
}

/// `summary.json` of a sweep folder.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    /// The base config as given.
    pub config: String,
    /// Each key with its values.
    pub grid: Vec<(String, Vec<String>)>,
    /// Seeds of every setting.
    pub seeds: Vec<u64>,
    /// Points of the full grid.
    pub grid_points: usize,
    /// Points selected (all, or the sample), before the run budget.
    pub points_selected: usize,
    /// Runs the budget allows (scratch included).
    pub runs_planned: usize,
    /// Runs finished so far (over all sessions).
    pub runs_finished: usize,
    /// Every planned run has finished.
    pub complete: bool,
    /// Why runs are missing, when a budget stopped the sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_note: Option<String>,
    /// Runs trained in this session (the others were already finished).
    pub trained_this_session: usize,
    /// Distinct training data sets loaded in this session.
    pub data_loads: usize,
    /// Seconds spent loading data in this session.
    pub data_load_s: f64,
    /// Wall time of this session.
    pub wall_s: f64,
    /// Runs trained at once.
    pub jobs: usize,
    /// Aggregated rows.
    pub rows: Vec<Row>,
    /// The teacher's own eval errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherEval>,
    /// The teacher against each scratch baseline.
    pub teacher_checks: Vec<TeacherCheck>,
    /// Warnings (weak teacher).
    pub warnings: Vec<String>,
    /// The best setting with every seed finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
}

/// A finished sweep call: the folder, its summary and its report.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The sweep folder.
    pub out: PathBuf,
    /// What `summary.json` holds.
    pub summary: SweepSummary,
    /// What `report.md` holds.
    pub report: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a training set in memory depends on: the data table (its eval teacher aside) and the
/// columns the loss terms read (averaged teachers also their temperature).
fn train_key(cfg: &RunConfig, with_terms: bool) -> String {
    let mut data = cfg.data.clone();
    data.eval_teacher = None;
    let mut key = format!("{data:?}");
    if with_terms {
        let avg = cfg.data.teachers.len() > 1;
        for t in &cfg.losses {
            key.push_str(&format!("|{}:{}", t.kind(), t.teacher().unwrap_or("")));
            if avg && t.teacher().is_some_and(|c| !c.contains(':')) {
                key.push_str(&format!(
                    "@{}",
                    crate::train::kd_temperature(std::slice::from_ref(t))
                ));
            }
        }
    }
    key
}

/// What an eval set in memory depends on.
fn eval_key(cfg: &RunConfig) -> String {
    let d = &cfg.data;
    format!(
        "{:?}|{}|{:?}|{:?}",
        d.eval,
        d.input,
        d.label,
        setup::eval_teacher(cfg).0
    )
}

/// The data of the runs to train, each distinct set loaded once.
struct DataCache {
    train: HashMap<String, Arc<TrainData>>,
    eval: HashMap<String, Option<Arc<EvalData>>>,
    loads: usize,
    load_s: f64,
}

impl DataCache {
    fn new() -> Self {
        Self {
            train: HashMap::new(),
            eval: HashMap::new(),
            loads: 0,
            load_s: 0.0,
        }
    }

    /// The data of `cfg`: scratch runs (`ce` only) reuse any set of the same data table.
    fn get(
        &mut self,
        cfg: &RunConfig,
        scratch: bool,
        quiet: bool,
    ) -> Result<(Arc<TrainData>, Option<Arc<EvalData>>), SweepError> {
        let load = |e: TrainError| SweepError::Load(Box::new(e));
        let t0 = Instant::now();
        let key = train_key(cfg, !scratch);
        let plain = train_key(cfg, false);
        let found = if scratch {
            self.train
                .iter()
                .find(|(k, _)| k.starts_with(&plain))
                .map(|(_, d)| d.clone())
        } else {
            self.train.get(&key).cloned()
        };
        let data = match found {
            Some(d) => d,
            None => {
                let d =
                    Arc::new(TrainData::load(&cfg.data, &cfg.losses).map_err(|e| load(e.into()))?);
                self.loads += 1;
                if !quiet {
                    eprintln!(
                        "loaded {} training rows × {} inputs, {} classes ({:.1} MB) in {:.1} s",
                        d.rows(),
                        d.input.cols,
                        d.num_classes,
                        d.host_bytes() as f64 / 1e6,
                        t0.elapsed().as_secs_f64()
                    );
                }
                self.train.insert(key, d.clone());
                d
            }
        };
        let ek = eval_key(cfg);
        let eval = match self.eval.get(&ek) {
            Some(e) => e.clone(),
            None => {
                let e = setup::load_eval(cfg, &data).map_err(load)?.map(Arc::new);
                self.eval.insert(ek, e.clone());
                e
            }
        };
        self.load_s += t0.elapsed().as_secs_f64();
        Ok((data, eval))
    }
}

/// A run ready to train.
struct Job {
    task: Task,
    label: String,
    settings: Vec<(String, String)>,
    cfg: RunConfig,
    data: Arc<TrainData>,
    eval: Option<Arc<EvalData>>,
}

/// Trains one run in its folder (resuming its checkpoint; redone from the start when that
/// fails) and records its result.
fn train_one(out: &Path, job: &Job) -> Result<RunResult, SweepError> {
    let dir = store::run_dir(out, &job.task.id);
    let toml = job.cfg.to_toml()?;
    let run_err = |e: TrainError| SweepError::Run {
        run: job.task.id.clone(),
        label: job.label.clone(),
        source: Box::new(e),
    };
    let attempt = |resume: bool| -> Result<RunOutcome, TrainError> {
        let setup = Setup::with_data(&job.cfg, job.data.clone(), job.eval.clone())?;
        let opts = TrainOptions {
            config: None,
            out: Some(dir.clone()),
            resume,
            quiet: true,
            stop_after: None,
            export_onnx: false,
            plot: false,
        };
        crate::train::train_with_setup(&job.cfg, &dir, &setup, &opts, Instant::now())
    };
    let resume = store::prepare_run(&dir, &toml)?;
    let outcome = match attempt(resume) {
        Err(e) if resume => {
            eprintln!(
                "sweep run {}: resuming its checkpoint failed ({e}); training it again from the start",
                job.task.id
            );
            store::reset_run(&dir)?;
            store::prepare_run(&dir, &toml)?;
            attempt(false).map_err(run_err)?
        }
        r => r.map_err(run_err)?,
    };
    let RunOutcome::Finished(summary) = outcome else {
        return Err(SweepError::Internal(format!(
            "run {} paused without a stop",
            job.task.id
        )));
    };
    let (point, group) = match &job.task.kind {
        RunKind::Point(p) => (Some(*p), Vec::new()),
        RunKind::Scratch(g) => (None, g.clone()),
    };
    let r = RunResult {
        id: job.task.id.clone(),
        point,
        group,
        seed: job.task.seed,
        settings: job.settings.clone(),
        summary,
    };
    store::write_result(&dir, &r)?;
    Ok(r)
}

/// Checks every key path against the base config with its first value, so a typo fails
/// before anything trains, naming the path and what exists.
fn check_keys(grid: &Grid, base_raw: &toml::Table, base: &Path) -> Result<(), SweepError> {
    for k in &grid.keys {
        let mut t = base_raw.clone();
        let absent = k.path.set(&mut t, k.values[0].clone())?;
        if !absent {
            continue;
        }
        let text = toml::to_string(&t)
            .map_err(|e| SweepError::Internal(format!("re-serialising the config: {e}")))?;
        if let Err(ConfigError::Schema { key, source, .. }) = RunConfig::parse(&text, base) {
            return Err(SweepError::Key {
                key: k.path.text.clone(),
                message: format!(
                    "not a setting the config knows (at `{key}`: {})",
                    source.message()
                ),
            });
        }
    }
    Ok(())
}

/// What a sweep call works from: the base config, the grid, the seeds, the points selected
/// and budgeted, and the folder it writes.
struct SweepPlan {
    /// The base config, its paths resolved.
    base: RunConfig,
    /// The base config as TOML, for the grid's overrides.
    base_raw: toml::Table,
    /// The base config's path as given.
    base_name: String,
    grid: Grid,
    seeds: Vec<u64>,
    /// Points selected (all, or the sample), before the run budget.
    points_all: Vec<usize>,
    /// Points the run budget keeps.
    points: Vec<usize>,
    budget_note: Option<String>,
    cwd: PathBuf,
    out: PathBuf,
    spec: store::Spec,
}

/// Reads the base config, as a config and as a TOML table.
fn read_base(config: &Path) -> Result<(RunConfig, toml::Table), SweepError> {
    let base_text = std::fs::read_to_string(config).map_err(|source| {
        SweepError::Config(ConfigError::Read {
            path: config.to_path_buf(),
            source,
        })
    })?;
    let base = RunConfig::parse(&base_text, config)?;
    let base_raw: toml::Table = toml::from_str(&base_text).map_err(|e| {
        SweepError::Config(ConfigError::Syntax {
            path: config.to_path_buf(),
            source: Box::new(e),
        })
    })?;
    Ok((base, base_raw))
}

/// `--seeds` (default: the config's `train.seed`), refused empty or with a repeat.
fn seeds(opts: &SweepOptions, base: &RunConfig) -> Result<Vec<u64>, SweepError> {
    let seeds = opts.seeds.clone().unwrap_or_else(|| vec![base.train.seed]);
    if seeds.is_empty() {
        return Err(SweepError::Flags("--seeds is empty".into()));
    }
    if let Some(s) = seeds
        .iter()
        .find(|s| seeds.iter().filter(|t| t == s).count() > 1)
    {
        return Err(SweepError::Flags(format!("--seeds lists {s} twice")));
    }
    Ok(seeds)
}

/// The points `--budget-runs` allows (whole points, each over every seed), and the note
/// saying so when it cuts the selection.
fn budget_points(
    mut points: Vec<usize>,
    budget_runs: Option<usize>,
    seeds: usize,
) -> (Vec<usize>, Option<String>) {
    let mut note = None;
    if let Some(n) = budget_runs {
        let keep = n / seeds;
        if keep < points.len() {
            note = Some(format!(
                "--budget-runs {n} allows {keep} of the {} selected points ({seeds} seeds each)",
                points.len(),
            ));
            points.truncate(keep);
        }
    }
    (points, note)
}

/// `--out`, or `sweeps/<config file stem>`.
fn out_dir(opts: &SweepOptions) -> PathBuf {
    match &opts.out {
        Some(o) => o.clone(),
        None => {
            let stem = opts
                .config
                .file_stem()
                .map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from("sweeps").join(stem)
        }
    }
}

impl SweepPlan {
    /// Checks the flags against the base config and settles what this call trains.
    fn new(opts: &SweepOptions) -> Result<Self, SweepError> {
        let (mut base, base_raw) = read_base(&opts.config)?;
        let grid = Grid::parse(&opts.grid)?;
        check_keys(&grid, &base_raw, &opts.config)?;
        let seeds = seeds(opts, &base)?;
        let points_all = plan::select(&grid, opts.sample, opts.sample_seed)?;
        let (points, budget_note) =
            budget_points(points_all.clone(), opts.budget_runs, seeds.len());
        let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
        base.resolve_paths(&cwd);
        let spec = store::Spec {
            base: base.to_toml()?,
            grid: grid
                .keys
                .iter()
                .map(|k| {
                    (
                        k.path.text.clone(),
                        k.values.iter().map(|v| v.to_string()).collect(),
                    )
                })
                .collect(),
            seeds: seeds.clone(),
            sample: opts.sample,
            sample_seed: opts.sample_seed,
        };
        Ok(Self {
            base,
            base_raw,
            base_name: opts.config.display().to_string(),
            grid,
            seeds,
            points_all,
            points,
            budget_note,
            cwd,
            out: out_dir(opts),
            spec,
        })
    }

    /// The config of a run of `kind` with `seed`, its paths resolved.
    fn derive(&self, kind: &RunKind, seed: u64) -> Result<RunConfig, SweepError> {
        let mut cfg = plan::derive(&self.base_raw, &self.base_name, &self.grid, kind, seed)?;
        cfg.resolve_paths(&self.cwd);
        Ok(cfg)
    }
}

/// The results already in the folder, by run id.
fn finished_results(out: &Path, tasks: &[Task]) -> Result<HashMap<String, RunResult>, SweepError> {
    let mut finished = HashMap::new();
    for t in tasks {
        if let Some(r) = store::read_result(&store::run_dir(out, &t.id))? {
            finished.insert(t.id.clone(), r);
        }
    }
    Ok(finished)
}

/// The runs still to train, in task order, each with its config and data: configs first (a
/// bad value fails before anything trains), then the data, once per distinct set.
fn prepare_jobs(
    plan: &SweepPlan,
    tasks: &[Task],
    finished: &HashMap<String, RunResult>,
    cache: &mut DataCache,
    quiet: bool,
) -> Result<VecDeque<Job>, SweepError> {
    let grid = &plan.grid;
    // Points load the data before scratch runs, which then reuse it (they read fewer columns).
    let mut order: Vec<&Task> = tasks
        .iter()
        .filter(|t| !finished.contains_key(&t.id))
        .collect();
    order.sort_by_key(|t| matches!(t.kind, RunKind::Scratch(_)));
    let mut prepared: HashMap<String, Job> = HashMap::new();
    for t in order {
        let mut cfg = plan.derive(&t.kind, t.seed)?;
        let scratch = matches!(t.kind, RunKind::Scratch(_));
        let (data, eval) = cache.get(&cfg, scratch, quiet)?;
        if scratch && eval.as_ref().is_none_or(|e| e.teacher.is_none()) {
            cfg.data.eval_teacher = None;
        }
        let settings = match &t.kind {
            RunKind::Point(p) => grid.settings(&grid.decode(*p), false),
            RunKind::Scratch(g) => grid.settings(g, true),
        };
        prepared.insert(
            t.id.clone(),
            Job {
                label: plan::describe(grid, &t.kind),
                settings,
                task: t.clone(),
                cfg,
                data,
                eval,
            },
        );
    }
    Ok(tasks
        .iter()
        .filter_map(|t| prepared.remove(&t.id))
        .collect())
}

/// What the workers of one session did.
struct Trained {
    /// Results of the runs trained now.
    results: Vec<RunResult>,
    /// `--budget-time` stopped a worker before the queue was empty.
    timed_out: bool,
    /// Runs trained at once.
    jobs: usize,
}

/// The shared state of the worker threads.
struct Workers<'a> {
    opts: &'a SweepOptions,
    out: &'a Path,
    wall: Instant,
    todo: usize,
    queue: Mutex<VecDeque<Job>>,
    done: Mutex<Vec<RunResult>>,
    failure: Mutex<Option<SweepError>>,
    stop: AtomicBool,
    timed_out: AtomicBool,
}

impl Workers<'_> {
    /// One worker: takes jobs until the queue is empty, a run fails, or the time is up.
    fn work(&self) {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            if self
                .opts
                .budget_time_s
                .is_some_and(|b| self.wall.elapsed().as_secs_f64() >= b)
            {
                self.timed_out.store(true, Ordering::SeqCst);
                return;
            }
            let Some(job) = self.queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                return;
            };
            let t0 = Instant::now();
            match train_one(self.out, &job) {
                Ok(r) => self.record(&job, r, t0),
                Err(e) => {
                    self.stop.store(true, Ordering::SeqCst);
                    if let Ok(mut f) = self.failure.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            }
        }
    }

    /// Keeps a finished run's result and prints its line.
    fn record(&self, job: &Job, r: RunResult, t0: Instant) {
        let Ok(mut d) = self.done.lock() else {
            return;
        };
        if !self.opts.quiet {
            eprintln!(
                "[{}/{}] {} {}: {} test errors ({:.1} s)",
                d.len() + 1,
                self.todo,
                job.task.id,
                job.label,
                r.summary
                    .test_errors
                    .map_or("no eval set".into(), |e| e.to_string()),
                t0.elapsed().as_secs_f64()
            );
        }
        d.push(r);
    }
}

/// Trains `jobs` on `--jobs` threads; the first failure stops the others and is returned.
fn train_all(
    opts: &SweepOptions,
    out: &Path,
    jobs: VecDeque<Job>,
    wall: Instant,
) -> Result<Trained, SweepError> {
    let n_jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, jobs.len().max(1));
    let workers = Workers {
        opts,
        out,
        wall,
        todo: jobs.len(),
        queue: Mutex::new(jobs),
        done: Mutex::new(Vec::new()),
        failure: Mutex::new(None),
        stop: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
    };
    std::thread::scope(|s| {
        for _ in 0..n_jobs {
            s.spawn(|| workers.work());
        }
    });
    let lock_err = || SweepError::Internal("a sweep worker panicked".into());
    if let Some(e) = workers.failure.into_inner().map_err(|_| lock_err())? {
        return Err(e);
    }
    Ok(Trained {
        results: workers.done.into_inner().map_err(|_| lock_err())?,
        timed_out: workers.timed_out.load(Ordering::SeqCst),
        jobs: n_jobs,
    })
}

/// Writes `best.toml` for the best row with every seed finished.
fn write_best(plan: &SweepPlan, rows: &[Row]) -> Result<Option<Best>, SweepError> {
    let Some(r) = table::best(rows, plan.seeds.len()) else {
        return Ok(None);
    };
    let cfg = plan.derive(&r.run_kind(), plan.base.train.seed)?;
    let path = plan.out.join("best.toml");
    let head = format!(
        "# The best setting of the sweep in this folder: {} ({} test errors, mean ± std over {} seeds).\n# Train it with: student-trainer train --config {}\n\n",
        r.label,
        r.errors.show_plain(),
        r.runs,
        path.display()
    );
    std::fs::write(&path, head + &cfg.to_toml()?).map_err(io(&path))?;
    Ok(Some(Best {
        label: r.label.clone(),
        errors: r.errors,
        scratch: r.point.is_none(),
        file: "best.toml".into(),
    }))
}

/// Writes `sweep.png` (when there is something to draw) and `table.md`; returns the table
/// and whether the chart was drawn.
fn write_table_and_chart(plan: &SweepPlan, rows: &[Row]) -> Result<(String, bool), SweepError> {
    let title = format!("sweep of {}", plan.base_name);
    let chart = chart::draw(&title, &plan.grid, rows)?;
    if let Some(png) = &chart {
        crate::plot::write_png(&plan.out.join("sweep.png"), png)?;
    }
    let md = table::markdown(&plan.grid, rows);
    let tp = plan.out.join("table.md");
    std::fs::write(&tp, &md).map_err(io(&tp))?;
    Ok((md, chart.is_some()))
}

/// Writes `report.md` and `summary.json`; returns the report.
fn write_report(
    out: &Path,
    summary: &SweepSummary,
    md: &str,
    chart: bool,
) -> Result<String, SweepError> {
    let report = report(summary, md, chart);
    let rp = out.join("report.md");
    std::fs::write(&rp, &report).map_err(io(&rp))?;
    let sp = out.join("summary.json");
    let json = serde_json::to_string_pretty(summary)
        .map_err(|e| SweepError::Internal(format!("writing summary.json: {e}")))?;
    write_atomic(&sp, (json + "\n").as_bytes())?;
    Ok(report)
}

/// Runs the sweep (or continues it) and writes the sweep folder.
pub fn run(opts: &SweepOptions) -> Result<SweepOutcome, SweepError> {
    let wall = Instant::now();
    let mut plan = SweepPlan::new(opts)?;
    let resumed = store::claim(&plan.out, &plan.spec)?;
    let tasks = plan::tasks(&plan.grid, &plan.points, &plan.seeds);
    let mut finished = finished_results(&plan.out, &tasks)?;
    if resumed && !opts.quiet {
        eprintln!(
            "continuing the sweep in {}: {} of {} runs already finished",
            plan.out.display(),
            finished.len(),
            tasks.len()
        );
    }
    let mut cache = DataCache::new();
    let jobs = prepare_jobs(&plan, &tasks, &finished, &mut cache, opts.quiet)?;
    let trained = train_all(opts, &plan.out, jobs, wall)?;
    let trained_now = trained.results.len();
    for r in trained.results {
        finished.insert(r.id.clone(), r);
    }
    if trained.timed_out && finished.len() < tasks.len() {
        plan.budget_note = Some(format!(
            "--budget-time {:.0} s ran out with {} of {} runs finished; rerun to continue",
            opts.budget_time_s.unwrap_or(0.0),
            finished.len(),
            tasks.len()
        ));
    }

    let results: Vec<RunResult> = tasks
        .iter()
        .filter_map(|t| finished.get(&t.id).cloned())
        .collect();
    let groups = plan::groups(&plan.grid, &plan.points);
    let rows = table::rows(&plan.grid, &groups, &plan.points, &results);
    let (teacher, checks) = teacher_checks(&rows, &results);
    let warnings: Vec<String> = checks.iter().filter_map(|c| c.warning.clone()).collect();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let best = write_best(&plan, &rows)?;
    let (md, chart) = write_table_and_chart(&plan, &rows)?;
    let summary = SweepSummary {
        config: plan.base_name.clone(),
        grid: plan.spec.grid.clone(),
        seeds: plan.seeds.clone(),
        grid_points: plan.grid.size().unwrap_or(usize::MAX),
        points_selected: plan.points_all.len(),
        runs_planned: tasks.len(),
        runs_finished: results.len(),
        complete: results.len() == tasks.len(),
        budget_note: plan.budget_note.take(),
        trained_this_session: trained_now,
        data_loads: cache.loads,
        data_load_s: cache.load_s,
        wall_s: wall.elapsed().as_secs_f64(),
        jobs: trained.jobs,
        rows,
        teacher,
        teacher_checks: checks,
        warnings,
        best,
    };
    let report = write_report(&plan.out, &summary, &md, chart)?;
    Ok(SweepOutcome {
        out: plan.out,
        summary,
        report,
    })
}

/// The teacher's eval errors (from any run's summary: every run scores the same stored
/// teacher column), and its check against each scratch baseline's mean.
fn teacher_checks(rows: &[Row], results: &[RunResult]) -> (Option<TeacherEval>, Vec<TeacherCheck>) {
    let teacher = results
        .iter()
        .find_map(|r| r.summary.teacher_check.as_ref().map(|c| c.teacher.clone()));
    let Some(t) = teacher.clone() else {
        return (None, Vec::new());
    };
    let checks = rows
        .iter()
        .filter(|r| r.point.is_none())
        .map(|r| {
            let what = format!(
                "the {} ({} errors over {} seed{})",
                if r.label.contains(", ") {
                    r.label
                        .replacen("scratch (no teacher terms), ", "scratch student, ", 1)
                } else {
                    "scratch student".into()
                },
                r.errors.show_plain(),
                r.runs,
                if r.runs == 1 { "" } else { "s" }
            );
            TeacherCheck::against_scratch(t.clone(), r.errors.mean, &what, None)
        })
        .collect();
    (teacher, checks)
}

/// `report.md`.
fn report(s: &SweepSummary, table_md: &str, chart: bool) -> String {
    let mut r = format!("# Sweep of `{}`\n\n", s.config);
    let grid: Vec<String> = s
        .grid
        .iter()
        .map(|(k, v)| format!("`{k}` ∈ {{{}}}", v.join(", ")))
        .collect();
    r.push_str(&format!(
        "Grid: {} ({} points, {} selected); seeds {:?}; every point beside a scratch baseline (no teacher terms, hard-label ce at weight 1) with the same student and training budget.\n\n",
        grid.join(" × "),
        s.grid_points,
        s.points_selected,
        s.seeds
    ));
    r.push_str(&format!(
        "Runs finished: {} of {}{}. This session: {} runs trained, {} at a time, {} data load{} ({:.1} s), wall time {:.1} s.\n\n",
        s.runs_finished,
        s.runs_planned,
        if s.complete { "" } else { " (incomplete)" },
        s.trained_this_session,
        s.jobs,
        s.data_loads,
        if s.data_loads == 1 { "" } else { "s" },
        s.data_load_s,
        s.wall_s
    ));
    if let Some(n) = &s.budget_note {
        r.push_str(&format!("Budget: {n}.\n\n"));
    }
    if let Some(t) = &s.teacher {
        r.push_str(&format!(
            "Teacher (eval column `{}`): {} errors / {} ({:.2}%).\n\n",
            t.column,
            t.errors,
            t.rows,
            100.0 * t.accuracy
        ));
    }
    for w in &s.warnings {
        r.push_str(&format!("> **Warning:** {w}\n\n"));
    }
    r.push_str("Test errors, accuracy, agreement with the teacher and eval KD: mean ± sample std over the seeds; eval KD is at each row's own temperature (scratch rows: T = 1), so it compares seeds, not rows; *vs scratch*: mean errors minus the scratch baseline's.\n\n");
    r.push_str(table_md);
    if chart {
        r.push_str("\n![test errors against the swept values](sweep.png)\n");
    }
    match &s.best {
        Some(b) if b.scratch => r.push_str(&format!(
            "\nBest: **{}** ({} errors): no setting with the teacher beat the student trained alone. Its config: `{}`.\n",
            b.label,
            b.errors.show_plain(),
            b.file
        )),
        Some(b) => r.push_str(&format!(
            "\nBest: **{}** ({} errors). Its config, ready to train: `{}`.\n",
            b.label,
            b.errors.show_plain(),
            b.file
        )),
        None => r.push_str("\nNo setting has finished all its seeds yet: no best config.\n"),
    }
    r
}
