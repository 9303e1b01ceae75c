//! The background Parquet encoder of one dataset: appends hand it rows that are already in the
//! write-ahead log, and it encodes them into the open shard, finishes shards (footer, fsync,
//! rename, manifest) and then drops their log segments — all off the request path. A bounded
//! backlog (in log bytes) makes appends wait when encoding falls behind, so memory stays
//! bounded. The log is the truth: whatever the encoder has not finished when the process dies
//! (or when it fails, e.g. on a full disk) is rebuilt from the log by recovery.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use super::commit::Counters;
use super::manifest::{corrupt, shard_metadata, sync_dir, write_manifest};
use super::shard::ShardWriter;
use super::wal::remove_segment;
use super::{Fault, Manifest, StoreError, StoreOptions};

/// Work for the encoder, in log order.
enum Job {
    /// Rows logged to shard `shard`'s segment (`bytes`: their size in the log).
    Rows {
        shard: u64,
        batch: RecordBatch,
        bytes: u64,
        /// Execution provider that computed the rows (stamped into the shard's metadata).
        provider: Arc<str>,
    },
    /// Shard `shard` gets no more rows: finish it, list it, then remove `segment`.
    Finish { shard: u64, segment: PathBuf },
    /// Answers once every earlier job is done (Err when the encoder has failed).
    Barrier(mpsc::Sender<Result<(), Fault>>),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Log bytes of the rows queued or being encoded.
    bytes: u64,
    stop: bool,
}

/// What the encoder and the dataset's logger share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued (or stop is asked).
    pushed: Condvar,
    /// Signalled when rows were encoded (room in the backlog).
    popped: Condvar,
    /// The manifest as finished shards make it (read by the dataset, written by the encoder).
    manifest: Mutex<Manifest>,
    /// Set by the first failure; every later job is skipped (its rows stay in the log).
    failed: Mutex<Option<Fault>>,
    counters: Arc<Counters>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below is a plain field update; a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handle a dataset holds: queueing, the shared manifest, and the thread (stopped and
/// joined on drop, so a dropped dataset never writes behind the next one's back).
pub(crate) struct Encoder {
    shared: Arc<Shared>,
    limit: u64,
    thread: Option<JoinHandle<()>>,
}

/// What the encoder thread needs besides the queue.
struct Context {
    dir: PathBuf,
    options: StoreOptions,
}

impl Encoder {
    /// Starts the encoder of the dataset in `dir`, whose manifest is `manifest`.
    pub(crate) fn start(
        dir: &Path,
        name: &str,
        manifest: Manifest,
        options: &StoreOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            pushed: Condvar::new(),
            popped: Condvar::new(),
            manifest: Mutex::new(manifest),
            failed: Mutex::new(None),
            counters,
        });
        let ctx = Context {
            dir: dir.to_path_buf(),
            options: options.clone(),
        };
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("encode-{name}"))
            .spawn(move || run(&s, &ctx))
            .map_err(|e| corrupt(dir, format!("cannot start the shard encoder thread: {e}")))?;
        Ok(Self {
            shared,
            limit: options.encode_backlog_bytes.max(1),
            thread: Some(thread),
        })
    }

    /// Queues logged rows for shard `shard`, computed on `provider`; waits while the backlog
    /// is over its bound (one batch larger than the bound still goes in alone). Returns the
    /// time spent waiting.
    pub(crate) fn rows(
        &self,
        shard: u64,
        batch: RecordBatch,
        bytes: u64,
        provider: Arc<str>,
    ) -> Duration {
        let t0 = Instant::now();
        let mut q = lock(&self.shared.queue);
        while q.bytes > 0 && q.bytes + bytes > self.limit && !q.stop {
            q = self
                .shared
                .popped
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
        q.bytes += bytes;
        self.shared.counters.backlog(bytes as i64);
        q.jobs.push_back(Job::Rows {
            shard,
            batch,
            bytes,
            provider,
        });
        self.shared.pushed.notify_one();
        t0.elapsed()
    }

    /// Queues the end of shard `shard`, whose log segment is `segment`.
    pub(crate) fn finish(&self, shard: u64, segment: PathBuf) {
        self.push(Job::Finish { shard, segment });
    }

    fn push(&self, job: Job) {
        lock(&self.shared.queue).jobs.push_back(job);
        self.shared.pushed.notify_one();
    }

    /// Waits until everything queued so far is encoded (and finished shards listed).
    pub(crate) fn drain(&self) -> Result<(), Fault> {
        let (tx, rx) = mpsc::channel();
        self.push(Job::Barrier(tx));
        rx.recv()
            .unwrap_or_else(|_| Err(Fault::io("the shard encoder thread stopped".to_string())))
    }

    /// The first failure of the encoder, if any.
    pub(crate) fn failure(&self) -> Option<Fault> {
        lock(&self.shared.failed).clone()
    }

    /// Runs `f` on the manifest (as far as finished shards go).
    pub(crate) fn with_manifest<T>(&self, f: impl FnOnce(&mut Manifest) -> T) -> T {
        f(&mut lock(&self.shared.manifest))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.pushed.notify_all();
        self.shared.popped.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The encoder thread: jobs in order until stopped. At stop, queued jobs are dropped — their
/// rows are in the log, which the next open (or an in-place recovery) replays.
fn run(s: &Shared, ctx: &Context) {
    let mut open: Option<ShardWriter> = None;
    loop {
        let job = {
            let mut q = lock(&s.queue);
            loop {
                if q.stop {
                    let dropped = q.bytes;
                    q.jobs.clear();
                    q.bytes = 0;
                    s.counters.backlog(-(dropped as i64));
                    // The open shard's `.tmp` stays, as after a crash: recovery removes it and
                    // rebuilds the shard from the log.
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                q = s.pushed.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        match job {
            Job::Rows {
                shard,
                batch,
                bytes,
                provider,
            } => {
                step(s, &mut open, |open| {
                    write_rows(s, ctx, open, shard, &batch, &provider)
                });
                drop(batch);
                let mut q = lock(&s.queue);
                q.bytes = q.bytes.saturating_sub(bytes);
                s.counters.backlog(-(bytes as i64));
                s.popped.notify_all();
            }
            Job::Finish { shard, segment } => {
                step(s, &mut open, |open| {
                    finish_shard(s, ctx, open, shard, &segment)
                });
            }
            Job::Barrier(tx) => {
                let r = match lock(&s.failed).clone() {
                    Some(f) => Err(f),
                    None => Ok(()),
                };
                let _ = tx.send(r);
            }
        }
    }
}

/// Runs one encoding step unless the encoder has already failed, timing it; a failure abandons
/// the open shard and is kept.
fn step(
    s: &Shared,
    open: &mut Option<ShardWriter>,
    f: impl FnOnce(&mut Option<ShardWriter>) -> Result<(), StoreError>,
) {
    if lock(&s.failed).is_some() {
        return;
    }
    let t0 = Instant::now();
    let r = f(open);
    s.counters.encoded(t0.elapsed());
    if let Err(e) = r {
        fail(s, open, &e);
    }
}

fn fail(s: &Shared, open: &mut Option<ShardWriter>, e: &StoreError) {
    tracing::error!(error = %e, "writing a shard failed; the rows stay in the write-ahead log until the dataset recovers");
    if let Some(w) = open.take() {
        w.abandon();
    }
    lock(&s.failed).get_or_insert_with(|| Fault::of(e));
}

fn write_rows(
    s: &Shared,
    ctx: &Context,
    open: &mut Option<ShardWriter>,
    shard: u64,
    batch: &RecordBatch,
    provider: &str,
) -> Result<(), StoreError> {
    if let Some(w) = open.as_ref() {
        if w.index() != shard {
            return Err(corrupt(
                &ctx.dir,
                format!(
                    "rows for shard {shard} while shard {} is open (internal ordering error)",
                    w.index()
                ),
            ));
        }
    }
    let w = match open {
        Some(w) => w,
        None => {
            let (metadata, columns) = {
                let m = lock(&s.manifest);
                (shard_metadata(&m, &ctx.dir, provider)?, m.columns.clone())
            };
            open.insert(ShardWriter::create(
                &ctx.dir,
                shard,
                batch.schema(),
                &ctx.options,
                metadata,
                &columns,
                s.counters.clone(),
            )?)
        }
    };
    w.write(batch)
}

fn finish_shard(
    s: &Shared,
    ctx: &Context,
    open: &mut Option<ShardWriter>,
    shard: u64,
    segment: &Path,
) -> Result<(), StoreError> {
    match open.take() {
        Some(w) if w.index() == shard => {
            let info = w.finish()?;
            let mut m = lock(&s.manifest);
            m.rows += info.rows;
            m.shards.push(info);
            write_manifest(&ctx.dir, &m)?;
        }
        Some(w) => {
            let index = w.index();
            *open = Some(w);
            return Err(corrupt(
                &ctx.dir,
                format!(
                    "finishing shard {shard} while shard {index} is open (internal ordering error)"
                ),
            ));
        }
        // Never expected (a segment is finished only after rows went to it); keeping the log
        // is the safe answer.
        None => {
            return Err(corrupt(
                &ctx.dir,
                format!("finishing shard {shard}, which has no rows (internal ordering error)"),
            ))
        }
    }
    // Only now that the shard is durable and listed may its log go.
    remove_segment(segment)?;
    if let Some(wal) = segment.parent() {
        sync_dir(wal)?;
    }
    Ok(())
}
