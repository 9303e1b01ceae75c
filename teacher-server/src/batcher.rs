//! Dynamic batching: a bounded queue (in rows) in front of one inference thread that owns the
//! teacher. Waiting requests whose inputs have the same per-row shapes are merged into one run
//! of up to `max_batch_rows`, waiting at most `max_wait` for company; larger requests run in
//! chunks. Outputs are pooled (and normalised) on that thread and split back per request.
//! A text teacher's requests are ragged token rows: merged whatever their lengths, ordered by
//! length and cut into runs within a padded-token budget (see [`crate::text::batch`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use distill_proto::api::{Dim, OutputSpec, Pooling};
use distill_proto::store::TokenRows;
use distill_proto::{NamedTensors, Tensor};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::metrics::{Metrics, Stage};
use crate::outputs::OutputPlan;
use crate::pooling::{l2_normalize, pool};
use crate::teacher::{Cause, Teacher, TeacherError};
use crate::text::batch::{plan_runs, run_inputs, scatter, token_counts, Batching, TokenLayout};

/// Inputs shared between the handler (which stores them) and the inference thread.
pub type Inputs = Arc<NamedTensors>;

/// What one request hands the inference thread.
#[derive(Debug, Clone)]
pub enum JobInputs {
    /// Dense tensors by input name.
    Dense(Inputs),
    /// A text teacher's ragged token rows.
    Tokens(Arc<TokenRows>),
}

impl From<Inputs> for JobInputs {
    fn from(inputs: Inputs) -> Self {
        JobInputs::Dense(inputs)
    }
}

impl From<Arc<TokenRows>> for JobInputs {
    fn from(rows: Arc<TokenRows>) -> Self {
        JobInputs::Tokens(rows)
    }
}

/// Outputs of one request by stored name, in plan order.
pub type Outputs = NamedTensors;

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most rows per inference run.
    pub max_batch_rows: usize,
    /// Longest wait for more requests to merge.
    pub max_wait: Duration,
    /// Rows that may wait before new requests are refused.
    pub queue_capacity: usize,
    /// Input elements that may wait before new requests are refused (rows alone do not
    /// bound memory: a row may be one number or a million).
    pub queue_elements: usize,
    /// Whether requests may be merged at all (false when the batch axis is fixed).
    pub merge: bool,
}

struct Pending {
    inputs: JobInputs,
    rows: usize,
    elements: usize,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Outputs, TeacherError>>,
}

struct QueueState {
    jobs: VecDeque<Pending>,
    queued_rows: usize,
    queued_elements: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<QueueState>,
    wake: Condvar,
    config: BatcherConfig,
    tokens: Option<TokenLayout>,
    metrics: Arc<Metrics>,
}

impl Shared {
    /// An open, empty queue for `config`; the inference thread (if any) is started apart.
    fn new(config: BatcherConfig, tokens: Option<TokenLayout>, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                queued_rows: 0,
                queued_elements: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            config,
            tokens,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned lock only means a thread panicked while holding it; the queue is still
        // consistent (every mutation is a single push/pop), so carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to the queue and its inference thread.
pub struct Batcher {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Batcher {
    /// Starts the inference thread, which takes ownership of the teacher.
    pub fn start<T: Teacher>(
        teacher: T,
        plan: OutputPlan,
        config: BatcherConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        Self::start_with_tokens(teacher, plan, config, None, metrics)
    }

    /// Like [`Batcher::start`]; `tokens` says where a text teacher's token inputs are, for
    /// requests submitted as token rows.
    pub fn start_with_tokens<T: Teacher>(
        teacher: T,
        plan: OutputPlan,
        config: BatcherConfig,
        tokens: Option<TokenLayout>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let config = BatcherConfig {
            max_batch_rows: config.max_batch_rows.max(1),
            ..config
        };
        let shared = Arc::new(Shared::new(config, tokens, metrics));
        let worker_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || worker(worker_shared, teacher, plan))?;
        Ok(Self {
            shared,
            worker: Mutex::new(Some(handle)),
        })
    }

    /// Queues a request; the receiver yields its outputs. Refuses with 429 when the queue
    /// holds too many rows, 503 once shutting down.
    pub fn submit(
        &self,
        inputs: impl Into<JobInputs>,
        rows: usize,
    ) -> Result<oneshot::Receiver<Result<Outputs, TeacherError>>, ApiError> {
        let inputs = inputs.into();
        if matches!(inputs, JobInputs::Tokens(_)) && self.shared.tokens.is_none() {
            return Err(ApiError::NoTokenizer);
        }
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.lock();
        if st.closed {
            return Err(ApiError::ShuttingDown);
        }
        // An empty queue always takes one request, so a request larger than the capacity
        // (but within --max-request-rows) is not refused forever.
        if st.queued_rows > 0 && st.queued_rows + rows > self.shared.config.queue_capacity {
            self.shared.metrics.queue_rejections.inc();
            return Err(ApiError::QueueFull {
                queued: st.queued_rows,
            });
        }
        let elements = elements_of(&inputs);
        if st.queued_elements > 0
            && st.queued_elements.saturating_add(elements) > self.shared.config.queue_elements
        {
            self.shared.metrics.queue_rejections.inc();
            return Err(ApiError::QueueFullElements {
                queued: st.queued_elements,
            });
        }
        st.queued_rows += rows;
        st.queued_elements += elements;
        st.jobs.push_back(Pending {
            inputs,
            rows,
            elements,
            enqueued: Instant::now(),
            reply: tx,
        });
        self.shared.metrics.queue_rows.set(st.queued_rows as i64);
        drop(st);
        self.shared.wake.notify_all();
        Ok(rx)
    }

    /// Rows waiting for inference.
    pub fn queued_rows(&self) -> usize {
        self.shared.lock().queued_rows
    }

    /// Input elements waiting for inference.
    pub fn queued_elements(&self) -> usize {
        self.shared.lock().queued_elements
    }

    /// Whether the inference thread is still running (false once it has exited or panicked).
    pub fn is_alive(&self) -> bool {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops accepting requests, lets the thread finish every queued one, and waits for it.
    pub fn shutdown(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the inference thread panicked");
            }
        }
    }
}

/// Input elements of a request: every input's values; token rows as the batcher pads them
/// (rows x longest row).
fn elements_of(inputs: &JobInputs) -> usize {
    match inputs {
        JobInputs::Dense(d) => d
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .fold(0usize, usize::saturating_add),
        JobInputs::Tokens(t) => t
            .len()
            .saturating_mul(t.ids.iter().map(Vec::len).max().unwrap_or(0)),
    }
}

/// Takes a request off the queue's counts.
fn dequeue(st: &mut QueueState, job: &Pending) {
    st.queued_rows -= job.rows;
    st.queued_elements -= job.elements;
}

/// Drops queued requests whose client has gone (its handler, and so the receiver, was
/// dropped): running them would spend the inference thread on answers nobody reads.
fn drop_abandoned(shared: &Shared, st: &mut QueueState) {
    let before = st.jobs.len();
    let mut kept = VecDeque::with_capacity(before);
    while let Some(job) = st.jobs.pop_front() {
        if job.reply.is_closed() {
            dequeue(st, &job);
        } else {
            kept.push_back(job);
        }
    }
    st.jobs = kept;
    let gone = before - st.jobs.len();
    if gone > 0 {
        shared.metrics.requests_abandoned.inc_by(gone as u64);
    }
}

/// Whether two requests can share a run: same per-row shape for every input; token rows
/// always can (each run is padded to its own longest row).
fn compatible(a: &JobInputs, b: &JobInputs) -> bool {
    match (a, b) {
        (JobInputs::Dense(a), JobInputs::Dense(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|((_, x), (_, y))| {
                    x.shape().get(1..) == y.shape().get(1..) && x.dtype() == y.dtype()
                })
        }
        (JobInputs::Tokens(_), JobInputs::Tokens(_)) => true,
        _ => false,
    }
}

/// Takes the next group of requests to run, or `None` once closed and drained.
fn next_group(shared: &Shared) -> Option<Vec<Pending>> {
    let cfg = shared.config;
    let mut st = shared.lock();
    loop {
        drop_abandoned(shared, &mut st);
        if !st.jobs.is_empty() {
            break;
        }
        if st.closed {
            shared.metrics.queue_rows.set(st.queued_rows as i64);
            return None;
        }
        st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
    }
    let first = st.jobs.pop_front()?;
    dequeue(&mut st, &first);
    let mut rows = first.rows;
    let deadline = first.enqueued + cfg.max_wait;
    let mut group = vec![first];
    if cfg.merge {
        loop {
            let mut i = 0;
            while i < st.jobs.len() && rows < cfg.max_batch_rows {
                let fits = rows + st.jobs[i].rows <= cfg.max_batch_rows
                    && compatible(&st.jobs[i].inputs, &group[0].inputs);
                if fits && !st.jobs[i].reply.is_closed() {
                    if let Some(job) = st.jobs.remove(i) {
                        dequeue(&mut st, &job);
                        rows += job.rows;
                        group.push(job);
                    }
                } else {
                    i += 1;
                }
            }
            let now = Instant::now();
            if rows >= cfg.max_batch_rows || st.closed || now >= deadline {
                break;
            }
            st = shared
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
    shared.metrics.queue_rows.set(st.queued_rows as i64);
    Some(group)
}

fn worker<T: Teacher>(shared: Arc<Shared>, mut teacher: T, plan: OutputPlan) {
    let tensors = plan.tensors();
    while let Some(group) = next_group(&shared) {
        let rows: usize = group.iter().map(|p| p.rows).sum();
        shared.metrics.batch_rows.observe(rows as f64);
        shared.metrics.batch_requests.observe(group.len() as f64);
        let started = Instant::now();
        for p in &group {
            shared.metrics.stage(
                Stage::QueueWait,
                started.saturating_duration_since(p.enqueued),
            );
        }
        let parts: Vec<&JobInputs> = group.iter().map(|p| &p.inputs).collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_any(&mut teacher, &plan, &tensors, &parts, &shared)
        }))
        .unwrap_or_else(|_| Err(TeacherError::Run("the teacher panicked".into())));
        let took = started.elapsed();
        shared.metrics.inference_seconds.observe(took.as_secs_f64());
        shared.metrics.stage(Stage::Inference, took);
        match result {
            Ok(per_job) => {
                shared.metrics.rows_scored.inc_by(rows as u64);
                for (job, out) in group.into_iter().zip(per_job) {
                    // Drop our share of the inputs first, so the handler gets them back
                    // without a copy. The client may have gone; nothing to do then.
                    let Pending { reply, inputs, .. } = job;
                    drop(inputs);
                    let _ = reply.send(Ok(out));
                }
            }
            Err(TeacherError::BadInput(_)) if group.len() > 1 => {
                // One request's values (e.g. an out-of-range token id) must not fail the
                // requests merged with it: run each alone.
                for job in group {
                    let Pending {
                        reply,
                        inputs,
                        rows,
                        ..
                    } = job;
                    let alone = catch_unwind(AssertUnwindSafe(|| {
                        run_any(&mut teacher, &plan, &tensors, &[&inputs], &shared)
                    }))
                    .unwrap_or_else(|_| Err(TeacherError::Run("the teacher panicked".into())));
                    drop(inputs);
                    let answer = alone.map(|mut v| v.pop().unwrap_or_default());
                    if answer.is_ok() {
                        shared.metrics.rows_scored.inc_by(rows as u64);
                    }
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows, "inference run failed");
                for job in group {
                    let Pending { reply, inputs, .. } = job;
                    drop(inputs);
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    tracing::info!("inference thread finished");
}

/// Runs a group of compatible requests, dense or token rows, counting tokens of the latter.
fn run_any<T: Teacher + ?Sized>(
    teacher: &mut T,
    plan: &OutputPlan,
    tensors: &[String],
    parts: &[&JobInputs],
    shared: &Shared,
) -> Result<Vec<Outputs>, TeacherError> {
    let dense: Option<Vec<&Inputs>> = parts
        .iter()
        .map(|p| match p {
            JobInputs::Dense(d) => Some(d),
            JobInputs::Tokens(_) => None,
        })
        .collect();
    if let Some(dense) = dense {
        return run_group(teacher, plan, tensors, &dense, shared.config.max_batch_rows);
    }
    let tokens: Option<Vec<&TokenRows>> = parts
        .iter()
        .map(|p| match p {
            JobInputs::Tokens(t) => Some(t.as_ref()),
            JobInputs::Dense(_) => None,
        })
        .collect();
    let (Some(tokens), Some(layout)) = (tokens, shared.tokens.as_ref()) else {
        return Err(TeacherError::Run(
            "dense and token requests cannot share a run".into(),
        ));
    };
    let (outs, real, padded) = run_token_group(
        teacher,
        plan,
        tensors,
        &tokens,
        layout,
        shared.config.max_batch_rows,
    )?;
    shared.metrics.tokens_real.inc_by(real as u64);
    shared.metrics.tokens_padded.inc_by(padded as u64);
    Ok(outs)
}

/// Whether a stored output keeps the token axis (so comes back per token, not per row).
fn per_token(spec: &OutputSpec) -> bool {
    spec.pooling == Pooling::None
        && spec.shape.len() >= 2
        && matches!(spec.shape[1], Dim::Dynamic(_))
}

/// Runs the token rows of several requests: ordered and cut into runs as the layout says, each
/// run padded to its own longest row; returns the outputs per request and the real and padded
/// token counts.
pub fn run_token_group<T: Teacher + ?Sized>(
    teacher: &mut T,
    plan: &OutputPlan,
    tensors: &[String],
    parts: &[&TokenRows],
    layout: &TokenLayout,
    max_rows: usize,
) -> Result<(Vec<Outputs>, usize, usize), TeacherError> {
    let budget = match layout.batching {
        Batching::Tokens => layout.max_batch_tokens,
        Batching::Rows => usize::MAX,
    };
    let runs = plan_runs(parts, layout.batching, max_rows, budget);
    let mut per_run: Vec<Outputs> = Vec::with_capacity(runs.len());
    for run in &runs {
        let inputs = run_inputs(layout, parts, run).map_err(|e| TeacherError::Run(Cause::of(e)))?;
        let raw = teacher.run(&inputs, tensors)?;
        per_run.push(finish_outputs(plan, raw, &inputs, run.rows.len())?);
    }
    let mut per_job: Vec<Outputs> = (0..parts.len())
        .map(|_| NamedTensors::with_capacity(plan.specs.len()))
        .collect();
    for (i, spec) in plan.specs.iter().enumerate() {
        let outs: Vec<Tensor> = per_run.iter().map(|o| o[i].1.clone()).collect();
        let back = scatter(&spec.name, &runs, &outs, parts, per_token(spec))
            .map_err(|e| TeacherError::Run(Cause::of(e)))?;
        for (job, t) in per_job.iter_mut().zip(back) {
            job.push(spec.name.clone(), t);
        }
    }
    let (real, padded) = token_counts(parts, &runs);
    Ok((per_job, real, padded))
}

/// Runs a group of compatible requests (merged, then in chunks of `max_rows`), pools the
/// outputs and splits them back per request.
pub fn run_group<T: Teacher + ?Sized>(
    teacher: &mut T,
    plan: &OutputPlan,
    tensors: &[String],
    parts: &[&Inputs],
    max_rows: usize,
) -> Result<Vec<Outputs>, TeacherError> {
    let merged: Cow<'_, NamedTensors> = if parts.len() == 1 {
        Cow::Borrowed(parts[0].as_ref())
    } else {
        let mut v = NamedTensors::with_capacity(parts[0].len());
        for (i, (name, _)) in parts[0].iter().enumerate() {
            let pieces: Vec<&Tensor> = parts.iter().map(|p| &p[i].1).collect();
            let t = Tensor::concat_rows(&pieces)
                .map_err(|e| TeacherError::Run(Cause::new(format!("merging {name:?}"), e)))?;
            v.push(name.clone(), t);
        }
        Cow::Owned(v)
    };
    let total: usize = parts.iter().map(|p| p[0].1.rows()).sum();
    let max_rows = max_rows.max(1);
    let mut chunks: Vec<Outputs> = Vec::new();
    let mut start = 0;
    while start < total {
        let len = max_rows.min(total - start);
        let chunk: Cow<'_, NamedTensors> = if start == 0 && len == total {
            Cow::Borrowed(&*merged)
        } else {
            let mut v = NamedTensors::with_capacity(merged.len());
            for (name, t) in merged.iter() {
                let s = t
                    .slice_rows(start, len)
                    .map_err(|e| TeacherError::Run(Cause::of(e)))?;
                v.push(name.clone(), s);
            }
            Cow::Owned(v)
        };
        let raw = teacher.run(&chunk, tensors)?;
        chunks.push(finish_outputs(plan, raw, &chunk, len)?);
        start += len;
    }
    // Stitch chunks back together, then split per request.
    let whole: Outputs = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        let mut out = NamedTensors::with_capacity(plan.specs.len());
        for (i, spec) in plan.specs.iter().enumerate() {
            let pieces: Vec<&Tensor> = chunks.iter().map(|c| &c[i].1).collect();
            let t = Tensor::concat_rows(&pieces)
                .map_err(|e| TeacherError::Run(Cause::new(format!("output {:?}", spec.name), e)))?;
            out.push(spec.name.clone(), t);
        }
        out
    };
    if parts.len() == 1 {
        return Ok(vec![whole]);
    }
    let mut per_job = Vec::with_capacity(parts.len());
    let mut offset = 0;
    for p in parts {
        let rows = p[0].1.rows();
        let mut outs = NamedTensors::with_capacity(whole.len());
        for (name, t) in &whole {
            outs.push(
                name.clone(),
                t.slice_rows(offset, rows)
                    .map_err(|e| TeacherError::Run(Cause::of(e)))?,
            );
        }
        per_job.push(outs);
        offset += rows;
    }
    Ok(per_job)
}

/// Maps graph outputs onto stored names, pools them and checks they have one row per input row.
fn finish_outputs(
    plan: &OutputPlan,
    mut raw: NamedTensors,
    inputs: &NamedTensors,
    rows: usize,
) -> Result<Outputs, TeacherError> {
    let mask = plan.mask_input.as_ref().and_then(|m| inputs.get(m));
    let mut out = NamedTensors::with_capacity(plan.specs.len());
    for (i, spec) in plan.specs.iter().enumerate() {
        let t = take_tensor(&mut raw, plan, i, spec)?;
        let mut t =
            pool(&spec.name, t, spec.pooling, mask).map_err(|e| TeacherError::Run(Cause::of(e)))?;
        if spec.normalize {
            t = l2_normalize(&spec.name, t).map_err(|e| TeacherError::Run(Cause::of(e)))?;
        }
        if t.shape().first() != Some(&rows) {
            return Err(TeacherError::Run(
                format!(
                    "output {:?} has shape {:?}: expected {rows} rows along axis 0, one per input row",
                    spec.name,
                    t.shape()
                )
                .into(),
            ));
        }
        out.push(spec.name.clone(), t);
    }
    Ok(out)
}

/// The graph tensor behind `spec`, moved out when no later spec needs it.
fn take_tensor(
    raw: &mut NamedTensors,
    plan: &OutputPlan,
    index: usize,
    spec: &OutputSpec,
) -> Result<Tensor, TeacherError> {
    let missing =
        || TeacherError::Run(format!("the teacher returned no tensor {:?}", spec.tensor).into());
    let needed_later = plan.specs[index + 1..]
        .iter()
        .any(|s| s.tensor == spec.tensor);
    if needed_later {
        raw.get(&spec.tensor).cloned().ok_or_else(missing)
    } else {
        raw.remove(&spec.tensor).ok_or_else(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::{Dim, OutputSource, Pooling, TensorSpec};
    use distill_proto::{DType, TensorData};

    use crate::teacher::Signature;

    /// y = 2x + 1 row-wise, counting runs and the rows of each.
    struct Affine {
        sig: Signature,
        runs: Arc<Mutex<Vec<usize>>>,
        delay: Duration,
    }

    impl Teacher for Affine {
        fn signature(&self) -> &Signature {
            &self.sig
        }
        fn provider(&self) -> &str {
            "cpu"
        }
        fn run(
            &mut self,
            inputs: &NamedTensors,
            _outputs: &[String],
        ) -> Result<NamedTensors, TeacherError> {
            let x = &inputs[0].1;
            self.runs.lock().unwrap().push(x.rows());
            std::thread::sleep(self.delay);
            let TensorData::F32(v) = x.data() else {
                panic!("f32 expected")
            };
            // Like a Gather with out-of-range ids: some values are refused.
            if v.iter().any(|a| *a < 0.0) {
                return Err(TeacherError::BadInput("negative value".into()));
            }
            let y = Tensor::new(
                x.shape().to_vec(),
                TensorData::F32(v.iter().map(|a| 2.0 * a + 1.0).collect()),
            )
            .unwrap();
            Ok(vec![("y".into(), y)].into())
        }
    }

    fn setup(
        max_batch_rows: usize,
        wait_ms: u64,
        capacity: usize,
        delay_ms: u64,
    ) -> (Batcher, Arc<Mutex<Vec<usize>>>) {
        let spec = TensorSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(2)],
        };
        let runs = Arc::new(Mutex::new(Vec::new()));
        let teacher = Affine {
            sig: Signature {
                inputs: vec![spec.clone()],
                outputs: vec![TensorSpec {
                    name: "y".into(),
                    ..spec.clone()
                }],
                unsupported_outputs: vec![],
            },
            runs: runs.clone(),
            delay: Duration::from_millis(delay_ms),
        };
        let plan = OutputPlan {
            specs: vec![OutputSpec {
                name: "out".into(),
                tensor: "y".into(),
                source: OutputSource::Output,
                dtype: DType::F32,
                shape: spec.shape.clone(),
                pooling: Pooling::None,
                normalize: false,
            }],
            mask_input: None,
        };
        let cfg = BatcherConfig {
            max_batch_rows,
            max_wait: Duration::from_millis(wait_ms),
            queue_capacity: capacity,
            queue_elements: usize::MAX,
            merge: true,
        };
        (
            Batcher::start(teacher, plan, cfg, Arc::new(Metrics::new())).unwrap(),
            runs,
        )
    }

    fn inputs(rows: usize, start: f32) -> Inputs {
        let v: Vec<f32> = (0..rows * 2).map(|i| start + i as f32).collect();
        Arc::new(
            vec![(
                "x".into(),
                Tensor::new(vec![rows, 2], TensorData::F32(v)).unwrap(),
            )]
            .into(),
        )
    }

    fn expect(out: &Outputs, rows: usize, start: f32) {
        let want: Vec<f32> = (0..rows * 2)
            .map(|i| 2.0 * (start + i as f32) + 1.0)
            .collect();
        assert_eq!(out[0].0, "out");
        assert_eq!(
            out[0].1,
            Tensor::new(vec![rows, 2], TensorData::F32(want)).unwrap()
        );
    }

    #[test]
    fn concurrent_requests_merge_and_split_back() {
        let (b, runs) = setup(64, 200, 1000, 0);
        let rxs: Vec<_> = (0..5)
            .map(|i| b.submit(inputs(i + 1, i as f32 * 100.0), i + 1).unwrap())
            .collect();
        for (i, rx) in rxs.into_iter().enumerate() {
            let out = rx.blocking_recv().unwrap().unwrap();
            expect(&out, i + 1, i as f32 * 100.0);
        }
        // 15 rows arrived within the wait: far fewer runs than requests.
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.iter().sum::<usize>(), 15);
        assert!(runs.len() < 5, "runs {runs:?}");
        b.shutdown();
    }

    #[test]
    fn a_refused_request_does_not_fail_its_batch_mates() {
        let (b, _) = setup(64, 200, 1000, 0);
        let good = b.submit(inputs(2, 0.0), 2).unwrap();
        let bad = b.submit(inputs(1, -10.0), 1).unwrap();
        expect(&good.blocking_recv().unwrap().unwrap(), 2, 0.0);
        let err = bad.blocking_recv().unwrap().unwrap_err();
        assert!(matches!(err, TeacherError::BadInput(_)), "{err}");
        b.shutdown();
    }

    #[test]
    fn large_requests_run_in_chunks() {
        let (b, runs) = setup(4, 0, 1000, 0);
        let out = b
            .submit(inputs(10, 0.0), 10)
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        expect(&out, 10, 0.0);
        assert_eq!(*runs.lock().unwrap(), [4, 4, 2]);
        b.shutdown();
    }

    #[test]
    fn different_row_shapes_are_not_merged() {
        let a = JobInputs::from(inputs(2, 0.0));
        let b3: Inputs = Arc::new(
            vec![(
                "x".to_string(),
                Tensor::new(vec![1, 3], TensorData::F32(vec![0.0; 3])).unwrap(),
            )]
            .into(),
        );
        let b3 = JobInputs::from(b3);
        assert!(compatible(&a, &JobInputs::from(inputs(5, 1.0))));
        assert!(!compatible(&a, &b3));
    }

    #[test]
    fn full_queue_refuses_and_shutdown_drains() {
        // Each run takes 50 ms, so requests pile up behind the first.
        let (b, _) = setup(1, 0, 2, 50);
        let mut refused = false;
        let mut pending = Vec::new();
        for _ in 0..5 {
            match b.submit(inputs(2, 0.0), 2) {
                Ok(rx) => pending.push(rx),
                Err(ApiError::QueueFull { .. }) => {
                    refused = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(refused, "a queue of capacity 2 never filled");
        b.shutdown();
        for rx in pending {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
        assert!(matches!(
            b.submit(inputs(1, 0.0), 1),
            Err(ApiError::ShuttingDown)
        ));
    }

    #[test]
    fn the_queue_is_bounded_in_elements_too() {
        // Rows are plenty, elements (2 per row) are not.
        let cfg = BatcherConfig {
            max_batch_rows: 1,
            max_wait: Duration::ZERO,
            queue_capacity: 1000,
            queue_elements: 8,
            merge: true,
        };
        let b = Batcher {
            shared: Arc::new(Shared::new(cfg, None, Arc::new(Metrics::new()))),
            worker: Mutex::new(None),
        };
        // No worker: everything stays queued. 4 + 4 elements fit, the next 4 do not.
        let _a = b.submit(inputs(2, 0.0), 2).unwrap();
        let _c = b.submit(inputs(2, 0.0), 2).unwrap();
        assert_eq!(b.queued_elements(), 8);
        let e = b.submit(inputs(2, 0.0), 2).unwrap_err();
        assert!(
            matches!(e, ApiError::QueueFullElements { queued: 8 }),
            "{e}"
        );
        assert!(!b.is_alive(), "no inference thread was started");
    }

    #[test]
    fn requests_whose_client_has_gone_are_not_run() {
        // The first run holds the thread for 100 ms while the others queue behind it.
        let (b, runs) = setup(1, 0, 1000, 100);
        let first = b.submit(inputs(1, 0.0), 1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..3 {
            // The client gives up: its receiver is dropped while the request waits.
            drop(b.submit(inputs(1, 5.0), 1).unwrap());
        }
        let kept = b.submit(inputs(1, 7.0), 1).unwrap();
        expect(&first.blocking_recv().unwrap().unwrap(), 1, 0.0);
        expect(&kept.blocking_recv().unwrap().unwrap(), 1, 7.0);
        assert!(b.is_alive());
        b.shutdown();
        assert!(!b.is_alive(), "the thread has exited after shutdown");
        assert_eq!(*runs.lock().unwrap(), [1, 1], "abandoned requests ran");
        assert_eq!(b.shared.metrics.requests_abandoned.get(), 3);
        assert_eq!(b.queued_elements(), 0);
    }
}
