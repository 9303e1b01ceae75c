//! Command line and environment configuration (`DISTILL_*`), parsed with clap and turned into
//! typed settings the rest of the server uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use distill_proto::api::Pooling;
use distill_proto::store::FeatureDType;

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

/// Execution provider choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EpChoice {
    /// CUDA when it can be registered, else CPU.
    #[default]
    Auto,
    /// CUDA or fail to start.
    Cuda,
    /// CPU only.
    Cpu,
}

/// Stored float feature type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FeatureDTypeArg {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit floats.
    F16,
}

impl From<FeatureDTypeArg> for FeatureDType {
    fn from(v: FeatureDTypeArg) -> Self {
        match v {
            FeatureDTypeArg::F32 => FeatureDType::F32,
            FeatureDTypeArg::F16 => FeatureDType::F16,
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
    /// ONNX Runtime location.
    #[command(flatten)]
    pub ort: OrtArgs,
    /// Execution provider.
    #[arg(long, env = "DISTILL_EP", value_enum, default_value_t = EpChoice::Auto)]
    pub ep: EpChoice,
    /// Intra-op threads of the session (0: ONNX Runtime's default).
    #[arg(
        long = "intra-threads",
        env = "DISTILL_INTRA_THREADS",
        default_value_t = 0
    )]
    pub intra_threads: usize,
    /// Stored output role `NAME=TENSOR` (repeatable); default: every graph output under its own name.
    #[arg(long = "output", env = "DISTILL_OUTPUT", value_delimiter = ',')]
    pub outputs: Vec<KeyValue>,
    /// Pooling `NAME=mean|cls|none` of a 3-D stored output `[batch, seq, dim]` (repeatable).
    #[arg(long = "pool", env = "DISTILL_POOL", value_delimiter = ',')]
    pub pools: Vec<KeyValue>,
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
        default_value_t = 1024
    )]
    pub max_batch_rows: usize,
    /// Longest wait in milliseconds for more requests to merge into a run.
    #[arg(long = "max-wait-ms", env = "DISTILL_MAX_WAIT_MS", default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Rows waiting for inference before new requests get 429.
    #[arg(
        long = "queue-capacity",
        env = "DISTILL_QUEUE_CAPACITY",
        default_value_t = 262_144
    )]
    pub queue_capacity: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long = "max-body-bytes", env = "DISTILL_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Most rows in one request (413 above).
    #[arg(
        long = "max-request-rows",
        env = "DISTILL_MAX_REQUEST_ROWS",
        default_value_t = 65_536
    )]
    pub max_request_rows: usize,
    /// Element type of stored float features.
    #[arg(long = "feature-dtype", env = "DISTILL_FEATURE_DTYPE", value_enum, default_value_t = FeatureDTypeArg::F32)]
    pub feature_dtype: FeatureDTypeArg,
    /// Store only the top-K logits (plus their log-sum-exp).
    #[arg(long = "logits-topk", env = "DISTILL_LOGITS_TOPK")]
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
        default_value_t = 100_000
    )]
    pub shard_max_rows: usize,
    /// Rows per Parquet row group.
    #[arg(
        long = "row-group-rows",
        env = "DISTILL_ROW_GROUP_ROWS",
        default_value_t = 8192
    )]
    pub row_group_rows: usize,
    /// Accept NaN/Inf in float inputs instead of rejecting them.
    #[arg(long = "allow-non-finite", env = "DISTILL_ALLOW_NON_FINITE")]
    pub allow_non_finite: bool,
}

/// A `NAME=VALUE` flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Left of `=`.
    pub key: String,
    /// Right of `=`.
    pub value: String,
}

impl FromStr for KeyValue {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok(Self {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(format!("expected NAME=VALUE, got {s:?}")),
        }
    }
}

/// Parses a `--pool` value.
pub fn parse_pooling(s: &str) -> Result<Pooling, String> {
    match s {
        "mean" => Ok(Pooling::Mean),
        "cls" => Ok(Pooling::Cls),
        "none" => Ok(Pooling::None),
        other => Err(format!(
            "unknown pooling {other:?}: expected mean, cls or none"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parses_and_rejects() {
        let kv: KeyValue = "logits=fc3".parse().unwrap();
        assert_eq!((kv.key.as_str(), kv.value.as_str()), ("logits", "fc3"));
        assert!("logits".parse::<KeyValue>().is_err());
        assert!("=fc3".parse::<KeyValue>().is_err());
        assert!("logits=".parse::<KeyValue>().is_err());
    }

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
        assert_eq!(parse_pooling(&a.pools[0].value), Ok(Pooling::Mean));
        assert!(parse_pooling("max").is_err());
    }
}
