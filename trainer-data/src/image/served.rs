//! The frozen teacher served online (`[data.served]`): each augmented training batch is sent to
//! a running teacher-server as an Arrow IPC body, and the outputs it echoes become the batch's
//! teacher targets. Batches go out one at a time from the loader thread, in epoch order, so a
//! run asks the same questions in the same order every time.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use distill_proto::arrow_codec::tensor_to_column;
use distill_proto::views::{view_seed, Augment};
use distill_proto::{DType, Tensor, TensorData};
use serde_json::Value;
use teacher_client::body::arrow_ipc_body;
use teacher_client::{ClientConfig, RetryPolicy, ScoreClient};

use crate::config::ServedConfig;
use crate::DataError;

/// A connection to the teacher-server and what to ask it.
pub struct ServedTeacher {
    client: ScoreClient,
    server: String,
    /// The model input the batch is sent as.
    input: String,
    /// The augmentation of every batch.
    pub augment: Augment,
    /// `[C, H, W]` of an input row.
    pub layout: [usize; 3],
    base_seed: u64,
    /// The outputs asked for, in target order, with their widths.
    pub outputs: Vec<(String, usize)>,
}

impl std::fmt::Display for ServedTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outputs: Vec<String> = self
            .outputs
            .iter()
            .map(|(n, w)| format!("{n} ({w} values)"))
            .collect();
        write!(
            f,
            "{} (input {:?}, outputs {}, {})",
            self.server,
            self.input,
            outputs.join(", "),
            self.augment
        )
    }
}

impl std::fmt::Debug for ServedTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedTeacher")
            .field("server", &self.server)
            .field("input", &self.input)
            .field("augment", &self.augment)
            .field("outputs", &self.outputs)
            .finish()
    }
}

fn served_error(message: String) -> DataError {
    DataError::Config {
        key: "data.served".into(),
        message,
    }
}

impl ServedTeacher {
    /// Connects to `cfg.server` and asks it for `outputs` of `probe` (one input row), which
    /// checks the input name and the output names and learns each output's width.
    pub fn connect(
        cfg: &ServedConfig,
        data_input: &str,
        probe: &[f32],
        image_shape: Option<&[usize]>,
        outputs: &[String],
    ) -> Result<Self, DataError> {
        let layout = super::views::image_layout(&cfg.augment, probe.len(), image_shape)
            .map_err(served_error)?;
        let client = ScoreClient::new(&ClientConfig {
            server: cfg.server.clone(),
            api_token: std::env::var("DISTILL_API_TOKEN").ok(),
            timeout: Duration::from_secs_f64(cfg.timeout_secs),
            retry: RetryPolicy::default(),
        })
        .map_err(|e| served_error(e.to_string()))?;
        let mut teacher = Self {
            client,
            server: cfg.server.clone(),
            input: cfg
                .model_input
                .clone()
                .unwrap_or_else(|| data_input.to_string()),
            augment: cfg.augment,
            layout,
            base_seed: cfg.view_seed,
            outputs: outputs.iter().map(|o| (o.clone(), 0)).collect(),
        };
        let answer = teacher.ask_raw(probe, 1, "the probe request (one training row)")?;
        for ((name, width), values) in teacher.outputs.iter_mut().zip(answer) {
            if values.is_empty() {
                return Err(served_error(format!("output {name:?} came back empty")));
            }
            *width = values.len();
        }
        Ok(teacher)
    }

    /// The seed of row `row_hash`'s augmentation in `epoch`: its view `epoch`, as
    /// `distill-label label --views` would have made it.
    pub fn seed(&self, row_hash: u64, epoch: usize) -> u64 {
        view_seed(self.base_seed, row_hash, epoch as u32)
    }

    /// The teacher's outputs of `rows` augmented inputs `x`, one flat `rows × width` buffer
    /// per output in [`ServedTeacher::outputs`] order.
    pub fn ask(&self, x: &[f32], rows: usize, what: &str) -> Result<Vec<Vec<f32>>, DataError> {
        let got = self.ask_raw(x, rows, what)?;
        for ((name, width), values) in self.outputs.iter().zip(&got) {
            if values.len() != rows * width {
                return Err(served_error(format!(
                    "{what}: output {name:?} came back with {} values for {rows} rows of width {width}",
                    values.len()
                )));
            }
        }
        Ok(got)
    }

    fn ask_raw(&self, x: &[f32], rows: usize, what: &str) -> Result<Vec<Vec<f32>>, DataError> {
        let width = x.len() / rows.max(1);
        let tensor = Tensor::new(vec![rows, width], TensorData::F32(x.to_vec()))
            .map_err(|e| served_error(format!("{what}: {e}")))?;
        let column = tensor_to_column(&self.input, &tensor, DType::F32, &[])
            .map_err(|e| served_error(format!("{what}: {e}")))?;
        let schema = Schema::new(vec![Field::new(
            self.input.as_str(),
            column.data_type().clone(),
            false,
        )]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![column])
            .map_err(|e| served_error(format!("{what}: {e}")))?;
        let body = arrow_ipc_body(&batch).map_err(|e| served_error(format!("{what}: {e}")))?;
        let names: Vec<&str> = self.outputs.iter().map(|(n, _)| n.as_str()).collect();
        let what = format!("{what} to {}", self.server);
        let answer = self
            .client
            .score_arrow(None, Some(&names.join(",")), &Bytes::from(body), &what)
            .map_err(|e| served_error(e.to_string()))?;
        names
            .iter()
            .map(|name| {
                let value = answer.outputs.get(*name).ok_or_else(|| {
                    served_error(format!("{what}: the answer has no output {name:?}"))
                })?;
                let mut flat = Vec::new();
                flatten_numbers(value, &mut flat)
                    .map_err(|m| served_error(format!("{what}: output {name:?}: {m}")))?;
                Ok(flat)
            })
            .collect()
    }
}

/// Appends the numbers of a nested JSON array in row-major order.
fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten_numbers(i, out)),
        Value::Number(n) => {
            let x = n.as_f64().ok_or_else(|| format!("{n} is not a float"))? as f32;
            if !x.is_finite() {
                return Err(format!("non-finite value {n}"));
            }
            out.push(x);
            Ok(())
        }
        other => Err(format!("expected numbers, found {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::flatten_numbers;

    #[test]
    fn nested_outputs_flatten_row_major_and_junk_is_named() {
        let mut out = Vec::new();
        flatten_numbers(&serde_json::json!([[1.5, 2], [3, -4]]), &mut out).unwrap();
        assert_eq!(out, vec![1.5, 2.0, 3.0, -4.0]);
        let e = flatten_numbers(&serde_json::json!([[1, "x"]]), &mut out).unwrap_err();
        assert!(e.contains("expected numbers"), "{e}");
    }
}
