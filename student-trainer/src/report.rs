//! The `report` subcommand's outputs: a Markdown table comparing finished runs (each run's
//! summary plus its exported student re-scored on one eval set, so all rows use the same
//! data), the comparison charts, and a self-contained HTML page holding both (charts as
//! `data:` URIs, no script, a Content-Security-Policy that forbids any network fetch).

use std::path::PathBuf;

use base64::Engine as _;

use crate::config::{LossTerm, RunConfig};
use crate::metrics::{EpochMetrics, EvalMetrics, Summary};
use crate::plot::compare::{draw_epoch_comparison, draw_sweep, draw_tradeoff, RunPoint};
use crate::plot::curves::student_desc;
use crate::plot::PlotError;

/// One row of the report.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// Display name of the run.
    pub name: String,
    /// The run folder.
    pub dir: PathBuf,
    /// The run's `summary.json`.
    pub summary: Summary,
    /// The run's `metrics.jsonl`.
    pub history: Vec<EpochMetrics>,
    /// The run's `config.toml`, parsed and as written.
    pub config: RunConfig,
    /// The text of `config.toml`.
    pub config_text: String,
    /// The run's `curves.png`, when it has one.
    pub curves_png: Option<Vec<u8>>,
    /// The exported model re-scored on the report's eval set.
    pub eval: EvalMetrics,
    /// Which file was scored (`student.onnx` or `student.safetensors`).
    pub scored: String,
    /// A reference test-error count for this run (`--reference`), e.g. a paper's.
    pub reference: Option<f64>,
}

/// One chart of the report.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name under `--charts`.
    pub file: &'static str,
    /// Heading.
    pub title: String,
    /// What it shows (printed under it).
    pub caption: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// Everything the HTML page shows besides the rows.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// Title of the report.
    pub title: String,
    /// The eval set every row was scored on.
    pub eval_data: String,
    /// Total elapsed seconds (`--elapsed-s`).
    pub elapsed_s: Option<f64>,
    /// Where the reference numbers come from (`--reference-source`).
    pub reference_source: String,
    /// The eval set's label-store manifest, pretty JSON of its teacher fingerprint, when the
    /// eval set is a label-store dataset.
    pub teacher_fingerprint: Option<String>,
    /// This machine: CPU, cores, memory, OS.
    pub machine: String,
    /// When the report was made (UTC).
    pub generated: String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// The table's columns, shared by the Markdown and the HTML table.
fn table(rows: &[ReportRow]) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let with_ref = rows.iter().any(|r| r.reference.is_some());
    let mut head = vec![
        "run",
        "params",
        "epochs",
        "test errors",
        "accuracy",
        "agreement with teacher",
        "eval KD",
        "train samples/s",
        "wall time",
        "ONNX Runtime rows/s",
        "scored",
    ];
    if with_ref {
        head.push("reference errors");
    }
    let body = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.name.clone(),
                r.summary.param_count.to_string(),
                format!(
                    "{}{}",
                    r.summary.epochs,
                    if r.summary.stopped_early {
                        " (early stop)"
                    } else {
                        ""
                    }
                ),
                format!("{} / {}", r.eval.errors, r.eval.rows),
                pct(Some(r.eval.accuracy)),
                pct(r.eval.agreement),
                r.eval.kd.map_or("–".into(), |k| format!("{k:.4}")),
                format!("{:.0}", r.summary.samples_per_s),
                format!("{:.0} s", r.summary.wall_s),
                r.eval
                    .infer_rows_per_s
                    .map_or("–".into(), |v| format!("{v:.0}")),
                format!("`{}`", r.scored),
            ];
            if with_ref {
                c.push(r.reference.map_or("–".into(), |v| format!("{v:.0}")));
            }
            c
        })
        .collect();
    (head, body)
}

const SCORING_NOTE: &str = "Every row is re-scored from the run's exported model; ONNX Runtime \
     rows/s is the median of 5 timed passes over the eval set in batches of 1024 rows on this \
     machine.";

/// Renders the Markdown report; `charts` are (link, title) pairs listed under the table.
pub fn render(
    title: &str,
    eval_data: &str,
    rows: &[ReportRow],
    elapsed_s: Option<f64>,
    charts: &[(String, String)],
) -> String {
    let mut s = format!("# {title}\n\n");
    s.push_str(&format!("Eval set: `{eval_data}`. {SCORING_NOTE}\n\n"));
    let (head, body) = table(rows);
    s.push_str(&format!("| {} |\n", head.join(" | ")));
    let align: Vec<&str> = head
        .iter()
        .map(|h| {
            if matches!(*h, "run" | "scored") {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    s.push_str(&format!("|{}|\n", align.join("|")));
    for r in body {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    let warned: Vec<(&str, &String)> = rows
        .iter()
        .flat_map(|r| r.summary.warnings.iter().map(move |w| (r.name.as_str(), w)))
        .collect();
    if !warned.is_empty() {
        s.push_str("\n**Warnings** (from the runs' `summary.json`):\n\n");
        for (name, w) in warned {
            s.push_str(&format!("- {name}: {w}\n"));
        }
    }
    if let Some(e) = elapsed_s {
        s.push_str(&format!("\nTotal elapsed: {e:.0} s.\n"));
    }
    if !charts.is_empty() {
        s.push('\n');
        for (link, t) in charts {
            s.push_str(&format!("![{t}]({link})\n\n"));
        }
    }
    s
}

/// Whether `losses` is plain KD: at least one kd term, otherwise only hard-label ce.
fn plain_kd(losses: &[LossTerm]) -> bool {
    losses.iter().any(|t| matches!(t, LossTerm::Kd { .. }))
        && losses
            .iter()
            .all(|t| matches!(t, LossTerm::Kd { .. } | LossTerm::Ce { .. }))
}

/// Draws the report's charts: the runs' curves on shared axes, errors against speed and
/// size, and the temperature sweep when the runs hold one.
/// `reference` labels the `--reference` numbers in legends.
pub fn charts(title: &str, rows: &[ReportRow], reference: &str) -> Result<Vec<Chart>, PlotError> {
    let points: Vec<RunPoint> = rows
        .iter()
        .map(|r| RunPoint {
            name: &r.name,
            history: &r.history,
            errors: r.eval.errors,
            rows: r.eval.rows,
            rows_per_s: r.eval.infer_rows_per_s,
            params: r.summary.param_count,
            student: student_desc(&r.config.student),
            kd_temperature: plain_kd(&r.config.losses)
                .then(|| crate::train::kd_temperature(&r.config.losses)),
            scratch: r
                .config
                .losses
                .iter()
                .all(|t| matches!(t, LossTerm::Ce { .. })),
            reference: r.reference,
        })
        .collect();
    let mut out = vec![
        Chart {
            file: "compare-epochs.png",
            title: "Training curves on shared axes".into(),
            caption: "Left: each run's held-out error rate (% of eval rows misclassified) after \
                      every epoch, from its own training-time eval. Right: disagreement with the \
                      teacher (100% − top-1 agreement) per epoch, for runs whose eval set holds \
                      teacher logits. Log scales when the values span 30x or more."
                .into(),
            png: draw_epoch_comparison(title, &points)?,
        },
        Chart {
            file: "compare-tradeoff.png",
            title: "Accuracy against size and speed".into(),
            caption: "Left: test errors of each run's exported model re-scored on the report's \
                      eval set, annotated with its parameter count and ONNX Runtime throughput. \
                      Right: the same test errors against ONNX Runtime rows/s on this machine \
                      (log scale when the speeds span 30x), coloured by parameter count; numbers \
                      refer to the bars."
                .into(),
            png: draw_tradeoff(title, &points, reference)?,
        },
    ];
    if let Some(png) = draw_sweep(title, &points, reference)? {
        out.push(Chart {
            file: "compare-sweep.png",
            title: "Temperature sweep".into(),
            caption: "Test errors of plain-KD students (kd, plus an optional hard-label ce \
                      term) against the KD temperature T, one line per student architecture; \
                      dashed lines are the same architecture trained from scratch; black \
                      crosses and thin dashed lines are the reference numbers given with \
                      --reference."
                .into(),
            png,
        });
    }
    Ok(out)
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;margin:0 auto;\
max-width:1500px;padding:24px 32px;color:#1a1a1a;background:#fff;line-height:1.45}\
h1{font-size:1.7em;margin:.2em 0 .4em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;\
padding-bottom:.2em}h3{margin:1.2em 0 .4em}.meta{color:#555}table{border-collapse:collapse;\
margin:.6em 0;font-size:.92em}th,td{border:1px solid #d0d0d0;padding:4px 9px}\
th{background:#f2f4f7;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr:nth-child(even) td{background:#fafbfc}figure{margin:1em 0 2em}figure img{max-width:100%;\
height:auto;border:1px solid #e3e3e3}figcaption{color:#444;max-width:75em;margin-top:.3em}\
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:10px;overflow:auto;font-size:.88em}\
details{margin:.5em 0 1em}summary{cursor:pointer;font-weight:bold}code{font-size:.95em}";

/// The document head and the title block: generated when, where, and the pipeline's time.
fn html_head(h: &mut String, ctx: &ReportContext) {
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Self-contained by construction: nothing may be fetched, only inline styles and data: images.
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(&format!(
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&ctx.title)
    ));
    h.push_str(&format!("<h1>{}</h1>\n", esc(&ctx.title)));
    let mut meta = format!(
        "Generated {} on {}.",
        esc(&ctx.generated),
        esc(&ctx.machine)
    );
    if let Some(e) = ctx.elapsed_s {
        meta.push_str(&format!(" Total wall time of the pipeline: {e:.0} s."));
    }
    h.push_str(&format!("<p class=\"meta\">{meta}</p>\n"));
}

/// The results table, numbers right-aligned, and where the reference errors come from.
fn html_results(h: &mut String, ctx: &ReportContext, rows: &[ReportRow]) {
    h.push_str(&format!(
        "<h2>Results</h2>\n<p>Eval set: <code>{}</code>. {}</p>\n",
        esc(&ctx.eval_data),
        esc(SCORING_NOTE)
    ));
    let (head, body) = table(rows);
    h.push_str("<table>\n<tr>");
    for c in &head {
        h.push_str(&format!("<th>{}</th>", esc(c)));
    }
    h.push_str("</tr>\n");
    for r in &body {
        h.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let c = c.trim_matches('`');
            let class = if i == 0 || head[i] == "scored" {
                ""
            } else {
                " class=\"n\""
            };
            h.push_str(&format!("<td{class}>{}</td>", esc(c)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if rows.iter().any(|r| r.reference.is_some()) {
        h.push_str(&format!(
            "<p>Reference errors: {}.</p>\n",
            esc(&ctx.reference_source)
        ));
    }
}

/// The charts, each a figure with its caption, and the teacher's fingerprint.
fn html_charts_and_teacher(h: &mut String, ctx: &ReportContext, charts: &[Chart]) {
    h.push_str("<h2>Charts</h2>\n");
    for c in charts {
        h.push_str(&format!(
            "<figure>\n<h3>{}</h3>\n<img src=\"{}\" alt=\"{}\">\n<figcaption>{}</figcaption>\n</figure>\n",
            esc(&c.title),
            data_uri(&c.png),
            esc(&c.title),
            esc(&c.caption)
        ));
    }
    h.push_str("<h2>Teacher</h2>\n");
    match &ctx.teacher_fingerprint {
        Some(f) => h.push_str(&format!(
            "<p>Fingerprint of the teacher that labelled the eval set (from its label-store \
             manifest):</p>\n<pre>{}</pre>\n",
            esc(f)
        )),
        None => h.push_str(
            "<p>The eval set is not a label-store dataset (no <code>_manifest.json</code>), so \
             it carries no teacher fingerprint.</p>\n",
        ),
    }
}

/// One run's section: its folder and numbers, its curves and its config (curves folded open
/// when there are few runs).
fn html_run(h: &mut String, i: usize, r: &ReportRow, open: bool) {
    let s = &r.summary;
    h.push_str(&format!(
        "<h3>#{} {}</h3>\n<p>Folder <code>{}</code>: {}, {} parameters, {} training rows, \
         {} epochs{} (exported weights of epoch {}), {:.0} train samples/s, wall time \
         {:.0} s.</p>\n",
        i + 1,
        esc(&r.name),
        esc(&r.dir.display().to_string()),
        esc(&student_desc(&r.config.student)),
        s.param_count,
        s.train_rows,
        s.epochs,
        if s.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        s.exported_epoch,
        s.samples_per_s,
        s.wall_s,
    ));
    let open = if open { " open" } else { "" };
    if let Some(png) = &r.curves_png {
        h.push_str(&format!(
            "<details{open}><summary>curves.png</summary>\n<img src=\"{}\" alt=\"training \
             curves of {}\">\n</details>\n",
            data_uri(png),
            esc(&r.name)
        ));
    }
    h.push_str(&format!(
        "<details><summary>config.toml (run settings)</summary>\n<pre>{}</pre>\n</details>\n",
        esc(&r.config_text)
    ));
}

/// Renders the self-contained HTML report.
pub fn render_html(ctx: &ReportContext, rows: &[ReportRow], charts: &[Chart]) -> String {
    let mut h = String::new();
    html_head(&mut h, ctx);
    html_results(&mut h, ctx, rows);
    html_charts_and_teacher(&mut h, ctx, charts);
    h.push_str("<h2>Runs</h2>\n");
    for (i, r) in rows.iter().enumerate() {
        html_run(&mut h, i, r, rows.len() <= 3);
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// This machine in one line: CPU model, cores, memory, OS (from `/proc` and `/etc`).
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!(", {:.0} GiB memory", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    format!("{cpu}, {cores} cores{mem}, {os}, CPU only")
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_and_escaping() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
        assert_eq!(utc(1_796_083_200), "2026-12-01 00:00 UTC");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
