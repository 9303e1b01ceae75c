//! Size and speed of a text encoder ONNX: parameters (elements of its initializers and
//! `Constant` tensors), file size, ONNX Runtime throughput at batch 64 and latency at batch 1,
//! on pre-tokenized sentences (tokenization is not timed; pooling and normalisation are).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::encoder::Embedder;
use super::TextEvalError;

/// Sentences per batch for the throughput figure.
pub const THROUGHPUT_BATCH: usize = 64;
/// Timed passes over all sentences (the median is reported), after one untimed pass.
pub const THROUGHPUT_ROUNDS: usize = 3;
/// Sentences timed one by one for the latency figure (after 8 untimed runs).
pub const LATENCY_SENTENCES: usize = 128;

/// The size and speed figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedScore {
    /// Elements of all initializers and `Constant` node tensors (an int8 weight counts one).
    pub parameters: u64,
    /// Bytes of the ONNX file.
    pub onnx_bytes: u64,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// What was timed.
    pub sentences_from: String,
    /// Sentences per pass.
    pub sentences: usize,
    /// Their mean token count (special tokens included).
    pub mean_tokens: f64,
    /// Batch size of the throughput figure (consecutive sentences, padded to the batch's longest).
    pub batch: usize,
    /// Median over [`THROUGHPUT_ROUNDS`] passes.
    pub sentences_per_s: f64,
    /// Median latency of one sentence at batch 1, milliseconds.
    pub latency_ms_batch1: f64,
}

/// Parameters of an ONNX file: elements of its graph's initializers and `Constant` tensors
/// (subgraphs are not visited).
pub fn onnx_parameters(path: &Path) -> Result<u64, TextEvalError> {
    let bytes = super::read_file(path)?;
    let model = distill_proto::onnx::decode_model(&bytes).map_err(|e| TextEvalError::Model {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let elements = |t: &distill_proto::onnx::TensorProto| -> u64 {
        t.dims.iter().map(|&d| d.max(0) as u64).product()
    };
    let Some(graph) = model.graph else {
        return Ok(0);
    };
    let mut n: u64 = graph.initializer.iter().map(elements).sum();
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        n += node
            .attribute
            .iter()
            .filter_map(|a| a.t.as_ref())
            .map(elements)
            .sum::<u64>();
    }
    Ok(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Times `rows` (token ids of `sentences_from`) through `model`.
pub fn measure(
    embedder: &mut Embedder,
    model: &Path,
    rows: &[Vec<u32>],
    sentences_from: &str,
    threads: usize,
) -> Result<SpeedScore, TextEvalError> {
    if rows.is_empty() {
        return Err(TextEvalError::Input("no sentences to time".into()));
    }
    let onnx_bytes = std::fs::metadata(model)
        .map_err(|source| TextEvalError::Io {
            path: model.to_path_buf(),
            source,
        })?
        .len();
    let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
    let pass = |e: &mut Embedder| -> Result<f64, TextEvalError> {
        let t = Instant::now();
        for chunk in refs.chunks(THROUGHPUT_BATCH) {
            e.run_batch(chunk)?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    pass(embedder)?;
    let secs = (0..THROUGHPUT_ROUNDS)
        .map(|_| pass(embedder))
        .collect::<Result<Vec<_>, _>>()?;
    let sentences_per_s = rows.len() as f64 / median(secs).max(1e-9);
    for r in refs.iter().cycle().take(8) {
        embedder.run_batch(std::slice::from_ref(r))?;
    }
    let mut latencies = Vec::new();
    for r in refs.iter().take(LATENCY_SENTENCES) {
        let t = Instant::now();
        embedder.run_batch(std::slice::from_ref(r))?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(SpeedScore {
        parameters: onnx_parameters(model)?,
        onnx_bytes,
        threads,
        sentences_from: sentences_from.to_string(),
        sentences: rows.len(),
        mean_tokens: rows.iter().map(Vec::len).sum::<usize>() as f64 / rows.len() as f64,
        batch: THROUGHPUT_BATCH,
        sentences_per_s,
        latency_ms_batch1: median(latencies),
    })
}
