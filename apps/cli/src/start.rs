//! `waiaas start`: the daemon (`waiaas-daemon`) in the foreground.
//!
//! Order of startup, each step failing with a clear message and exit code 1 before anything is served:
//! data dir (implicit `init` on a fresh machine) → config (defaults → TOML → env) → logging → the data dir's
//! pid lock (one daemon per data dir) → master password → [`waiaas_daemon::bind`] (database, ports, unlock, audit
//! head, bind) → serve until SIGTERM/SIGINT, then a graceful shutdown.
//!
//! When it listens the daemon prints exactly one line to stdout, `WAIaaS listening on http://<ip>:<port>`, and
//! appends the same base URL to `daemon.pid` as its second line (`stop` and `status` read it). Logs go to stderr.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use waiaas_core::ErrorCode;
use waiaas_daemon::{Config, Overrides, bind, init_logging, load_config};
use waiaas_fs::{DataDir, PidLock};
use zeroize::Zeroizing;

use crate::password::{self, Terminal};
use crate::{core_error, init};

/// How long background tasks get once the server has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the daemon on the data dir at `root` until a shutdown signal.
pub fn start(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = prepare_data_dir(root)?;
    let config = load_config(&dir)?;
    init_logging(&config.daemon.log_level);
    tracing::info!(data_dir = %dir.root().display(), "starting");
    let mut lock = PidLock::acquire(&dir).map_err(|e| match e.code {
        ErrorCode::DaemonAlreadyRunning => core_error(e),
        _ => core_error(e).context("cannot take the daemon lock"),
    })?;
    if waiaas_fs::backup::recover_interrupted_restore(&dir).map_err(core_error)? {
        tracing::warn!("an interrupted restore was rolled back: the data dir holds its data from before the restore");
    }
    let first_run = !dir.db_file().exists();
    let (password, source) = password::master_password(|name| std::env::var(name).ok(), &Terminal, first_run)?;
    tracing::info!(source = ?source, "master password read");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("waiaas")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(&dir, &mut lock, config, password));
    // Background work (RPC calls on the blocking pool) gets a moment to finish; the lock is released only after,
    // so `waiaas stop` returns when the daemon has really finished.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    served?;
    tracing::info!("stopped");
    drop(lock);
    Ok(ExitCode::SUCCESS)
}

/// Opens the data dir, running `init` first on a first start — the directory missing, or there but holding neither
/// a `config.toml` nor a database (an empty directory made for it) — so `waiaas start` alone works on a fresh
/// machine. A data dir that holds data is only completed (missing subdirectories) and tightened to 0700: a
/// deployment that runs on defaults and environment variables alone gets no config file written behind its back.
fn prepare_data_dir(root: &Path) -> anyhow::Result<DataDir> {
    let dir = DataDir::create(root).map_err(core_error).context("cannot prepare the data dir")?;
    if !dir.config_file().exists() && !dir.db_file().exists() {
        let outcome = init::init(root)?;
        // stdout is reserved for the "listening" line.
        eprintln!("{}", outcome.describe().lines().take(2).collect::<Vec<_>>().join("\n"));
    }
    Ok(dir)
}

async fn serve(dir: &DataDir, lock: &mut PidLock, config: Config, password: Zeroizing<String>) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM arriving right after the "listening" line must shut down gracefully.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let daemon = bind(dir, &config, password, Overrides::default()).await?;
    // SIGHUP reloads `[acl]` and `[anomaly]` (each atomically; a configuration that does not load keeps what is in
    // force).
    let (acl, anomaly, reload_dir) = (daemon.acl(), daemon.anomaly(), dir.clone());
    tokio::spawn(async move {
        while sighup.recv().await.is_some() {
            waiaas_daemon::reload_acl(&reload_dir, &acl);
            waiaas_daemon::reload_anomaly(&reload_dir, &anomaly);
        }
    });
    lock.record_url(&daemon.base_url).map_err(core_error).context("cannot record the URL in the pid file")?;
    announce(&daemon.base_url)?;
    daemon
        .run(async move {
            tokio::select! {
                _ = sigterm.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = sigint.recv() => tracing::info!("SIGINT received; shutting down"),
            }
        })
        .await
}

/// The one line on stdout, flushed at once (a parent process waits for it on a pipe).
fn announce(base_url: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "WAIaaS listening on {base_url}").and_then(|()| out.flush()).context("cannot write to stdout")
}
