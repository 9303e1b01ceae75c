//! The command line: `student-trainer train`, `eval`, `eval-text`, `report`, `plot`,
//! `sweep`, `export-bert` and `export-init`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clap::{Args, Parser, Subcommand};

use crate::config::RunConfig;
use crate::data::EvalData;
use crate::export::export_text_onnx;
use crate::metrics::{score_logits, EvalMetrics};
use crate::model::text_config::TransformerInit;
use crate::model::{Student, StudentConfig, TextStudent, TransformerConfig};
use crate::train::{self, evaluate, RunOutcome, TrainOptions};

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

/// `eval-text` flags.
#[derive(Debug, Args)]
pub struct EvalTextArgs {
    /// The text encoder ONNX (int64 `input_ids`, `attention_mask`, optional `token_type_ids`).
    #[arg(long)]
    pub model: PathBuf,
    /// Its output to read [default: `embedding`, else `last_hidden_state`, else the only one];
    /// a 3-D output is mean-pooled over the attention mask.
    #[arg(long)]
    pub output: Option<String>,
    /// The Hugging Face tokenizer.json (also used for --teacher).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Truncate every text to this many tokens, special tokens included.
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Keep the embeddings as the model gives them (default: L2-normalised).
    #[arg(long)]
    pub no_normalize: bool,
    /// Benchmarks to run, comma separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lee,wordsim,bbc,speed"
    )]
    pub suite: Vec<crate::text_eval::Suite>,
    /// Folder holding lee.cor, similarities0-1.txt and wordsim353.tsv (scripts/fetch_text.sh).
    #[arg(long, default_value = ".deps/corpora/eval")]
    pub eval_dir: PathBuf,
    /// BBC train split from `distill-label import-bbc` (suite bbc).
    #[arg(long)]
    pub bbc_train: Option<PathBuf>,
    /// BBC test split (suites bbc, fidelity, speed: speed times its titles).
    #[arg(long)]
    pub bbc_test: Option<PathBuf>,
    /// Teacher ONNX for the fidelity suite.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// The teacher's output to read (as --output).
    #[arg(long)]
    pub teacher_output: Option<String>,
    /// ONNX Runtime intra-op threads [default: the CPUs available].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Texts per forward pass for the scores (speed always uses 64 and 1).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Linear probe: full-batch gradient steps.
    #[arg(long, default_value_t = crate::text_eval::probe::ProbeConfig::default().epochs)]
    pub probe_epochs: usize,
    /// Linear probe: L2 penalty on the weights.
    #[arg(long, default_value_t = crate::text_eval::probe::ProbeConfig::default().l2)]
    pub probe_l2: f64,
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Write the results as JSON here (the table is printed either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

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

/// `plot` flags.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
}

/// `export-bert` flags.
#[derive(Debug, Args)]
pub struct ExportBertArgs {
    /// The model's `model.safetensors`.
    #[arg(long)]
    pub safetensors: PathBuf,
    /// Its Hugging Face `config.json`.
    #[arg(long)]
    pub config: PathBuf,
    /// Keep only these source layers, in this order (e.g. `0,2,4`).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Leave out the `token_type_ids` input (every token then has type 0).
    #[arg(long)]
    pub no_token_type_ids: bool,
    /// Where to write the ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `export-init` flags.
#[derive(Debug, Args)]
pub struct ExportInitArgs {
    /// A run config with a text student (`student.arch = "static"` or `"transformer"`).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `report` flags.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Title of the report.
    #[arg(long, default_value = "distill report")]
    pub title: String,
    /// A run as NAME=RUN_FOLDER (repeatable, in table order).
    #[arg(long = "run", required = true)]
    pub runs: Vec<String>,
    /// Labelled eval data every run is scored on.
    #[arg(long)]
    pub eval: String,
    /// Teacher logits column of the eval data, for agreement.
    #[arg(long)]
    pub teacher_column: Option<String>,
    /// KD temperature of the reported eval KD loss.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Total elapsed seconds to print under the table.
    #[arg(long)]
    pub elapsed_s: Option<f64>,
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Write the Markdown report here (it is printed as well).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a self-contained HTML report here (tables, charts, run settings; no network).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the comparison charts as PNG files into this folder (linked from the Markdown
    /// report when it is beside or above them).
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// A reference test-error count for a run, as NAME=ERRORS (repeatable), e.g. a paper's
    /// number; drawn beside the run's result.
    #[arg(long = "reference")]
    pub references: Vec<String>,
    /// Where the --reference numbers come from, for the report's legend and text.
    #[arg(long, default_value = "reference errors")]
    pub reference_source: String,
}

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

/// `eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// student.onnx or student.safetensors.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled data: dataset folder, Parquet file or glob.
    #[arg(long)]
    pub data: String,
    /// Run config giving the architecture (needed for safetensors) and column names.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Input column [default: the config's data.input, else "pixels"].
    #[arg(long)]
    pub input: Option<String>,
    /// Hard-label column [default: the config's data.label, else "label"].
    #[arg(long)]
    pub label: Option<String>,
    /// Teacher logits column for agreement and KD loss.
    #[arg(long)]
    pub teacher_column: Option<String>,
    /// KD temperature for the reported KD loss.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 1024)]
    pub batch_rows: usize,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
    /// Timed extra passes of an ONNX model over the data; the median rows/s is reported.
    #[arg(long, default_value_t = 0)]
    pub timing_rounds: usize,
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

/// `export-bert`: builds the encoder from the safetensors, then writes its ONNX.
fn export_bert(a: &ExportBertArgs) -> anyhow::Result<TextStudent> {
    let json = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let mut cfg = TransformerConfig::from_hf_config(&json)
        .with_context(|| format!("config {}", a.config.display()))?;
    if let Some(l) = &a.layers {
        cfg.layers = l.len();
    }
    cfg.init = Some(TransformerInit {
        from: a.safetensors.clone(),
        layers: a.layers.clone(),
    });
    let (_vars, student) = TextStudent::build(&StudentConfig::Transformer(cfg))?;
    export_text_onnx(&student, !a.no_token_type_ids, &a.out)?;
    Ok(student)
}

fn export_init(a: &ExportInitArgs) -> anyhow::Result<TextStudent> {
    let cfg = RunConfig::load(&a.config)?;
    if !cfg.student.is_text() {
        anyhow::bail!(
            "{}: student.arch = \"{}\" is not a text student (export-init writes `static` or `transformer` students)",
            a.config.display(),
            cfg.student.arch_name()
        );
    }
    let (_vars, student) = TextStudent::build(&cfg.student)
        .with_context(|| format!("building the student of {}", a.config.display()))?;
    let types = cfg.data.token_types.is_some();
    export_text_onnx(&student, types, &a.out)?;
    Ok(student)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => {
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
        Command::ExportBert(a) => {
            let s = export_bert(&a)?;
            println!(
                "wrote {} ({} layers, {} parameters)",
                a.out.display(),
                s.feature_dims().len(),
                s.param_count()
            );
            Ok(())
        }
        Command::ExportInit(a) => {
            let s = export_init(&a)?;
            println!(
                "wrote {} ({} student as initialised, {} parameters)",
                a.out.display(),
                s.arch_name(),
                s.param_count()
            );
            Ok(())
        }
        Command::Report(a) => {
            let text = report(&a)?;
            if let Some(p) = &a.out {
                std::fs::write(p, &text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            }
            print!("{text}");
            Ok(())
        }
        Command::EvalText(a) => crate::text_eval::run_cli(&a),
        Command::Sweep(a) => {
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
        Command::Plot(a) => {
            let path = plot(&a.run)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Eval(a) => {
            let m = eval(&a)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("{}", eval_line(&m));
            }
            Ok(())
        }
    }
}

/// One human-readable line of eval metrics.
pub fn eval_line(m: &EvalMetrics) -> String {
    let mut s = format!(
        "rows {}  errors {}  accuracy {:.2}%  ce {:.4}",
        m.rows,
        m.errors,
        100.0 * m.accuracy,
        m.ce
    );
    if let Some(a) = m.agreement {
        s.push_str(&format!("  agreement {:.2}%", 100.0 * a));
    }
    if let Some(k) = m.kd {
        s.push_str(&format!("  kd {k:.4}"));
    }
    s
}

fn is_onnx(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Evaluates a model file on a data set (the `eval` subcommand).
pub fn eval(a: &EvalArgs) -> anyhow::Result<EvalMetrics> {
    let cfg = match &a.config {
        Some(p) => Some(RunConfig::load(p)?),
        None => None,
    };
    let input = a
        .input
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.data.input.clone()))
        .unwrap_or_else(|| "pixels".into());
    let label = a
        .label
        .clone()
        .or_else(|| cfg.as_ref().and_then(|c| c.data.label.clone()))
        .unwrap_or_else(|| "label".into());
    let data = EvalData::load(
        &a.data,
        &input,
        &label,
        a.teacher_column.as_deref(),
        true,
        None,
        None,
    )?;
    let rows = data.rows();
    let dim = data.input.cols;
    let mut rows_per_s = None;
    let (logits, classes) = if is_onnx(&a.model) {
        let mut clf = crate::export::OnnxClassifier::load(&a.model, a.ort_lib.as_deref())?;
        if let Some(d) = clf.input_dim() {
            anyhow::ensure!(
                d == dim,
                "model {} takes {d} inputs, column {input:?} of {} has width {dim}",
                a.model.display(),
                a.data
            );
        }
        // The first pass scores and warms the session up; timed passes follow.
        let logits = onnx_logits(&mut clf, &data.input.data, rows, dim, a.batch_rows)?;
        let mut secs = Vec::with_capacity(a.timing_rounds);
        for _ in 0..a.timing_rounds {
            let t = std::time::Instant::now();
            onnx_logits(&mut clf, &data.input.data, rows, dim, a.batch_rows)?;
            secs.push(t.elapsed().as_secs_f64());
        }
        secs.sort_by(f64::total_cmp);
        rows_per_s = secs.get(secs.len() / 2).map(|s| rows as f64 / s.max(1e-9));
        anyhow::ensure!(
            rows > 0 && logits.len() % rows == 0,
            "model {} returned {} logits for {rows} rows",
            a.model.display(),
            logits.len()
        );
        let classes = logits.len() / rows;
        (logits, classes)
    } else {
        let cfg = cfg.ok_or_else(|| {
            anyhow::anyhow!("a safetensors model needs --config (the run config naming the student architecture)")
        })?;
        let tensors = candle_core::safetensors::load(&a.model, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.model.display()))?;
        let classes = match cfg.data.num_classes {
            Some(c) => c,
            None => tensors
                .get("out.weight")
                .and_then(|t| t.dims().first().copied())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} has no out.weight; set data.num_classes",
                        a.model.display()
                    )
                })?,
        };
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let student = Student::new(&cfg.student, dim, classes, vb).map_err(|e| {
            anyhow::anyhow!(
                "{} does not fit the config's student: {e}",
                a.model.display()
            )
        })?;
        (
            evaluate::student_logits(&student, &data.input.data, dim, a.batch_rows)?,
            classes,
        )
    };
    if let Some((col, crate::data::Target::Dense(m))) = &data.teacher {
        anyhow::ensure!(
            m.cols == classes,
            "teacher column {col:?} has width {}, but the model has {classes} classes",
            m.cols
        );
    }
    if let Some(bad) = data.labels.iter().find(|&&l| l as usize >= classes) {
        anyhow::bail!("column {label:?} holds label {bad}, but the model has {classes} classes");
    }
    let mut m = score_logits(
        &logits,
        classes,
        &data.labels,
        data.teacher.as_ref().map(|(_, t)| t),
        a.temperature,
    );
    m.infer_rows_per_s = rows_per_s;
    Ok(m)
}

/// Logits of `rows` rows of width `dim` through an ONNX model, `batch_rows` at a time.
fn onnx_logits(
    clf: &mut crate::export::OnnxClassifier,
    x: &[f32],
    rows: usize,
    dim: usize,
    batch_rows: usize,
) -> anyhow::Result<Vec<f32>> {
    let step = batch_rows.max(1);
    let mut logits = Vec::new();
    for start in (0..rows).step_by(step) {
        let end = (start + step).min(rows);
        logits.extend(clf.run(&x[start * dim..end * dim], end - start)?);
    }
    Ok(logits)
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

/// Parses `--reference NAME=ERRORS` values (the name may itself hold `=`).
fn references(specs: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, v) = spec
                .rsplit_once('=')
                .ok_or_else(|| anyhow::anyhow!("--reference {spec:?}: expected NAME=ERRORS"))?;
            let v: f64 = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("--reference {spec:?}: {v:?} is not a number of errors")
            })?;
            anyhow::ensure!(
                v.is_finite() && v >= 0.0,
                "--reference {spec:?}: errors must be >= 0"
            );
            Ok((name.to_string(), v))
        })
        .collect()
}

/// Builds the `report`: each run's summary, and its exported student (ONNX when present,
/// else safetensors with the run's config) scored on `--eval`; writes the charts and the
/// HTML page when asked, and returns the Markdown.
pub fn report(a: &ReportArgs) -> anyhow::Result<String> {
    use crate::metrics::report as rep;
    let refs = references(&a.references)?;
    let mut rows = Vec::new();
    for spec in &a.runs {
        let (name, dir) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--run {spec:?}: expected NAME=RUN_FOLDER"))?;
        let dir = PathBuf::from(dir);
        let sp = dir.join("summary.json");
        let text = std::fs::read_to_string(&sp).map_err(|e| {
            anyhow::anyhow!(
                "run {name:?}: cannot read {}: {e} (is the run finished?)",
                sp.display()
            )
        })?;
        let summary: crate::metrics::Summary = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("run {name:?}: {} does not parse: {e}", sp.display()))?;
        let cp = dir.join("config.toml");
        let config_text = std::fs::read_to_string(&cp)
            .map_err(|e| anyhow::anyhow!("run {name:?}: cannot read {}: {e}", cp.display()))?;
        let config = RunConfig::load(&cp).map_err(|e| anyhow::anyhow!("run {name:?}: {e}"))?;
        let history = crate::metrics::read_epochs(&dir.join("metrics.jsonl"))
            .map(crate::train::student_lines)
            .map_err(|e| anyhow::anyhow!("run {name:?}: {e}"))?;
        let curves_png = std::fs::read(dir.join("curves.png")).ok();
        let onnx = dir.join("student.onnx");
        let model = if onnx.is_file() {
            onnx
        } else {
            dir.join("student.safetensors")
        };
        let args = EvalArgs {
            model: model.clone(),
            data: a.eval.clone(),
            config: Some(cp),
            input: None,
            label: None,
            teacher_column: a.teacher_column.clone(),
            temperature: a.temperature,
            ort_lib: a.ort_lib.clone(),
            batch_rows: 1024,
            json: false,
            timing_rounds: 5,
        };
        let m = eval(&args).map_err(|e| anyhow::anyhow!("run {name:?}: {e:#}"))?;
        rows.push(rep::ReportRow {
            name: name.to_string(),
            reference: refs.iter().find(|(n, _)| n == name).map(|(_, v)| *v),
            dir,
            summary,
            history,
            config,
            config_text,
            curves_png,
            eval: m,
            scored: model
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
    }
    if let Some((n, _)) = refs
        .iter()
        .find(|(n, _)| !rows.iter().any(|r| &r.name == n))
    {
        anyhow::bail!("--reference names run {n:?}, which no --run has");
    }
    let charts = if a.html.is_some() || a.charts.is_some() {
        rep::charts(&a.title, &rows, &a.reference_source)?
    } else {
        Vec::new()
    };
    let mut links = Vec::new();
    if let Some(dir) = &a.charts {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let md_dir = a.out.as_ref().and_then(|o| o.parent());
        for c in &charts {
            let path = dir.join(c.file);
            crate::plot::write_png(&path, &c.png)?;
            let rel = match md_dir {
                Some(d) if d.as_os_str().is_empty() => path.is_relative().then(|| path.clone()),
                Some(d) => path.strip_prefix(d).ok().map(Path::to_path_buf),
                None => None,
            };
            if let Some(rel) = rel {
                links.push((rel.display().to_string(), c.title.clone()));
            }
        }
    }
    if let Some(p) = &a.html {
        let fingerprint = distill_proto::store::read_manifest(
            &Path::new(&a.eval).join(distill_proto::store::MANIFEST_FILE),
        )
        .ok()
        .and_then(|m| serde_json::to_string_pretty(&m.teacher).ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ctx = rep::ReportContext {
            title: a.title.clone(),
            eval_data: a.eval.clone(),
            elapsed_s: a.elapsed_s,
            reference_source: a.reference_source.clone(),
            teacher_fingerprint: fingerprint,
            machine: rep::machine(),
            generated: rep::utc(now),
        };
        std::fs::write(p, rep::render_html(&ctx, &rows, &charts))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(rep::render(&a.title, &a.eval, &rows, a.elapsed_s, &links))
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
