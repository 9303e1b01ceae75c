//! The `[data]` table of a run: where the rows, the extra teachers, the stored views and the
//! served teacher come from.

use serde::{Deserialize, Serialize};

/// The `[data]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training rows: a label-store dataset folder, one Parquet file, or a glob of files.
    pub train: String,
    /// Held-out, hard-labelled rows evaluated each epoch (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<String>,
    /// Name of the input column: FixedSizeList of floats, or for a text student (`static`,
    /// `transformer`) the token-id column (List<Int32|Int64>, e.g. `input_ids`).
    pub input: String,
    /// Name of the hard-label column (integers); optional for pure distillation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Extra teacher datasets joined to the training rows by `id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teachers: Vec<TeacherSource>,
    /// Teacher outputs stored per augmented view (`distill-label label --views K`), replayed
    /// so the student sees the inputs the teacher scored ([`ViewsConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewsConfig>,
    /// A running teacher-server asked for the teacher's outputs of every augmented batch
    /// ([`ServedConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<ServedConfig>,
    /// Number of classes; inferred from the teacher logits width or the labels when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Shape of one input as `[H, W]` or `[C, H, W]`, used by `train.jitter`; a square
    /// single-channel image is assumed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_shape: Option<Vec<usize>>,
    /// Teacher-logits column of the eval set for agreement and eval KD loss; defaults to the
    /// first `kd` term's column when the eval set has it. For a text student: the embedding
    /// column teacher fidelity is measured against (default: the first term on the pooled
    /// embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_teacher: Option<String>,
    /// A finished scratch run's folder (a run without teacher terms on the same eval set):
    /// the teacher check compares the teacher with its eval errors. Without one, a run that
    /// learned from the teacher gets no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_run: Option<String>,
    /// Text: the token-type column (e.g. `token_type_ids`), fed to a transformer student;
    /// absent: every token has type 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_types: Option<String>,
    /// Text: sort each shuffle window by token count before cutting batches, then shuffle
    /// the batches (less padding per batch).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bucket_by_length: bool,
    /// Text: training rows held in memory per shuffle window (default 262144). A source with
    /// more rows is streamed: each epoch reads it once per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_window: Option<usize>,
    /// Text: hold out this fraction of the training source for eval, chosen by a hash of the
    /// row id (the same rows for every seed); an alternative to `data.eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_fraction: Option<f64>,
    /// Text: train on this fraction of the (non-held-out) rows only, chosen by a hash of the
    /// row id — the same subset for every seed and labelling order; a budget knob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_fraction: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One extra teacher dataset (`[[data.teachers]]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeacherSource {
    /// Short name; a loss term can address one teacher's column as `NAME:column`.
    pub name: String,
    /// A label-store dataset folder, Parquet file or glob, with an `id` column.
    pub path: String,
    /// Weight of this teacher's soft targets in the average.
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// `[data.views]`: the teacher's outputs of K seeded augmented views of each training row.
///
/// Epoch `e` trains every row on its view `e mod K`: the input is rebuilt from the row's
/// un-augmented input (`data.train`) and the view's stored seed, and the loss terms' teacher
/// columns are read from that view's row, so student and teacher see the same input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ViewsConfig {
    /// The label-store dataset folder (or Parquet file / glob) holding the views.
    pub path: String,
    /// Use views `0..count` only (default: all K the dataset holds for every row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// `[data.served]`: the frozen teacher served online. Each training batch is augmented
/// (epoch `e` uses view `e` of each row, the seeds `distill-label label --views` uses), sent
/// to the server, and the loss terms' teacher columns are the server's outputs of that batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServedConfig {
    /// Base URL of the teacher-server, e.g. `http://127.0.0.1:8080` (token: `DISTILL_API_TOKEN`).
    pub server: String,
    /// The augmentation, e.g. `"jitter=2"` (as `distill-label label --augment`).
    pub augment: distill_proto::views::Augment,
    /// Base seed of the view seeds (`distill-label label --view-seed`).
    #[serde(default)]
    pub view_seed: u64,
    /// The model input the batch is sent as (default: `data.input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_input: Option<String>,
    /// Seconds one request may take before it is retried.
    #[serde(default = "default_served_timeout")]
    pub timeout_secs: f64,
}

fn default_served_timeout() -> f64 {
    60.0
}
