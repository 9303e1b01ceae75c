//! Sequence limits of token inputs and the sentence-transformers defaults beside a model.
//!
//! A transformer's position-embedding table has a fixed number of rows: a longer sequence
//! makes ONNX Runtime fail deep inside the graph. The limit is read once at start — from the
//! graph (a Gather on the position-embedding initializer), else `max_position_embeddings` in a
//! `config.json` beside the model — or set by `--max-seq-len`, and every request's token
//! inputs are checked against it before they reach the teacher: a row over it is truncated
//! when the request asks for it (`?truncate=true`), else refused with 413 naming the row.

use std::path::{Path, PathBuf};

use distill_proto::api::Pooling;
use distill_proto::onnx::ModelProto;
use distill_proto::{NamedTensors, Tensor, TensorData};

/// Where a setting in force came from (shown by `/v1/model` and the start-up log).
pub type Source = String;

/// The position limit of a model: most tokens per row it can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionLimit {
    /// Rows of the position-embedding table.
    pub rows: usize,
    /// Where it was read.
    pub source: Source,
}

/// Ops a weight passes through between its initializer and the Gather (dequantization).
const WEIGHT_OPS: [&str; 5] = ["Mul", "DequantizeLinear", "Cast", "Identity", "Add"];

/// The position limit read from the graph: a Gather whose data is a 2-D initializer (possibly
/// through dequantization ops) named like a position-embedding table.
pub fn graph_position_limit(model: &ModelProto) -> Option<PositionLimit> {
    let graph = model.graph.as_ref()?;
    let init = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    let producer = |name: &str| {
        graph
            .node
            .iter()
            .find(|n| n.output.iter().any(|o| o == name))
    };
    for node in graph.node.iter().filter(|n| n.op_type == "Gather") {
        let Some(data) = node.input.first() else {
            continue;
        };
        if !data.to_ascii_lowercase().contains("position") {
            continue;
        }
        let mut name = data.clone();
        // A few steps back: int8 weights are dequantized (Cast, Mul) before the Gather.
        for _ in 0..4 {
            if let Some(t) = init(&name) {
                if let [rows, _] = t.dims[..] {
                    if rows > 0 {
                        return Some(PositionLimit {
                            rows: rows as usize,
                            source: format!(
                                "the model graph (Gather on position-embedding table {:?})",
                                t.name
                            ),
                        });
                    }
                }
                break;
            }
            match producer(&name) {
                Some(p) if WEIGHT_OPS.contains(&p.op_type.as_str()) => match p.input.first() {
                    Some(i) => name = i.clone(),
                    None => break,
                },
                _ => break,
            }
        }
    }
    None
}

/// `max_position_embeddings` of a Hugging Face `config.json` in `dir`, when there is one.
pub fn config_position_limit(dir: &Path) -> Option<PositionLimit> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).ok()?;
    // Only the one field is read: a config.json of another kind is not this file.
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let rows = value.get("max_position_embeddings")?.as_u64()?;
    Some(PositionLimit {
        rows: usize::try_from(rows).ok()?,
        source: format!("max_position_embeddings in {}", path.display()),
    })
}

/// Why a sentence-transformers file beside the model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StConfigError {
    /// The file exists but is not the JSON it should be.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `sentence_bert_config.json`: sentence-transformers' truncation length.
#[derive(Debug, serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// `1_Pooling/config.json`: sentence-transformers' pooling (fields of newer versions, which
/// this server cannot apply, are read so that they are not silently ignored).
#[derive(Debug, Default, serde::Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: Option<usize>,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// The sentence-transformers defaults found beside the tokenizer or the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StDefaults {
    /// `max_seq_length` and the file it came from.
    pub max_seq_len: Option<(usize, Source)>,
    /// The pooling, its embedding width (when given) and the file it came from.
    pub pooling: Option<(Pooling, Option<usize>, Source)>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StConfigError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Reads `sentence_bert_config.json` and `1_Pooling/config.json` from the first of `dirs`
/// that holds each. A pooling sentence-transformers uses and this server cannot apply
/// (max, sqrt-length mean, weighted mean, last token) is an error: serving another pooling
/// silently would give other embeddings than sentence-transformers does.
pub fn st_defaults(dirs: &[&Path]) -> Result<StDefaults, StConfigError> {
    let mut out = StDefaults::default();
    for dir in dirs {
        if out.max_seq_len.is_none() {
            let path = dir.join("sentence_bert_config.json");
            if let Some(c) = read_json::<SentenceBertConfig>(&path)? {
                out.max_seq_len = c
                    .max_seq_length
                    .filter(|&n| n > 0)
                    .map(|n| (n, path.display().to_string()));
            }
        }
        if out.pooling.is_none() {
            let path = dir.join("1_Pooling").join("config.json");
            if let Some(c) = read_json::<PoolingConfig>(&path)? {
                let modes = [
                    (
                        c.pooling_mode_mean_tokens,
                        Some(Pooling::Mean),
                        "mean_tokens",
                    ),
                    (c.pooling_mode_cls_token, Some(Pooling::Cls), "cls_token"),
                    (c.pooling_mode_max_tokens, None, "max_tokens"),
                    (
                        c.pooling_mode_mean_sqrt_len_tokens,
                        None,
                        "mean_sqrt_len_tokens",
                    ),
                    (
                        c.pooling_mode_weightedmean_tokens,
                        None,
                        "weightedmean_tokens",
                    ),
                    (c.pooling_mode_lasttoken, None, "lasttoken"),
                ];
                let on: Vec<_> = modes.iter().filter(|m| m.0).collect();
                let pooling = match on[..] {
                    [] => None,
                    [(_, Some(p), _)] => Some(*p),
                    _ => {
                        return Err(StConfigError::Invalid {
                            path,
                            message: format!(
                                "pooling {:?} is not one this server applies (mean or cls alone); set --pool NAME=mean|cls|none to choose one",
                                on.iter().map(|m| m.2).collect::<Vec<_>>()
                            ),
                        })
                    }
                };
                out.pooling =
                    pooling.map(|p| (p, c.word_embedding_dimension, path.display().to_string()));
            }
        }
    }
    Ok(out)
}

/// The limit on token inputs and the inputs it applies to (axis 1 of each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqLimit {
    /// Most tokens per row.
    pub max: usize,
    /// Where the limit came from.
    pub source: Source,
    /// The token inputs (`[batch, sequence]`): ids first, then mask and type ids.
    pub inputs: Vec<String>,
    /// The attention-mask input among them, whose ones give a row's length.
    pub mask: Option<String>,
}

/// A row over the limit, refused (413).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqLimitError {
    /// One row needs more tokens than the limit.
    #[error("input {input:?} row {row} has {tokens} tokens, more than the limit of {limit} ({source_}); send ?truncate=true to cut it to {limit}")]
    RowTooLong {
        /// The input.
        input: String,
        /// The row.
        row: usize,
        /// Its tokens.
        tokens: usize,
        /// The limit.
        limit: usize,
        /// Where the limit came from.
        source_: String,
    },
    /// Every row fits but the padding is wider than the limit.
    #[error("input {input:?} is padded to {width} tokens, more than the limit of {limit} ({source_}), though no row needs more than {longest}: pad to at most {limit}, or send ?truncate=true")]
    PaddedTooWide {
        /// The input.
        input: String,
        /// The padded width.
        width: usize,
        /// The longest row.
        longest: usize,
        /// The limit.
        limit: usize,
        /// Where the limit came from.
        source_: String,
    },
}

impl SeqLimitError {
    /// The input at fault.
    pub fn input(&self) -> &str {
        match self {
            SeqLimitError::RowTooLong { input, .. }
            | SeqLimitError::PaddedTooWide { input, .. } => input,
        }
    }
}

/// Length of a row by its mask: up to its last nonzero value.
fn mask_len(t: &Tensor, row: usize, width: usize) -> usize {
    let range = row * width..(row + 1) * width;
    let last = |v: &mut dyn Iterator<Item = bool>| {
        v.enumerate()
            .filter(|(_, nz)| *nz)
            .last()
            .map_or(0, |(i, _)| i + 1)
    };
    match t.data() {
        TensorData::I64(v) => last(&mut v[range].iter().map(|&x| x != 0)),
        TensorData::I32(v) => last(&mut v[range].iter().map(|&x| x != 0)),
        TensorData::Bool(v) => last(&mut v[range].iter().copied()),
        TensorData::F32(v) => last(&mut v[range].iter().map(|&x| x != 0.0)),
        TensorData::F64(v) => last(&mut v[range].iter().map(|&x| x != 0.0)),
        TensorData::F16(v) => last(&mut v[range].iter().map(|x| x.to_f32() != 0.0)),
    }
}

/// The first `keep` columns of a `[rows, width]` tensor.
fn keep_columns(t: &Tensor, keep: usize) -> Tensor {
    let (rows, width) = (t.shape()[0], t.shape()[1]);
    macro_rules! cut {
        ($($v:ident),*) => {
            match t.data() {
                $(TensorData::$v(d) => TensorData::$v(
                    (0..rows).flat_map(|r| d[r * width..r * width + keep].iter().cloned()).collect(),
                ),)*
            }
        };
    }
    let data = cut!(I64, I32, Bool, F32, F64, F16);
    // Same element type, fewer columns: the shape and the data agree by construction.
    Tensor::new(vec![rows, keep], data).unwrap_or_else(|_| t.clone())
}

impl SeqLimit {
    /// Checks the token inputs of a dense request (already checked against the signature)
    /// and, with `truncate`, cuts them to the limit instead of refusing a longer row.
    pub fn apply(&self, inputs: &mut NamedTensors, truncate: bool) -> Result<(), SeqLimitError> {
        let Some(first) = self.inputs.first() else {
            return Ok(());
        };
        let Some(ids) = inputs.get(first) else {
            return Ok(());
        };
        let (rows, width) = match ids.shape() {
            [r, w] => (*r, *w),
            _ => return Ok(()),
        };
        if width <= self.max {
            return Ok(());
        }
        if !truncate {
            let mask = self.mask.as_deref().and_then(|m| inputs.get(m));
            let len = |r: usize| mask.map_or(width, |m| mask_len(m, r, width));
            let longest = (0..rows).map(len).max().unwrap_or(0);
            if let Some(row) = (0..rows).find(|&r| len(r) > self.max) {
                return Err(SeqLimitError::RowTooLong {
                    input: first.clone(),
                    row,
                    tokens: len(row),
                    limit: self.max,
                    source_: self.source.clone(),
                });
            }
            return Err(SeqLimitError::PaddedTooWide {
                input: first.clone(),
                width,
                longest,
                limit: self.max,
                source_: self.source.clone(),
            });
        }
        let mut out = NamedTensors::with_capacity(inputs.len());
        for (name, t) in std::mem::take(inputs) {
            let cut =
                self.inputs.contains(&name) && t.shape().len() == 2 && t.shape()[1] > self.max;
            let t = if cut { keep_columns(&t, self.max) } else { t };
            out.push(name, t);
        }
        *inputs = out;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, v: Vec<i64>) -> Tensor {
        Tensor::new(shape, TensorData::I64(v)).unwrap()
    }

    fn limit(max: usize) -> SeqLimit {
        SeqLimit {
            max,
            source: "test".into(),
            inputs: vec!["input_ids".into(), "attention_mask".into()],
            mask: Some("attention_mask".into()),
        }
    }

    fn inputs() -> NamedTensors {
        vec![
            (
                "input_ids".to_string(),
                t(vec![2, 4], vec![1, 2, 3, 4, 5, 6, 0, 0]),
            ),
            (
                "attention_mask".to_string(),
                t(vec![2, 4], vec![1, 1, 1, 1, 1, 1, 0, 0]),
            ),
        ]
        .into()
    }

    #[test]
    fn rows_over_the_limit_are_refused_or_cut() {
        let mut x = inputs();
        assert!(limit(4).apply(&mut x, false).is_ok());
        let e = limit(3).apply(&mut x, false).unwrap_err();
        assert_eq!(
            e,
            SeqLimitError::RowTooLong {
                input: "input_ids".into(),
                row: 0,
                tokens: 4,
                limit: 3,
                source_: "test".into()
            }
        );
        assert!(
            e.to_string().contains("row 0 has 4 tokens") && e.to_string().contains("limit of 3")
        );
        limit(3).apply(&mut x, true).unwrap();
        assert_eq!(x[0].1.shape(), [2, 3]);
        assert_eq!(x[0].1.data(), &TensorData::I64(vec![1, 2, 3, 5, 6, 0]));
        assert_eq!(x[1].1.data(), &TensorData::I64(vec![1, 1, 1, 1, 1, 0]));
        // Only the padding is too wide: said so, with the longest row.
        let mut y: NamedTensors = vec![
            ("input_ids".to_string(), t(vec![1, 4], vec![1, 2, 0, 0])),
            (
                "attention_mask".to_string(),
                t(vec![1, 4], vec![1, 1, 0, 0]),
            ),
        ]
        .into();
        let e = limit(3).apply(&mut y, false).unwrap_err();
        assert!(
            matches!(
                e,
                SeqLimitError::PaddedTooWide {
                    longest: 2,
                    width: 4,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn st_files_give_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(st_defaults(&[dir.path()]).unwrap(), StDefaults::default());
        std::fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length": 256, "do_lower_case": false}"#,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        let pool = dir.path().join("1_Pooling/config.json");
        std::fs::write(&pool, r#"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}"#).unwrap();
        let d = st_defaults(&[dir.path()]).unwrap();
        assert_eq!(d.max_seq_len.as_ref().map(|x| x.0), Some(256));
        assert_eq!(
            d.pooling.as_ref().map(|x| (x.0, x.1)),
            Some((Pooling::Mean, Some(384)))
        );
        std::fs::write(&pool, r#"{"pooling_mode_max_tokens": true}"#).unwrap();
        let e = st_defaults(&[dir.path()]).unwrap_err();
        assert!(
            e.to_string().contains("max_tokens") && e.to_string().contains("--pool"),
            "{e}"
        );
        std::fs::write(&pool, "not json").unwrap();
        assert!(st_defaults(&[dir.path()]).is_err());
    }

    #[test]
    fn config_json_gives_the_position_limit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(config_position_limit(dir.path()).is_none());
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"max_position_embeddings": 512}"#,
        )
        .unwrap();
        assert_eq!(config_position_limit(dir.path()).map(|l| l.rows), Some(512));
    }
}
