//! Variable-name conventions shared by the training loops and the exporters: which entries of
//! a run's `VarMap` are the student itself.

/// Variable-name prefix of the other networks of an online run (`online.NAME.…`).
pub const VAR_PREFIX: &str = "online.";

/// Whether variable `name` belongs in `student.safetensors`: not a projector (`__proj…`), an
/// exit head (`__exit…`) or another network of an online run (`online.NAME.…`).
pub fn is_student_var(name: &str) -> bool {
    !name.starts_with("__") && !name.starts_with(VAR_PREFIX)
}
