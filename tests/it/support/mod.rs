//! Test support: start and stop the real daemon and a real anvil node, and small helpers around them.

mod anvil;
mod chain;
pub mod channels;
mod daemon;
mod embedded;
mod funded;
mod proxy;
mod receiver;
mod solana;

pub use anvil::Anvil;
pub use chain::{approve_calldata, fail_calldata, hex_u256, store_calldata, transfer_calldata};
pub use channels::Channels;
pub use daemon::{Daemon, DaemonOptions, binary, run_cli};
pub use embedded::EmbeddedDaemon;
pub use funded::{FundedAgent, ONE_ETH};
pub use proxy::{Fault, RpcProxy};
pub use receiver::{Answer, Received, Receiver};
pub use solana::{SolanaNode, fresh_address};

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

/// Waits until `probe` returns `Some`, re-asking a running process for its state (the daemon's worker, the
/// chain) up to `seconds`; panics with `what` on timeout. This awaits an external process, so it polls.
#[track_caller]
pub fn eventually<T>(seconds: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    }
}
