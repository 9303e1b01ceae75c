//! How a run names its variables, so the loops and the exporters agree on which belong to
//! the exported student: projectors (`__proj…`) and exit heads (`__exit…`) carry a `__`
//! prefix, an online run's other networks `online.NAME.`.

/// Variable-name prefix of the networks beside the `[student]` (`online.peer1.fc0.weight`).
pub const VAR_PREFIX: &str = "online.";

/// Whether variable `name` belongs in `student.safetensors`: not a projector (`__proj…`), an
/// exit head (`__exit…`) or another network of an online run (`online.NAME.…`).
pub fn is_student_var(name: &str) -> bool {
    !name.starts_with("__") && !name.starts_with(VAR_PREFIX)
}

/// Whether `name` is an exit head's exported weight (`__exit{L}.fc.*`, `__exit{L}.out.*`;
/// the training-only hint projection excluded).
pub fn is_exit_var(name: &str) -> bool {
    name.starts_with(crate::model::exits::EXIT_PREFIX) && !name.contains(".hint.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_and_exit_variables_are_told_apart() {
        assert!(is_student_var("fc0.weight"));
        assert!(!is_student_var("__proj0.weight"));
        assert!(!is_student_var("online.peer.fc0.weight"));
        let exit = format!("{}0.fc.weight", crate::model::exits::EXIT_PREFIX);
        assert!(is_exit_var(&exit) && !is_student_var(&exit));
        assert!(!is_exit_var(&exit.replace(".fc.", ".hint.")));
    }
}
