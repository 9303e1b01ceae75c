//! Dotted key names (`train.optimizer.momentum`, `loss[1].distance.beta`) for schema errors.
//!
//! serde_path_to_error follows the path down to the table that failed, but not into the
//! buffered content of a `kind`-tagged table, and serde's message names only the field; the
//! untyped TOML tree completes the path.

use serde_path_to_error::{Path, Segment};
use toml::{Table, Value};

/// The dotted key an error at `path` with serde's `message` is about. A plain struct's
/// unknown field is already the path's last segment; a tagged table's is not.
pub fn error_key(raw: &Table, path: &Path, message: &str) -> String {
    let mut key = String::new();
    let root = Value::Table(raw.clone());
    let mut node = Some(&root);
    let mut last: Option<&str> = None;
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => {
                last = None;
                key.push_str(&format!("[{index}]"));
                node = node.and_then(|n| n.as_array()).and_then(|a| a.get(*index));
            }
            Segment::Map { key: k } => {
                last = Some(k);
                push_field(&mut key, k);
                node = node.and_then(|n| n.as_table()).and_then(|t| t.get(k));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let field_of = |prefix| quoted_after(message, prefix).filter(|f| Some(*f) != last);
    if let Some(field) = field_of("missing field `") {
        push_field(&mut key, field);
    } else if let Some(field) = field_of("unknown field `") {
        match node.and_then(|n| find_field(n, field)) {
            Some(sub) => key.push_str(&sub),
            None => push_field(&mut key, field),
        }
    }
    if key.is_empty() {
        key.push_str("(top level)");
    }
    key
}

fn push_field(key: &mut String, field: &str) {
    if !key.is_empty() {
        key.push('.');
    }
    key.push_str(field);
}

/// The text between `prefix` and the next backtick, when `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// Where `field` sits under `node`: `.field` directly, or `.table.field` one table down
/// (a nested `kind` table such as a loss term's `distance`).
fn find_field(node: &Value, field: &str) -> Option<String> {
    let table = node.as_table()?;
    if table.contains_key(field) {
        return Some(format!(".{field}"));
    }
    table.iter().find_map(|(name, v)| {
        v.as_table()
            .filter(|t| t.contains_key(field))
            .map(|_| format!(".{name}.{field}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key for an error while deserializing `text` into `T`.
    fn key_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        let raw: Table = toml::from_str(text).expect("valid TOML");
        let de = toml::de::Deserializer::parse(text).expect("valid TOML");
        let e = serde_path_to_error::deserialize::<_, T>(de).expect_err("must fail");
        error_key(&raw, e.path(), e.inner().message())
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: A,
        #[serde(default)]
        item: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct A {
        n: usize,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "kind", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Item {
        #[serde(rename = "x")]
        X { inner: Inner },
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        v: usize,
    }

    #[test]
    fn keys_name_the_table_and_the_field() {
        let cases = [
            ("[a]\nn = 1\nm = 2", "a.m"),
            ("[a]", "a.n"),
            ("[a]\nn = \"one\"", "a.n"),
            ("[a]\nn = 1\n[[item]]\nkind = \"x\"\ninner = { v = 1 }\n[[item]]\nkind = \"x\"\ninner = { v = 1, w = 2 }", "item[1].inner.w"),
            ("[a]\nn = 1\n[[item]]\nkind = \"x\"\ninner = { v = 1 }\nextra = 1", "item[0].extra"),
            ("[a]\nn = 1\n[[item]]\nkind = \"y\"", "item[0].kind"),
            ("b = 1\n[a]\nn = 1", "b"),
        ];
        for (text, want) in cases {
            assert_eq!(key_of::<Doc>(text), want, "{text}");
        }
    }
}
