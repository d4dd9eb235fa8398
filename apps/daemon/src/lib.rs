//! The WAIaaS daemon as a library: what `waiaas start` runs, for the `waiaas` command and for any host that embeds
//! the daemon (the end-to-end tests and the benchmarks do).
//!
//! - [`config`]: the configuration, loaded once (defaults → `config.toml` → `WAIAAS_<SECTION>_<KEY>` env, unknown
//!   keys rejected) and passed explicitly;
//! - [`daemon`]: [`bind`] composes the adapters (SQLite, fs, EVM, metrics) into the core, unlocks it and binds the
//!   REST server's port; [`BoundDaemon::run`] serves until a shutdown future and supervises the background tasks
//!   (transaction worker, anomaly task, backup scheduler): a task that dies stops the daemon;
//! - [`anomaly`]: the anomaly task (OPS-06), fed the final transactions' events after commit;
//! - [`notifications`]: the notifier task (messages to people), reading the audit log after its cursor;
//! - [`webhooks`]: the webhook delivery task, reading each webhook's stream of the audit log;
//! - [`wake`]: how both wait out a burst of events before reading;
//! - [`backup`]: the backup scheduler, the seam that lets the fs adapter's backup store snapshot the SQLite
//!   database, and restore (refusals, the data dir's lock, rollback of an interrupted restore, stage, check,
//!   swap);
//! - [`audit_head`]: the audit head key and the master password check that unlock and the offline commands share.
//!
//! It knows no terminal: prompts, progress bars, signals, `start`'s PID lock and the "listening" line belong to the
//! `waiaas` command (`waiaas-cli`), which depends on this crate and never the other way round.

pub mod anomaly;
pub mod audit_head;
pub mod backup;
pub mod chains;
pub mod config;
pub mod daemon;
pub mod notifications;
pub mod wake;
pub mod webhooks;

pub use anomaly::reload_anomaly;
pub use config::{Config, ConfigError};
pub use daemon::{BoundDaemon, Overrides, bind, init_logging, load_config, reload_acl};

/// A core or adapter error for the operator. Internal errors carry their cause (a path and an OS error, a
/// database error) only for the log; the daemon's operator runs it on their own machine, so this shows that cause
/// instead of the bare "internal error". Causes never hold secrets. The error keeps its code ([`CoreFailure`]), so
/// the command can turn it into an exit code.
pub fn core_error(err: waiaas_core::Error) -> anyhow::Error {
    anyhow::Error::new(CoreFailure(err))
}

/// A core error on its way to the operator: shown as its internal cause when it has one, else its message.
#[derive(Debug)]
pub struct CoreFailure(pub waiaas_core::Error);

impl std::fmt::Display for CoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.internal {
            Some(cause) => write!(f, "{cause}"),
            None => f.write_str(&self.0.message),
        }
    }
}

impl std::error::Error for CoreFailure {}
