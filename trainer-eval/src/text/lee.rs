//! Lee-50 (Lee, Pincombe & Welsh 2005): 50 news documents and their 50 × 50 matrix of mean
//! human similarity scores (gensim's `lee.cor` and `similarities0-1.txt`). The score is the
//! Pearson correlation of the embeddings' cosine with the human score over the 1,225 pairs
//! `i < j` of the matrix's upper triangle (its lower triangle is zeros).

use std::path::Path;

use serde::Serialize;

use super::metrics::{cosine, pearson, Embeddings};
use super::{read_file, TextEvalError};

/// The documents file in the eval folder.
pub const LEE_DOCS: &str = "lee.cor";
/// The human score matrix in the eval folder.
pub const LEE_SCORES: &str = "similarities0-1.txt";

/// The Lee-50 documents and pair scores.
#[derive(Debug, Clone, PartialEq)]
pub struct LeeData {
    /// One document a line (Latin-1 decoded).
    pub docs: Vec<String>,
    /// `(i, j, human score)` for every `i < j`, row by row.
    pub pairs: Vec<(usize, usize, f64)>,
}

/// The Lee-50 result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeeScore {
    /// Documents embedded.
    pub docs: usize,
    /// Pairs scored.
    pub pairs: usize,
    /// Pearson of cosine vs human score.
    pub pearson: f64,
}

/// Decodes Latin-1 bytes (every byte is its code point).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Reads `lee.cor`: Latin-1, one document a line (`\r\n` or `\n`); an empty line is an error.
pub fn read_docs(path: &Path) -> Result<Vec<String>, TextEvalError> {
    let text = latin1(&read_file(path)?);
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            return Err(TextEvalError::parse(path, i + 1, "empty document line"));
        }
        docs.push(line.to_string());
    }
    if docs.is_empty() {
        return Err(TextEvalError::parse(path, 1, "no documents"));
    }
    Ok(docs)
}

/// Reads a square matrix of whitespace-separated numbers, one row a line (blank lines
/// skipped), and returns its upper triangle `i < j`. `n` is the expected size.
pub fn read_upper_triangle(
    path: &Path,
    n: usize,
) -> Result<Vec<(usize, usize, f64)>, TextEvalError> {
    let text = String::from_utf8(read_file(path)?)
        .map_err(|e| TextEvalError::parse(path, 1, &format!("not UTF-8 text: {e}")))?;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = line
            .split_whitespace()
            .enumerate()
            .map(|(c, v)| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        TextEvalError::parse(
                            path,
                            i + 1,
                            &format!("column {}: {v:?} is not a number", c + 1),
                        )
                    })
            })
            .collect::<Result<Vec<f64>, _>>()?;
        if row.len() != n {
            return Err(TextEvalError::parse(
                path,
                i + 1,
                &format!("{} values, expected {n} (one per document)", row.len()),
            ));
        }
        rows.push(row);
    }
    if rows.len() != n {
        return Err(TextEvalError::parse(
            path,
            text.lines().count().max(1),
            &format!("{} rows, expected {n} (one per document)", rows.len()),
        ));
    }
    let mut pairs = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for (i, row) in rows.iter().enumerate() {
        for (j, &v) in row.iter().enumerate().skip(i + 1) {
            pairs.push((i, j, v));
        }
    }
    Ok(pairs)
}

impl LeeData {
    /// Reads `lee.cor` and `similarities0-1.txt` from `dir`; the matrix must be as wide as
    /// there are documents.
    pub fn load(dir: &Path) -> Result<Self, TextEvalError> {
        let docs = read_docs(&dir.join(LEE_DOCS))?;
        let pairs = read_upper_triangle(&dir.join(LEE_SCORES), docs.len())?;
        Ok(Self { docs, pairs })
    }

    /// Scores embeddings of [`LeeData::docs`] (one row per document, in order).
    pub fn score(&self, emb: &Embeddings) -> Result<LeeScore, TextEvalError> {
        if emb.rows != self.docs.len() {
            return Err(TextEvalError::Input(format!(
                "Lee-50: {} embeddings for {} documents",
                emb.rows,
                self.docs.len()
            )));
        }
        let (model, human): (Vec<f64>, Vec<f64>) = self
            .pairs
            .iter()
            .map(|&(i, j, h)| (cosine(emb.row(i), emb.row(j)), h))
            .unzip();
        Ok(LeeScore {
            docs: self.docs.len(),
            pairs: self.pairs.len(),
            pearson: pearson(&model, &human)?,
        })
    }
}
