//! teacher-server: serves a frozen ONNX teacher over HTTP (JSON or Arrow IPC), batching
//! concurrent requests onto one inference thread, and writes its outputs (logits,
//! embeddings, tapped inner features) to the Parquet label store of `distill_proto::store`.
//!
//! Data path: `routes::score` → `decode` → `validate` → `batcher` (→ `teacher`, `pooling`)
//! → `LabelStore::append` → `encode`. Errors become HTTP statuses in `error` only.
//!
//! Layers: `cli` (flags) and `server` (start-up) sit on top; `routes` (handlers, whose
//! `#[utoipa::path]` operations make up `/openapi.json`) below them; the domain (`decode`,
//! `validate`, `batcher`, `teacher`, `outputs`, `pooling`, `encode`) imports neither.

pub mod batcher;
pub mod cli;
pub mod decode;
pub mod encode;
pub mod error;
pub mod inspect;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod outputs;
pub mod pooling;
pub mod routes;
pub mod seq_limit;
pub mod server;
pub mod state;
pub mod teacher;
pub mod text;
pub mod validate;

pub use cli::{Cli, Command, ServeArgs};
pub use error::ApiError;
pub use teacher::{Signature, Teacher, TeacherError};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => server::serve(*args).await,
        Command::Inspect(args) => {
            let report =
                tokio::task::spawn_blocking(move || inspect::inspect(&args.options())).await??;
            print!("{report}");
            Ok(())
        }
    }
}
