//! The `teacher-server` binary: parse flags, set up logging, hand over to the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = teacher_server::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match teacher_server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("teacher-server: error: {}", chain_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose words the text already
/// ends with (errors that keep their source also say it).
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain_text;

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::other("no such file");
        // A cause already in its error's words is not repeated; a new one is appended.
        let e = anyhow::Error::new(io).context("reading m.onnx: no such file");
        assert_eq!(chain_text(&e), "reading m.onnx: no such file");
        let e = anyhow::Error::new(std::io::Error::other("denied")).context("opening the store");
        assert_eq!(chain_text(&e), "opening the store: denied");
    }
}
