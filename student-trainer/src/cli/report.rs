//! `student-trainer report`: finished runs compared (Markdown table, charts, HTML), each
//! re-scored on one eval set.

use std::path::{Path, PathBuf};

use clap::Args;

use super::eval::{eval, EvalArgs};
use crate::config::RunConfig;
use crate::metrics::Summary;
use crate::report::{self as rep, Chart, ReportRow};

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
    let refs = references(&a.references)?;
    let rows = a
        .runs
        .iter()
        .map(|spec| load_run(a, spec, &refs))
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_references(&refs, &rows)?;
    let charts = if a.html.is_some() || a.charts.is_some() {
        rep::charts(&a.title, &rows, &a.reference_source)?
    } else {
        Vec::new()
    };
    let links = match &a.charts {
        Some(dir) => write_charts(dir, a.out.as_deref(), &charts)?,
        None => Vec::new(),
    };
    if let Some(p) = &a.html {
        write_html(a, p, &rows, &charts)?;
    }
    Ok(rep::render(&a.title, &a.eval, &rows, a.elapsed_s, &links))
}

/// One `--run NAME=RUN_FOLDER`: its summary, config, curves, and its student scored on
/// `--eval`.
fn load_run(a: &ReportArgs, spec: &str, refs: &[(String, f64)]) -> anyhow::Result<ReportRow> {
    let (name, dir) = spec
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--run {spec:?}: expected NAME=RUN_FOLDER"))?;
    let dir = PathBuf::from(dir);
    let summary = read_summary(name, &dir)?;
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
    Ok(ReportRow {
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
    })
}

/// A run folder's `summary.json` (absent until the run finishes).
fn read_summary(name: &str, dir: &Path) -> anyhow::Result<Summary> {
    let sp = dir.join("summary.json");
    let text = std::fs::read_to_string(&sp).map_err(|e| {
        anyhow::anyhow!(
            "run {name:?}: cannot read {}: {e} (is the run finished?)",
            sp.display()
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("run {name:?}: {} does not parse: {e}", sp.display()))
}

/// Every `--reference` must name a `--run`.
fn check_references(refs: &[(String, f64)], rows: &[ReportRow]) -> anyhow::Result<()> {
    if let Some((n, _)) = refs
        .iter()
        .find(|(n, _)| !rows.iter().any(|r| &r.name == n))
    {
        anyhow::bail!("--reference names run {n:?}, which no --run has");
    }
    Ok(())
}

/// Writes the charts as PNG files into `dir`; returns the Markdown links to them, relative to
/// the folder of the Markdown report `md_out` (none when they cannot be reached from there).
fn write_charts(
    dir: &Path,
    md_out: Option<&Path>,
    charts: &[Chart],
) -> anyhow::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let md_dir = md_out.and_then(|o| o.parent());
    let mut links = Vec::new();
    for c in charts {
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
    Ok(links)
}

/// Writes the self-contained HTML report to `path`, with the eval set's teacher fingerprint
/// when it is a label-store dataset.
fn write_html(
    a: &ReportArgs,
    path: &Path,
    rows: &[ReportRow],
    charts: &[Chart],
) -> anyhow::Result<()> {
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
    std::fs::write(path, rep::render_html(&ctx, rows, charts))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Runs `report`: writes `--out` and prints the Markdown.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let text = report(&a)?;
    if let Some(p) = &a.out {
        std::fs::write(p, &text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    print!("{text}");
    Ok(())
}
