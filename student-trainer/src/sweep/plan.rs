//! What a sweep trains: the grid's points (all, or a seeded random sample), the scratch
//! baselines they need, one run per point or baseline and seed, and each run's config.
//!
//! Point `i` of a grid is decoded in mixed radix with the first `--grid` key varying slowest,
//! so the table reads in the order the keys were given. A scratch baseline exists per distinct
//! setting of the keys that do not address `[[loss]]` (e.g. one per `student.hidden` swept):
//! the same config with every teacher term removed and hard-label `ce` at weight 1.

use rand::rngs::StdRng;
use rand::SeedableRng;
use toml::{Table, Value};

use super::keys::{parse_grid, KeyPath};
use super::SweepError;
use crate::config::{LossTerm, RunConfig};

/// The largest grid run without `--sample`.
pub const MAX_FULL_GRID: usize = 10_000;

/// One swept key and its values.
#[derive(Debug, Clone)]
pub struct GridKey {
    /// Where the value goes.
    pub path: KeyPath,
    /// The values tried, in order.
    pub values: Vec<Value>,
}

/// The swept keys.
#[derive(Debug, Clone)]
pub struct Grid {
    /// In `--grid` order.
    pub keys: Vec<GridKey>,
}

impl Grid {
    /// Parses the `--grid` specs; each key once, never `train.seed`.
    pub fn parse(specs: &[String]) -> Result<Self, SweepError> {
        if specs.is_empty() {
            return Err(SweepError::Grid {
                spec: String::new(),
                message: "give at least one --grid KEY=[v1, v2, ...]".into(),
            });
        }
        let mut keys: Vec<GridKey> = Vec::new();
        for spec in specs {
            let (path, values) = parse_grid(spec)?;
            if path.is_seed() {
                return Err(SweepError::Key {
                    key: path.text,
                    message: "seeds are swept with --seeds 0,1,2, not --grid".into(),
                });
            }
            if keys.iter().any(|k| k.path == path) {
                return Err(SweepError::Key {
                    key: path.text,
                    message: "given twice in --grid".into(),
                });
            }
            keys.push(GridKey { path, values });
        }
        Ok(Self { keys })
    }

    /// Number of points (the product of the value counts), `None` past `usize`.
    pub fn size(&self) -> Option<usize> {
        self.keys
            .iter()
            .try_fold(1usize, |n, k| n.checked_mul(k.values.len()))
    }

    /// The value index of each key at point `index`.
    pub fn decode(&self, mut index: usize) -> Vec<usize> {
        let mut out = vec![0; self.keys.len()];
        for (slot, k) in out.iter_mut().zip(&self.keys).rev() {
            *slot = index % k.values.len();
            index /= k.values.len();
        }
        out
    }

    /// The scratch group of a point: its value indices of the non-loss keys.
    pub fn group_of(&self, choice: &[usize]) -> Vec<usize> {
        self.keys
            .iter()
            .zip(choice)
            .filter(|(k, _)| !k.path.is_loss())
            .map(|(_, &c)| c)
            .collect()
    }

    /// `key = value` texts of a point, or of a scratch group (`choice` over the non-loss keys).
    pub fn settings(&self, choice: &[usize], scratch: bool) -> Vec<(String, String)> {
        let mut it = choice.iter();
        self.keys
            .iter()
            .filter(|k| !(scratch && k.path.is_loss()))
            .filter_map(|k| {
                it.next()
                    .map(|&c| (k.path.text.clone(), k.values[c].to_string()))
            })
            .collect()
    }

    /// Applies a point's values (`choice` over all keys) or a scratch group's (`choice` over
    /// the non-loss keys only, as [`Grid::group_of`] gives) to the base tree.
    fn apply(&self, base: &Table, choice: &[usize], scratch: bool) -> Result<Table, SweepError> {
        let mut t = base.clone();
        let mut it = choice.iter();
        for k in &self.keys {
            if scratch && k.path.is_loss() {
                continue;
            }
            let c = *it
                .next()
                .ok_or_else(|| SweepError::Internal("choice too short".into()))?;
            k.path.set(&mut t, k.values[c].clone())?;
        }
        Ok(t)
    }
}

/// The points to run: all of them in order, or `n` distinct ones drawn with `seed`
/// (then sorted).
pub fn select(grid: &Grid, sample: Option<usize>, seed: u64) -> Result<Vec<usize>, SweepError> {
    let total = grid.size();
    match (sample, total) {
        (Some(n), Some(total)) => {
            let n = n.min(total);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut v = rand::seq::index::sample(&mut rng, total, n).into_vec();
            v.sort_unstable();
            Ok(v)
        }
        (None, Some(total)) if total <= MAX_FULL_GRID => Ok((0..total).collect()),
        (_, total) => Err(SweepError::Grid {
            spec: String::new(),
            message: format!(
                "the grid has {} points; draw some with --sample N",
                total.map_or("too many".into(), |t| t.to_string())
            ),
        }),
    }
}

/// What a run trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    /// The scratch baseline of a group (value indices of the non-loss keys).
    Scratch(Vec<usize>),
    /// Grid point `index`.
    Point(usize),
}

/// One run of the sweep.
#[derive(Debug, Clone)]
pub struct Task {
    /// Folder name under `runs/`, e.g. `p003-s1` or `scratch-g0-s1`.
    pub id: String,
    /// What it trains.
    pub kind: RunKind,
    /// `train.seed`.
    pub seed: u64,
}

/// The scratch groups the points need, in first-use order.
pub fn groups(grid: &Grid, points: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &p in points {
        let g = grid.group_of(&grid.decode(p));
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// Every run: the scratch baselines first, then the points, each over all seeds.
pub fn tasks(grid: &Grid, points: &[usize], seeds: &[u64]) -> Vec<Task> {
    let mut out = Vec::new();
    for (gi, g) in groups(grid, points).into_iter().enumerate() {
        for &seed in seeds {
            out.push(Task {
                id: format!("scratch-g{gi}-s{seed}"),
                kind: RunKind::Scratch(g.clone()),
                seed,
            });
        }
    }
    let width = grid
        .size()
        .unwrap_or(1)
        .saturating_sub(1)
        .to_string()
        .len()
        .max(3);
    for &p in points {
        for &seed in seeds {
            out.push(Task {
                id: format!("p{p:0width$}-s{seed}"),
                kind: RunKind::Point(p),
                seed,
            });
        }
    }
    out
}

/// A config a sweep derives from the base, checked like a config file.
pub fn derive(
    base_raw: &Table,
    base_name: &str,
    grid: &Grid,
    kind: &RunKind,
    seed: u64,
) -> Result<RunConfig, SweepError> {
    let (tree, scratch) = match kind {
        RunKind::Scratch(g) => (grid.apply(base_raw, g, true)?, true),
        RunKind::Point(p) => (grid.apply(base_raw, &grid.decode(*p), false)?, false),
    };
    let text = toml::to_string(&tree)
        .map_err(|e| SweepError::Internal(format!("re-serialising the config: {e}")))?;
    let label = describe(grid, kind);
    let name = format!("{base_name} with {label}");
    let mut cfg = RunConfig::parse(&text, std::path::Path::new(&name)).map_err(|source| {
        SweepError::PointConfig {
            point: label.clone(),
            source: Box::new(source),
        }
    })?;
    if scratch {
        let (eval_teacher, _) = crate::train::setup::eval_teacher(&cfg);
        cfg.losses = vec![LossTerm::Ce { weight: 1.0 }];
        cfg.data.eval_teacher = eval_teacher.filter(|c| !c.contains(':'));
    }
    cfg.train.seed = seed;
    Ok(cfg)
}

/// `key = value, ...` of a run kind, for messages and the table.
pub fn describe(grid: &Grid, kind: &RunKind) -> String {
    let pairs = match kind {
        RunKind::Scratch(g) => grid.settings(g, true),
        RunKind::Point(p) => grid.settings(&grid.decode(*p), false),
    };
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match kind {
        RunKind::Scratch(_) if body.is_empty() => "scratch (no teacher terms)".into(),
        RunKind::Scratch(_) => format!("scratch (no teacher terms), {body}"),
        RunKind::Point(_) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(specs: &[&str]) -> Grid {
        Grid::parse(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("grid")
    }

    #[test]
    fn points_expand_with_the_first_key_slowest() {
        let g = grid(&["loss.kd.temperature=[1,2,4,8]", "loss.ce.weight=[0.1,0.5]"]);
        assert_eq!(g.size(), Some(8));
        let all: Vec<Vec<usize>> = (0..8).map(|i| g.decode(i)).collect();
        assert_eq!(all[0], vec![0, 0]);
        assert_eq!(all[1], vec![0, 1]);
        assert_eq!(all[7], vec![3, 1]);
        let s = g.settings(&all[5], false);
        assert_eq!(
            s,
            vec![
                ("loss.kd.temperature".to_string(), "4".to_string()),
                ("loss.ce.weight".to_string(), "0.5".to_string())
            ]
        );
        // Loss keys only: one scratch group for all points.
        assert_eq!(groups(&g, &(0..8).collect::<Vec<_>>()).len(), 1);
        let t = tasks(&g, &(0..8).collect::<Vec<_>>(), &[0, 1]);
        assert_eq!(t.len(), 2 + 16);
        assert_eq!(t[0].id, "scratch-g0-s0");
        assert_eq!(t[2].id, "p000-s0");
        assert_eq!(t[17].id, "p007-s1");
    }

    #[test]
    fn non_loss_keys_make_scratch_groups() {
        let g = grid(&["student.hidden=[[30],[60]]", "loss.kd.temperature=[1,4]"]);
        let points: Vec<usize> = (0..4).collect();
        assert_eq!(groups(&g, &points), vec![vec![0], vec![1]]);
        assert_eq!(
            describe(&g, &RunKind::Scratch(vec![1])),
            "scratch (no teacher terms), student.hidden = [60]"
        );
    }

    #[test]
    fn samples_are_distinct_seeded_and_sorted() {
        let g = grid(&["train.lr=[1,2,3,4,5,6,7,8,9,10]", "loss.ce.weight=[1,2,3]"]);
        let a = select(&g, Some(5), 7).expect("sample");
        assert_eq!(a, select(&g, Some(5), 7).expect("again"));
        assert_eq!(a.len(), 5);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(select(&g, Some(100), 7).expect("all").len(), 30);
        assert_eq!(select(&g, None, 0).expect("full").len(), 30);
    }

    #[test]
    fn seed_and_repeated_keys_are_refused() {
        let specs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let e = Grid::parse(&specs(&["train.seed=[1,2]"])).expect_err("seed");
        assert!(e.to_string().contains("--seeds"), "{e}");
        let e = Grid::parse(&specs(&["train.lr=[1]", "train.lr=[2]"])).expect_err("twice");
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
