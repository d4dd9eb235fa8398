//! The `waiaas` binary: parses the command line and maps the outcome to an exit code (`waiaas_cli::exit`); the
//! logic is in the `waiaas_cli` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = waiaas_cli::Cli::parse();
    match waiaas_cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(waiaas_cli::exit::exit_code(&err))
        }
    }
}
