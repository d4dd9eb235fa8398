//! The `waiaas` binary: parses the command line and maps the outcome to an exit code (`waiaas_cli::exit`); the
//! logic is in the `waiaas_cli` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
    let cli = waiaas_cli::Cli::parse();
    match waiaas_cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(waiaas_cli::exit::exit_code(&err))
        }
    }
}

/// glibc's allocator, set for a long-running daemon (docs/benchmarks.md has the measurements), unless the operator
/// set the parameter through its environment variable:
/// - a fixed mmap threshold (128 KiB, glibc's initial one): by default glibc raises it to the size of the largest
///   block freed, so after the master password's Argon2id run its 19 MiB block was kept on the heap, and the idle
///   daemon held 40 MiB instead of 27;
/// - two arenas: one per thread (up to 8 per core) kept freed memory spread over many, and RSS crept up under
///   load while the heap in use stayed flat.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    for (variable, parameter, value) in
        [("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024), ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2)]
    {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mallopt` only sets an allocator parameter; it runs first in `main`, before any other thread.
            unsafe { libc::mallopt(parameter, value) };
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
