//! `sweep` on a slice of MNIST (`.deps/mnist`, from `scripts/fetch_deps.sh`) with tiny MLPs:
//! the folder it writes, key-path errors, the same table whatever `--jobs`, a killed sweep
//! continued without redoing finished runs, and the weak-teacher warning of `train` and
//! `sweep`.

mod data_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, StringArray};
use data_support::{fsl, pixel_data, write_parquet, Rng};
use distill_tests::paths::repo_root;
use student_trainer::config::RunConfig;
use student_trainer::metrics::Summary;
use student_trainer::sweep::{self, SweepOptions};
use trainer_eval::teacher::{Baseline, NO_BASELINE, WEAK_TEACHER};

const BIN: &str = env!("CARGO_BIN_EXE_student-trainer");

/// The first `n` images of an MNIST IDX pair, as 784 floats in [0, 1] and labels.
fn mnist(images: &str, labels: &str, n: usize) -> (Vec<f32>, Vec<i64>) {
    let dir = repo_root().join(".deps/mnist");
    let read = |f: &str| {
        std::fs::read(dir.join(f))
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch_deps.sh", dir.join(f).display()))
    };
    let img = read(images);
    let lab = read(labels);
    assert!(
        img.len() >= 16 + n * 784 && lab.len() >= 8 + n,
        "short IDX files"
    );
    let x = img[16..16 + n * 784]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    let y = lab[8..8 + n].iter().map(|&b| b as i64).collect();
    (x, y)
}

/// Teacher logits: `strong` puts the label first (plus noise); weak ones point at a wrong
/// class on most rows, with near-uniform values.
fn teacher_logits(labels: &[i64], strong: bool, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(labels.len() * 10);
    for (r, &l) in labels.iter().enumerate() {
        let top = if strong || r % 4 == 0 {
            l as usize
        } else {
            (l as usize + 1 + r % 9) % 10
        };
        for k in 0..10 {
            let noise = rng.next_f32() * 0.3;
            let v = if strong {
                if k == top {
                    4.0
                } else {
                    0.0
                }
            } else if k == top {
                0.2
            } else {
                0.0
            };
            out.push(v + noise * if strong { 1.0 } else { 0.1 });
        }
    }
    out
}

fn write_set(path: &Path, x: Vec<f32>, y: Vec<i64>, strong: bool, seed: u64) {
    let ids: Vec<String> = (0..y.len()).map(|i| format!("r{i}")).collect();
    let logits = teacher_logits(&y, strong, seed);
    write_parquet(
        path,
        vec![
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("pixels", fsl(x, 784)),
            ("label", Arc::new(Int64Array::from(y)) as ArrayRef),
            ("logits", fsl(logits, 10)),
        ],
    );
}

/// Train and eval slices of MNIST with a strong or a weak teacher; returns the config path.
fn fixture(dir: &Path, train_rows: usize, strong: bool, hidden: usize, epochs: usize) -> PathBuf {
    let (x, y) = mnist(
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        train_rows,
    );
    let train = dir.join("train.parquet");
    write_set(&train, x, y, strong, 1);
    let (x, y) = mnist("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 400);
    let eval = dir.join("eval.parquet");
    write_set(&eval, x, y, strong, 2);
    let cfg = dir.join("base.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
{data}
[student]
arch = "mlp"
hidden = [{hidden}]

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 4.0

[[loss]]
kind = "ce"
weight = 0.5

[train]
epochs = {epochs}
batch_size = 64
lr = 0.003
seed = 0
"#,
            data = pixel_data(&train, &eval)
        ),
    )
    .expect("write config");
    cfg
}

fn options(cfg: &Path, out: &Path, grid: &[&str], seeds: &[u64], jobs: usize) -> SweepOptions {
    SweepOptions {
        config: cfg.to_path_buf(),
        grid: grid.iter().map(|s| s.to_string()).collect(),
        seeds: Some(seeds.to_vec()),
        jobs: Some(jobs),
        out: Some(out.to_path_buf()),
        quiet: true,
        ..SweepOptions::default()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn results(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("result.json"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_grid_writes_the_sweep_folder_with_scratch_and_the_best_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = fixture(dir.path(), 1200, true, 16, 2);
    let out = dir.path().join("sweep");
    let grid = ["loss.kd.temperature=[1, 4]", "loss[1].weight=[0.1, 0.5]"];
    let o = sweep::run(&options(&cfg, &out, &grid, &[0, 1], 2)).expect("sweep runs");
    let s = &o.summary;
    assert_eq!(s.grid_points, 4);
    assert_eq!(
        s.runs_planned,
        2 + 4 * 2,
        "scratch per seed, then 4 points × 2 seeds"
    );
    assert!(s.complete);
    assert_eq!(s.data_loads, 1, "one data load for every run");
    assert_eq!(results(&out).len(), 10);
    assert_eq!(s.rows.len(), 5);
    assert_eq!(s.rows[0].kind, "scratch");
    assert!(s.rows.iter().all(|r| r.runs == 2 && r.errors.n == 2));
    let teacher = s.teacher.as_ref().expect("teacher errors");
    assert_eq!(
        teacher.errors, 0,
        "the strong teacher puts every label first"
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    for f in [
        "table.md",
        "report.md",
        "summary.json",
        "sweep.png",
        "best.toml",
        "sweep.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let table = read(&out.join("table.md"));
    assert!(
        table.contains("`loss.kd.temperature`") && table.contains(" ± "),
        "{table}"
    );
    // best.toml is a config `train` accepts, holding the best row's values.
    let best = s.best.as_ref().expect("a best setting");
    let bc = RunConfig::load(&out.join("best.toml")).expect("best.toml loads");
    let row = s
        .rows
        .iter()
        .find(|r| r.label == best.label)
        .expect("best row");
    assert!(s.rows.iter().all(|r| r.errors.mean >= row.errors.mean));
    if let Some(p) = row.point {
        let want_t = [1.0, 4.0][p / 2];
        assert_eq!(student_trainer::train::kd_temperature(&bc.losses), want_t);
    }
    assert_eq!(bc.train.seed, 0, "the base config's seed");
}

#[test]
fn bad_key_paths_name_the_path_and_what_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = fixture(dir.path(), 200, true, 8, 1);
    let cases = [
        ("loss.kd.temprature=[1, 2]", "temperature"),
        ("loss.feature.weight=[1]", "[0] kd, [1] ce"),
        ("loss[2].weight=[1]", "has 2 entries"),
        ("train.optimizr.momentum=[0.9]", "it has: "),
        ("trian.lr=[0.1]", "it has: data, loss, student, train"),
        ("train.lrr=[0.1]", "not a setting the config knows"),
    ];
    for (spec, want) in cases {
        let out = dir.path().join("never");
        let e = sweep::run(&options(&cfg, &out, &[spec], &[0], 1))
            .expect_err(spec)
            .to_string();
        let key = spec.split('=').next().unwrap_or_default();
        assert!(e.contains(key) && e.contains(want), "{spec}: {e}");
        assert!(
            !out.join("runs").exists(),
            "{spec}: trained despite the bad key"
        );
    }
}

#[test]
fn the_same_seeds_give_the_same_table_whatever_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = fixture(dir.path(), 800, true, 16, 2);
    let grid = ["loss.kd.temperature=[2, 8]"];
    let a = dir.path().join("jobs1");
    let b = dir.path().join("jobs2");
    sweep::run(&options(&cfg, &a, &grid, &[0, 1], 1)).expect("jobs 1");
    sweep::run(&options(&cfg, &b, &grid, &[0, 1], 2)).expect("jobs 2");
    let (ta, tb) = (read(&a.join("table.md")), read(&b.join("table.md")));
    assert_eq!(ta, tb, "--jobs changed the results");
    for (ra, rb) in results(&a).iter().zip(results(&b)) {
        let sa: serde_json::Value = serde_json::from_str(&read(ra)).expect("json");
        let sb: serde_json::Value = serde_json::from_str(&read(&rb)).expect("json");
        assert_eq!(
            sa["summary"]["eval"]["ce"],
            sb["summary"]["eval"]["ce"],
            "{}",
            ra.display()
        );
    }
}

fn sweep_cmd(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "sweep",
        "--config",
        &cfg.display().to_string(),
        "--grid",
        "loss.kd.temperature=[1, 2, 4, 8]",
        "--grid",
        "loss.ce.weight=[0.1, 0.5]",
        "--seeds",
        "0,1",
        "--jobs",
        "1",
        "--out",
        &out.display().to_string(),
    ]);
    c
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_killed_sweep_continues_without_redoing_finished_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = fixture(dir.path(), 1500, true, 48, 3);
    let full = dir.path().join("full");
    ok(
        sweep_cmd(&cfg, &full).output().expect("spawn"),
        "uninterrupted sweep",
    );
    let total = results(&full).len();
    assert_eq!(total, 2 + 8 * 2);

    let killed = dir.path().join("killed");
    let mut child = sweep_cmd(&cfg, &killed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while results(&killed).len() < 3 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Mid-run if we can: the next run has started training by now.
    std::thread::sleep(Duration::from_millis(60));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before: Vec<(PathBuf, String, std::time::SystemTime)> = results(&killed)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .expect("mtime");
            (p.clone(), read(&p), m)
        })
        .collect();
    assert!(
        before.len() >= 3 && before.len() < total,
        "the kill should land mid-sweep ({} of {total} finished)",
        before.len()
    );

    let log = ok(
        sweep_cmd(&cfg, &killed).output().expect("spawn"),
        "continued sweep",
    );
    assert!(
        log.contains(&format!(
            "{} of {total} runs already finished",
            before.len()
        )),
        "{log}"
    );
    for (p, text, mtime) in &before {
        let m = std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(*mtime, m, "{} was redone", p.display());
        assert_eq!(*text, read(p));
    }
    let summary: serde_json::Value =
        serde_json::from_str(&read(&killed.join("summary.json"))).expect("summary");
    assert_eq!(
        summary["trained_this_session"].as_u64(),
        Some((total - before.len()) as u64)
    );
    assert_eq!(
        read(&full.join("table.md")),
        read(&killed.join("table.md")),
        "the continued sweep differs from the uninterrupted one"
    );
}

#[test]
fn a_weak_teacher_is_reported_by_train_and_sweep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = fixture(dir.path(), 1000, false, 16, 2);

    let train = |cfg: &Path, run: &Path| {
        ok(
            Command::new(BIN)
                .args([
                    "train",
                    "--config",
                    &cfg.display().to_string(),
                    "--out",
                    &run.display().to_string(),
                    "--quiet",
                    "--no-onnx",
                ])
                .output()
                .expect("spawn"),
            "train",
        )
    };
    let summary = |run: &Path| -> Summary {
        serde_json::from_str(&read(&run.join("summary.json"))).expect("summary")
    };

    // `train` alone: a distilled run is no scratch student, so there is no verdict (its own
    // errors, whatever they are, would answer another question), and it says so.
    let run = dir.path().join("run");
    let log = train(&cfg, &run);
    assert!(log.contains(&format!("note: {NO_BASELINE}")), "{log}");
    assert!(!log.contains(WEAK_TEACHER), "{log}");
    let s = summary(&run);
    let check = s
        .teacher_check
        .as_ref()
        .expect("teacher check in summary.json");
    assert!(
        check.teacher.errors > 200,
        "the weak teacher misses most of 400 rows: {check:?}"
    );
    assert_eq!(check.clearly_better, None, "{check:?}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert!(!read(&run.join("summary.json")).contains("clearly_better"));

    // A scratch run named as `data.scratch_run`: the verdict is against its errors.
    let base = read(&cfg);
    let scratch_cfg = dir.path().join("scratch.toml");
    let kd = "[[loss]]\nkind = \"kd\"\nteacher = \"logits\"\ntemperature = 4.0\n\n";
    assert!(base.contains(kd), "{base}");
    std::fs::write(&scratch_cfg, base.replace(kd, "")).expect("write");
    let scratch = dir.path().join("scratch");
    train(&scratch_cfg, &scratch);
    let scratch_errors = summary(&scratch).eval.expect("scratch eval").errors;
    let named_cfg = dir.path().join("named.toml");
    let named = base.replace(
        "label = \"label\"\n",
        &format!(
            "label = \"label\"\nscratch_run = \"{}\"\n",
            scratch.display()
        ),
    );
    std::fs::write(&named_cfg, named).expect("write");
    let named_run = dir.path().join("named");
    let log = train(&named_cfg, &named_run);
    assert!(log.contains(&format!("warning: {WEAK_TEACHER}")), "{log}");
    let s = summary(&named_run);
    let check = s.teacher_check.expect("teacher check");
    assert_eq!(check.baseline, Baseline::Scratch);
    assert_eq!(check.clearly_better, Some(false));
    assert_eq!(check.student_errors, Some(scratch_errors as f64));
    assert_eq!(
        check.baseline_run.as_deref(),
        Some(&*scratch.display().to_string())
    );
    assert!(
        s.warnings[0].contains(&scratch_errors.to_string()),
        "{:?}",
        s.warnings
    );

    // A distilled run is refused as the baseline: no verdict, and the note says why.
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(
        &bad_cfg,
        base.replace(
            "label = \"label\"\n",
            &format!("label = \"label\"\nscratch_run = \"{}\"\n", run.display()),
        ),
    )
    .expect("write");
    let bad_run = dir.path().join("bad");
    let log = train(&bad_cfg, &bad_run);
    assert!(log.contains("has teacher terms"), "{log}");
    assert_eq!(
        summary(&bad_run)
            .teacher_check
            .expect("check")
            .clearly_better,
        None
    );

    // `sweep`: against the scratch baseline, in the log, summary.json and report.md.
    let out = dir.path().join("sweep");
    let mut opts = options(&cfg, &out, &["loss.kd.temperature=[2]"], &[0], 1);
    opts.quiet = false;
    let o = sweep::run(&opts).expect("sweep");
    assert_eq!(o.summary.warnings.len(), 1, "{:?}", o.summary.warnings);
    let w = &o.summary.warnings[0];
    let scratch = &o.summary.rows[0];
    assert!(
        w.starts_with(WEAK_TEACHER) && w.contains("scratch student"),
        "{w}"
    );
    assert!(w.contains(&format!("{:.1}", scratch.errors.mean)), "{w}");
    let report = read(&out.join("report.md"));
    assert!(report.contains(WEAK_TEACHER), "{report}");
    let json = read(&out.join("summary.json"));
    assert!(json.contains(WEAK_TEACHER));
}
