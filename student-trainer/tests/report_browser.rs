//! `student-trainer report --html` checked in a real headless browser (Debian's `chromium`,
//! installed by `scripts/fetch_browser.sh`, which `make test` runs): the page opens from disk
//! with the network unreachable, raises no script error or Content-Security-Policy
//! violation, and displays every image (complete, non-zero natural size). A screenshot of
//! the page is left in the test's target tmp dir (`report-browser/REPORT.png`) for a person.

mod data_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use data_support::{kd_config, write_config, write_sets};
use student_trainer::cli::{report, ReportArgs};
use student_trainer::train::{run, RunOutcome, TrainOptions};

fn ort_lib() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.deps/onnxruntime/libonnxruntime.so.1.31.1")
        })
}

fn chromium() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&bin).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "the browser test needs Debian's chromium ({bin:?} does not run): install it with \
         scripts/fetch_browser.sh (make test does), or point CHROMIUM at a Chromium binary"
    );
    bin
}

/// Runs headless Chromium on `page` with `args`; the network is unreachable (every host
/// resolves to nothing) and the profile is a fresh folder.
fn headless(bin: &str, profile: &Path, page: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn train_run(dir: &Path, name: &str, body: &str) -> PathBuf {
    let cfg = write_config(dir, &format!("{name}.toml"), body);
    let out = dir.join(name);
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(out.clone()),
        quiet: true,
        export_onnx: true,
        plot: true,
        ..Default::default()
    };
    let RunOutcome::Finished(_) = run(&o).expect("train") else {
        panic!("run {name} did not finish")
    };
    out
}

/// Reads the probe's JSON out of the dumped DOM (text content is HTML-escaped there).
fn probe_json(dom: &str) -> serde_json::Value {
    let start = dom
        .find("<pre id=\"probe\">")
        .expect("probe ran (page loaded)")
        + 16;
    let end = start + dom[start..].find("</pre>").expect("probe end");
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe JSON {text:?}: {e}"))
}

/// Inserted before everything else in `<head>` (so before the page's CSP, which would block
/// it): records script errors and CSP violations, and on load writes every image's state.
const PROBE: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || '?')), true);
document.addEventListener('securitypolicyviolation', e => window.__errors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
  const p = document.createElement('pre');
  p.id = 'probe';
  p.textContent = JSON.stringify({errors: window.__errors, images: imgs, title: document.title, tables: document.querySelectorAll('table tr').length});
  document.body.appendChild(p);
});
</script>"#;

#[test]
fn html_report_opens_offline_in_chromium_and_shows_every_image() {
    let bin = chromium();
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 600, 200);
    let kd = |t: &str| kd_config(&train, &eval, 3, "").replace("temperature = 4.0", t);
    let scratch = kd_config(&train, &eval, 3, "").replace(
        "[[loss]]\nkind = \"kd\"\nteacher = \"logits\"\ntemperature = 4.0\nweight = 1.0\n",
        "",
    );
    assert!(
        !scratch.contains("kind = \"kd\""),
        "scratch config has no kd term"
    );
    let runs = [
        ("scratch", train_run(dir.path(), "scratch", &scratch)),
        (
            "kd T 2",
            train_run(dir.path(), "kd2", &kd("temperature = 2.0")),
        ),
        (
            "kd T 4",
            train_run(dir.path(), "kd4", &kd("temperature = 4.0")),
        ),
    ];
    for (_, r) in &runs {
        let steps = std::fs::read_to_string(r.join("steps.jsonl")).expect("steps.jsonl");
        // 600 rows / 32 per batch = 19 steps an epoch: windows of 10 and 9, for 3 epochs.
        assert_eq!(steps.lines().count(), 6, "{steps}");
    }
    let report_dir = dir.path().join("report");
    std::fs::create_dir_all(&report_dir).expect("mkdir");
    let html = report_dir.join("REPORT.html");
    let md = report(&ReportArgs {
        title: "browser <test> & report".into(),
        runs: runs
            .iter()
            .map(|(n, d)| format!("{n}={}", d.display()))
            .collect(),
        eval: eval.display().to_string(),
        teacher_column: Some("logits".into()),
        temperature: 4.0,
        elapsed_s: Some(12.0),
        ort_lib: Some(ort_lib()),
        out: Some(report_dir.join("REPORT.md")),
        html: Some(html.clone()),
        charts: Some(report_dir.join("charts")),
        references: vec!["kd T 4=5".into(), "scratch=9".into()],
        reference_source: "made-up test numbers".into(),
    })
    .expect("report");
    // Three comparison charts (curves, trade-off, and the sweep: kd at two temperatures).
    for f in [
        "compare-epochs.png",
        "compare-tradeoff.png",
        "compare-sweep.png",
    ] {
        assert!(report_dir.join("charts").join(f).is_file(), "{f} missing");
        assert!(md.contains(&format!("](charts/{f})")), "{md}");
    }
    assert!(
        md.contains("| reference errors |") && md.contains("| 5 |"),
        "{md}"
    );
    let page = std::fs::read_to_string(&html).expect("REPORT.html");
    assert!(
        page.contains("browser &lt;test&gt; &amp; report"),
        "title is escaped"
    );
    for bad in ["src=\"http", "href=\"http", "src=\"//", "<link", "<script"] {
        assert!(
            !page.contains(bad),
            "page references {bad:?}: not self-contained"
        );
    }

    let probe_page = report_dir.join("probe.html");
    std::fs::write(
        &probe_page,
        page.replacen("<head>", &format!("<head>\n{PROBE}"), 1),
    )
    .expect("probe page");
    let out = headless(
        &bin,
        &dir.path().join("profile-a"),
        &probe_page,
        &["--dump-dom"],
    );
    let v = probe_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["errors"], serde_json::json!([]), "page errors: {v}");
    assert_eq!(v["title"], "browser <test> & report");
    assert!(v["tables"].as_u64().unwrap_or(0) >= 4, "table rows: {v}");
    let images = v["images"].as_array().expect("images");
    // 3 comparison charts + one curves.png per run.
    assert_eq!(images.len(), 3 + runs.len(), "{v}");
    for i in images {
        assert_eq!(i["complete"], true, "image not loaded: {i}");
        assert!(
            i["w"].as_u64().unwrap_or(0) >= 1000 && i["h"].as_u64().unwrap_or(0) >= 500,
            "image not displayed at its size: {i}"
        );
    }

    // A screenshot of the unmodified page, for a person to look at.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&shots).expect("mkdir");
    let _ = std::fs::remove_file(shots.join("REPORT.png"));
    std::fs::copy(&html, shots.join("REPORT.html")).expect("keep page");
    headless(
        &bin,
        &dir.path().join("profile-b"),
        &shots.join("REPORT.html"),
        &[
            "--window-size=1500,5200",
            &format!("--screenshot={}", shots.join("REPORT.png").display()),
        ],
    );
    let shot = std::fs::read(shots.join("REPORT.png")).expect("screenshot written");
    assert!(shot.len() > 50_000, "screenshot is {} bytes", shot.len());
}
