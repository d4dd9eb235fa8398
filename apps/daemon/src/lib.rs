//! The WAIaaS daemon as a library: what `waiaas start` runs, for the `waiaas` command and for any host that embeds
//! the daemon (the end-to-end tests and the benchmarks do).
//!
//! - [`config`]: the configuration, loaded once (defaults → `config.toml` → `WAIAAS_<SECTION>_<KEY>` env, unknown
//!   keys rejected) and passed explicitly;
//! - [`daemon`]: [`bind`] composes the adapters (SQLite, fs, EVM, metrics) into the core, unlocks it and binds the
//!   REST server's port; [`BoundDaemon::run`] serves until a shutdown future and supervises the background tasks
//!   (transaction worker, anomaly task, backup scheduler): a task that dies stops the daemon;
//! - [`anomaly`]: the anomaly task (OPS-06), fed the final transactions' events after commit;
//! - [`backup`]: the backup scheduler, the seam that lets the fs adapter's backup store snapshot the SQLite
//!   database, and restore (stage, check, swap);
//! - [`audit_head`]: the audit head key and the master password check that unlock and the offline commands share.
//!
//! It knows no terminal: prompts, progress bars, signals, the PID lock and the "listening" line belong to the
//! `waiaas` command (`waiaas-cli`), which depends on this crate and never the other way round.

pub mod anomaly;
pub mod audit_head;
pub mod backup;
pub mod config;
pub mod daemon;

pub use anomaly::reload_anomaly;
pub use config::Config;
pub use daemon::{BoundDaemon, Overrides, bind, init_logging, load_config, reload_acl};

/// A core or adapter error for the operator. Internal errors carry their cause (a path and an OS error, a
/// database error) only for the log; the daemon's operator runs it on their own machine, so this shows that cause
/// instead of the bare "internal error". Causes never hold secrets.
pub fn core_error(err: waiaas_core::Error) -> anyhow::Error {
    match &err.internal {
        Some(cause) => anyhow::anyhow!("{cause}"),
        None => anyhow::anyhow!("{}", err.message),
    }
}
