//! The text evaluators (`student-trainer eval-text`, src/text_eval):
//! - Pearson, Spearman (ties), nearest centroid and the linear probe against the numpy values
//!   of `scripts/golden/text_eval.py` (`text_eval.json`);
//! - the Lee-50 and WordSim-353 parsers on the tiny files in `tests/text_eval_data/`, and
//!   malformed copies of them (errors name the file and line);
//! - bad input: unknown suite, missing model, a model without a usable output, missing flags;
//! - end to end on the real int8 all-MiniLM-L6-v2 ONNX (`scripts/fetch_text.sh`): Lee-50 and
//!   WordSim-353 against the f32 reference values, and the static floor (the teacher's own
//!   token-embedding table, mean-pooled) against numpy (`scripts/golden/text_eval_floor.py`).

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;
use student_trainer::cli::{error_text, run, Cli};
use trainer_eval::text::lee::{read_upper_triangle, LeeData};
use trainer_eval::text::metrics::{
    average_ranks, nearest_centroid_accuracy, pearson, spearman, Embeddings,
};
use trainer_eval::text::probe::{LinearProbe, ProbeConfig};
use trainer_eval::text::wordsim::WordSimData;

use distill_tests::models::foreign_model;
use distill_tests::paths::{ort_lib, repo_root};

fn golden() -> Value {
    let p = repo_root().join("scripts/golden/text_eval.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

fn labels(v: &Value) -> Vec<usize> {
    serde_json::from_value(v.clone()).unwrap()
}

fn matrix(v: &Value) -> Embeddings {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    Embeddings {
        rows: rows.len(),
        dim: rows[0].len(),
        data: rows.concat(),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/text_eval_data")
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

#[test]
fn correlations_match_numpy() {
    let g = golden();
    let c = &g["cases"]["pearson"];
    let p = pearson(&floats(&c["x"]), &floats(&c["y"])).unwrap();
    close("pearson", p, c["expected"].as_f64().unwrap(), 1e-12);
    let c = &g["cases"]["spearman_ties"];
    let x = floats(&c["x"]);
    assert_eq!(average_ranks(&x), floats(&c["ranks_x"]));
    let s = spearman(&x, &floats(&c["y"])).unwrap();
    close("spearman", s, c["expected"].as_f64().unwrap(), 1e-12);
}

#[test]
fn nearest_centroid_matches_numpy() {
    let g = golden();
    let c = &g["cases"]["centroid"];
    let acc = nearest_centroid_accuracy(
        &matrix(&c["train"]),
        &labels(&c["train_labels"]),
        &matrix(&c["test"]),
        &labels(&c["test_labels"]),
        c["classes"].as_u64().unwrap() as usize,
    )
    .unwrap();
    close(
        "centroid accuracy",
        acc,
        c["expected"].as_f64().unwrap(),
        1e-12,
    );
}

fn fit(c: &Value, epochs: usize) -> LinearProbe {
    let cfg = ProbeConfig {
        epochs,
        l2: c["l2"].as_f64().unwrap(),
        power_iterations: c["power_iterations"].as_u64().unwrap() as usize,
    };
    LinearProbe::fit(
        &matrix(&c["train"]),
        &labels(&c["train_labels"]),
        c["classes"].as_u64().unwrap() as usize,
        &cfg,
    )
    .unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn probe_steps_match_numpy_gradient_descent() {
    let g = golden();
    let c = &g["cases"]["probe"];
    let p = fit(c, c["gd_epochs"].as_u64().unwrap() as usize);
    close("step size", p.lr, c["gd_lr"].as_f64().unwrap(), 1e-10);
    let w: Vec<Vec<f64>> = serde_json::from_value(c["gd_weights"].clone()).unwrap();
    let dw = max_diff(&p.weights, &w.concat());
    assert!(dw < 1e-9, "weights differ from numpy by {dw:e}");
    let db = max_diff(&p.bias, &floats(&c["gd_bias"]));
    assert!(db < 1e-9, "biases differ from numpy by {db:e}");
    close(
        "train loss",
        p.train_loss,
        c["gd_train_loss"].as_f64().unwrap(),
        1e-10,
    );
    let probs: Vec<Vec<f64>> = serde_json::from_value(c["gd_test_probabilities"].clone()).unwrap();
    let dp = max_diff(
        &p.probabilities(&matrix(&c["test"])).unwrap(),
        &probs.concat(),
    );
    assert!(dp < 1e-6, "test probabilities differ from numpy by {dp:e}");
}

#[test]
fn probe_reaches_the_newton_optimum() {
    let g = golden();
    let c = &g["cases"]["probe"];
    // The objective is strictly convex in W (l2 > 0): enough steps reach numpy's Newton solution.
    let p = fit(c, 4000);
    let w: Vec<Vec<f64>> = serde_json::from_value(c["optimum_weights"].clone()).unwrap();
    let dw = max_diff(&p.weights, &w.concat());
    assert!(dw < 1e-6, "weights differ from the optimum by {dw:e}");
    let db = max_diff(&p.bias, &floats(&c["optimum_bias"]));
    assert!(db < 1e-6, "biases differ from the optimum by {db:e}");
    close(
        "loss",
        p.train_loss,
        c["optimum_loss"].as_f64().unwrap(),
        1e-10,
    );
    // Fewer steps stop short of it: the comparison above can fail.
    assert!(fit(c, 40).train_loss > c["optimum_loss"].as_f64().unwrap() + 1e-4);
}

#[test]
fn lee_fixture_parses_latin1_and_the_upper_triangle() {
    let lee = LeeData::load(&fixtures()).unwrap();
    assert_eq!(lee.docs.len(), 3);
    assert_eq!(lee.docs[0], "Café owners in Sydney protested.");
    assert_eq!(lee.docs[2], "Bushfires burned near Canberra.");
    assert_eq!(lee.pairs, vec![(0, 1, 0.25), (0, 2, 0.5), (1, 2, 0.75)]);
    let emb = Embeddings {
        rows: 3,
        dim: 2,
        data: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8],
    };
    // Pairs in upper-triangle order: cos(0,1) = 0, cos(0,2) = 0.6, cos(1,2) = 0.8.
    let want = pearson(&[0.0, 0.6, 0.8], &[0.25, 0.5, 0.75]).unwrap();
    close("lee pearson", lee.score(&emb).unwrap().pearson, want, 1e-6);
}

#[test]
fn wordsim_fixture_parses_and_ranks() {
    let ws = WordSimData::read(&fixtures().join("wordsim353.tsv")).unwrap();
    assert_eq!(ws.words, ["love", "sex", "tiger", "cat"]);
    assert_eq!(
        ws.pairs,
        vec![(0, 1, 6.77), (2, 3, 7.35), (2, 2, 10.0), (3, 0, 2.5)]
    );
    // Unit vectors at angles chosen so that the pair cosines rank exactly as the human scores
    // (2.5 < 6.77 < 7.35 < 10): Spearman 1; mirrored, -1.
    let at = |deg: f32| [deg.to_radians().cos(), deg.to_radians().sin()];
    let emb = |angles: [f32; 4]| Embeddings {
        rows: 4,
        dim: 2,
        data: angles.iter().flat_map(|&a| at(a)).collect(),
    };
    // love 0°, sex 40°, tiger 100°, cat 130°: love-sex 40°, tiger-cat 30°, tiger-tiger 0°,
    // cat-love 130°.
    close(
        "spearman",
        ws.score(&emb([0.0, 40.0, 100.0, 130.0])).unwrap().spearman,
        1.0,
        1e-12,
    );
    // sex at 175°: love-sex 175° ranks below cat-love 130°; the other three keep their order.
    let s = ws.score(&emb([0.0, 175.0, 100.0, 130.0])).unwrap().spearman;
    close("spearman, one pair swapped", s, 0.8, 1e-12);
}

/// Copies the fixtures into a temporary folder with `name` replaced by `text`.
fn broken(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["lee.cor", "similarities0-1.txt", "wordsim353.tsv"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join(name), text).unwrap();
    dir
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let d = broken("similarities0-1.txt", "1\t0.25\t0.5\n0\t1\tx7\n0\t0\t1\n");
    let e = LeeData::load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("similarities0-1.txt, line 2") && e.contains("\"x7\""),
        "{e}"
    );
    let d = broken("similarities0-1.txt", "1\t0.25\t0.5\n0\t1\n0\t0\t1\n");
    let e = LeeData::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("line 2: 2 values, expected 3"), "{e}");
    let d = broken("similarities0-1.txt", "1\t0.25\t0.5\n0\t1\t0.75\n");
    let e = LeeData::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("2 rows, expected 3"), "{e}");
    let d = broken("lee.cor", "one\n\nthree\n");
    let e = LeeData::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("lee.cor, line 2: empty document line"), "{e}");
    let d = broken("wordsim353.tsv", "# h\nlove\tsex\t6.77\ntiger cat 7.35\n");
    let e = WordSimData::read(&d.path().join("wordsim353.tsv"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wordsim353.tsv, line 3: 1 tab-separated fields"),
        "{e}"
    );
    let d = broken("wordsim353.tsv", "love\tsex\t6.77\ntiger\tcat\tmany\n");
    let e = WordSimData::read(&d.path().join("wordsim353.tsv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2: score \"many\" is not a number"), "{e}");
    let e = read_upper_triangle(&fixtures().join("missing.txt"), 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.txt"), "{e}");
}

fn minilm(file: &str) -> PathBuf {
    let p = repo_root().join(".deps/models/minilm-l6").join(file);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch_text.sh (make models)",
        p.display()
    );
    p
}

fn eval_dir() -> PathBuf {
    let d = repo_root().join(".deps/corpora/eval");
    assert!(
        d.join("SOURCE").is_file(),
        "{} is missing: run scripts/fetch_text.sh (make models)",
        d.display()
    );
    d
}

/// Runs `student-trainer eval-text ARGS` (with --tokenizer, --ort-lib, 2 threads) and returns
/// the error text, or the `--out` JSON.
fn eval_text(args: &[&str]) -> Result<Value, String> {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("results.json");
    let tokenizer = minilm("tokenizer.json");
    let ort = ort_lib();
    let mut argv: Vec<String> = vec!["student-trainer".into(), "eval-text".into()];
    argv.extend(args.iter().map(|s| s.to_string()));
    for (flag, v) in [
        ("--tokenizer", tokenizer.display().to_string()),
        ("--ort-lib", ort.display().to_string()),
        ("--out", json.display().to_string()),
        ("--threads", "2".to_string()),
    ] {
        argv.push(flag.into());
        argv.push(v);
    }
    let cli = Cli::try_parse_from(&argv).map_err(|e| e.to_string())?;
    run(cli).map_err(|e| error_text(&e))?;
    Ok(serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap())
}

#[test]
fn bad_input_gets_clear_errors() {
    let fx = fixtures().display().to_string();
    let e = eval_text(&["--model", "x.onnx", "--suite", "lee,bogus"]).unwrap_err();
    assert!(e.contains("bogus") && e.contains("wordsim"), "{e}");
    let e = eval_text(&[
        "--model",
        "/nonexistent/m.onnx",
        "--suite",
        "lee",
        "--eval-dir",
        &fx,
    ])
    .unwrap_err();
    assert!(e.contains("/nonexistent/m.onnx"), "{e}");
    // paraphrase-MiniLM-L3-v2 has two outputs, neither named as an embedding.
    let para = foreign_model("minilm").display().to_string();
    let e = eval_text(&["--model", &para, "--suite", "lee", "--eval-dir", &fx]).unwrap_err();
    assert!(
        e.contains("--output") && e.contains("none of its outputs"),
        "{e}"
    );
    let e = eval_text(&[
        "--model",
        &para,
        "--output",
        "nope",
        "--suite",
        "lee",
        "--eval-dir",
        &fx,
    ])
    .unwrap_err();
    assert!(e.contains("no output `nope`"), "{e}");
    let e = eval_text(&["--model", &para, "--suite", "bbc", "--eval-dir", &fx]).unwrap_err();
    assert!(e.contains("--bbc-train"), "{e}");
    let e = eval_text(&["--model", &para, "--suite", "fidelity", "--eval-dir", &fx]).unwrap_err();
    assert!(e.contains("needs --teacher"), "{e}");
    let e = eval_text(&[
        "--model",
        &para,
        "--suite",
        "lee",
        "--teacher",
        &para,
        "--eval-dir",
        &fx,
    ])
    .unwrap_err();
    assert!(e.contains("only used by the fidelity suite"), "{e}");
    let e = eval_text(&[
        "--model",
        &para,
        "--suite",
        "lee",
        "--eval-dir",
        "/nonexistent",
    ])
    .unwrap_err();
    assert!(e.contains("/nonexistent/lee.cor"), "{e}");
}

/// Reference values measured elsewhere with the f32 all-MiniLM-L6-v2 (sentence-transformers,
/// mean pooling, L2-normalised, 128-token truncation), given to 3 decimals.
const REF_LEE: f64 = 0.654;
const REF_WORDSIM: f64 = 0.729;
/// The static floor (mean of the teacher's input token embeddings, special tokens included)
/// computed by numpy in `scripts/golden/text_eval_floor.py`. The reference values for "the
/// floor" measured elsewhere (0.068, 0.522) are not reproduced by that recipe nor by the
/// variants tried (no special tokens: 0.386, 0.742; embedding LayerNorm output: 0.338, 0.646),
/// so the check is against the independent numpy computation, to rounding (f32 vs f64).
const FLOOR_LEE: f64 = 0.389877;
const FLOOR_WORDSIM: f64 = 0.553701;
const FLOOR_TOL: f64 = 1e-3;
/// Allowed distance from the f32 references: they are rounded to 3 decimals (±0.0005), and the
/// registry's teacher ONNX stores its weights in int8 (pooled cosine to f32 >= 0.996), which
/// moved both scores by under 0.001 here (docs/text-eval.md). 0.01 leaves room for both and
/// for ONNX Runtime versions, and is still far below the gap to a weaker encoder (the 3-layer
/// paraphrase-MiniLM-L3-v2 scores 0.633 and 0.610).
const TOL: f64 = 0.01;

#[test]
fn teacher_scores_the_reference_lee50_and_wordsim353() {
    let model = minilm("model.onnx").display().to_string();
    let dir = eval_dir().display().to_string();
    let r = eval_text(&[
        "--model",
        &model,
        "--suite",
        "wordsim,lee",
        "--eval-dir",
        &dir,
    ])
    .unwrap();
    assert_eq!(r["lee"]["docs"], 50);
    assert_eq!(r["lee"]["pairs"], 1225);
    assert_eq!(r["wordsim"]["pairs"], 353);
    assert_eq!(r["output"], "last_hidden_state");
    assert_eq!(r["pooling"], "masked_mean");
    assert!(r["bbc"].is_null() && r["speed"].is_null());
    let lee = r["lee"]["pearson"].as_f64().unwrap();
    let ws = r["wordsim"]["spearman"].as_f64().unwrap();
    eprintln!("int8 teacher: Lee-50 {lee:.4}, WordSim-353 {ws:.4}");
    close("Lee-50 Pearson", lee, REF_LEE, TOL);
    close("WordSim-353 Spearman", ws, REF_WORDSIM, TOL);
}

#[test]
fn static_floor_matches_numpy() {
    use trainer_core::export::export_text_onnx;
    use trainer_core::model::text::config::{StaticConfig, StaticInit, WORD_EMBEDDINGS};
    use trainer_core::model::{StudentConfig, TextStudent};
    let config = StudentConfig::Static(StaticConfig {
        vocab: 30522,
        dim: 384,
        project_to: None,
        init: Some(StaticInit {
            from: minilm("model.safetensors"),
            tensor: WORD_EMBEDDINGS.to_string(),
            pca: false,
        }),
    });
    let (_vars, student) = TextStudent::build(&config).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("floor.onnx");
    export_text_onnx(&student, false, &onnx).unwrap();
    let model = onnx.display().to_string();
    let dir = eval_dir().display().to_string();
    let r = eval_text(&[
        "--model",
        &model,
        "--suite",
        "lee,wordsim",
        "--eval-dir",
        &dir,
    ])
    .unwrap();
    assert_eq!(r["output"], "embedding");
    assert_eq!(r["pooling"], "model");
    let lee = r["lee"]["pearson"].as_f64().unwrap();
    let ws = r["wordsim"]["spearman"].as_f64().unwrap();
    eprintln!("static floor: Lee-50 {lee:.4}, WordSim-353 {ws:.4}");
    close("floor Lee-50 Pearson", lee, FLOOR_LEE, FLOOR_TOL);
    close("floor WordSim-353 Spearman", ws, FLOOR_WORDSIM, FLOOR_TOL);
}
