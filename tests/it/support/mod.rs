//! Test support: start and stop the real daemon and a real anvil node, and small helpers around them.

mod anvil;
mod daemon;

pub use anvil::Anvil;
pub use daemon::{Daemon, DaemonOptions, run_cli};

/// The master password every test daemon is started with.
pub const MASTER_PASSWORD: &str = "correct horse battery staple";

/// Reads an error's code, panicking with the full error when the call did not fail as an API error.
#[track_caller]
pub fn api_error<T: std::fmt::Debug>(result: waiaas_client::Result<T>) -> (u16, String, Option<serde_json::Value>) {
    match result {
        Err(waiaas_client::ClientError::Api { status, code, details, .. }) => (status, code, details),
        other => panic!("expected an API error, got {other:?}"),
    }
}
