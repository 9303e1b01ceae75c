//! `student-trainer`: parses flags and calls the library.

use clap::Parser;

// candle allocates a tensor per op; glibc malloc spends ~2/3 of a step in page faults here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = student_trainer::cli::Cli::parse();
    match student_trainer::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", student_trainer::cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
