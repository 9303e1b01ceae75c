//! Token-budget batching for a text teacher: the rows of several requests are ordered by
//! length, cut into runs that stay within a row and a padded-token budget, padded per run
//! (never to a global maximum), and their outputs put back per request, in order.
//!
//! A transformer's cost grows with padded tokens, not rows; ordering by length keeps short
//! sentences from being padded to the longest one of the merged requests.

use distill_proto::store::TokenRows;
use distill_proto::{DType, NamedTensors, Tensor, TensorData, TensorError};

/// How rows of merged requests are cut into runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Batching {
    /// Rows ordered by length, runs bounded by rows and padded tokens.
    Tokens,
    /// Rows in arrival order, runs bounded by rows only (the plain baseline).
    Rows,
}

/// Where a text teacher's token inputs are, and how runs are formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLayout {
    /// Input taking the token ids.
    pub ids: String,
    /// Input taking the attention mask.
    pub mask: String,
    /// Input taking the token type ids, when the model has one.
    pub type_ids: Option<String>,
    /// Element type of the token inputs (the model's).
    pub dtype: DType,
    /// Id written into padded positions.
    pub pad_id: u32,
    /// Run formation.
    pub batching: Batching,
    /// Most padded tokens (rows x longest row) per run, under [`Batching::Tokens`].
    pub max_batch_tokens: usize,
}

/// One run: rows as `(request, row)` pairs, and the padded width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Rows of the run, in run order.
    pub rows: Vec<(usize, usize)>,
    /// Longest row of the run (what every row is padded to).
    pub width: usize,
}

/// Under [`Batching::Tokens`], a run of at least this many rows is closed before a row that
/// would drop its padding efficiency (real / padded tokens) below [`MIN_RUN_EFFICIENCY`]: the
/// budget alone would let short sentences share one run with long ones.
pub const MIN_RUN_ROWS: usize = 8;

/// The padding efficiency a run of [`MIN_RUN_ROWS`] or more rows keeps.
pub const MIN_RUN_EFFICIENCY: f64 = 0.9;

/// Cuts the rows of `parts` into runs of at most `max_rows` rows and, under
/// [`Batching::Tokens`], `max_tokens` padded tokens, closing a run early when the next (longer)
/// row would make it mostly padding (a single row always forms a run).
pub fn plan_runs(
    parts: &[&TokenRows],
    batching: Batching,
    max_rows: usize,
    max_tokens: usize,
) -> Vec<Run> {
    let mut rows: Vec<(usize, usize, usize)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, t)| {
            t.ids
                .iter()
                .enumerate()
                .map(move |(r, ids)| (p, r, ids.len()))
        })
        .collect();
    if batching == Batching::Tokens {
        // Stable: rows of equal length keep their arrival order.
        rows.sort_by_key(|&(_, _, len)| len);
    }
    let max_rows = max_rows.max(1);
    let mut runs = Vec::new();
    let mut cur = Run {
        rows: Vec::new(),
        width: 0,
    };
    let mut real = 0usize;
    for (p, r, len) in rows {
        let width = cur.width.max(len);
        let padded = (cur.rows.len() + 1) * width.max(1);
        let cut = batching == Batching::Tokens
            && (padded > max_tokens
                || (cur.rows.len() >= MIN_RUN_ROWS
                    && ((real + len) as f64) < MIN_RUN_EFFICIENCY * padded as f64));
        if !cur.rows.is_empty() && (cur.rows.len() >= max_rows || cut) {
            runs.push(std::mem::replace(
                &mut cur,
                Run {
                    rows: Vec::new(),
                    width: 0,
                },
            ));
            real = 0;
        }
        cur.width = cur.width.max(len);
        cur.rows.push((p, r));
        real += len;
    }
    if !cur.rows.is_empty() {
        runs.push(cur);
    }
    runs
}

/// The model inputs of one run: ids, mask and (when the model takes them) type ids, each
/// `[rows, width]`, padded on the right.
pub fn run_inputs(
    layout: &TokenLayout,
    parts: &[&TokenRows],
    run: &Run,
) -> Result<NamedTensors, TensorError> {
    let (n, w) = (run.rows.len(), run.width);
    let mut ids = vec![i64::from(layout.pad_id); n * w];
    let mut mask = vec![0i64; n * w];
    let mut types = vec![0i64; n * w];
    for (i, &(p, r)) in run.rows.iter().enumerate() {
        let row = &parts[p].ids[r];
        for (j, &id) in row.iter().enumerate() {
            ids[i * w + j] = i64::from(id);
            mask[i * w + j] = 1;
        }
        if let Some(t) = &parts[p].type_ids {
            for (j, &id) in t[r].iter().enumerate() {
                types[i * w + j] = i64::from(id);
            }
        }
    }
    let tensor = |v: Vec<i64>| {
        let data = match layout.dtype {
            DType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
            _ => TensorData::I64(v),
        };
        Tensor::new(vec![n, w], data)
    };
    let mut out = NamedTensors::with_capacity(3);
    out.push(layout.ids.clone(), tensor(ids)?);
    out.push(layout.mask.clone(), tensor(mask)?);
    if let Some(name) = &layout.type_ids {
        out.push(name.clone(), tensor(types)?);
    }
    Ok(out)
}

/// Zeros of `dtype`.
fn zeros(dtype: DType, len: usize) -> TensorData {
    match dtype {
        DType::F32 => TensorData::F32(vec![0.0; len]),
        DType::F16 => TensorData::F16(vec![half::f16::ZERO; len]),
        DType::F64 => TensorData::F64(vec![0.0; len]),
        DType::I64 => TensorData::I64(vec![0; len]),
        DType::I32 => TensorData::I32(vec![0; len]),
        DType::Bool => TensorData::Bool(vec![false; len]),
    }
}

/// Copies `len` elements from `src[from..]` to `dst[to..]` (same element type).
fn copy_elems(dst: &mut TensorData, to: usize, src: &TensorData, from: usize, len: usize) {
    macro_rules! copy {
        ($($v:ident),*) => {
            match (dst, src) {
                $((TensorData::$v(d), TensorData::$v(s)) => {
                    d[to..to + len].copy_from_slice(&s[from..from + len])
                })*
                _ => unreachable!("element types are checked by the caller"),
            }
        };
    }
    copy!(F32, F16, F64, I64, I32, Bool)
}

/// Puts one output back per request: `outs[k]` is the output of `runs[k]`. A per-token output
/// (`per_token`: axis 1 is the run's width) comes back padded with zeros to the longest row of
/// its own request, as if the request had run alone; any other output keeps its row shape.
pub fn scatter(
    name: &str,
    runs: &[Run],
    outs: &[Tensor],
    parts: &[&TokenRows],
    per_token: bool,
) -> Result<Vec<Tensor>, TensorError> {
    let bad = |msg: String| TensorError::Incompatible(format!("output {name:?}: {msg}"));
    let first = outs.first().ok_or_else(|| bad("no runs".into()))?;
    let dtype = first.dtype();
    // Shape of one row past axis 0 (and past the token axis for per-token outputs).
    let tail: Vec<usize> = first.shape()[if per_token { 2 } else { 1 }..].to_vec();
    let inner: usize = tail.iter().product();
    let widths: Vec<usize> = parts
        .iter()
        .map(|t| t.ids.iter().map(Vec::len).max().unwrap_or(0))
        .collect();
    let row_elems = |p: usize| if per_token { widths[p] * inner } else { inner };
    let mut dest: Vec<TensorData> = parts
        .iter()
        .enumerate()
        .map(|(p, t)| zeros(dtype, t.len() * row_elems(p)))
        .collect();
    for (run, out) in runs.iter().zip(outs) {
        let shape = out.shape();
        let rank_ok = shape.len() == tail.len() + if per_token { 2 } else { 1 };
        if out.dtype() != dtype
            || !rank_ok
            || shape[0] != run.rows.len()
            || shape[shape.len() - tail.len()..] != tail[..]
            || (per_token && shape[1] != run.width)
        {
            return Err(bad(format!(
                "a run of {} rows x {} tokens gave shape {shape:?} {}",
                run.rows.len(),
                run.width,
                out.dtype()
            )));
        }
        let src_row = out.row_len();
        for (i, &(p, r)) in run.rows.iter().enumerate() {
            let len = if per_token {
                parts[p].ids[r].len() * inner
            } else {
                inner
            };
            copy_elems(&mut dest[p], r * row_elems(p), out.data(), i * src_row, len);
        }
    }
    dest.into_iter()
        .enumerate()
        .map(|(p, data)| {
            let mut shape = vec![parts[p].len()];
            if per_token {
                shape.push(widths[p]);
            }
            shape.extend(&tail);
            Tensor::new(shape, data)
        })
        .collect()
}

/// Real and padded tokens of `runs` (padding efficiency = real / padded).
pub fn token_counts(parts: &[&TokenRows], runs: &[Run]) -> (usize, usize) {
    let real = parts.iter().map(|t| t.tokens()).sum();
    let padded = runs.iter().map(|r| r.rows.len() * r.width).sum();
    (real, padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lens: &[usize], base: u32) -> TokenRows {
        TokenRows {
            text: None,
            ids: lens
                .iter()
                .enumerate()
                .map(|(i, &l)| (0..l as u32).map(|j| base + 10 * i as u32 + j).collect())
                .collect(),
            type_ids: None,
        }
    }

    #[test]
    fn token_runs_sort_by_length_and_keep_the_budget() {
        let a = rows(&[9, 2, 5], 100);
        let b = rows(&[2, 8], 200);
        let runs = plan_runs(&[&a, &b], Batching::Tokens, 8, 12);
        // Sorted lengths 2,2,5,8,9: 3x5 = 15 > 12 closes the first run after two rows.
        assert_eq!(runs[0].rows, [(0, 1), (1, 0)]);
        assert_eq!(runs[0].width, 2);
        for run in &runs {
            assert!(
                run.rows.len() * run.width <= 12 || run.rows.len() == 1,
                "{run:?}"
            );
        }
        let all: usize = runs.iter().map(|r| r.rows.len()).sum();
        assert_eq!(all, 5);
        let (real, padded) = token_counts(&[&a, &b], &runs);
        assert_eq!(real, 26);
        assert_eq!(padded, 26, "each run here has rows of one length");
    }

    #[test]
    fn token_runs_close_before_they_become_mostly_padding() {
        // 10 rows of 4 tokens, then 10 of 40: one run would be 20 x 40 = 800 padded tokens for
        // 440 real ones; the length cut keeps two runs with no padding at all.
        let mut lens = vec![4; 10];
        lens.extend(vec![40; 10]);
        let a = rows(&lens, 0);
        let runs = plan_runs(&[&a], Batching::Tokens, 64, 10_000);
        assert_eq!(runs.len(), 2, "{runs:?}");
        let (real, padded) = token_counts(&[&a], &runs);
        assert_eq!((real, padded), (440, 440));
        // Below MIN_RUN_ROWS rows the run is not cut for efficiency.
        let b = rows(&[1, 1, 30], 0);
        assert_eq!(plan_runs(&[&b], Batching::Tokens, 64, 10_000).len(), 1);
    }

    #[test]
    fn row_runs_keep_arrival_order_and_pad_to_the_longest() {
        let a = rows(&[9, 2, 5], 0);
        let b = rows(&[2, 8], 0);
        let runs = plan_runs(&[&a, &b], Batching::Rows, 4, 1);
        assert_eq!(runs[0].rows, [(0, 0), (0, 1), (0, 2), (1, 0)]);
        assert_eq!(runs[0].width, 9);
        assert_eq!(runs[1].rows, [(1, 1)]);
        let (real, padded) = token_counts(&[&a, &b], &runs);
        assert_eq!((real, padded), (26, 4 * 9 + 8));
    }

    #[test]
    fn run_inputs_pad_on_the_right() {
        let mut a = rows(&[3, 1], 1);
        a.type_ids = Some(vec![vec![0, 1, 1], vec![0]]);
        let layout = TokenLayout {
            ids: "input_ids".into(),
            mask: "attention_mask".into(),
            type_ids: Some("token_type_ids".into()),
            dtype: DType::I64,
            pad_id: 0,
            batching: Batching::Tokens,
            max_batch_tokens: 100,
        };
        let run = Run {
            rows: vec![(0, 1), (0, 0)],
            width: 3,
        };
        let t = run_inputs(&layout, &[&a], &run).unwrap();
        assert_eq!(t[0].0, "input_ids");
        assert_eq!(t[0].1.data(), &TensorData::I64(vec![11, 0, 0, 1, 2, 3]));
        assert_eq!(t[1].1.data(), &TensorData::I64(vec![1, 0, 0, 1, 1, 1]));
        assert_eq!(t[2].1.data(), &TensorData::I64(vec![0, 0, 0, 0, 1, 1]));
    }

    #[test]
    fn scatter_restores_request_order_and_request_padding() {
        let a = rows(&[3, 1], 0);
        let b = rows(&[2], 0);
        let parts = [&a, &b];
        let runs = vec![
            Run {
                rows: vec![(0, 1), (1, 0)],
                width: 2,
            },
            Run {
                rows: vec![(0, 0)],
                width: 3,
            },
        ];
        // Pooled [rows, 2]: row value = 10 * run + i.
        let pooled = [
            Tensor::new(vec![2, 2], TensorData::F32(vec![1., 1., 2., 2.])).unwrap(),
            Tensor::new(vec![1, 2], TensorData::F32(vec![3., 3.])).unwrap(),
        ];
        let back = scatter("e", &runs, &pooled, &parts, false).unwrap();
        assert_eq!(back[0].data(), &TensorData::F32(vec![3., 3., 1., 1.]));
        assert_eq!(back[1].data(), &TensorData::F32(vec![2., 2.]));
        // Per-token [rows, width, 1]: token j of a run row = 100 * run-row + j.
        let tok = [
            Tensor::new(vec![2, 2, 1], TensorData::F32(vec![0., 1., 100., 101.])).unwrap(),
            Tensor::new(vec![1, 3, 1], TensorData::F32(vec![0., 1., 2.])).unwrap(),
        ];
        let back = scatter("h", &runs, &tok, &parts, true).unwrap();
        assert_eq!(back[0].shape(), &[2, 3, 1]);
        assert_eq!(
            back[0].data(),
            &TensorData::F32(vec![0., 1., 2., 0., 0., 0.]),
            "row 1 (one token) keeps its token and is zero-padded to the request's width"
        );
        assert_eq!(back[1].shape(), &[1, 2, 1]);
        assert_eq!(back[1].data(), &TensorData::F32(vec![100., 101.]));
        let wrong = [tok[1].clone(), tok[0].clone()];
        assert!(scatter("h", &runs, &wrong, &parts, true).is_err());
    }
}
