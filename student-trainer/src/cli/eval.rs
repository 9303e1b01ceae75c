//! `student-trainer eval`: scores a student (ONNX or safetensors) on a labelled set.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clap::Args;
use trainer_core::model::Student;
use trainer_data::EvalData;

use crate::config::RunConfig;
use crate::metrics::{score_logits, EvalMetrics};
use crate::train::evaluate;

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
    let (logits, classes, rows_per_s) = if is_onnx(&a.model) {
        onnx_scores(a, &data, &input)?
    } else {
        let cfg = cfg.ok_or_else(|| {
            anyhow::anyhow!("a safetensors model needs --config (the run config naming the student architecture)")
        })?;
        let (logits, classes) = safetensors_logits(a, &cfg, &data)?;
        (logits, classes, None)
    };
    if let Some((col, trainer_data::Target::Dense(m))) = &data.teacher {
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

/// The ONNX model's logits and class count on `data`, and its median rows/s over
/// `--timing-rounds` extra passes (when asked).
fn onnx_scores(
    a: &EvalArgs,
    data: &EvalData,
    input: &str,
) -> anyhow::Result<(Vec<f32>, usize, Option<f64>)> {
    let rows = data.rows();
    let dim = data.input.cols;
    let mut clf = trainer_eval::OnnxClassifier::load(&a.model, a.ort_lib.as_deref())?;
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
    let rows_per_s = secs.get(secs.len() / 2).map(|s| rows as f64 / s.max(1e-9));
    anyhow::ensure!(
        rows > 0 && logits.len() % rows == 0,
        "model {} returned {} logits for {rows} rows",
        a.model.display(),
        logits.len()
    );
    let classes = logits.len() / rows;
    Ok((logits, classes, rows_per_s))
}

/// A safetensors student, rebuilt from the run config's architecture, and its logits and
/// class count on `data`.
fn safetensors_logits(
    a: &EvalArgs,
    cfg: &RunConfig,
    data: &EvalData,
) -> anyhow::Result<(Vec<f32>, usize)> {
    let dim = data.input.cols;
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
    Ok((
        evaluate::student_logits(&student, &data.input.data, dim, a.batch_rows)?,
        classes,
    ))
}

/// Logits of `rows` rows of width `dim` through an ONNX model, `batch_rows` at a time.
fn onnx_logits(
    clf: &mut trainer_eval::OnnxClassifier,
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

/// Runs `eval` and prints the metrics (a line, or JSON).
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let m = eval(&a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!("{}", eval_line(&m));
    }
    Ok(())
}
