//! `student-trainer eval-text`: scores a text encoder ONNX (a student, the teacher, a foreign
//! model) on real text with human or gold labels, plus its size and speed.
//!
//! - [`lee`]: Lee-50 document similarity, Pearson; [`wordsim`]: WordSim-353, Spearman;
//! - [`bbc`]: BBC News 5-class, nearest centroid and a linear [`probe`];
//! - [`fidelity`]: mean cosine student vs teacher on held-out text;
//! - [`speed`]: parameters, file size, sentences/s at batch 64, latency at batch 1;
//! - [`metrics`]: the correlations and accuracies; [`encoder`]: tokenizer + ONNX Runtime.
//!
//! Lee-50 and WordSim-353 come from gensim's test data (`scripts/fetch_text.sh`,
//! `.deps/corpora/eval`); BBC from `distill-label import-bbc`. See docs/text-eval.md.

pub mod bbc;
pub mod encoder;
pub mod fidelity;
pub mod lee;
pub mod metrics;
pub mod probe;
pub mod speed;
pub mod wordsim;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::RuntimeError;
use encoder::{Embedder, EvalTokenizer, Pooling};
use metrics::Embeddings;
use probe::ProbeConfig;

/// What can go wrong evaluating a text encoder.
#[derive(Debug, thiserror::Error)]
pub enum TextEvalError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a benchmark file is malformed.
    #[error("{path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A Parquet split file is unusable.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong (column, row).
        message: String,
    },
    /// The tokenizer file is unusable.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The model has no usable output, or returned something unusable.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Loading or running the model in ONNX Runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Inconsistent inputs or options.
    #[error("{0}")]
    Input(String),
}

impl TextEvalError {
    pub(crate) fn parse(path: &Path, line: usize, message: &str) -> Self {
        Self::Parse {
            path: path.to_path_buf(),
            line,
            message: message.to_string(),
        }
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TextEvalError> {
    std::fs::read(path).map_err(|source| TextEvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One benchmark of `--suite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// Lee-50 document similarity (Pearson).
    Lee,
    /// WordSim-353 word relatedness (Spearman).
    Wordsim,
    /// BBC News 5-class: nearest centroid and linear probe.
    Bbc,
    /// Mean cosine to `--teacher` on the BBC test articles and the Lee documents.
    Fidelity,
    /// Parameters, file size, sentences/s at batch 64, latency at batch 1.
    Speed,
}

/// Everything `eval-text` needs.
#[derive(Debug, Clone)]
pub struct TextEvalOptions {
    /// The encoder ONNX.
    pub model: PathBuf,
    /// Its output to read (default: see [`encoder`]).
    pub output: Option<String>,
    /// The Hugging Face `tokenizer.json` (shared by model and teacher).
    pub tokenizer: PathBuf,
    /// Truncation length, special tokens included.
    pub max_seq_len: usize,
    /// L2-normalise embeddings.
    pub normalize: bool,
    /// The benchmarks to run.
    pub suites: Vec<Suite>,
    /// Folder of `lee.cor`, `similarities0-1.txt`, `wordsim353.tsv`.
    pub eval_dir: PathBuf,
    /// `import-bbc` train file.
    pub bbc_train: Option<PathBuf>,
    /// `import-bbc` test file.
    pub bbc_test: Option<PathBuf>,
    /// Teacher ONNX for fidelity.
    pub teacher: Option<PathBuf>,
    /// The teacher output to read.
    pub teacher_output: Option<String>,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Texts per forward pass for the scores.
    pub batch: usize,
    /// ONNX Runtime library.
    pub ort_lib: Option<PathBuf>,
    /// Linear-probe settings.
    pub probe: ProbeConfig,
}

/// What `eval-text` measured (written as `--out` JSON).
#[derive(Debug, Clone, Serialize)]
pub struct TextEvalReport {
    /// The model file.
    pub model: String,
    /// The output read.
    pub output: String,
    /// How it was pooled.
    pub pooling: Option<Pooling>,
    /// The tokenizer file.
    pub tokenizer: String,
    /// Truncation length.
    pub max_seq_len: usize,
    /// Whether embeddings were L2-normalised.
    pub normalize: bool,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Lee-50.
    pub lee: Option<lee::LeeScore>,
    /// WordSim-353.
    pub wordsim: Option<wordsim::WordSimScore>,
    /// BBC News.
    pub bbc: Option<bbc::BbcScore>,
    /// Teacher fidelity.
    pub fidelity: Option<fidelity::FidelityScore>,
    /// Size and speed.
    pub speed: Option<speed::SpeedScore>,
    /// Wall seconds of the whole evaluation.
    pub seconds: f64,
}

/// The benchmark inputs, read and checked before any model runs.
struct Inputs {
    lee: Option<lee::LeeData>,
    wordsim: Option<wordsim::WordSimData>,
    bbc_train: Option<bbc::BbcSplit>,
    bbc_test: Option<bbc::BbcSplit>,
}

fn load_inputs(o: &TextEvalOptions) -> Result<Inputs, TextEvalError> {
    let has = |s: Suite| o.suites.contains(&s);
    if o.suites.is_empty() {
        return Err(TextEvalError::Input("--suite names no benchmark".into()));
    }
    if has(Suite::Fidelity) != o.teacher.is_some() {
        return Err(TextEvalError::Input(if o.teacher.is_some() {
            "--teacher is only used by the fidelity suite: add `fidelity` to --suite".into()
        } else {
            "the fidelity suite needs --teacher (the teacher ONNX to compare with)".into()
        }));
    }
    let need = |flag: &str, p: &Option<PathBuf>, why: &str| {
        p.clone().ok_or_else(|| {
            TextEvalError::Input(format!(
                "{why} needs {flag} (write it with `distill-label import-bbc`)"
            ))
        })
    };
    let bbc_train = if has(Suite::Bbc) {
        Some(bbc::BbcSplit::read(&need(
            "--bbc-train",
            &o.bbc_train,
            "the bbc suite",
        )?)?)
    } else {
        None
    };
    let bbc_test = if has(Suite::Bbc) || has(Suite::Fidelity) || has(Suite::Speed) {
        let why =
            "the bbc, fidelity and speed suites (the test articles; speed times their titles)";
        Some(bbc::BbcSplit::read(&need("--bbc-test", &o.bbc_test, why)?)?)
    } else {
        None
    };
    if let (Some(a), Some(b)) = (&bbc_train, &bbc_test) {
        bbc::class_indices(a, b)?;
    }
    let lee = if has(Suite::Lee) || has(Suite::Fidelity) {
        Some(lee::LeeData::load(&o.eval_dir)?)
    } else {
        None
    };
    let wordsim = if has(Suite::Wordsim) {
        Some(wordsim::WordSimData::read(
            &o.eval_dir.join(wordsim::WORDSIM_FILE),
        )?)
    } else {
        None
    };
    Ok(Inputs {
        lee,
        wordsim,
        bbc_train,
        bbc_test,
    })
}

/// Runs the suites of `o`.
pub fn run(o: &TextEvalOptions) -> Result<TextEvalReport, TextEvalError> {
    let start = std::time::Instant::now();
    let mut suites = o.suites.clone();
    suites.sort();
    suites.dedup();
    let o = TextEvalOptions {
        suites,
        ..o.clone()
    };
    if o.threads == 0 || o.batch == 0 {
        return Err(TextEvalError::Input(format!(
            "--threads {} and --batch {} must be >= 1",
            o.threads, o.batch
        )));
    }
    let inputs = load_inputs(&o)?;
    let tok = EvalTokenizer::load(&o.tokenizer, o.max_seq_len)?;
    let ort_lib = o.ort_lib.as_deref();
    let mut model = Embedder::load(
        &o.model,
        o.output.as_deref(),
        o.normalize,
        tok.pad_id(),
        o.threads,
        ort_lib,
    )?;
    let mut report = TextEvalReport {
        model: o.model.display().to_string(),
        output: model.output().to_string(),
        pooling: None,
        tokenizer: o.tokenizer.display().to_string(),
        max_seq_len: o.max_seq_len,
        normalize: o.normalize,
        threads: o.threads,
        lee: None,
        wordsim: None,
        bbc: None,
        fidelity: None,
        speed: None,
        seconds: 0.0,
    };
    let embed = |m: &mut Embedder, texts: &[String]| -> Result<Embeddings, TextEvalError> {
        m.embed(&tok.encode(texts)?, o.batch)
    };
    let lee_emb = match &inputs.lee {
        Some(l) => Some(embed(&mut model, &l.docs)?),
        None => None,
    };
    if let (Some(l), Some(e)) = (&inputs.lee, &lee_emb) {
        if o.suites.contains(&Suite::Lee) {
            report.lee = Some(l.score(e)?);
        }
    }
    if let Some(w) = &inputs.wordsim {
        report.wordsim = Some(w.score(&embed(&mut model, &w.words)?)?);
    }
    let test_emb = match &inputs.bbc_test {
        Some(t) if o.suites.contains(&Suite::Bbc) || o.suites.contains(&Suite::Fidelity) => {
            Some(embed(&mut model, &t.texts)?)
        }
        _ => None,
    };
    if let (Some(train), Some(test), Some(te)) = (&inputs.bbc_train, &inputs.bbc_test, &test_emb) {
        let tr = embed(&mut model, &train.texts)?;
        report.bbc = Some(bbc::score(train, test, &tr, te, &o.probe)?);
    }
    report.pooling = model.pooling();
    if let Some(teacher_path) = &o.teacher {
        let student = StudentEmbeddings {
            lee: lee_emb.as_ref(),
            bbc_test: test_emb.as_ref(),
        };
        report.fidelity = Some(fidelity_suite(&o, teacher_path, &tok, &inputs, &student)?);
    }
    if o.suites.contains(&Suite::Speed) {
        if let Some(t) = &inputs.bbc_test {
            let rows = tok.encode(&t.titles)?;
            let from = format!("titles of {}", t.path.display());
            report.speed = Some(speed::measure(
                &mut model, &o.model, &rows, &from, o.threads,
            )?);
            report.pooling = model.pooling();
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The student's embeddings of the texts the fidelity suite compares on.
struct StudentEmbeddings<'a> {
    lee: Option<&'a Embeddings>,
    bbc_test: Option<&'a Embeddings>,
}

/// The fidelity suite: the teacher embeds the same texts, and each set's mean cosine to the
/// student's embeddings is reported.
fn fidelity_suite(
    o: &TextEvalOptions,
    teacher_path: &Path,
    tok: &EvalTokenizer,
    inputs: &Inputs,
    student: &StudentEmbeddings,
) -> Result<fidelity::FidelityScore, TextEvalError> {
    let mut teacher = Embedder::load(
        teacher_path,
        o.teacher_output.as_deref(),
        o.normalize,
        tok.pad_id(),
        o.threads,
        o.ort_lib.as_deref(),
    )?;
    let mut embed = |texts: &[String]| teacher.embed(&tok.encode(texts)?, o.batch);
    let mut sets = Vec::new();
    if let (Some(t), Some(se)) = (&inputs.bbc_test, student.bbc_test) {
        sets.push(fidelity::compare("bbc_test", se, &embed(&t.texts)?)?);
    }
    if let (Some(l), Some(se)) = (&inputs.lee, student.lee) {
        sets.push(fidelity::compare("lee", se, &embed(&l.docs)?)?);
    }
    Ok(fidelity::combine(
        &teacher_path.display().to_string(),
        teacher.output(),
        sets,
    ))
}

/// The report as a readable table.
pub fn render_table(r: &TextEvalReport) -> String {
    let mut s = String::new();
    let pooling = match r.pooling {
        Some(Pooling::Model) => "used as given",
        Some(Pooling::MaskedMean) => "mean-pooled over the mask",
        None => "not run",
    };
    let _ = writeln!(s, "model      {}", r.model);
    let _ = writeln!(
        s,
        "           output `{}` ({pooling}){}; max {} tokens; {} ORT threads",
        r.output,
        if r.normalize { ", L2-normalised" } else { "" },
        r.max_seq_len,
        r.threads
    );
    let _ = writeln!(s, "{:<30} {:>10}  details", "benchmark", "score");
    let mut row = |name: &str, v: String, d: String| {
        let _ = writeln!(s, "{name:<30} {v:>10}  {d}");
    };
    if let Some(l) = &r.lee {
        row(
            "Lee-50 Pearson",
            format!("{:.4}", l.pearson),
            format!("{} docs, {} pairs", l.docs, l.pairs),
        );
    }
    if let Some(w) = &r.wordsim {
        row(
            "WordSim-353 Spearman",
            format!("{:.4}", w.spearman),
            format!("{} pairs, {} words", w.pairs, w.words),
        );
    }
    if let Some(b) = &r.bbc {
        row(
            "BBC nearest centroid",
            format!("{:.4}", b.centroid_accuracy),
            format!(
                "{} train / {} test, {} classes",
                b.train,
                b.test,
                b.classes.len()
            ),
        );
        row(
            "BBC linear probe",
            format!("{:.4}", b.probe_accuracy),
            format!(
                "train acc {:.4}, loss {:.4}; {} epochs, l2 {}",
                b.probe_train_accuracy, b.probe_train_loss, b.probe.epochs, b.probe.l2
            ),
        );
    }
    if let Some(f) = &r.fidelity {
        let sets: Vec<String> = f
            .sets
            .iter()
            .map(|x| format!("{} {:.4} (min {:.4})", x.name, x.mean_cosine, x.min_cosine))
            .collect();
        row(
            "teacher fidelity (cosine)",
            format!("{:.4}", f.mean_cosine),
            format!("{} texts: {}", f.texts, sets.join(", ")),
        );
    }
    if let Some(p) = &r.speed {
        row(
            "parameters",
            format!("{:.2}M", p.parameters as f64 / 1e6),
            format!("{} elements", p.parameters),
        );
        row(
            "ONNX file",
            format!("{:.1} MB", p.onnx_bytes as f64 / 1e6),
            format!("{} bytes", p.onnx_bytes),
        );
        row(
            "sentences/s (batch 64)",
            format!("{:.1}", p.sentences_per_s),
            format!(
                "{} sentences, {:.1} tokens mean, {}; {} threads",
                p.sentences, p.mean_tokens, p.sentences_from, p.threads
            ),
        );
        row(
            "latency batch 1 (median)",
            format!("{:.2} ms", p.latency_ms_batch1),
            format!(
                "first {} sentences",
                p.sentences.min(speed::LATENCY_SENTENCES)
            ),
        );
    }
    let _ = writeln!(s, "({:.1} s)", r.seconds);
    s
}
