//! `steps.jsonl`: the training loss every [`STEP_WINDOW`] optimizer steps (row-weighted means
//! over the window), so `curves.png` can show training per step rather than per epoch.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, MetricsError};

/// Optimizer steps averaged into one line of `steps.jsonl` (an epoch's last line may hold fewer).
pub const STEP_WINDOW: usize = 10;

/// One line of `steps.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// Optimizer steps taken so far, at the window's last step.
    pub step: u64,
    /// 1-based epoch the window belongs to.
    pub epoch: usize,
    /// Steps averaged into this line.
    pub steps: usize,
    /// Learning rate of the window's last step.
    pub lr: f64,
    /// Mean weighted total loss over the window's batches.
    pub loss: f64,
    /// Mean unweighted value of each loss term, by label (e.g. `kd:logits`).
    pub terms: BTreeMap<String, f64>,
}

/// Accumulates per-step losses and appends a line to `steps.jsonl` every [`STEP_WINDOW`] steps.
pub struct StepLog {
    path: PathBuf,
    labels: Vec<String>,
    out: BufWriter<std::fs::File>,
    rows: f64,
    loss: f64,
    terms: Vec<f64>,
    steps: usize,
    last: (u64, usize, f64),
}

impl StepLog {
    /// Opens `path`, keeping only the lines up to optimizer step `keep_steps` (what the
    /// checkpoint holds; 0 for a fresh run), and appends from there. Kept lines stay as
    /// written, so a resumed run's file is the one of a straight run.
    pub fn open(path: &Path, labels: Vec<String>, keep_steps: u64) -> Result<Self, MetricsError> {
        let mut body = String::new();
        for (line, r) in read_step_lines(path)? {
            if r.step <= keep_steps {
                body.push_str(&line);
                body.push('\n');
            }
        }
        std::fs::write(path, body).map_err(|e| io_err(path, e))?;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            terms: vec![0.0; labels.len()],
            labels,
            out: BufWriter::new(f),
            rows: 0.0,
            loss: 0.0,
            steps: 0,
            last: (0, 0, 0.0),
        })
    }

    /// Adds one optimizer step: `step` is the step count after it, `terms` the unweighted
    /// term values in label order, `rows` the batch size the means are weighted by.
    pub fn record(
        &mut self,
        epoch: usize,
        step: u64,
        lr: f64,
        rows: usize,
        loss: f32,
        terms: &[f32],
    ) -> Result<(), MetricsError> {
        let w = rows as f64;
        self.rows += w;
        self.loss += loss as f64 * w;
        for (s, v) in self.terms.iter_mut().zip(terms) {
            *s += *v as f64 * w;
        }
        self.steps += 1;
        self.last = (step, epoch, lr);
        if self.steps >= STEP_WINDOW {
            self.write_window()?;
        }
        Ok(())
    }

    /// Writes the epoch's partial window and syncs the file (called before each checkpoint,
    /// so the file always holds every step the checkpoint does).
    pub fn end_epoch(&mut self) -> Result<(), MetricsError> {
        if self.steps > 0 {
            self.write_window()?;
        }
        self.out.flush().map_err(|e| io_err(&self.path, e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| io_err(&self.path, e))
    }

    fn write_window(&mut self) -> Result<(), MetricsError> {
        let n = self.rows.max(1.0);
        let (step, epoch, lr) = self.last;
        let rec = StepRecord {
            step,
            epoch,
            steps: self.steps,
            lr,
            loss: self.loss / n,
            terms: self
                .labels
                .iter()
                .zip(&self.terms)
                .map(|(l, s)| (l.clone(), s / n))
                .collect(),
        };
        let line = serde_json::to_string(&rec).map_err(|e| io_err(&self.path, e))?;
        writeln!(self.out, "{line}").map_err(|e| io_err(&self.path, e))?;
        self.rows = 0.0;
        self.loss = 0.0;
        self.terms.iter_mut().for_each(|t| *t = 0.0);
        self.steps = 0;
        Ok(())
    }
}

/// Reads `steps.jsonl`; a missing file (a run from before it existed) reads as no steps.
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>, MetricsError> {
    Ok(read_step_lines(path)?.into_iter().map(|(_, r)| r).collect())
}

/// The lines of `steps.jsonl`, each with its record.
fn read_step_lines(path: &Path) -> Result<Vec<(String, StepRecord)>, MetricsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|r| (l.to_string(), r))
                .map_err(|e| io_err(path, format!("line {} does not parse: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_average_by_rows_and_resume_drops_later_steps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("steps.jsonl");
        let mut log = StepLog::open(&p, vec!["ce".into()], 0).expect("open");
        for s in 1..=STEP_WINDOW as u64 + 3 {
            // Weighted means: a 1-row batch of loss 4 and a 3-row batch of loss 0 average to 1.
            let (rows, loss) = if s % 2 == 1 { (1, 4.0) } else { (3, 0.0) };
            log.record(1, s, 0.1, rows, loss, &[loss]).expect("record");
        }
        log.end_epoch().expect("end");
        let r = read_steps(&p).expect("read");
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].step, r[0].steps), (STEP_WINDOW as u64, STEP_WINDOW));
        assert!((r[0].loss - 1.0).abs() < 1e-12, "{}", r[0].loss);
        assert!((r[0].terms["ce"] - 1.0).abs() < 1e-12);
        assert_eq!((r[1].step, r[1].steps), (STEP_WINDOW as u64 + 3, 3));
        // Resuming from a checkpoint at step 10 keeps the first window only.
        drop(log);
        let mut log = StepLog::open(&p, vec!["ce".into()], STEP_WINDOW as u64).expect("reopen");
        log.end_epoch().expect("end");
        assert_eq!(read_steps(&p).expect("read").len(), 1);
        // Kept lines stay as written (serde_json reads this float as a neighbour of itself).
        let line =
            r#"{"step":10,"epoch":1,"steps":10,"lr":0.1,"loss":1.8831117975711822,"terms":{}}"#;
        std::fs::write(&p, format!("{line}\n")).expect("write");
        drop(StepLog::open(&p, vec![], 10).expect("reopen"));
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            format!("{line}\n")
        );
        std::fs::write(&p, "{not json\n").expect("write");
        let e = read_steps(&p).expect_err("bad line").to_string();
        assert!(e.contains("steps.jsonl") && e.contains("line 1"), "{e}");
    }
}
