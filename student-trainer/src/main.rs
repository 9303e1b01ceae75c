//! `student-trainer`: parses flags and calls the library.

use clap::Parser;

// candle allocates a tensor per op; glibc malloc spends ~2/3 of a step in page faults here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's `mi_option_purge_delay` (15 in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() -> std::process::ExitCode {
    // By default mimalloc returns freed pages to the OS after 10 ms, and a training step frees
    // and reallocates hundreds of MB of tensors, so every step faulted them back in: ~48% of a
    // text-student step's CPU was the kernel zeroing pages (perf), ~30k faults per step.
    // Keeping freed pages (-1) took the step from 1.33 to 1.06 CPU s. An explicit
    // MIMALLOC_PURGE_DELAY in the environment still wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter on mimalloc's option table, linked in by libmimalloc-sys.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    let cli = student_trainer::cli::Cli::parse();
    match student_trainer::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", student_trainer::cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
