//! Key paths of `--grid`: which value of the run config a swept setting replaces.
//!
//! A path is dotted keys into the config's TOML tables: `train.lr`, `student.hidden`,
//! `train.optimizer.weight_decay`. An array of tables is addressed by a 0-based index, as the
//! config's own errors write it: `loss[1].weight`, `data.teachers[0].weight`. `[[loss]]` terms
//! can also be addressed by kind, `loss.kd.temperature`, when exactly one term has that kind.
//! Every table on the way must exist in the base config; the last key may be new (a setting
//! left at its default), and the config's schema then decides whether it exists.

use toml::{Table, Value};

use super::SweepError;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key, or the kind of an array-of-tables entry (`loss.kd`).
    Key(String),
    /// An array index (`loss[1]`).
    Index(usize),
}

/// A parsed key path, e.g. `loss.kd.temperature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    /// As written.
    pub text: String,
    /// Its steps.
    pub segments: Vec<Segment>,
}

fn bad(key: &str, message: impl Into<String>) -> SweepError {
    SweepError::Key {
        key: key.to_string(),
        message: message.into(),
    }
}

impl KeyPath {
    /// Parses `a.b[2].c`.
    pub fn parse(text: &str) -> Result<Self, SweepError> {
        let text = text.trim();
        let mut segments = Vec::new();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() && (rest.is_empty() || segments.is_empty()) {
                return Err(bad(
                    text,
                    "empty key in the path (write e.g. `train.lr` or `loss[0].weight`)",
                ));
            }
            if !name.is_empty() {
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(bad(text, format!("`{name}` is not a plain TOML key")));
                }
                segments.push(Segment::Key(name.to_string()));
            }
            while !rest.is_empty() {
                let close = rest
                    .find(']')
                    .ok_or_else(|| bad(text, "unclosed `[` in the path"))?;
                let idx = rest[1..close].trim().parse::<usize>().map_err(|_| {
                    bad(text, format!("`{}` is not an array index", &rest[..=close]))
                })?;
                segments.push(Segment::Index(idx));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(bad(text, format!("unexpected `{rest}` after an index")));
                }
            }
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// Whether the path points into the `[[loss]]` terms (not applied to scratch runs).
    pub fn is_loss(&self) -> bool {
        matches!(self.segments.first(), Some(Segment::Key(k)) if k == "loss")
    }

    /// Whether the path is `train.seed` (swept with `--seeds` instead).
    pub fn is_seed(&self) -> bool {
        self.segments == [Segment::Key("train".into()), Segment::Key("seed".into())]
    }

    /// Sets the value at this path in `root`. A float setting given as an integer (`T = 2`)
    /// becomes a float. Returns whether the last key was absent before (a default setting).
    pub fn set(&self, root: &mut Table, value: Value) -> Result<bool, SweepError> {
        let mut node = Value::Table(std::mem::take(root));
        let r = set_in(&mut node, &self.segments, value, &self.text, "");
        if let Value::Table(t) = node {
            *root = t;
        }
        r
    }
}

fn describe(walked: &str) -> String {
    if walked.is_empty() {
        "the config's top level".into()
    } else {
        format!("`{walked}`")
    }
}

fn keys_of(t: &Table) -> String {
    if t.is_empty() {
        "none".into()
    } else {
        t.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

fn kinds_of(a: &[Value]) -> String {
    let kinds: Vec<String> = a
        .iter()
        .enumerate()
        .map(|(i, v)| match v.get("kind").and_then(Value::as_str) {
            Some(k) => format!("[{i}] {k}"),
            None => format!("[{i}]"),
        })
        .collect();
    if kinds.is_empty() {
        "none".into()
    } else {
        kinds.join(", ")
    }
}

fn coerce(old: Option<&Value>, new: Value) -> Value {
    match (old, new) {
        (Some(Value::Float(_)), Value::Integer(i)) => Value::Float(i as f64),
        (_, v) => v,
    }
}

fn set_in(
    node: &mut Value,
    segs: &[Segment],
    value: Value,
    key: &str,
    walked: &str,
) -> Result<bool, SweepError> {
    let Some((seg, rest)) = segs.split_first() else {
        return Err(bad(key, "empty key path"));
    };
    let kind = node.type_str();
    match (seg, node) {
        (Segment::Key(k), Value::Table(t)) => {
            let here = if walked.is_empty() {
                k.clone()
            } else {
                format!("{walked}.{k}")
            };
            if rest.is_empty() {
                let absent = !t.contains_key(k);
                let v = coerce(t.get(k), value);
                t.insert(k.clone(), v);
                return Ok(absent);
            }
            let keys = keys_of(t);
            match t.get_mut(k) {
                Some(child) => set_in(child, rest, value, key, &here),
                None => Err(bad(
                    key,
                    format!("{} has no table `{k}` (it has: {keys})", describe(walked)),
                )),
            }
        }
        (Segment::Key(k), Value::Array(a)) => {
            let hits: Vec<usize> = a
                .iter()
                .enumerate()
                .filter(|(_, v)| v.get("kind").and_then(Value::as_str) == Some(k.as_str()))
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [] => Err(bad(
                    key,
                    format!(
                        "{} has no entry of kind `{k}` (entries: {})",
                        describe(walked),
                        kinds_of(a)
                    ),
                )),
                [i] if !rest.is_empty() => {
                    let here = format!("{walked}[{i}]");
                    set_in(&mut a[*i], rest, value, key, &here)
                }
                [_] => Err(bad(
                    key,
                    format!("name a field of the `{k}` entry, e.g. `{walked}.{k}.weight`"),
                )),
                many => Err(bad(
                    key,
                    format!(
                        "{} has {} entries of kind `{k}` (at {}): address one by index, e.g. `{walked}[{}]`",
                        describe(walked),
                        many.len(),
                        many.iter().map(|i| format!("[{i}]")).collect::<Vec<_>>().join(", "),
                        many[0]
                    ),
                )),
            }
        }
        (Segment::Index(i), Value::Array(a)) => {
            let len = a.len();
            let Some(child) = a.get_mut(*i) else {
                return Err(bad(
                    key,
                    format!("{} has {len} entries, so no index {i}", describe(walked)),
                ));
            };
            if rest.is_empty() {
                let v = coerce(Some(child), value);
                *child = v;
                return Ok(false);
            }
            let here = format!("{walked}[{i}]");
            set_in(child, rest, value, key, &here)
        }
        (Segment::Key(k), _) => Err(bad(
            key,
            format!(
                "{} is a {kind}, not a table, so it has no key `{k}`",
                describe(walked)
            ),
        )),
        (Segment::Index(i), _) => Err(bad(
            key,
            format!(
                "{} is a {kind}, not an array, so it has no index {i}",
                describe(walked)
            ),
        )),
    }
}

/// Parses `--grid KEY=VALUES`: VALUES is a TOML array (`[1, 2.5, 4]`, `[[800, 800], [30, 30]]`,
/// `["a", "b"]`) or one TOML value (a fixed override).
pub fn parse_grid(spec: &str) -> Result<(KeyPath, Vec<Value>), SweepError> {
    let grid_err = |message: String| SweepError::Grid {
        spec: spec.to_string(),
        message,
    };
    let (key, rhs) = spec
        .split_once('=')
        .ok_or_else(|| grid_err("expected KEY=[v1, v2, ...]".into()))?;
    let path = KeyPath::parse(key)?;
    let doc: Table = toml::from_str(&format!("v = {}", rhs.trim()))
        .map_err(|e| grid_err(format!("the values are not a TOML value or array: {e}")))?;
    let values = match doc.get("v") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(grid_err("the list of values is empty".into()))
        }
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
        None => return Err(grid_err("no value".into())),
    };
    Ok((path, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[train]
lr = 0.001
epochs = 2

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 4.0

[[loss]]
kind = "ce"
weight = 0.5
"#;

    fn base() -> Table {
        toml::from_str(BASE).expect("base")
    }

    fn set(path: &str, v: Value) -> Result<Table, SweepError> {
        let mut t = base();
        KeyPath::parse(path)?.set(&mut t, v)?;
        Ok(t)
    }

    #[test]
    fn paths_parse_keys_and_indices() {
        let p = KeyPath::parse("loss[1].weight").expect("parse");
        assert_eq!(
            p.segments,
            vec![
                Segment::Key("loss".into()),
                Segment::Index(1),
                Segment::Key("weight".into())
            ]
        );
        assert!(p.is_loss());
        assert!(KeyPath::parse("train.seed").expect("parse").is_seed());
        for bad in ["", "train..lr", "loss[x].weight", "loss[1", "a b"] {
            assert!(KeyPath::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn kind_and_index_address_the_same_term() {
        let a = set("loss.kd.temperature", Value::Integer(8)).expect("by kind");
        let b = set("loss[0].temperature", Value::Float(8.0)).expect("by index");
        assert_eq!(a, b);
        assert_eq!(
            a["loss"][0]["temperature"],
            Value::Float(8.0),
            "int → float"
        );
        let c = set("loss.ce.weight", Value::Float(0.1)).expect("ce");
        assert_eq!(c["loss"][1]["weight"], Value::Float(0.1));
    }

    #[test]
    fn bad_paths_name_the_path_and_what_exists() {
        let cases = [
            ("loss.feature.weight", "entries: [0] kd, [1] ce"),
            ("loss[5].weight", "has 2 entries"),
            ("student.hidden", "it has: loss, train"),
            ("train.lr.x", "is a float, not a table"),
        ];
        for (path, want) in cases {
            let e = set(path, Value::Integer(1)).expect_err(path).to_string();
            assert!(e.contains(path) && e.contains(want), "{path}: {e}");
        }
        let mut two = base();
        KeyPath::parse("loss[1].kind")
            .and_then(|p| p.set(&mut two, Value::String("kd".into())))
            .expect("second kd");
        let e = KeyPath::parse("loss.kd.weight")
            .and_then(|p| p.set(&mut two, Value::Float(1.0)))
            .expect_err("ambiguous")
            .to_string();
        assert!(
            e.contains("2 entries of kind `kd`") && e.contains("loss[0]"),
            "{e}"
        );
    }

    #[test]
    fn grid_specs_take_toml_values() {
        let (p, v) = parse_grid("loss.kd.temperature=[1, 2.5, 4]").expect("grid");
        assert_eq!(p.text, "loss.kd.temperature");
        assert_eq!(v.len(), 3);
        let (_, v) = parse_grid("student.hidden = [[800, 800], [30, 30]]").expect("nested");
        assert_eq!(
            v[1],
            Value::Array(vec![Value::Integer(30), Value::Integer(30)])
        );
        let (_, v) = parse_grid("train.lr=1e-3").expect("one value");
        assert_eq!(v, vec![Value::Float(1e-3)]);
        for bad in ["train.lr", "train.lr=[]", "train.lr=[1,"] {
            assert!(parse_grid(bad).is_err(), "{bad}");
        }
    }
}
