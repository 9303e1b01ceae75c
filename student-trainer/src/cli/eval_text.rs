//! `student-trainer eval-text`: scores a text encoder ONNX on real text (docs/text-eval.md).
//! The flags become [`TextEvalOptions`]; the evaluation itself is `trainer_eval::text`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use trainer_eval::text::probe::ProbeConfig;
use trainer_eval::text::{render_table, run as run_suites, Suite, TextEvalOptions};

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
    pub suite: Vec<SuiteArg>,
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
    #[arg(long, default_value_t = ProbeConfig::default().epochs)]
    pub probe_epochs: usize,
    /// Linear probe: L2 penalty on the weights.
    #[arg(long, default_value_t = ProbeConfig::default().l2)]
    pub probe_l2: f64,
    /// ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Write the results as JSON here (the table is printed either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One benchmark of `--suite` (the flag's spelling of [`Suite`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuiteArg {
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

impl From<SuiteArg> for Suite {
    fn from(s: SuiteArg) -> Self {
        match s {
            SuiteArg::Lee => Suite::Lee,
            SuiteArg::Wordsim => Suite::Wordsim,
            SuiteArg::Bbc => Suite::Bbc,
            SuiteArg::Fidelity => Suite::Fidelity,
            SuiteArg::Speed => Suite::Speed,
        }
    }
}

impl EvalTextArgs {
    /// The evaluation these flags ask for.
    pub fn options(&self) -> TextEvalOptions {
        let threads = match self.threads {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        TextEvalOptions {
            model: self.model.clone(),
            output: self.output.clone(),
            tokenizer: self.tokenizer.clone(),
            max_seq_len: self.max_seq_len,
            normalize: !self.no_normalize,
            suites: self.suite.iter().copied().map(Suite::from).collect(),
            eval_dir: self.eval_dir.clone(),
            bbc_train: self.bbc_train.clone(),
            bbc_test: self.bbc_test.clone(),
            teacher: self.teacher.clone(),
            teacher_output: self.teacher_output.clone(),
            threads,
            batch: self.batch,
            ort_lib: self.ort_lib.clone(),
            probe: ProbeConfig {
                epochs: self.probe_epochs,
                l2: self.probe_l2,
                ..ProbeConfig::default()
            },
        }
    }
}

/// `eval-text` from its flags: runs, prints the table, writes `--out`.
pub fn run(a: EvalTextArgs) -> anyhow::Result<()> {
    let report = run_suites(&a.options())?;
    print!("{}", render_table(&report));
    if let Some(p) = &a.out {
        let json = serde_json::to_string_pretty(&report)?;
        distill_proto::atomic::write_atomic(p, json.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}
