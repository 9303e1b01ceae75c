//! `import-wordnet`: WordNet 3.0's `data.{noun,verb,adj,adv}` → one Parquet file of sentences,
//! the transfer set of the text demo.
//!
//! Each data line is a synset (`wndb(5WN)`): `offset lex_filenum ss_type w_cnt word lex_id ...
//! | gloss`. The gloss is a definition, then optionally example sentences in double quotes:
//! `heave or utter a sigh; breathe deeply and heavily; "She sighed sadly"`. Every synset gives
//! one row for its definition (the gloss up to the first `"`, trailing `;` and blanks removed)
//! and one per quoted example (the text between a pair of `"`, trimmed; an unpaired trailing
//! `"`, a typo in a few glosses, ends the examples). The licence header (lines starting with
//! two spaces) is skipped; its notice is the package's `usr/share/doc/wordnet-base/copyright`.
//!
//! Columns (all Utf8): `id` (`wn:noun:00001740:def`, `wn:noun:00001740:ex0`, ...; the offset is
//! the synset's own, unique within its part of speech), `text`, `pos` (`noun`, `verb`, `adj`,
//! `adv`), `kind` (`def` or `ex`), `synset` (`noun:00001740`) and `lemmas` (the synset's words
//! as WordNet spells them, `_` for spaces, comma separated). Rows in file order: nouns, verbs,
//! adjectives, adverbs.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::text_parquet::{parquet_rows, TextError, Utf8ParquetWriter};

/// The parts of speech in the order they are imported; the data files are `data.{pos}`.
pub const PARTS_OF_SPEECH: [&str; 4] = ["noun", "verb", "adj", "adv"];

/// Output columns, in order.
pub const WORDNET_COLUMNS: [&str; 6] = ["id", "text", "pos", "kind", "synset", "lemmas"];

/// One synset's sentences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synset {
    /// The 8-digit byte offset naming the synset in its data file.
    pub offset: String,
    /// Its words, as spelled in the file.
    pub lemmas: Vec<String>,
    /// The definition (may be empty when the gloss starts with an example).
    pub definition: String,
    /// The quoted example sentences.
    pub examples: Vec<String>,
}

/// Parses one data line; `Ok(None)` for a licence header line.
pub fn parse_data_line(line: &str) -> Result<Option<Synset>, String> {
    if line.starts_with("  ") || line.trim().is_empty() {
        return Ok(None);
    }
    let (head, gloss) = line
        .split_once('|')
        .ok_or_else(|| "no gloss (no `|` on the line)".to_string())?;
    let fields: Vec<&str> = head.split_ascii_whitespace().collect();
    // offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} ...
    if fields.len() < 4 {
        return Err(format!(
            "expected `offset lex_filenum ss_type w_cnt ...`, got {:?}",
            head.trim()
        ));
    }
    let offset = fields[0];
    if offset.len() != 8 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("synset offset {offset:?} is not 8 digits"));
    }
    let w_cnt = usize::from_str_radix(fields[3], 16)
        .map_err(|_| format!("word count {:?} is not hexadecimal", fields[3]))?;
    if w_cnt == 0 || fields.len() < 4 + 2 * w_cnt {
        return Err(format!(
            "word count {w_cnt} but {} words follow",
            (fields.len() - 4) / 2
        ));
    }
    let lemmas = (0..w_cnt).map(|i| fields[4 + 2 * i].to_string()).collect();
    let (definition, examples) = split_gloss(gloss);
    Ok(Some(Synset {
        offset: offset.to_string(),
        lemmas,
        definition,
        examples,
    }))
}

/// Splits a gloss into its definition and its quoted examples.
pub fn split_gloss(gloss: &str) -> (String, Vec<String>) {
    let gloss = gloss.trim();
    let (definition, mut rest) = match gloss.find('"') {
        Some(i) => (&gloss[..i], &gloss[i..]),
        None => (gloss, ""),
    };
    let definition = definition
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_string();
    let mut examples = Vec::new();
    // `rest` starts at an opening quote; take each quoted span up to its closing quote.
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('"') else { break };
        let example = after[..close].trim();
        if !example.is_empty() {
            examples.push(example.to_string());
        }
        rest = &after[close + 1..];
    }
    (definition, examples)
}

/// Rows written per part of speech and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordnetCounts {
    /// Part of speech.
    pub pos: String,
    /// Synsets read.
    pub synsets: usize,
    /// Definition rows.
    pub definitions: usize,
    /// Example rows.
    pub examples: usize,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordnetReport {
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: usize,
    /// Per part of speech (empty when the file was kept).
    pub counts: Vec<WordnetCounts>,
    /// False when the file was already there and left alone (no `force`).
    pub written: bool,
}

impl std::fmt::Display for WordnetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.written {
            return super::write_kept(f, &self.path, self.rows);
        }
        let (defs, exs): (usize, usize) = self
            .counts
            .iter()
            .fold((0, 0), |(d, e), c| (d + c.definitions, e + c.examples));
        write!(
            f,
            "wrote {} ({} rows: {defs} definitions, {exs} examples)",
            self.path.display(),
            self.rows
        )?;
        for c in &self.counts {
            write!(
                f,
                "\n  {:<4} synsets {:>6}  definitions {:>6}  examples {:>6}",
                c.pos, c.synsets, c.definitions, c.examples
            )?;
        }
        Ok(())
    }
}

/// Imports `dir/data.{noun,verb,adj,adv}` into `out`; an existing `out` is kept unless `force`.
pub fn import_wordnet(dir: &Path, out: &Path, force: bool) -> Result<WordnetReport, TextError> {
    if out.exists() && !force {
        return Ok(WordnetReport {
            path: out.to_path_buf(),
            rows: parquet_rows(out)?,
            counts: Vec::new(),
            written: false,
        });
    }
    // Check every file is there before writing anything.
    let files: Vec<PathBuf> = PARTS_OF_SPEECH
        .iter()
        .map(|pos| dir.join(format!("data.{pos}")))
        .collect();
    for f in &files {
        if !f.is_file() {
            return Err(TextError::Input {
                path: dir.to_path_buf(),
                message: format!(
                    "no {} (expected WordNet's data.{{noun,verb,adj,adv}}, e.g. in \
                     .deps/corpora/wordnet/usr/share/wordnet)",
                    f.file_name().and_then(|n| n.to_str()).unwrap_or_default()
                ),
            });
        }
    }
    let mut writer = Utf8ParquetWriter::create(out, &WORDNET_COLUMNS)?;
    let mut counts = Vec::new();
    for (pos, path) in PARTS_OF_SPEECH.iter().zip(&files) {
        counts.push(import_pos(pos, path, &mut writer)?);
    }
    let rows = writer.finish()?;
    Ok(WordnetReport {
        path: out.to_path_buf(),
        rows,
        counts,
        written: true,
    })
}

fn import_pos(
    pos: &str,
    path: &Path,
    writer: &mut Utf8ParquetWriter,
) -> Result<WordnetCounts, TextError> {
    let read_err = |source| TextError::Read {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(read_err)?);
    let mut counts = WordnetCounts {
        pos: pos.to_string(),
        ..WordnetCounts::default()
    };
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                TextError::at_line(path, line_no, "not valid UTF-8")
            } else {
                read_err(e)
            }
        })?;
        let Some(synset) =
            parse_data_line(&line).map_err(|m| TextError::at_line(path, line_no, m))?
        else {
            continue;
        };
        counts.synsets += 1;
        let synset_id = format!("{pos}:{}", synset.offset);
        let lemmas = synset.lemmas.join(",");
        if !synset.definition.is_empty() {
            let id = format!("wn:{synset_id}:def");
            writer.push(&[&id, &synset.definition, pos, "def", &synset_id, &lemmas])?;
            counts.definitions += 1;
        }
        for (k, example) in synset.examples.iter().enumerate() {
            let id = format!("wn:{synset_id}:ex{k}");
            writer.push(&[&id, example, pos, "ex", &synset_id, &lemmas])?;
            counts.examples += 1;
        }
    }
    if counts.synsets == 0 {
        return Err(TextError::Input {
            path: path.to_path_buf(),
            message: "no synsets".to_string(),
        });
    }
    Ok(counts)
}
