//! Teacher fidelity: how close a student's embeddings are to its teacher's on held-out text
//! (the BBC test articles and the Lee-50 documents): the mean cosine of each text's two
//! embeddings. Cosine ignores scale, so normalisation does not change it.

use serde::Serialize;

use super::metrics::{cosine, Embeddings};
use super::TextEvalError;

/// Mean cosine on one named set of texts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FidelitySet {
    /// The texts (`bbc_test`, `lee`).
    pub name: String,
    /// How many.
    pub texts: usize,
    /// Mean cosine student vs teacher.
    pub mean_cosine: f64,
    /// The lowest cosine.
    pub min_cosine: f64,
}

/// The fidelity result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FidelityScore {
    /// The teacher model file.
    pub teacher: String,
    /// The teacher output read.
    pub teacher_output: String,
    /// Mean cosine over all texts of all sets.
    pub mean_cosine: f64,
    /// All texts.
    pub texts: usize,
    /// Per set.
    pub sets: Vec<FidelitySet>,
}

/// Mean and lowest cosine of matching rows; widths must agree (a student whose width differs
/// from the teacher's has no direct fidelity).
pub fn compare(
    name: &str,
    student: &Embeddings,
    teacher: &Embeddings,
) -> Result<FidelitySet, TextEvalError> {
    if student.rows != teacher.rows || student.rows == 0 {
        return Err(TextEvalError::Input(format!(
            "fidelity on {name}: {} student rows, {} teacher rows",
            student.rows, teacher.rows
        )));
    }
    if student.dim != teacher.dim {
        return Err(TextEvalError::Input(format!(
            "fidelity on {name}: the student's embeddings have width {}, the teacher's {}; \
             cosine needs the same width",
            student.dim, teacher.dim
        )));
    }
    let c: Vec<f64> = (0..student.rows)
        .map(|i| cosine(student.row(i), teacher.row(i)))
        .collect();
    Ok(FidelitySet {
        name: name.to_string(),
        texts: c.len(),
        mean_cosine: c.iter().sum::<f64>() / c.len() as f64,
        min_cosine: c.iter().copied().fold(f64::INFINITY, f64::min),
    })
}

/// Combines the sets (mean over all their texts).
pub fn combine(teacher: &str, teacher_output: &str, sets: Vec<FidelitySet>) -> FidelityScore {
    let texts: usize = sets.iter().map(|s| s.texts).sum();
    let total: f64 = sets.iter().map(|s| s.mean_cosine * s.texts as f64).sum();
    FidelityScore {
        teacher: teacher.to_string(),
        teacher_output: teacher_output.to_string(),
        mean_cosine: total / texts.max(1) as f64,
        texts,
        sets,
    }
}
