//! The flat layout of earlier versions, where optimizer, schedule and feature-distance
//! parameters sat directly in `[train]` and `[[loss]]` (`train.momentum`, `train.min_lr`,
//! `loss[i].beta`). Such a file — including the `config.toml` an older trainer saved in a run
//! folder — is refused with the converted tables to paste in its place.

use std::fmt;

use toml::{Table, Value};

/// Flat `[train]` keys and the table they moved to (`None`: both optimizers take it).
const TRAIN_KEYS: [(&str, &str, Option<&str>); 8] = [
    ("weight_decay", "optimizer", None),
    ("betas", "optimizer", Some("adamw")),
    ("eps", "optimizer", Some("adamw")),
    ("momentum", "optimizer", Some("sgd")),
    ("nesterov", "optimizer", Some("sgd")),
    ("min_lr", "schedule", Some("cosine")),
    ("step_epochs", "schedule", Some("step")),
    ("gamma", "schedule", Some("step")),
];

/// Flat keys of a `feature` loss term and the distance they belong to.
const DISTANCE_KEYS: [(&str, &str); 2] = [("beta", "smooth_l1"), ("temperature", "kl")];

/// An old-layout file: which keys are flat, and how the file reads converted.
#[derive(Debug, Clone, PartialEq)]
pub struct OldFormat {
    /// The flat keys found, dotted (`train.momentum`, `loss[2].beta`).
    pub keys: Vec<String>,
    /// What to write instead, one entry per table or loss term.
    pub replacements: Vec<String>,
    /// Keys that do not belong to the configured kind and have no place in the new layout.
    pub dropped: Vec<String>,
}

impl OldFormat {
    /// Finds flat keys in an untyped config; `None` when there are none.
    pub fn find(raw: &Table) -> Option<Self> {
        let mut out = OldFormat {
            keys: Vec::new(),
            replacements: Vec::new(),
            dropped: Vec::new(),
        };
        if let Some(train) = raw.get("train").and_then(Value::as_table) {
            out.train(train);
        }
        if let Some(losses) = raw.get("loss").and_then(Value::as_array) {
            for (i, term) in losses.iter().enumerate() {
                if let Some(t) = term.as_table() {
                    out.loss(i, t);
                }
            }
        }
        (!out.keys.is_empty()).then_some(out)
    }

    fn train(&mut self, train: &Table) {
        for table in ["optimizer", "schedule"] {
            let moved: Vec<_> = TRAIN_KEYS
                .iter()
                .filter(|(k, t, _)| *t == table && train.contains_key(*k))
                .collect();
            if moved.is_empty() {
                continue;
            }
            let kind = configured_kind(train.get(table), table);
            let mut new = vec![("kind", Value::String(kind.clone()))];
            for (k, _, owner) in moved {
                self.keys.push(format!("train.{k}"));
                match owner {
                    Some(o) if *o != kind => self.dropped.push(format!(
                        "train.{k} (it applies to {table} kind = \"{o}\" only)"
                    )),
                    _ => new.push((k, train[*k].clone())),
                }
            }
            self.replacements
                .push(format!("[train.{table}]\n{}", render_lines(&new)));
        }
    }

    fn loss(&mut self, i: usize, term: &Table) {
        if term.get("kind").and_then(Value::as_str) != Some("feature") {
            return;
        }
        let flat: Vec<_> = DISTANCE_KEYS
            .iter()
            .filter(|(k, _)| term.contains_key(*k))
            .collect();
        if flat.is_empty() {
            return;
        }
        let kind = configured_kind(term.get("distance"), "distance");
        let mut new = vec![("kind", Value::String(kind.clone()))];
        for (k, owner) in flat {
            self.keys.push(format!("loss[{i}].{k}"));
            if *owner == kind {
                new.push((k, term[*k].clone()));
            } else {
                self.dropped.push(format!(
                    "loss[{i}].{k} (it applies to distance kind = \"{owner}\" only)"
                ));
            }
        }
        self.replacements
            .push(format!("in loss[{i}]: distance = {}", render_inline(&new)));
    }
}

/// The kind an old file names for `table` (a string then; a table's `kind` now), or the default.
fn configured_kind(v: Option<&Value>, table: &str) -> String {
    let named = match v {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Table(t)) => t.get("kind").and_then(Value::as_str),
        _ => None,
    };
    named
        .unwrap_or(match table {
            "optimizer" => "adamw",
            "schedule" => "constant",
            _ => "mse",
        })
        .to_string()
}

/// `k = v` lines, in the order given (a `toml::Table` would sort or keep insertion order
/// depending on a cargo feature).
fn render_lines(pairs: &[(&str, Value)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

fn render_inline(pairs: &[(&str, Value)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", inner.join(", "))
}

impl fmt::Display for OldFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} use the old flat layout: optimizer, schedule and feature-distance parameters now \
             live in their own tables. To convert the file, remove those keys (and a string \
             `train.optimizer` / `train.schedule` / `distance`) and write instead:\n\n{}",
            self.keys.join(", "),
            self.replacements.join("\n")
        )?;
        if !self.dropped.is_empty() {
            write!(f, "\nand drop {}", self.dropped.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Option<OldFormat> {
        OldFormat::find(&toml::from_str(text).expect("valid TOML"))
    }

    #[test]
    fn new_layout_is_not_old() {
        let text = "[train]\nepochs = 1\nlr = 0.1\n[train.optimizer]\nkind = \"sgd\"\nmomentum = 0.9\n\
                    [[loss]]\nkind = \"feature\"\nteacher = \"e\"\ndistance = { kind = \"kl\", temperature = 2.0 }\n\
                    [[loss]]\nkind = \"kd\"\nteacher = \"l\"\ntemperature = 4.0";
        assert_eq!(find(text), None);
    }

    #[test]
    fn a_run_folder_config_of_the_old_trainer_converts() {
        // What the old trainer wrote into RUN/config.toml: every [train] field, spelled out.
        let old = find(
            "[train]\nepochs = 2\nbatch_size = 32\neval_batch_size = 1024\noptimizer = \"sgd\"\n\
             lr = 0.05\nweight_decay = 0.0\nmomentum = 0.9\nnesterov = true\nschedule = \"step\"\n\
             warmup_epochs = 0.0\nmin_lr = 0.0\nstep_epochs = 2\ngamma = 0.5\nseed = 0\njitter = 0\n",
        )
        .expect("old layout");
        assert_eq!(
            old.keys,
            [
                "train.weight_decay",
                "train.momentum",
                "train.nesterov",
                "train.min_lr",
                "train.step_epochs",
                "train.gamma"
            ]
        );
        assert_eq!(
            old.replacements,
            [
                "[train.optimizer]\nkind = \"sgd\"\nweight_decay = 0.0\nmomentum = 0.9\nnesterov = true\n",
                "[train.schedule]\nkind = \"step\"\nstep_epochs = 2\ngamma = 0.5\n",
            ]
        );
        assert_eq!(
            old.dropped,
            ["train.min_lr (it applies to schedule kind = \"cosine\" only)"]
        );
        // The converted tables parse in the new layout.
        let new: Table = toml::from_str(&old.replacements.join("\n")).expect("converted TOML");
        assert_eq!(new["train"]["optimizer"]["kind"].as_str(), Some("sgd"));
    }

    #[test]
    fn flat_feature_parameters_move_into_distance() {
        let old = find(
            "[[loss]]\nkind = \"ce\"\n[[loss]]\nkind = \"feature\"\nteacher = \"e\"\n\
             distance = \"smooth_l1\"\nbeta = 0.5\n",
        )
        .expect("old layout");
        assert_eq!(old.keys, ["loss[1].beta"]);
        assert_eq!(
            old.replacements,
            ["in loss[1]: distance = { kind = \"smooth_l1\", beta = 0.5 }"]
        );
        let msg = old.to_string();
        assert!(
            msg.contains("loss[1].beta") && msg.contains("kind = \"smooth_l1\""),
            "{msg}"
        );
    }
}
