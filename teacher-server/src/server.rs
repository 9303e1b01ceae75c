//! `teacher-server serve`: load the runtime and model, open the store, start the batcher,
//! bind, serve until SIGTERM/SIGINT, then drain and close.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use distill_proto::api::{Dim, ModelInfo};
use distill_proto::onnx::{add_taps, decode_model, encode_model, Tap};
use distill_proto::store::{LabelStore, StoreOptions, TeacherFingerprint, TopK};
use sha2::{Digest, Sha256};

use crate::batcher::{Batcher, BatcherConfig};
use crate::config::ServeArgs;
use crate::decode::DecodeOptions;
use crate::metrics::{Metrics, ProviderLabels};
use crate::outputs::{self, OutputPlan};
use crate::routes;
use crate::state::AppState;
use crate::teacher::ort::{init_runtime, ort_version, OrtTeacher};
use crate::teacher::Teacher;
use crate::validate::Limits;

/// A model file as read from disk, with taps added when asked.
pub struct LoadedModel {
    /// sha256 of the file as given, hex.
    pub sha256: String,
    /// Bytes the session is built from.
    pub session_bytes: Vec<u8>,
    /// Tensor names exposed as taps.
    pub tap_names: Vec<String>,
}

/// Reads the model, hashes it and adds the taps.
pub fn load_model(path: &Path, taps: &[String]) -> anyhow::Result<LoadedModel> {
    let bytes = std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if taps.is_empty() {
        return Ok(LoadedModel {
            sha256,
            session_bytes: bytes,
            tap_names: Vec::new(),
        });
    }
    let taps: Vec<Tap> = taps
        .iter()
        .map(|t| t.parse::<Tap>().with_context(|| format!("--tap {t}")))
        .collect::<anyhow::Result<_>>()?;
    let mut model = decode_model(&bytes).with_context(|| format!("decoding {}", path.display()))?;
    add_taps(&mut model, &taps).context("adding --tap outputs")?;
    Ok(LoadedModel {
        sha256,
        session_bytes: encode_model(&model),
        tap_names: taps.into_iter().map(|t| t.tensor).collect(),
    })
}

/// Everything needed to serve, built from the flags (no socket yet).
pub struct Prepared {
    /// Shared state for the router.
    pub state: Arc<AppState>,
}

/// Loads runtime, model, store and batcher as the flags say.
pub async fn prepare(args: &ServeArgs) -> anyhow::Result<Prepared> {
    if args.max_batch_rows == 0 || args.max_request_rows == 0 || args.queue_capacity == 0 {
        bail!("--max-batch-rows, --max-request-rows and --queue-capacity must be at least 1");
    }
    let env = init_runtime(args.ort.ort_lib.as_deref())?;
    let ort_version = ort_version(args.ort.ort_lib.as_deref());
    let model = load_model(&args.model, &args.taps)?;
    let teacher = OrtTeacher::load(&env, &model.session_bytes, args.ep, args.intra_threads)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let provider = teacher.provider().to_string();
    tracing::info!(provider = %provider, ort_version = %ort_version, model = %args.model.display(), "session ready");
    let signature = teacher.signature().clone();
    let plan: OutputPlan = outputs::resolve(
        &signature,
        &model.tap_names,
        &args.outputs,
        &args.pools,
        &args.mask_input,
    )
    .map_err(anyhow::Error::msg)?;
    let logits_topk = match args.logits_topk {
        None => None,
        Some(0) => bail!("--logits-topk must be at least 1"),
        Some(k) => {
            let Some(spec) = plan.specs.iter().find(|s| s.name == args.topk_output) else {
                bail!(
                    "--logits-topk applies to output {:?}, which is not served (set --topk-output or --output {}=TENSOR)",
                    args.topk_output,
                    args.topk_output
                );
            };
            if !spec.dtype.is_float() {
                bail!(
                    "--logits-topk: output {:?} is {}, not float",
                    spec.name,
                    spec.dtype
                );
            }
            Some(TopK {
                output: args.topk_output.clone(),
                k,
            })
        }
    };
    let fingerprint = TeacherFingerprint {
        model_sha256: model.sha256.clone(),
        inputs: signature.inputs.clone(),
        outputs: plan.specs.clone(),
        ort_version: ort_version.clone(),
        provider: provider.clone(),
        feature_dtype: args.feature_dtype.into(),
        logits_topk,
        store_inputs: !args.no_store_inputs,
    };
    let options = StoreOptions {
        shard_max_rows: args.shard_max_rows.max(1),
        row_group_rows: args.row_group_rows.max(1),
        ..StoreOptions::default()
    };
    let data_dir = args.data_dir.clone();
    let store =
        tokio::task::spawn_blocking(move || LabelStore::open(&data_dir, fingerprint, options))
            .await
            .context("store task")?
            .with_context(|| format!("opening the label store in {}", args.data_dir.display()))?;
    let metrics = Arc::new(Metrics::new());
    metrics
        .provider_info
        .get_or_create(&ProviderLabels {
            provider: provider.clone(),
            ort_version: ort_version.clone(),
            model_sha256: model.sha256.clone(),
        })
        .set(1);
    // A model with a fixed batch axis cannot take merged requests.
    let merge = signature
        .inputs
        .iter()
        .all(|s| matches!(s.shape.first(), Some(Dim::Dynamic(_))));
    let batcher = Batcher::start(
        teacher,
        plan.clone(),
        BatcherConfig {
            max_batch_rows: args.max_batch_rows,
            max_wait: Duration::from_millis(args.max_wait_ms),
            queue_capacity: args.queue_capacity,
            merge,
        },
        metrics.clone(),
    )
    .context("starting the inference thread")?;
    let model_info = ModelInfo {
        model_path: args.model.display().to_string(),
        model_sha256: model.sha256,
        inputs: signature.inputs.clone(),
        outputs: plan.specs.clone(),
        provider,
        ort_version,
        max_batch_rows: args.max_batch_rows,
        max_request_rows: args.max_request_rows,
    };
    let state = Arc::new(AppState {
        signature,
        plan,
        batcher,
        store: Arc::new(store),
        metrics,
        model_info,
        limits: Limits {
            max_request_rows: args.max_request_rows,
            allow_non_finite: args.allow_non_finite,
        },
        decode: DecodeOptions {
            allow_non_finite: args.allow_non_finite,
        },
        max_body_bytes: args.max_body_bytes,
        api_token: args.api_token.clone().filter(|t| !t.is_empty()),
    });
    Ok(Prepared { state })
}

/// Serves until a shutdown signal, then finishes queued work and closes the store.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let Prepared { state } = prepare(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Tests and scripts parse this line to find the port.
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "listening on http://{addr}");
    let app = routes::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("shutting down: finishing queued batches");
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        st.batcher.shutdown();
        st.store.close()
    })
    .await
    .context("shutdown task")?
    .context("closing the label store")?;
    tracing::info!("label store closed; bye");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
