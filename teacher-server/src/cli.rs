//! The command line and its environment variables (`DISTILL_*`), parsed with clap straight
//! into the domain's own types (execution provider, output roles, pooling, feature dtype);
//! minimums are enforced here, once, by the flags' range parsers. Nothing below the binary
//! imports this module.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use distill_proto::store::FeatureDType;

use crate::inspect::InspectOptions;
use crate::outputs::{OutputRole, PoolRule};
use crate::teacher::EpChoice;
use crate::text::Batching;

/// A count that must be at least 1.
fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(1..)
}

/// `teacher-server`: serves a frozen ONNX teacher and stores its soft labels.
#[derive(Debug, Parser)]
#[command(name = "teacher-server", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the teacher over HTTP and write its outputs to the label store.
    Serve(Box<ServeArgs>),
    /// Print the model's signature and the inner tensors that `--tap` can expose.
    Inspect(InspectArgs),
}

/// Where ONNX Runtime's shared library lives.
#[derive(Debug, Clone, Args)]
pub struct OrtArgs {
    /// Path of libonnxruntime (`libonnxruntime.so.1.x`); `ORT_DYLIB_PATH` works too.
    #[arg(long = "ort-lib", env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
}

/// Flags of `teacher-server inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The ONNX model.
    #[arg(long, env = "DISTILL_MODEL")]
    pub model: PathBuf,
    /// ONNX Runtime location.
    #[command(flatten)]
    pub ort: OrtArgs,
}

impl InspectArgs {
    /// The flags as the inspection's own options.
    pub fn options(&self) -> InspectOptions {
        InspectOptions {
            model: self.model.clone(),
            ort_lib: self.ort.ort_lib.clone(),
        }
    }
}

/// Flags of `teacher-server serve`; every one also settable as `DISTILL_<FLAG>`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The ONNX teacher model.
    #[arg(long, env = "DISTILL_MODEL")]
    pub model: PathBuf,
    /// Folder of the Parquet label store.
    #[arg(long = "data-dir", env = "DISTILL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on (loopback by default; port 0 picks a free one).
    #[arg(long, env = "DISTILL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Bearer token required on every route but `/health`.
    #[arg(long = "api-token", env = "DISTILL_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Serve without a token on an address beyond loopback (refused otherwise).
    #[arg(long = "allow-no-token", env = "DISTILL_ALLOW_NO_TOKEN")]
    pub allow_no_token: bool,
    /// ONNX Runtime location.
    #[command(flatten)]
    pub ort: OrtArgs,
    /// Let rows from this server's execution provider join datasets computed on another one
    /// (refused with 409 `provider_mismatch` otherwise).
    #[arg(long = "allow-mixed-providers", env = "DISTILL_ALLOW_MIXED_PROVIDERS")]
    pub allow_mixed_providers: bool,
    /// Execution provider.
    #[arg(long, env = "DISTILL_EP", value_enum, default_value_t = EpChoice::Auto)]
    pub ep: EpChoice,
    /// Folder(s) holding the CUDA 13 and cuDNN 9 libraries, preloaded before the CUDA provider
    /// is registered (e.g. the `lib/` folders of the `nvidia-*` PyPI wheels), `:`-separated.
    #[arg(
        long = "cuda-lib-dir",
        env = "DISTILL_CUDA_LIB_DIR",
        value_delimiter = ':'
    )]
    pub cuda_lib_dirs: Vec<PathBuf>,
    /// Intra-op threads of the session (0: ONNX Runtime's default).
    #[arg(
        long = "intra-threads",
        env = "DISTILL_INTRA_THREADS",
        default_value_t = 0
    )]
    pub intra_threads: usize,
    /// Stored output role `NAME=TENSOR` (repeatable); default: every graph output under its own name.
    #[arg(long = "output", env = "DISTILL_OUTPUT", value_delimiter = ',')]
    pub outputs: Vec<OutputRole>,
    /// Pooling `NAME=mean|cls|none` of a 3-D stored output `[batch, seq, dim]` (repeatable).
    #[arg(long = "pool", env = "DISTILL_POOL", value_delimiter = ',')]
    pub pools: Vec<PoolRule>,
    /// Input holding the attention mask used by mean pooling.
    #[arg(
        long = "mask-input",
        env = "DISTILL_MASK_INPUT",
        default_value = "attention_mask"
    )]
    pub mask_input: String,
    /// Inner tensor to expose and store, `NAME` or `NAME:dtype` (repeatable).
    #[arg(long = "tap", env = "DISTILL_TAP", value_delimiter = ',')]
    pub taps: Vec<String>,
    /// Most rows merged into one inference run.
    #[arg(
        long = "max-batch-rows",
        env = "DISTILL_MAX_BATCH_ROWS",
        default_value_t = 1024,
        value_parser = at_least_one()
    )]
    pub max_batch_rows: usize,
    /// Longest wait in milliseconds for more requests to merge into a run.
    #[arg(long = "max-wait-ms", env = "DISTILL_MAX_WAIT_MS", default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Rows waiting for inference before new requests get 429.
    #[arg(
        long = "queue-capacity",
        env = "DISTILL_QUEUE_CAPACITY",
        default_value_t = 262_144,
        value_parser = at_least_one()
    )]
    pub queue_capacity: usize,
    /// Most input elements in one queued request, summed over its inputs (413 above); for a
    /// text teacher, the padded token grid (rows x longest row after truncation).
    #[arg(
        long = "max-request-elements",
        env = "DISTILL_MAX_REQUEST_ELEMENTS",
        default_value_t = 1 << 25,
        value_parser = at_least_one()
    )]
    pub max_request_elements: usize,
    /// Most size of a named dynamic axis `SYMBOL=N` (repeatable), e.g. `sequence=512` (413 above).
    #[arg(long = "max-dim", env = "DISTILL_MAX_DIM", value_delimiter = ',')]
    pub max_dims: Vec<DimCap>,
    /// Input elements waiting for inference before new requests get 429 (with the row bound).
    #[arg(
        long = "queue-elements",
        env = "DISTILL_QUEUE_ELEMENTS",
        default_value_t = 1 << 26,
        value_parser = at_least_one()
    )]
    pub queue_elements: usize,
    /// Seconds a client may take to send a request's headers, and to start the next request
    /// on a kept-alive connection (the connection is closed after that).
    #[arg(
        long = "header-timeout-secs",
        env = "DISTILL_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = RangedU64ValueParser::<u64>::new().range(1..)
    )]
    pub header_timeout_secs: u64,
    /// Seconds a client may take to send a request's body (408 after that).
    #[arg(
        long = "body-timeout-secs",
        env = "DISTILL_BODY_TIMEOUT_SECS",
        default_value_t = 60,
        value_parser = RangedU64ValueParser::<u64>::new().range(1..)
    )]
    pub body_timeout_secs: u64,
    /// Most open client connections; a connection over it gets 503 with Retry-After and is closed.
    #[arg(
        long = "max-connections",
        env = "DISTILL_MAX_CONNECTIONS",
        default_value_t = 256,
        value_parser = at_least_one()
    )]
    pub max_connections: usize,
    /// Seconds after SIGTERM/SIGINT that open connections get to finish; then they are
    /// closed, queued work finishes and open shards are sealed.
    #[arg(
        long = "shutdown-timeout-secs",
        env = "DISTILL_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub shutdown_timeout_secs: u64,
    /// Largest request body in bytes (413 above).
    #[arg(long = "max-body-bytes", env = "DISTILL_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Most rows in one request (413 above).
    #[arg(
        long = "max-request-rows",
        env = "DISTILL_MAX_REQUEST_ROWS",
        default_value_t = 65_536,
        value_parser = at_least_one()
    )]
    pub max_request_rows: usize,
    /// Element type of stored float features.
    #[arg(long = "feature-dtype", env = "DISTILL_FEATURE_DTYPE", value_enum, default_value_t = FeatureDType::F32)]
    pub feature_dtype: FeatureDType,
    /// Store only the top-K logits (plus their log-sum-exp).
    #[arg(long = "logits-topk", env = "DISTILL_LOGITS_TOPK", value_parser = at_least_one())]
    pub logits_topk: Option<usize>,
    /// Output that `--logits-topk` applies to.
    #[arg(
        long = "topk-output",
        env = "DISTILL_TOPK_OUTPUT",
        default_value = "logits"
    )]
    pub topk_output: String,
    /// Do not store the model inputs beside the outputs.
    #[arg(long = "no-store-inputs", env = "DISTILL_NO_STORE_INPUTS")]
    pub no_store_inputs: bool,
    /// Roll to a new Parquet shard after this many rows.
    #[arg(
        long = "shard-max-rows",
        env = "DISTILL_SHARD_MAX_ROWS",
        default_value_t = 100_000,
        value_parser = at_least_one()
    )]
    pub shard_max_rows: usize,
    /// Rows per Parquet row group.
    #[arg(
        long = "row-group-rows",
        env = "DISTILL_ROW_GROUP_ROWS",
        default_value_t = 8192,
        value_parser = at_least_one()
    )]
    pub row_group_rows: usize,
    /// MiB of acknowledged rows (their write-ahead log size) that may wait for a dataset's
    /// background Parquet encoder before appends wait for it.
    #[arg(
        long = "encode-backlog-mib",
        env = "DISTILL_ENCODE_BACKLOG_MIB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20)
    )]
    pub encode_backlog_mib: u64,
    /// Accept NaN/Inf in float inputs instead of rejecting them.
    #[arg(long = "allow-non-finite", env = "DISTILL_ALLOW_NON_FINITE")]
    pub allow_non_finite: bool,
    /// Outputs to scale to unit L2 norm after pooling (repeatable), e.g. `embedding`.
    #[arg(long = "normalize", env = "DISTILL_NORMALIZE", value_delimiter = ',')]
    pub normalize: Vec<String>,
    /// Text teachers.
    #[command(flatten)]
    pub text: TextArgs,
}

/// Flags of a text teacher: a tokenizer in the server and token-budget batching.
#[derive(Debug, Clone, Args)]
pub struct TextArgs {
    /// Hugging Face `tokenizer.json`: the server then takes text (`inputs.text`, a Utf8
    /// `text` column) and feeds the model's token inputs itself.
    #[arg(long, env = "DISTILL_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    /// Most tokens per row, special tokens included, for text and token ids alike (default:
    /// a sentence-transformers `sentence_bert_config.json` beside the tokenizer or model, else
    /// the tokenizer file's truncation length, else the model's position limit, else 512).
    #[arg(long = "max-seq-len", env = "DISTILL_MAX_SEQ_LEN", value_parser = at_least_one())]
    pub max_seq_len: Option<usize>,
    /// Refuse longer texts (413 naming the row) instead of truncating them.
    #[arg(long = "no-truncate", env = "DISTILL_NO_TRUNCATE")]
    pub no_truncate: bool,
    /// Most padded tokens (rows x longest row) per inference run of a text teacher.
    #[arg(
        long = "max-batch-tokens",
        env = "DISTILL_MAX_BATCH_TOKENS",
        default_value_t = 16_384,
        value_parser = at_least_one()
    )]
    pub max_batch_tokens: usize,
    /// How a text teacher cuts merged rows into runs: `tokens` (ordered by length, within
    /// --max-batch-tokens) or `rows` (arrival order, padded to the longest row).
    #[arg(long, env = "DISTILL_BATCHING", value_enum, default_value_t = Batching::Tokens)]
    pub batching: Batching,
    /// Model input taking the token ids.
    #[arg(
        long = "ids-input",
        env = "DISTILL_IDS_INPUT",
        default_value = "input_ids"
    )]
    pub ids_input: String,
    /// Model input taking the token type ids, when the model has it.
    #[arg(
        long = "type-ids-input",
        env = "DISTILL_TYPE_IDS_INPUT",
        default_value = "token_type_ids"
    )]
    pub type_ids_input: String,
}

/// A cap on a named dynamic axis, `SYMBOL=N` (`--max-dim sequence=512`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimCap {
    /// The axis' symbol in the model's signature.
    pub symbol: String,
    /// Its largest accepted size.
    pub max: usize,
}

impl std::str::FromStr for DimCap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (symbol, max) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected SYMBOL=N, e.g. sequence=512"))?;
        let symbol = symbol.trim();
        if symbol.is_empty() {
            return Err(format!("{s:?}: the symbol is empty"));
        }
        let max: usize = max
            .trim()
            .parse()
            .map_err(|e| format!("{s:?}: {max:?} is not a size: {e}"))?;
        if max == 0 {
            return Err(format!("{s:?}: the cap must be at least 1"));
        }
        Ok(DimCap {
            symbol: symbol.to_string(),
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::Pooling;

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "teacher-server",
            "serve",
            "--model",
            "m.onnx",
            "--data-dir",
            "d",
            "--output",
            "logits=fc3",
            "--output",
            "embedding=fc2",
            "--pool",
            "embedding=mean",
            "--tap",
            "h1:f32",
            "--ep",
            "cpu",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(a.outputs.len(), 2);
        assert_eq!(a.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(a.ep, EpChoice::Cpu);
        assert_eq!(a.max_batch_rows, 1024);
        assert_eq!(a.max_body_bytes, 64 << 20);
        assert_eq!(a.pools[0].pooling, Pooling::Mean);
        assert!("max".parse::<Pooling>().is_err());
    }

    #[test]
    fn minimums_and_domain_values_are_enforced_by_the_parser() {
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "teacher-server",
                "serve",
                "--model",
                "m.onnx",
                "--data-dir",
                "d",
            ];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        for flag in [
            "--max-batch-rows",
            "--max-request-rows",
            "--queue-capacity",
            "--shard-max-rows",
            "--row-group-rows",
            "--logits-topk",
        ] {
            let e = parse(&[flag, "0"]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}: {e}"
            );
            assert!(e.to_string().contains(flag), "{flag}: {e}");
            assert!(parse(&[flag, "1"]).is_ok(), "{flag} 1");
        }
        let e = parse(&["--pool", "emb=max"]).unwrap_err();
        assert!(e.to_string().contains("unknown pooling"), "{e}");
        assert!(parse(&["--output", "logits"]).is_err());
        assert!(parse(&["--feature-dtype", "bf16"]).is_err());
        let Command::Serve(a) = parse(&["--feature-dtype", "f16", "--ep", "cuda"])
            .unwrap()
            .command
        else {
            panic!("expected serve")
        };
        assert_eq!(a.feature_dtype, FeatureDType::F16);
        assert_eq!(a.ep, EpChoice::Cuda);
    }
}
