//! Every example run config in `examples/` (and the demo's), `examples/text/`,
//! `examples/modes/` and `examples/views/` parses and passes validation.

use student_trainer::config::RunConfig;

#[test]
fn example_configs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for dir in [
        root.clone(),
        root.join("demo"),
        root.join("text"),
        root.join("modes"),
        root.join("views"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                RunConfig::load(&p).unwrap_or_else(|err| panic!("{err}"));
                seen += 1;
            }
        }
    }
    assert!(
        seen >= 5,
        "found only {seen} example configs under {}",
        root.display()
    );
}
