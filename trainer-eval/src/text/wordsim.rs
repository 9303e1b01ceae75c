//! WordSim-353 (Finkelstein et al. 2002): 353 word pairs with mean human relatedness scores
//! (gensim's `wordsim353.tsv`). Each word is embedded on its own, as a one-word sentence; the
//! score is the Spearman correlation (average ranks for ties) of the pair's cosine with the
//! human score.

use std::path::Path;

use serde::Serialize;

use super::metrics::{cosine, spearman, Embeddings};
use super::{read_file, TextEvalError};

/// The pairs file in the eval folder.
pub const WORDSIM_FILE: &str = "wordsim353.tsv";

/// The word pairs, and the distinct words to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct WordSimData {
    /// Distinct words in first-seen order.
    pub words: Vec<String>,
    /// `(index of word 1, index of word 2, human score)` in file order.
    pub pairs: Vec<(usize, usize, f64)>,
}

/// The WordSim-353 result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordSimScore {
    /// Pairs scored.
    pub pairs: usize,
    /// Distinct words embedded.
    pub words: usize,
    /// Spearman of cosine vs human score.
    pub spearman: f64,
}

impl WordSimData {
    /// Reads `WORD1 <tab> WORD2 <tab> SCORE` lines; lines starting with `#` and blank lines are
    /// skipped. A line with another number of fields, an empty word or a score that is not a
    /// number is an error naming the file and line.
    pub fn read(path: &Path) -> Result<Self, TextEvalError> {
        let text = String::from_utf8(read_file(path)?)
            .map_err(|e| TextEvalError::parse(path, 1, &format!("not UTF-8 text: {e}")))?;
        let mut words: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            let [a, b, s] = fields[..] else {
                return Err(TextEvalError::parse(
                    path,
                    i + 1,
                    &format!(
                        "{} tab-separated fields, expected 3 (word, word, score)",
                        fields.len()
                    ),
                ));
            };
            if a.is_empty() || b.is_empty() {
                return Err(TextEvalError::parse(path, i + 1, "empty word"));
            }
            let score = s
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    TextEvalError::parse(path, i + 1, &format!("score {s:?} is not a number"))
                })?;
            let mut id = |w: &str| {
                *index.entry(w.to_string()).or_insert_with(|| {
                    words.push(w.to_string());
                    words.len() - 1
                })
            };
            let (ia, ib) = (id(a), id(b));
            pairs.push((ia, ib, score));
        }
        if pairs.len() < 2 {
            return Err(TextEvalError::parse(
                path,
                text.lines().count().max(1),
                &format!("{} word pairs; a correlation needs at least 2", pairs.len()),
            ));
        }
        Ok(Self { words, pairs })
    }

    /// Scores embeddings of [`WordSimData::words`] (one row per word, in order).
    pub fn score(&self, emb: &Embeddings) -> Result<WordSimScore, TextEvalError> {
        if emb.rows != self.words.len() {
            return Err(TextEvalError::Input(format!(
                "WordSim-353: {} embeddings for {} words",
                emb.rows,
                self.words.len()
            )));
        }
        let (model, human): (Vec<f64>, Vec<f64>) = self
            .pairs
            .iter()
            .map(|&(a, b, h)| (cosine(emb.row(a), emb.row(b)), h))
            .unzip();
        Ok(WordSimScore {
            pairs: self.pairs.len(),
            words: self.words.len(),
            spearman: spearman(&model, &human)?,
        })
    }
}
