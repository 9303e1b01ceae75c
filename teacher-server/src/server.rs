//! `teacher-server serve`: load the runtime and model, open the store, start the batcher,
//! bind, serve until SIGTERM/SIGINT, then drain and close.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use distill_proto::api::{dims_text, Dim, ModelInfo, PoolingInfo, SequenceInfo, TextInputInfo};
use distill_proto::onnx::{add_taps, decode_model, encode_model, Tap};
use distill_proto::store::{LabelStore, StoreOptions, TeacherFingerprint};
use distill_proto::DType;
use sha2::{Digest, Sha256};

use crate::batcher::{Batcher, BatcherConfig};
use crate::cli::{DimCap, ServeArgs, TextArgs};
use crate::decode::DecodeOptions;
use crate::listen::{self, ConnLimits};
use crate::metrics::{Metrics, ProviderLabels};
use crate::outputs::{self, OutputPlan, PoolRule};
use crate::routes;
use crate::seq_limit::{self, PositionLimit, SeqLimit, StDefaults};
use crate::state::AppState;
use crate::teacher::ort::{init_runtime, ort_version, preload_cuda_libs, OrtTeacher};
use crate::teacher::placement::computing_provider;
use crate::teacher::{EpChoice, Signature, Teacher};
use crate::text::{
    tokenizer::DEFAULT_MAX_SEQ_LEN, Batching, TextFront, TextTokenizer, TokenLayout, TEXT_INPUT,
};
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
    let env = init_runtime(args.ort.ort_lib.as_deref())?;
    let ort_version = ort_version(args.ort.ort_lib.as_deref());
    if !args.cuda_lib_dirs.is_empty() {
        if args.ep == EpChoice::Cpu {
            tracing::warn!("--cuda-lib-dir is ignored with --ep cpu");
        } else {
            let loaded = preload_cuda_libs(&args.cuda_lib_dirs)?;
            tracing::info!(
                libraries = loaded.len(),
                "preloaded CUDA/cuDNN from --cuda-lib-dir"
            );
        }
    }
    let model = load_model(&args.model, &args.taps)?;
    let teacher = OrtTeacher::load(&env, &model.session_bytes, args.ep, args.intra_threads)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let placement = teacher.placement().clone();
    let provider = computing_provider(teacher.provider(), &placement).to_string();
    if provider != teacher.provider() {
        tracing::warn!(registered = %teacher.provider(), nodes = ?placement.providers, "the CUDA provider was registered but ONNX Runtime placed no node on it: rows are recorded as computed on cpu");
    }
    tracing::info!(provider = %provider, ort_version = %ort_version, model = %args.model.display(), "session ready");
    let signature = teacher.signature().clone();
    check_dim_caps(&args.max_dims, &signature)?;
    let position = position_limit(&model, &args.model);
    let st = st_defaults(args)?;
    let (pools, pooling) = pools_in_force(args, &signature, &model.tap_names, &st)?;
    let mut plan: OutputPlan = outputs::resolve(
        &signature,
        &model.tap_names,
        &args.outputs,
        &pools,
        &args.mask_input,
    )?;
    outputs::apply_normalize(&mut plan, &args.normalize)?;
    let logits_topk = outputs::topk(&plan, &args.topk_output, args.logits_topk)?;
    let text = text_front(
        &args.text,
        &signature,
        &args.mask_input,
        &st,
        position.as_ref(),
    )?
    .map(|(front, source)| (Arc::new(front), source));
    let (text, text_len_source) = match text {
        Some((f, s)) => (Some(f), Some(s)),
        None => (None, None),
    };
    let seq = match &text {
        Some(_) => None,
        None => dense_seq_limit(&args.text, &args.mask_input, &signature, position.as_ref())?,
    };
    let sequence = sequence_info(
        text.as_deref(),
        text_len_source.as_deref(),
        seq.as_ref(),
        position.as_ref(),
    );
    match &sequence {
        Some(s) => tracing::info!(max_seq_len = s.max_seq_len, source = %s.source, inputs = ?s.inputs, position_limit = ?s.position_limit, "sequence limit in force (longer rows: 413, or cut with ?truncate=true)"),
        None => tracing::info!("no sequence limit: the model has no token inputs, or none could be read (set --max-seq-len)"),
    }
    for p in &pooling {
        tracing::info!(output = %p.output, pooling = ?p.pooling, source = %p.source, "pooling in force");
    }
    let fingerprint = TeacherFingerprint {
        model_sha256: model.sha256.clone(),
        inputs: signature.inputs.clone(),
        outputs: plan.specs.clone(),
        ort_version: ort_version.clone(),
        provider: provider.clone(),
        feature_dtype: args.feature_dtype,
        logits_topk,
        store_inputs: !args.no_store_inputs,
        tokenizer: text.as_ref().map(|t| t.tokenizer.fingerprint().clone()),
    };
    let store = open_store(&args.data_dir, fingerprint, store_options(args)).await?;
    let foreign_provider =
        foreign_provider_datasets(&store, &provider, args.allow_mixed_providers)?;
    let metrics = Arc::new(Metrics::new());
    metrics
        .provider_info
        .get_or_create(&ProviderLabels {
            provider: provider.clone(),
            ort_version: ort_version.clone(),
            model_sha256: model.sha256.clone(),
        })
        .set(1);
    let batcher = Batcher::start_with_tokens(
        teacher,
        plan.clone(),
        batcher_config(args, &signature),
        text.as_ref().map(|t| t.layout.clone()),
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
        text: text
            .as_deref()
            .map(|f| text_info(f, text_len_source.as_deref().unwrap_or_default())),
        placement,
        sequence,
        pooling,
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
            max_request_elements: args.max_request_elements,
            max_dims: args
                .max_dims
                .iter()
                .map(|c| (c.symbol.clone(), c.max))
                .collect(),
        },
        decode: DecodeOptions {
            allow_non_finite: args.allow_non_finite,
            text: text.is_some(),
        },
        max_body_bytes: args.max_body_bytes,
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        api_token: api_token(args),
        model_name: args
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "teacher".to_string()),
        text,
        seq,
        foreign_provider,
    });
    Ok(Prepared { state })
}

/// The datasets whose rows were computed on another execution provider than `provider`, with
/// theirs (none when mixing is allowed). The set is fixed for the life of the process: a
/// dataset this server creates is computed on its own provider.
fn foreign_provider_datasets(
    store: &LabelStore,
    provider: &str,
    allow_mixed: bool,
) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for d in store.list().context("listing the datasets")? {
        // A dataset the store cannot describe answers its own error on every write.
        let m = match store.manifest(&d.name) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %e, "cannot read the dataset's manifest");
                continue;
            }
        };
        if m.teacher.provider == provider {
            continue;
        }
        if allow_mixed {
            tracing::warn!(dataset = %d.name, dataset_provider = %m.teacher.provider, provider = %provider, "--allow-mixed-providers: rows computed on this provider join a dataset computed on another (the dataset keeps recording its first provider)");
        } else {
            tracing::warn!(dataset = %d.name, dataset_provider = %m.teacher.provider, provider = %provider, "dataset computed on another execution provider: writes to it are refused (start with --allow-mixed-providers to allow them)");
            out.insert(d.name, m.teacher.provider);
        }
    }
    Ok(out)
}

/// The tokenizer and token layout of a text teacher (`--tokenizer`): the ids and mask inputs
/// must exist as integer `[batch, sequence]` inputs, the type ids input is used when the model
/// has it, and the model may take no other input. Also returns where the length in force
/// came from: `--max-seq-len`, else sentence-transformers' `max_seq_length`, else the
/// tokenizer file's truncation, else the model's position limit, else 512 — never more than
/// the position limit.
fn text_front(
    args: &TextArgs,
    signature: &Signature,
    mask_input: &str,
    st: &StDefaults,
    position: Option<&PositionLimit>,
) -> anyhow::Result<Option<(TextFront, String)>> {
    let Some(path) = &args.tokenizer else {
        return Ok(None);
    };
    let file = TextTokenizer::load(path, None, !args.no_truncate)?;
    let (len, source) = match (
        args.max_seq_len,
        &st.max_seq_len,
        file.file_max_len(),
        position,
    ) {
        (Some(n), ..) => (n, "--max-seq-len".to_string()),
        (None, Some((n, src)), ..) => (*n, format!("max_seq_length in {src}")),
        (None, None, Some(n), _) => (n, format!("truncation in {}", path.display())),
        (None, None, None, Some(p)) => (p.rows, p.source.clone()),
        (None, None, None, None) => (DEFAULT_MAX_SEQ_LEN, "the default".to_string()),
    };
    let (len, source) = match position {
        Some(p) if len > p.rows => {
            if args.max_seq_len.is_some() {
                anyhow::bail!(
                    "--max-seq-len {len} is more than the model's position limit of {} ({})",
                    p.rows,
                    p.source
                );
            }
            tracing::warn!(
                len,
                limit = p.rows,
                "{source} is more than the model's position limit: capped"
            );
            (
                p.rows,
                format!("{source}, capped at the position limit from {}", p.source),
            )
        }
        _ => (len, source),
    };
    let tokenizer = TextTokenizer::load(path, Some(len), !args.no_truncate)?;
    let token_input = |name: &str, flag: &str| -> anyhow::Result<DType> {
        let spec = signature.input(name).with_context(|| {
            format!(
                "--tokenizer: the model has no input {name:?} (set {flag}); its inputs are {:?}",
                signature.inputs.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })?;
        if !matches!(spec.dtype, DType::I64 | DType::I32) || spec.shape.len() != 2 {
            anyhow::bail!(
                "--tokenizer: input {name:?} is {} {}, expected an integer [batch, sequence]",
                spec.dtype,
                dims_text(&spec.shape)
            );
        }
        Ok(spec.dtype)
    };
    let dtype = token_input(&args.ids_input, "--ids-input")?;
    token_input(mask_input, "--mask-input")?;
    let type_ids = match signature.input(&args.type_ids_input) {
        Some(_) => {
            token_input(&args.type_ids_input, "--type-ids-input")?;
            Some(args.type_ids_input.clone())
        }
        None => None,
    };
    let fed = [
        Some(&args.ids_input),
        Some(&mask_input.to_string()),
        type_ids.as_ref(),
    ];
    if let Some(other) = signature
        .inputs
        .iter()
        .find(|s| !fed.iter().flatten().any(|n| **n == s.name))
    {
        anyhow::bail!(
            "--tokenizer: the model also takes input {:?}, which the server cannot feed from text",
            other.name
        );
    }
    Ok(Some((
        TextFront {
            layout: TokenLayout {
                ids: args.ids_input.clone(),
                mask: mask_input.to_string(),
                type_ids,
                dtype,
                pad_id: tokenizer.pad_id(),
                batching: args.batching,
                max_batch_tokens: args.max_batch_tokens,
            },
            tokenizer,
        },
        source,
    )))
}

/// `/v1/model`'s description of the text input; `len_source` says where its length came from.
fn text_info(front: &TextFront, len_source: &str) -> TextInputInfo {
    let fp = front.tokenizer.fingerprint();
    let l = &front.layout;
    TextInputInfo {
        input: TEXT_INPUT.to_string(),
        tokenizer_sha256: fp.sha256.clone(),
        max_seq_len: fp.max_seq_len,
        max_seq_len_source: len_source.to_string(),
        truncate: fp.truncate,
        token_inputs: [Some(&l.ids), Some(&l.mask), l.type_ids.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        max_batch_tokens: l.max_batch_tokens,
        batching: match l.batching {
            Batching::Tokens => "tokens",
            Batching::Rows => "rows",
        }
        .to_string(),
    }
}

/// The model's position limit: from the graph, else a `config.json` beside the model.
fn position_limit(model: &LoadedModel, path: &Path) -> Option<PositionLimit> {
    let from_graph = match decode_model(&model.session_bytes) {
        Ok(m) => seq_limit::graph_position_limit(&m),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the graph for its position limit");
            None
        }
    };
    from_graph.or_else(|| seq_limit::config_position_limit(path.parent()?))
}

/// The sentence-transformers files beside the tokenizer (first) or the model.
fn st_defaults(args: &ServeArgs) -> anyhow::Result<StDefaults> {
    let tok_dir = args.text.tokenizer.as_deref().and_then(Path::parent);
    let model_dir = args.model.parent();
    let dirs: Vec<&Path> = [tok_dir, model_dir].into_iter().flatten().collect();
    Ok(seq_limit::st_defaults(&dirs)?)
}

/// The `--pool` rules, plus sentence-transformers' pooling for every 3-D float graph output
/// no `--pool` names (whose width is the config's, when it gives one), and where each came from.
fn pools_in_force(
    args: &ServeArgs,
    signature: &Signature,
    tap_names: &[String],
    st: &StDefaults,
) -> anyhow::Result<(Vec<PoolRule>, Vec<PoolingInfo>)> {
    let mut pools = args.pools.clone();
    let mut info: Vec<PoolingInfo> = pools
        .iter()
        .map(|p| PoolingInfo {
            output: p.output.clone(),
            pooling: p.pooling,
            source: "--pool".into(),
        })
        .collect();
    if let Some((pooling, width, source)) = &st.pooling {
        // Stored names, to leave outputs a --pool rule names alone.
        let plan = outputs::resolve(signature, tap_names, &args.outputs, &[], &args.mask_input)?;
        for spec in &plan.specs {
            let fits = spec.source == distill_proto::api::OutputSource::Output
                && spec.dtype.is_float()
                && spec.shape.len() == 3
                && match (width, spec.shape.last()) {
                    (Some(w), Some(Dim::Fixed(n))) => *n == *w,
                    _ => true,
                };
            if fits && !pools.iter().any(|p| p.output == spec.name) {
                pools.push(PoolRule {
                    output: spec.name.clone(),
                    pooling: *pooling,
                });
                info.push(PoolingInfo {
                    output: spec.name.clone(),
                    pooling: *pooling,
                    source: source.clone(),
                });
            }
        }
    }
    Ok((pools, info))
}

/// The sequence limit of a model served without a tokenizer: on its integer `[batch,
/// sequence]` ids input (and mask, type ids), `--max-seq-len` else the position limit.
fn dense_seq_limit(
    args: &TextArgs,
    mask_input: &str,
    signature: &Signature,
    position: Option<&PositionLimit>,
) -> anyhow::Result<Option<SeqLimit>> {
    let token_input = |name: &str| {
        signature
            .input(name)
            .is_some_and(|s| matches!(s.dtype, DType::I64 | DType::I32) && s.shape.len() == 2)
    };
    if !token_input(&args.ids_input) {
        return Ok(None);
    }
    let (max, source) = match (args.max_seq_len, position) {
        (Some(n), Some(p)) if n > p.rows => anyhow::bail!(
            "--max-seq-len {n} is more than the model's position limit of {} ({})",
            p.rows,
            p.source
        ),
        (Some(n), _) => (n, "--max-seq-len".to_string()),
        (None, Some(p)) => (p.rows, p.source.clone()),
        (None, None) => return Ok(None),
    };
    let mut inputs = vec![args.ids_input.clone()];
    for name in [mask_input, args.type_ids_input.as_str()] {
        if token_input(name) && !inputs.iter().any(|i| i == name) {
            inputs.push(name.to_string());
        }
    }
    Ok(Some(SeqLimit {
        max,
        source,
        mask: token_input(mask_input).then(|| mask_input.to_string()),
        inputs,
    }))
}

/// `/v1/model`'s `sequence`: the text front's length in force, or the dense limit.
fn sequence_info(
    text: Option<&TextFront>,
    text_source: Option<&str>,
    seq: Option<&SeqLimit>,
    position: Option<&PositionLimit>,
) -> Option<SequenceInfo> {
    let (max_seq_len, source, inputs) = match (text, seq) {
        (Some(f), _) => (
            f.tokenizer.fingerprint().max_seq_len,
            text_source.unwrap_or_default().to_string(),
            [
                Some(&f.layout.ids),
                Some(&f.layout.mask),
                f.layout.type_ids.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        ),
        (None, Some(s)) => (s.max, s.source.clone(), s.inputs.clone()),
        (None, None) => return None,
    };
    Some(SequenceInfo {
        max_seq_len,
        source,
        position_limit: position.map(|p| p.rows),
        position_limit_source: position.map(|p| p.source.clone()),
        inputs,
    })
}

/// Shard rolling and row groups as the flags say (the CLI has already refused zeros).
fn store_options(args: &ServeArgs) -> StoreOptions {
    StoreOptions {
        shard_max_rows: args.shard_max_rows,
        row_group_rows: args.row_group_rows,
        encode_backlog_bytes: args.encode_backlog_mib << 20,
        ..StoreOptions::default()
    }
}

/// Opens the label store off the async executor.
async fn open_store(
    data_dir: &Path,
    fingerprint: TeacherFingerprint,
    options: StoreOptions,
) -> anyhow::Result<LabelStore> {
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || LabelStore::open(&dir, fingerprint, options))
        .await
        .context("store task")?
        .with_context(|| format!("opening the label store in {}", data_dir.display()))
}

/// Whether requests may be merged into one run: only when every input's batch axis is
/// dynamic (a model with a fixed batch axis cannot take merged requests).
fn merges_requests(signature: &Signature) -> bool {
    signature
        .inputs
        .iter()
        .all(|s| matches!(s.shape.first(), Some(Dim::Dynamic(_))))
}

/// Batching as the flags say.
fn batcher_config(args: &ServeArgs, signature: &Signature) -> BatcherConfig {
    BatcherConfig {
        max_batch_rows: args.max_batch_rows,
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue_capacity: args.queue_capacity,
        queue_elements: args.queue_elements,
        merge: merges_requests(signature),
    }
}

/// The bearer token, when one is set (an empty one means none).
fn api_token(args: &ServeArgs) -> Option<String> {
    args.api_token.clone().filter(|t| !t.is_empty())
}

/// Every `--max-dim` symbol names a dynamic axis of some input (a typo would cap nothing).
fn check_dim_caps(caps: &[DimCap], signature: &Signature) -> anyhow::Result<()> {
    let symbols: Vec<&str> = signature
        .inputs
        .iter()
        .flat_map(|s| &s.shape)
        .filter_map(|d| match d {
            Dim::Dynamic(s) => Some(s.as_str()),
            Dim::Fixed(_) => None,
        })
        .collect();
    if let Some(c) = caps.iter().find(|c| !symbols.contains(&c.symbol.as_str())) {
        anyhow::bail!(
            "--max-dim {}={}: no input has a dynamic axis named {:?}; the model's are {symbols:?}",
            c.symbol,
            c.max,
            c.symbol
        );
    }
    for spec in &signature.inputs {
        for (axis, d) in spec.shape.iter().enumerate().skip(1) {
            let capped = matches!(d, Dim::Dynamic(s) if caps.iter().any(|c| &c.symbol == s));
            if matches!(d, Dim::Dynamic(_)) && !capped {
                // Only --max-request-elements bounds it: one long row may still cost a
                // quadratic amount of memory in an attention layer.
                tracing::warn!(
                    input = %spec.name,
                    axis,
                    "dynamic axis {} has no --max-dim cap",
                    dims_text(std::slice::from_ref(d))
                );
            }
        }
    }
    Ok(())
}

/// Refuses to serve without a token on an address other machines can reach, unless
/// `--allow-no-token` says that is meant (then it warns).
fn check_exposure(args: &ServeArgs) -> anyhow::Result<()> {
    if args.bind.ip().is_loopback() || api_token(args).is_some() {
        return Ok(());
    }
    if args.allow_no_token {
        tracing::warn!(
            bind = %args.bind,
            "serving WITHOUT a token on an address beyond loopback (--allow-no-token): anyone \
             who can reach it can score, store and seal datasets"
        );
        return Ok(());
    }
    anyhow::bail!(
        "--bind {} reaches beyond loopback and no --api-token (DISTILL_API_TOKEN) is set: set a \
         token, bind 127.0.0.1, or pass --allow-no-token (DISTILL_ALLOW_NO_TOKEN=true) to \
         serve unauthenticated",
        args.bind
    )
}

/// Serves until a shutdown signal, then finishes queued work and closes the store.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    check_exposure(&args)?;
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
    let limits = ConnLimits {
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        max_connections: args.max_connections,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
    };
    listen::serve_connections(
        listener,
        app,
        limits,
        state.metrics.clone(),
        shutdown_signal(),
    )
    .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use distill_proto::api::TensorSpec;
    use distill_proto::DType;

    use crate::cli::{Cli, Command};

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec![
            "teacher-server",
            "serve",
            "--model",
            "m.onnx",
            "--data-dir",
            "d",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => *a,
            Command::Inspect(_) => panic!("expected serve"),
        }
    }

    fn sig(batch: Dim) -> Signature {
        Signature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype: DType::F32,
                shape: vec![batch, Dim::Fixed(4)],
            }],
            outputs: vec![],
            unsupported_outputs: vec![],
        }
    }

    #[test]
    fn a_fixed_batch_axis_turns_merging_off() {
        assert!(merges_requests(&sig(Dim::Dynamic("batch".into()))));
        assert!(!merges_requests(&sig(Dim::Fixed(1))));
        let a = args(&[
            "--max-batch-rows",
            "8",
            "--max-wait-ms",
            "5",
            "--queue-capacity",
            "9",
        ]);
        let c = batcher_config(&a, &sig(Dim::Fixed(1)));
        assert_eq!(
            (c.max_batch_rows, c.max_wait, c.queue_capacity, c.merge),
            (8, Duration::from_millis(5), 9, false)
        );
    }

    #[test]
    fn a_token_is_required_beyond_loopback() {
        assert!(check_exposure(&args(&[])).is_ok());
        assert!(check_exposure(&args(&["--bind", "[::1]:9"])).is_ok());
        let e = check_exposure(&args(&["--bind", "0.0.0.0:8080"])).unwrap_err();
        assert!(e.to_string().contains("--allow-no-token"), "{e}");
        // An empty token is no token.
        assert!(check_exposure(&args(&["--bind", "0.0.0.0:8080", "--api-token", ""])).is_err());
        assert!(check_exposure(&args(&["--bind", "0.0.0.0:8080", "--api-token", "t"])).is_ok());
        assert!(check_exposure(&args(&["--bind", "0.0.0.0:8080", "--allow-no-token"])).is_ok());
    }

    #[test]
    fn dim_caps_must_name_a_dynamic_axis() {
        let s = sig(Dim::Dynamic("batch".into()));
        let cap = |s: &str| s.parse::<DimCap>().unwrap();
        assert!(check_dim_caps(&[cap("batch=8")], &s).is_ok());
        let e = check_dim_caps(&[cap("sequence=8")], &s).unwrap_err();
        assert!(e.to_string().contains("[\"batch\"]"), "{e}");
        assert!("sequence".parse::<DimCap>().is_err());
        assert!("sequence=0".parse::<DimCap>().is_err());
        assert!("=4".parse::<DimCap>().is_err());
        assert_eq!(
            cap("sequence = 512"),
            DimCap {
                symbol: "sequence".into(),
                max: 512
            }
        );
    }

    #[test]
    fn store_options_and_token_follow_the_flags() {
        let o = store_options(&args(&["--shard-max-rows", "10", "--row-group-rows", "3"]));
        assert_eq!((o.shard_max_rows, o.row_group_rows), (10, 3));
        assert_eq!(o.shard_max_bytes, StoreOptions::default().shard_max_bytes);
        assert_eq!(api_token(&args(&[])), None);
        assert_eq!(api_token(&args(&["--api-token", ""])), None);
        assert_eq!(
            api_token(&args(&["--api-token", "t"])).as_deref(),
            Some("t")
        );
    }
}
