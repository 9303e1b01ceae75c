//! The text importers on fixtures written here: each input format, stable ids, duplicates and
//! empty rows, malformed input named by file and line, WordNet lines in the real format, and
//! the BBC split.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, LargeStringArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use label_client::import::bbc::{bbc_split, decode_article, import_bbc};
use label_client::import::text::{import_text, TextFormat, TextImportOptions};
use label_client::import::text_parquet::{content_id, TextError};
use label_client::import::wordnet::{import_wordnet, parse_data_line, split_gloss};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every column of a Parquet file as strings, by name, plus its schema.
fn read_columns(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    for f in schema.fields() {
        assert_eq!(f.data_type(), &DataType::Utf8, "column {}", f.name());
        assert!(!f.is_nullable(), "column {}", f.name());
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut cols = vec![Vec::new(); names.len()];
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        for (c, col) in cols.iter_mut().enumerate() {
            let s = batch.column(c).as_string::<i32>();
            col.extend((0..s.len()).map(|i| s.value(i).to_string()));
        }
    }
    (names, cols)
}

fn options(input: PathBuf, format: TextFormat, out: PathBuf) -> TextImportOptions {
    TextImportOptions {
        input,
        format,
        text_field: "text".to_string(),
        id_field: None,
        out,
        force: false,
    }
}

fn import_err(o: &TextImportOptions) -> String {
    let e = import_text(o).unwrap_err();
    assert!(!o.out.exists(), "no output after an error");
    assert!(
        !o.out.with_extension("parquet.tmp").exists(),
        "the temporary file is removed after an error"
    );
    e.to_string()
}

#[test]
fn content_ids_are_the_sha256_prefix_of_the_text() {
    // sha256("hello") = 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
    assert_eq!(content_id("hello"), "2cf24dba5fb0a30e");
    assert_eq!(content_id("hello").len(), 16);
    assert_ne!(content_id("hello"), content_id("hello "));
}

#[test]
fn txt_lines_become_rows_with_content_ids_duplicates_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.txt");
    std::fs::write(
        &input,
        "The cat sat.\r\nA dog barked.\n\n   \nThe cat sat.\n  padded  \nlast line without break",
    )
    .unwrap();
    let out = dir.path().join("out/s.parquet");
    let o = options(input.clone(), TextFormat::Txt, out.clone());
    let report = import_text(&o).unwrap();
    assert_eq!(
        (report.rows, report.duplicates, report.empty, report.written),
        (4, 1, 2, true)
    );
    let (names, cols) = read_columns(&out);
    assert_eq!(names, ["id", "text"]);
    assert_eq!(
        cols[1],
        [
            "The cat sat.",
            "A dog barked.",
            "  padded  ",
            "last line without break"
        ]
    );
    let ids: Vec<String> = cols[1].iter().map(|t| content_id(t)).collect();
    assert_eq!(cols[0], ids);

    // Kept without --force; the same ids in a fresh import of the same sentences (stable).
    let again = import_text(&o).unwrap();
    assert!(!again.written);
    assert_eq!(again.rows, 4);
    let other = dir.path().join("other.parquet");
    import_text(&options(input, TextFormat::Txt, other.clone())).unwrap();
    assert_eq!(read_columns(&other).1, cols);
}

#[test]
fn txt_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    std::fs::write(&input, b"fine\nalso fine\nbroken \xff byte\n").unwrap();
    let msg = import_err(&options(
        input.clone(),
        TextFormat::Txt,
        dir.path().join("o.parquet"),
    ));
    assert!(
        msg.contains("bad.txt") && msg.contains("line 3") && msg.contains("UTF-8"),
        "{msg}"
    );

    std::fs::write(&input, "\n  \n").unwrap();
    let msg = import_err(&options(
        input,
        TextFormat::Txt,
        dir.path().join("o.parquet"),
    ));
    assert!(
        msg.contains("no sentences") && msg.contains("2 empty"),
        "{msg}"
    );

    let msg = import_err(&options(
        dir.path().join("missing.txt"),
        TextFormat::Txt,
        dir.path().join("o.parquet"),
    ));
    assert!(msg.contains("missing.txt"), "{msg}");
}

#[test]
fn jsonl_takes_the_named_fields_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"sentence\": \"first \\\"quoted\\\"\", \"key\": \"a\"}\n",
            "\n",
            "{\"sentence\": \"second\", \"key\": 7, \"extra\": [1]}\n",
            "{\"sentence\": \"\", \"key\": \"skipped\"}\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("s.parquet");
    let mut o = options(input.clone(), TextFormat::Jsonl, out.clone());
    o.text_field = "sentence".to_string();
    o.id_field = Some("key".to_string());
    let report = import_text(&o).unwrap();
    assert_eq!((report.rows, report.empty), (2, 1));
    let (_, cols) = read_columns(&out);
    assert_eq!(cols[0], ["a", "7"]);
    assert_eq!(cols[1], ["first \"quoted\"", "second"]);

    // Without --id-field the ids are derived from the text.
    let derived = dir.path().join("derived.parquet");
    let mut d = options(input.clone(), TextFormat::Jsonl, derived.clone());
    d.text_field = "sentence".to_string();
    import_text(&d).unwrap();
    assert_eq!(read_columns(&derived).1[0][1], content_id("second"));

    let cases: [(&str, &[&str]); 6] = [
        (
            "{\"sentence\": \"ok\", \"key\": \"a\"}\n{not json\n",
            &["line 2", "JSON"],
        ),
        ("{\"key\": \"a\"}\n", &["line 1", "no field \"sentence\""]),
        (
            "{\"sentence\": \"x\", \"key\": \"a\"}\n{\"sentence\": 5, \"key\": \"b\"}\n",
            &["line 2", "\"sentence\" is a number"],
        ),
        ("[\"sentence\"]\n", &["line 1", "not a JSON object"]),
        (
            "{\"sentence\": \"x\", \"key\": \"a\"}\n\n{\"sentence\": \"y\", \"key\": \"a\"}\n",
            &["line 3", "\"a\" was already used on line 1"],
        ),
        (
            "{\"sentence\": \"x\", \"key\": null}\n",
            &["line 1", "\"key\" is null"],
        ),
    ];
    for (body, wants) in cases {
        std::fs::write(&input, body).unwrap();
        let mut o = options(
            input.clone(),
            TextFormat::Jsonl,
            dir.path().join("e.parquet"),
        );
        o.text_field = "sentence".to_string();
        o.id_field = Some("key".to_string());
        let msg = import_err(&o);
        assert!(msg.contains("s.jsonl"), "{msg}");
        for w in wants {
            assert!(msg.contains(w), "{body:?}: {msg}");
        }
    }
}

#[test]
fn csv_handles_quoting_and_names_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    std::fs::write(
        &input,
        "id,body,score\nr1,\"commas, inside\",1\nr2,\"two\nlines and \"\"quotes\"\"\",2\nr3,plain,3\n",
    )
    .unwrap();
    let out = dir.path().join("s.parquet");
    let mut o = options(input.clone(), TextFormat::Csv, out.clone());
    o.text_field = "body".to_string();
    o.id_field = Some("id".to_string());
    assert_eq!(import_text(&o).unwrap().rows, 3);
    let (_, cols) = read_columns(&out);
    assert_eq!(cols[0], ["r1", "r2", "r3"]);
    assert_eq!(
        cols[1],
        ["commas, inside", "two\nlines and \"quotes\"", "plain"]
    );

    // A missing column lists the header; a short record names its line.
    let mut missing = options(input.clone(), TextFormat::Csv, dir.path().join("m.parquet"));
    missing.text_field = "text".to_string();
    let msg = import_err(&missing);
    assert!(
        msg.contains("no column \"text\"") && msg.contains("id, body, score"),
        "{msg}"
    );
    o.out = dir.path().join("e.parquet");
    std::fs::write(&input, "id,body\nr1,fine\nr2\n").unwrap();
    let msg = import_err(&o);
    assert!(
        msg.contains("s.csv") && msg.contains("line 3") && msg.contains("1 fields"),
        "{msg}"
    );
    std::fs::write(&input, b"id,body\nr1,fine\nr2,bad \xfe\n").unwrap();
    let msg = import_err(&o);
    assert!(msg.contains("line 3") && msg.contains("UTF-8"), "{msg}");
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_column_with_integer_ids_and_nulls_named_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, true),
        Field::new("sentence", DataType::LargeUtf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![10, 11, 12])),
            Arc::new(LargeStringArray::from(vec!["alpha", "beta", "alpha"])),
        ],
    )
    .unwrap();
    write_parquet(&input, &batch);
    let out = dir.path().join("out.parquet");
    let mut o = options(input.clone(), TextFormat::Parquet, out.clone());
    o.text_field = "sentence".to_string();
    o.id_field = Some("n".to_string());
    assert_eq!(import_text(&o).unwrap().rows, 3);
    assert_eq!(
        read_columns(&out).1,
        [["10", "11", "12"], ["alpha", "beta", "alpha"]]
    );

    // Content ids drop the repeated sentence.
    let dedup = dir.path().join("dedup.parquet");
    let mut d = options(input.clone(), TextFormat::Parquet, dedup.clone());
    d.text_field = "sentence".to_string();
    let r = import_text(&d).unwrap();
    assert_eq!((r.rows, r.duplicates), (2, 1));

    let with_null = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(LargeStringArray::from(vec![Some("x"), None])),
        ],
    )
    .unwrap();
    write_parquet(&input, &with_null);
    let mut o = options(
        input.clone(),
        TextFormat::Parquet,
        dir.path().join("e.parquet"),
    );
    o.text_field = "sentence".to_string();
    let msg = import_err(&o);
    assert!(
        msg.contains("in.parquet") && msg.contains("row 1") && msg.contains("null"),
        "{msg}"
    );
    o.text_field = "n".to_string();
    let msg = import_err(&o);
    assert!(msg.contains("\"n\" is Int64"), "{msg}");
    o.text_field = "nope".to_string();
    let msg = import_err(&o);
    assert!(
        msg.contains("no column \"nope\"") && msg.contains("n, sentence"),
        "{msg}"
    );
}

#[test]
fn formats_follow_the_extension() {
    assert_eq!(
        TextFormat::from_path(Path::new("a.TXT")),
        Some(TextFormat::Txt)
    );
    assert_eq!(
        TextFormat::from_path(Path::new("a.jsonl")),
        Some(TextFormat::Jsonl)
    );
    assert_eq!(
        TextFormat::from_path(Path::new("a.csv")),
        Some(TextFormat::Csv)
    );
    assert_eq!(
        TextFormat::from_path(Path::new("a.parquet")),
        Some(TextFormat::Parquet)
    );
    assert_eq!(TextFormat::from_path(Path::new("a.xlsx")), None);
}

// Lines as in WordNet 3.0's data files (licence header lines start with two spaces).
const NOUN: &str = "  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University under the following license.  By obtaining, using  \n00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04424418 n 0000 | that which is perceived or known or inferred to have its own distinct existence (living or nonliving)  \n00002137 03 n 02 abstraction 0 abstract_entity 0 010 @ 00001740 n 0000 + 00692347 v 0101 ~ 00023100 n 0000 | a general concept formed by extracting common features from specific examples  \n";
const VERB: &str = "  1 This software and database is being provided to you, the LICENSEE, by  \n00004032 29 v 02 sigh 0 suspire 4 004 @ 00001740 v 0000 + 07129602 n 0202 + 07393756 n 0101 + 07129602 n 0101 01 + 02 00 | heave or utter a sigh; breathe deeply and heavily; \"She sighed sadly\"  \n00005041 29 v 03 inhale 0 inspire 0 breathe_in 0 002 @ 00001740 v 0000 + 03110486 a 0201 02 + 02 00 + 08 00 | draw in (air); \"Inhale deeply\"; \"inhale the fresh mountain air\"  \n";
const ADJ: &str = "00001740 00 a 01 able 0 005 = 05207437 n 0000 = 05624029 n 0000 + 05624029 n 0101 | (usually followed by `to') having the necessary means or skill or know-how or authority to do something; \"able to swim\"; \"she was able to program her computer\"  \n";
// A real gloss with an unpaired quote (data.noun line 44447).
const ADV: &str = "00001740 02 r 01 a_cappella 0 001 \\ 02847031 a 0000 | a local branch where postal services are available\"  \n";

fn write_wordnet(dir: &Path) {
    for (pos, body) in [("noun", NOUN), ("verb", VERB), ("adj", ADJ), ("adv", ADV)] {
        std::fs::write(dir.join(format!("data.{pos}")), body).unwrap();
    }
}

#[test]
fn wordnet_glosses_split_into_definitions_and_examples() {
    assert_eq!(
        split_gloss(" heave or utter a sigh; breathe deeply and heavily; \"She sighed sadly\"  "),
        (
            "heave or utter a sigh; breathe deeply and heavily".to_string(),
            vec!["She sighed sadly".to_string()]
        )
    );
    assert_eq!(
        split_gloss("a def; \"one\"; \"  \"; \"two\" - Shakespeare; \"unpaired"),
        (
            "a def".to_string(),
            vec!["one".to_string(), "two".to_string()]
        )
    );
    let s = parse_data_line(VERB.lines().nth(2).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(s.offset, "00005041");
    assert_eq!(s.lemmas, ["inhale", "inspire", "breathe_in"]);
    assert_eq!(s.definition, "draw in (air)");
    assert_eq!(
        s.examples,
        ["Inhale deeply", "inhale the fresh mountain air"]
    );
    assert_eq!(parse_data_line(NOUN.lines().next().unwrap()).unwrap(), None);
    assert!(parse_data_line("00001740 03 n 01 entity 0 003")
        .unwrap_err()
        .contains("no gloss"));
    assert!(parse_data_line("0001740 03 n 01 entity 0 | x")
        .unwrap_err()
        .contains("8 digits"));
    assert!(parse_data_line("00001740 03 n 03 entity 0 | x")
        .unwrap_err()
        .contains("word count"));
}

#[test]
fn wordnet_import_writes_every_definition_and_example() {
    let dir = tempfile::tempdir().unwrap();
    write_wordnet(dir.path());
    let out = dir.path().join("wordnet.parquet");
    let report = import_wordnet(dir.path(), &out, false).unwrap();
    assert_eq!(report.rows, 11);
    let per: Vec<(usize, usize, usize)> = report
        .counts
        .iter()
        .map(|c| (c.synsets, c.definitions, c.examples))
        .collect();
    assert_eq!(per, [(2, 2, 0), (2, 2, 3), (1, 1, 2), (1, 1, 0)]);
    let (names, cols) = read_columns(&out);
    assert_eq!(names, ["id", "text", "pos", "kind", "synset", "lemmas"]);
    assert_eq!(
        cols[0],
        [
            "wn:noun:00001740:def",
            "wn:noun:00002137:def",
            "wn:verb:00004032:def",
            "wn:verb:00004032:ex0",
            "wn:verb:00005041:def",
            "wn:verb:00005041:ex0",
            "wn:verb:00005041:ex1",
            "wn:adj:00001740:def",
            "wn:adj:00001740:ex0",
            "wn:adj:00001740:ex1",
            "wn:adv:00001740:def",
        ]
    );
    assert_eq!(cols[1][3], "She sighed sadly");
    assert_eq!(
        cols[1][7],
        "(usually followed by `to') having the necessary means or skill or know-how or authority to do something"
    );
    assert_eq!(
        cols[1][10],
        "a local branch where postal services are available"
    );
    assert_eq!(cols[2][5], "verb");
    assert_eq!(cols[3][..4], ["def", "def", "def", "ex"]);
    assert_eq!(cols[4][1], "noun:00002137");
    assert_eq!(cols[5][1], "abstraction,abstract_entity");

    // A malformed synset line is named by file and line; a missing file by name.
    std::fs::write(
        dir.path().join("data.verb"),
        format!("{VERB}00009999 29 v zz broken 0 | gloss\n"),
    )
    .unwrap();
    let msg = import_wordnet(dir.path(), &dir.path().join("e.parquet"), false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("data.verb") && msg.contains("line 4"), "{msg}");
    std::fs::remove_file(dir.path().join("data.adv")).unwrap();
    let msg = import_wordnet(dir.path(), &dir.path().join("e.parquet"), false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no data.adv"), "{msg}");
    assert!(matches!(
        import_wordnet(dir.path(), &dir.path().join("e.parquet"), false),
        Err(TextError::Input { .. })
    ));
}

#[test]
fn bbc_split_is_fixed_and_decoding_falls_back_to_latin1() {
    // Expected values from Python: int.from_bytes(sha256(b"CLASS/FILE").digest()[:8], "big") % 5.
    let expect = [
        ("business", "001.txt", "train"),
        ("business", "002.txt", "test"),
        ("business", "003.txt", "train"),
        ("business", "004.txt", "test"),
        ("tech", "004.txt", "test"),
        ("tech", "005.txt", "train"),
    ];
    for (label, file, split) in expect {
        assert_eq!(bbc_split(label, file), split, "{label}/{file}");
    }
    assert_eq!(
        decode_article("£5 café".as_bytes()),
        ("£5 café".to_string(), false)
    );
    assert_eq!(
        decode_article(b"\xa315.8m\r\n"),
        ("£15.8m\n".to_string(), true)
    );
}

#[test]
fn bbc_import_writes_both_splits_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bbc");
    for (label, n) in [("business", 5), ("tech", 6)] {
        std::fs::create_dir_all(corpus.join(label)).unwrap();
        for i in 1..=n {
            let body = format!("{label} title {i}\n\nFirst paragraph costs \u{a3}{i}.\n\n");
            std::fs::write(corpus.join(label).join(format!("{i:03}.txt")), body).unwrap();
        }
    }
    // One Latin-1 file, and files that are not articles.
    std::fs::write(corpus.join("tech/006.txt"), b"Caf\xe9 title\n\nBody.\n").unwrap();
    std::fs::write(corpus.join("tech/notes.md"), "not an article").unwrap();
    std::fs::write(corpus.join("LICENSE.md"), "licence").unwrap();

    let (train, test) = (
        dir.path().join("train.parquet"),
        dir.path().join("test.parquet"),
    );
    let report = import_bbc(&corpus, &train, &test, false).unwrap();
    assert_eq!(report.totals(), (8, 3));
    assert_eq!(report.latin1, ["tech/006.txt"]);
    let (names, te) = read_columns(&test);
    assert_eq!(names, ["id", "text", "title", "label", "split"]);
    assert_eq!(
        te[0],
        ["bbc:business:002", "bbc:business:004", "bbc:tech:004"]
    );
    assert_eq!(te[1][0], "business title 2\n\nFirst paragraph costs £2.");
    assert_eq!(te[2][0], "business title 2");
    assert_eq!(te[3], ["business", "business", "tech"]);
    assert!(te[4].iter().all(|s| s == "test"));
    let (_, tr) = read_columns(&train);
    assert_eq!(tr[0].len(), 8);
    assert!(tr[4].iter().all(|s| s == "train"));
    let cafe = tr[0].iter().position(|i| i == "bbc:tech:006").unwrap();
    assert_eq!(tr[2][cafe], "Café title");

    // Deterministic: a forced re-import writes the same rows; kept without --force.
    let kept = import_bbc(&corpus, &train, &test, false).unwrap();
    assert_eq!(kept.kept, Some((8, 3)));
    import_bbc(&corpus, &train, &test, true).unwrap();
    assert_eq!(read_columns(&test).1, te);
    assert_eq!(read_columns(&train).1, tr);

    std::fs::write(corpus.join("tech/007.txt"), "   \n").unwrap();
    let msg = import_bbc(&corpus, &train, &test, true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("007.txt") && msg.contains("empty"), "{msg}");
    let msg = import_bbc(&corpus.join("tech"), &train, &test, true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("one folder per class"), "{msg}");
}
