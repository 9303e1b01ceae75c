//! `distill-label`: flags in, library calls out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use distill_proto::views::Augment;
use label_client::bench::loadgen::{run_load, BodyFormat, LoadOptions};
use label_client::import::bbc::import_bbc;
use label_client::import::mnist::import_mnist;
use label_client::import::text::{import_text, TextFormat, TextImportOptions};
use label_client::import::wordnet::import_wordnet;
use label_client::label::source::InputMapping;
use label_client::label::views::ViewOptions;
use label_client::label::{label, LabelOptions};
use teacher_client::{ClientConfig, RetryPolicy};

#[derive(Parser)]
#[command(
    name = "distill-label",
    version,
    about = "Streams datasets to teacher-server and imports MNIST and text corpora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert the raw MNIST IDX files into mnist-train.parquet and mnist-test.parquet.
    ImportMnist {
        /// Folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte.
        #[arg(long)]
        idx_dir: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Rewrite outputs that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Convert sentences (txt, JSONL, CSV, Parquet) into a Parquet file with `id` and `text`.
    ///
    /// Ids: from --id-field when given (must be unique), else the first 16 hex digits of the
    /// SHA-256 of the text (a repeated sentence is dropped and counted). Empty texts are skipped.
    ImportText(ImportTextArgs),
    /// Convert WordNet 3.0's data.{noun,verb,adj,adv} into one Parquet file of definitions and
    /// example sentences (columns id, text, pos, kind, synset, lemmas).
    ImportWordnet {
        /// Folder with data.{noun,verb,adj,adv} (scripts/fetch_text.sh puts it in
        /// .deps/corpora/wordnet/usr/share/wordnet).
        #[arg(long)]
        dir: PathBuf,
        /// Output Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// Rewrite the output when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Convert the BBC News corpus (one folder per class) into train and test Parquet files
    /// (columns id, text, title, label, split; test = SHA-256 of CLASS/FILE is 0 mod 5).
    ImportBbc {
        /// Folder with one sub-folder of NNN.txt articles per class (.deps/corpora/bbc).
        #[arg(long)]
        dir: PathBuf,
        /// Output Parquet file of the train split.
        #[arg(long)]
        out_train: PathBuf,
        /// Output Parquet file of the test split.
        #[arg(long)]
        out_test: PathBuf,
        /// Rewrite the outputs when they exist.
        #[arg(long)]
        force: bool,
    },
    /// Send every row of a Parquet file to the server and store the teacher's outputs.
    Label(LabelArgs),
    /// Benchmark load: send the first rows of a file as JSON or Arrow and time it.
    BenchLoad(BenchArgs),
}

#[derive(Args)]
struct Conn {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token for the server.
    #[arg(long, env = "DISTILL_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Retries of a request after 429/503/5xx/connection errors.
    #[arg(long, default_value_t = 8)]
    retries: u32,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout_secs: f64,
}

impl Conn {
    fn config(&self) -> Result<ClientConfig, String> {
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return Err(format!(
                "--timeout-secs must be positive, got {}",
                self.timeout_secs
            ));
        }
        Ok(ClientConfig {
            server: self.server.clone(),
            api_token: self.api_token.clone(),
            timeout: Duration::from_secs_f64(self.timeout_secs),
            retry: RetryPolicy {
                retries: self.retries,
                ..RetryPolicy::default()
            },
        })
    }
}

#[derive(Args)]
struct ImportTextArgs {
    /// Input file.
    #[arg(long)]
    input: PathBuf,
    /// Input format; default: from the file extension (.txt, .jsonl, .csv, .parquet).
    #[arg(long, value_enum)]
    format: Option<TextFormat>,
    /// Field (JSONL), header (CSV) or column (Parquet) holding the text.
    #[arg(long, visible_alias = "column", default_value = "text")]
    text_field: String,
    /// Field holding unique row ids; default: ids derived from the text.
    #[arg(long)]
    id_field: Option<String>,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// Rewrite the output when it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct LabelArgs {
    #[command(flatten)]
    conn: Conn,
    /// Parquet file to label.
    #[arg(long)]
    data: PathBuf,
    /// Dataset name on the server.
    #[arg(long)]
    dataset: String,
    /// Model input fed from a column: COLUMN or COLUMN=MODEL_INPUT (repeatable).
    /// Default: a text teacher's `text` column, else one column per model input, named like it.
    #[arg(long = "input")]
    inputs: Vec<InputMapping>,
    /// Column with the row ids.
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Pass-through columns stored beside the outputs (comma separated or repeated).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Rows per request.
    #[arg(long, default_value_t = 1024)]
    batch_rows: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seal the dataset at the end (every row in a finished Parquet shard).
    #[arg(long)]
    seal: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Label K seeded augmented views of each row (ids ID#v0..ID#vK-1, with view_of, view,
    /// view_seed and augment columns) instead of the row itself; needs --augment.
    #[arg(long, requires = "augment")]
    views: Option<u32>,
    /// The augmentation of the views: jitter=P (±P-pixel shifts, zero fill; a square
    /// single-channel image) or jitter=P,shape=HxW / CxHxW.
    #[arg(long, requires = "views")]
    augment: Option<Augment>,
    /// Base seed of the view seeds (the trainer's `data.served.view_seed` must match to
    /// see the same views).
    #[arg(long, default_value_t = 0, requires = "views")]
    view_seed: u64,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    conn: Conn,
    /// Parquet file the rows come from.
    #[arg(long)]
    data: PathBuf,
    /// Model input fed from a column: COLUMN or COLUMN=MODEL_INPUT (repeatable).
    #[arg(long = "input", required = true)]
    inputs: Vec<InputMapping>,
    /// Pass-through columns.
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Rows to send.
    #[arg(long, default_value_t = 8192)]
    rows: usize,
    /// Rows per request.
    #[arg(long, default_value_t = 1024)]
    batch_rows: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Body encoding.
    #[arg(long, value_enum)]
    format: BodyFormat,
    /// Dataset to store the rows in (fresh per run); without it the rows are only scored.
    #[arg(long)]
    dataset: Option<String>,
}

impl ImportTextArgs {
    /// The flags as import options; the format from the extension unless `--format` is given.
    fn options(self) -> Result<TextImportOptions, String> {
        let Some(format) = self.format.or_else(|| TextFormat::from_path(&self.input)) else {
            return Err(format!(
                "cannot tell the format of {} from its extension; pass --format",
                self.input.display()
            ));
        };
        Ok(TextImportOptions {
            input: self.input,
            format,
            text_field: self.text_field,
            id_field: self.id_field,
            out: self.out,
            force: self.force,
        })
    }
}

impl LabelArgs {
    /// The flags as label options.
    fn options(self) -> Result<LabelOptions, String> {
        Ok(LabelOptions {
            client: self.conn.config()?,
            data: self.data,
            dataset: self.dataset,
            id_column: self.id_column,
            inputs: self.inputs,
            columns: self.columns,
            batch_rows: self.batch_rows,
            concurrency: self.concurrency,
            seal: self.seal,
            progress: !self.quiet,
            views: match (self.views, self.augment) {
                (Some(count), Some(augment)) => Some(ViewOptions {
                    count,
                    augment,
                    seed: self.view_seed,
                }),
                _ => None,
            },
        })
    }
}

impl BenchArgs {
    /// The flags as load options.
    fn options(self) -> Result<LoadOptions, String> {
        Ok(LoadOptions {
            client: self.conn.config()?,
            data: self.data,
            inputs: self.inputs,
            columns: self.columns,
            rows: self.rows,
            batch_rows: self.batch_rows,
            concurrency: self.concurrency,
            format: self.format,
            dataset: self.dataset,
        })
    }
}

/// `label`: the run's summary, and the sealed manifest's rows and shards.
fn run_label(a: LabelArgs) -> Result<(), String> {
    let options = a.options()?;
    let summary = label(&options).map_err(|e| e.to_string())?;
    println!("{summary}");
    if let Some(manifest) = &summary.sealed {
        let rows = manifest
            .get("rows")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let shards = manifest
            .get("shards")
            .and_then(|s| s.as_array())
            .map(|s| s.len().to_string())
            .unwrap_or_default();
        println!("sealed {}: rows {rows}  shards {shards}", options.dataset);
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::ImportMnist {
            idx_dir,
            out,
            force,
        } => {
            for f in import_mnist(&idx_dir, &out, force).map_err(|e| e.to_string())? {
                let what = if f.written {
                    "wrote"
                } else {
                    "kept (exists; --force rewrites)"
                };
                println!("{what} {} ({} rows)", f.path.display(), f.rows);
            }
        }
        Command::ImportText(a) => {
            println!("{}", import_text(&a.options()?).map_err(|e| e.to_string())?);
        }
        Command::ImportWordnet { dir, out, force } => {
            println!(
                "{}",
                import_wordnet(&dir, &out, force).map_err(|e| e.to_string())?
            );
        }
        Command::ImportBbc {
            dir,
            out_train,
            out_test,
            force,
        } => {
            println!(
                "{}",
                import_bbc(&dir, &out_train, &out_test, force).map_err(|e| e.to_string())?
            );
        }
        Command::Label(a) => run_label(a)?,
        Command::BenchLoad(a) => {
            let report = run_load(&a.options()?).map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string(&report).map_err(|e| e.to_string())?
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
