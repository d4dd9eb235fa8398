//! `waiaas start`: the daemon in the foreground.
//!
//! Order of startup, each step failing with a clear message and exit code 1 before anything is served:
//! data dir (implicit `init` on a fresh machine) → config (defaults → TOML → env) → logging → the data dir's
//! pid lock (one daemon per data dir) → master password → database → ports → `Waiaas::unlock` (a wrong password
//! stops here, and nothing else changes) → the audit head key (a log that does not match its sealed head stops
//! here) → bind → serve until SIGTERM/SIGINT, then a graceful shutdown.
//!
//! When it listens the daemon prints exactly one line to stdout, `WAIaaS listening on http://<ip>:<port>`, and
//! appends the same base URL to `daemon.pid` as its second line (`stop` and `status` read it). Logs go to stderr
//! and never carry secrets: events are logged by type only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use waiaas_core::ErrorCode;
use waiaas_core::event::{Event, EventType, Severity};
use waiaas_core::ports::{Clock, EventSink, MetricsRegistry, NoMetrics};
use waiaas_core::prices::StaticPriceTable;
use waiaas_core::services::{Ports, Waiaas};
use waiaas_evm::EvmChain;
use waiaas_fs::{DataDir, FsKeyStore, OsEntropy, PidLock, SystemClock};
use waiaas_metrics::PrometheusMetrics;
use waiaas_server::ServerState;
use waiaas_sqlite::{Database, HeadInstalled};
use zeroize::Zeroizing;

use crate::config::{Config, MetricsAuthMode};
use crate::password::{self, Terminal};
use crate::{core_error, init};

/// How long in-flight requests get to finish after a shutdown signal (with the runtime timeout below, well
/// within `waiaas stop`'s 10 s wait).
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long background tasks get once the server has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the daemon on the data dir at `root` until a shutdown signal.
pub fn start(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = prepare_data_dir(root)?;
    let config = load_config(&dir)?;
    init_logging(&config.daemon.log_level);
    tracing::info!(data_dir = %dir.root().display(), "starting");
    let mut lock = PidLock::acquire(&dir).map_err(|e| match e.code {
        ErrorCode::DaemonAlreadyRunning => anyhow::anyhow!("{}", e.message),
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

/// Opens the data dir, running `init` first when it does not exist yet (so `waiaas start` alone works on a
/// fresh machine). An existing data dir is only completed (missing subdirectories) and tightened to 0700.
fn prepare_data_dir(root: &Path) -> anyhow::Result<DataDir> {
    if !root.exists() {
        let outcome = init::init(root)?;
        // stdout is reserved for the "listening" line.
        eprintln!("{}", outcome.describe().lines().take(2).collect::<Vec<_>>().join("\n"));
    }
    DataDir::create(root).map_err(core_error).context("cannot prepare the data dir")
}

/// Loads `config.toml` (if present) and the `WAIAAS_*` environment.
pub fn load_config(dir: &DataDir) -> anyhow::Result<Config> {
    let path = dir.config_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("WAIAAS_") {
            continue;
        }
        let Some(value) = value.to_str() else { bail!("{name} is not valid UTF-8") };
        env.push((name.to_owned(), value.to_owned()));
    }
    let shown = path.display().to_string();
    Ok(Config::load(text.as_deref().map(|t| (shown.as_str(), t)), env)?)
}

/// Logs to stderr; `RUST_LOG` (when set and valid) overrides `[daemon] log_level`. The HTTP client's own logs
/// stay at `info` whatever the filter: at `trace` ureq prints request URLs, and an RPC URL may embed an API key.
pub(crate) fn init_logging(log_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let filter = ["ureq=info", "ureq_proto=info"]
        .iter()
        .filter_map(|directive| directive.parse().ok())
        .fold(filter, tracing_subscriber::EnvFilter::add_directive);
    // A second initialisation (tests running the daemon in-process twice) keeps the first subscriber.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

/// The daemon's event sink: logs each event by type (never its details) and wakes the transaction worker when an
/// event means new work (a request admitted, an approval given).
pub struct DaemonEventSink {
    wake_worker: Arc<Notify>,
}

impl EventSink for DaemonEventSink {
    fn publish(&self, event: &Event) {
        let event_type = event.event_type.as_str();
        match event.severity {
            Severity::Info => tracing::info!(event_type, "event"),
            Severity::Warning | Severity::Critical => {
                tracing::warn!(event_type, severity = event.severity.as_str(), "event")
            }
        }
        if matches!(event.event_type, EventType::TxRequested | EventType::TxApproved) {
            self.wake_worker.notify_one();
        }
    }
}

/// How often the worker re-reads the state gauges (sessions expire without an event) and folds histogram samples.
const METRICS_HOUSEKEEPING: Duration = Duration::from_secs(15);

/// Stages 4–6 of the pipeline: one round whenever woken or every `interval`, until `stop` turns true. Rounds
/// never overlap, so one agent's transactions are signed one at a time (nonces stay in order). Every
/// [`METRICS_HOUSEKEEPING`] it also refreshes the state gauges.
async fn run_worker(
    core: Arc<Waiaas>,
    wake: Arc<Notify>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<PrometheusMetrics>,
) {
    let mut housekept = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = wake.notified() => {}
            _ = stop.changed() => return,
        }
        match core.process_work().await {
            Ok(report) => {
                for (tx, error) in report.errors {
                    tracing::warn!(%tx, code = %error.code, message = %error.message, cause = ?error.internal, "transaction step failed");
                }
            }
            Err(error) => {
                tracing::error!(code = %error.code, cause = ?error.internal, "transaction worker round failed")
            }
        }
        if housekept.elapsed() >= METRICS_HOUSEKEEPING {
            housekept = Instant::now();
            if let Err(error) = core.refresh_state_gauges().await {
                tracing::warn!(code = %error.code, cause = ?error.internal, "cannot refresh the state gauges");
            }
            metrics.run_upkeep();
        }
    }
}

/// Parts of the daemon an embedding host may replace (tests inject a clock they can advance).
pub struct Overrides {
    pub clock: Arc<dyn Clock>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides { clock: Arc::new(SystemClock) }
    }
}

/// A daemon that is unlocked and bound to its port but not serving yet.
pub struct BoundDaemon {
    pub base_url: String,
    db: Database,
    state: ServerState,
    acceptor: poem::listener::TcpAcceptor,
    worker: tokio::task::JoinHandle<()>,
    stop_worker: watch::Sender<bool>,
}

/// Opens the database, wires the adapters into the core, unlocks it with the master password (a wrong password
/// stops here and changes nothing), starts the transaction worker and binds the listener.
pub async fn bind(
    dir: &DataDir,
    config: &Config,
    password: Zeroizing<String>,
    overrides: Overrides,
) -> anyhow::Result<BoundDaemon> {
    let db = Database::open(&dir.db_file()).await.map_err(core_error).context("cannot open the database")?;
    let networks: Vec<String> = config.rpc.evm.keys().cloned().collect();
    if networks.is_empty() {
        tracing::warn!("no EVM network configured: agents cannot be created until [rpc] evm_<network> is set");
    } else {
        tracing::info!(?networks, "EVM networks");
    }
    let keystore = FsKeyStore::for_data_dir(dir, password.clone(), config.keystore);
    let metrics = Arc::new(PrometheusMetrics::new(env!("CARGO_PKG_VERSION")));
    // With `[metrics] enabled = false` nothing is collected at all, not only not served.
    let collected: Arc<dyn MetricsRegistry> =
        if config.metrics.enabled { metrics.clone() } else { Arc::new(NoMetrics) };
    let chain = EvmChain::with_metrics(config.rpc.evm_networks(), Arc::clone(&collected))
        .with_native_symbols(config.rpc.native.clone());
    let wake_worker = Arc::new(Notify::new());
    let prices = StaticPriceTable::new(config.oracle.usd.clone(), overrides.clock.now())
        .with_tokens(config.oracle.tokens.iter().cloned());
    let ports = Ports {
        clock: overrides.clock,
        entropy: Arc::new(OsEntropy),
        agents: db.agents(),
        sessions: db.sessions(),
        policies: db.policies(),
        settings: db.settings(),
        kill_switch: db.kill_switch(),
        audit: db.audit(),
        keystore: Arc::new(keystore),
        chain: Arc::new(chain.clone()),
        broadcaster: Arc::new(chain),
        transactions: db.transactions(),
        prices: Arc::new(prices),
        events: Arc::new(DaemonEventSink { wake_worker: Arc::clone(&wake_worker) }),
        metrics: collected,
    };
    let core = match Waiaas::unlock(ports, config.security.clone(), &password).await {
        Ok(core) => Arc::new(core),
        Err(e) => {
            db.close().await;
            return Err(match e.code {
                ErrorCode::InvalidMasterPassword => anyhow::anyhow!("{}", e.message),
                _ => core_error(e).context("cannot unlock the daemon"),
            });
        }
    };
    if let Err(e) = seal_audit_head(&db, &core, &password).await {
        db.close().await;
        return Err(e);
    }
    // OPS-03: archives are sealed with the master password, into `[backup] dir`.
    let backup_store = crate::backup::FsBackupStore::new(
        dir.clone(),
        db.clone(),
        crate::backup::backup_dir(dir, &config.backup),
        password.clone(),
    );
    core.attach_backup_store(Arc::new(backup_store));
    drop(password);

    let hostname = config.daemon.hostname.as_str();
    let listener = tokio::net::TcpListener::bind((hostname, config.daemon.port))
        .await
        .with_context(|| format!("cannot listen on {hostname}:{}", config.daemon.port))?;
    let bound = listener.local_addr().context("cannot read the bound address")?;
    if bound.ip().is_unspecified() {
        tracing::info!(%bound, "bound to all interfaces; master endpoints answer loopback clients only ([acl])");
    }
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).context("cannot use the listener")?;

    let (stop_worker, worker_stop) = watch::channel(false);
    let interval = Duration::from_millis(config.pipeline.worker_interval_ms);
    let worker = tokio::spawn(run_worker(Arc::clone(&core), wake_worker, interval, worker_stop, metrics.clone()));
    tokio::spawn(crate::backup::run_scheduler(Arc::clone(&core), config.backup.clone(), stop_worker.subscribe()));
    let state = ServerState {
        core,
        schema_version: db.schema_version(),
        started_at: Instant::now(),
        allowed_hosts: config.daemon.allowed_hosts.clone(),
        metrics: metrics_export(config, metrics),
        acl: waiaas_server::acl::AclHandle::new(config.acl.clone()),
    };
    Ok(BoundDaemon { base_url: format!("http://{}", reachable(bound)), db, state, acceptor, worker, stop_worker })
}

/// Installs the audit head key (Argon2id of the master password with the database's head salt) so every append
/// seals the head. A log without a head yet is sealed now (the AUDIT_HEAD_SEALED row this writes over existing rows
/// is published like any event); a head that does not match the log stops the start with the finding, before
/// anything is served or written.
async fn seal_audit_head(db: &Database, core: &Waiaas, password: &str) -> anyhow::Result<()> {
    let key = crate::audit::head_key(db, password, true).await?.context("no audit head salt")?;
    match db.install_audit_head_key(key, core.now()).await.map_err(core_error)? {
        HeadInstalled::Intact { last_id } => tracing::debug!(last_id, "the audit log ends at its sealed head"),
        HeadInstalled::Sealed { last_id, recorded } => {
            if let Some(event) = recorded {
                tracing::warn!(
                    last_id,
                    "the audit log had no sealed head (first start after the upgrade, or the head was deleted); \
                     sealed it now: rows deleted before this moment cannot be detected"
                );
                core.ports().events.publish(&event);
            }
        }
        HeadInstalled::Broken(finding) => return Err(crate::audit::head_refusal(&finding)),
    }
    Ok(())
}

/// `GET /metrics` from `[metrics]`.
fn metrics_export(config: &Config, metrics: Arc<PrometheusMetrics>) -> waiaas_server::metrics::MetricsExport {
    use waiaas_server::metrics::{MetricsAuth, MetricsExport};
    let auth = match config.metrics.auth {
        MetricsAuthMode::None => MetricsAuth::None,
        MetricsAuthMode::Master => MetricsAuth::Master,
        MetricsAuthMode::Bearer => MetricsAuth::Bearer(config.metrics.bearer_token.clone().unwrap_or_default()),
    };
    MetricsExport {
        enabled: config.metrics.enabled,
        auth,
        render: Arc::new(move || metrics.render()),
        oracle_symbols: config.oracle.usd.keys().cloned().collect(),
    }
}

/// SIGHUP: loads the configuration again (file and environment) and swaps in its `[acl]` as one value, so a
/// request sees the old rules or the new ones, never a mix. A configuration that does not load keeps the rules in
/// force and logs why. The other sections apply at the next start.
fn reload_acl(dir: &DataDir, acl: &waiaas_server::acl::AclHandle) {
    match load_config(dir) {
        Ok(config) => {
            acl.replace(config.acl);
            tracing::info!("SIGHUP: [acl] reloaded");
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "SIGHUP: the configuration does not load; the [acl] rules in force are kept")
        }
    }
}

impl BoundDaemon {
    /// The `[acl]` rules it serves with (replaceable while it runs).
    pub fn acl(&self) -> waiaas_server::acl::AclHandle {
        self.state.acl.clone()
    }

    /// The core it serves (for embedding hosts and tests that inspect it).
    pub fn core(&self) -> Arc<Waiaas> {
        Arc::clone(&self.state.core)
    }

    /// Serves until `shutdown` completes, then drains requests, stops the worker after its round and closes the
    /// database.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(url = %self.base_url, schema_version = self.db.schema_version(), "listening");
        let served = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(waiaas_server::app(self.state), shutdown, Some(GRACEFUL_TIMEOUT))
            .await;
        // A signature already recorded as SUBMITTED is re-broadcast by the next start if this round is cut short.
        let _ = self.stop_worker.send(true);
        if tokio::time::timeout(GRACEFUL_TIMEOUT, self.worker).await.is_err() {
            tracing::warn!("the transaction worker did not stop in time");
        }
        self.db.close().await;
        served.context("the server failed")
    }
}

async fn serve(dir: &DataDir, lock: &mut PidLock, config: Config, password: Zeroizing<String>) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM arriving right after the "listening" line must shut down gracefully.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let daemon = bind(dir, &config, password, Overrides::default()).await?;
    let (acl, reload_dir) = (daemon.acl(), dir.clone());
    tokio::spawn(async move {
        while sighup.recv().await.is_some() {
            reload_acl(&reload_dir, &acl);
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

/// The address clients should use: the bound one, or loopback when bound to all interfaces (`0.0.0.0`/`::`,
/// which is not a destination; loopback also passes the Host-header guard).
fn reachable(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), bound.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), bound.port()),
        _ => bound,
    }
}

/// The one line on stdout, flushed at once (a parent process waits for it on a pipe).
fn announce(base_url: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "WAIaaS listening on {base_url}").and_then(|()| out.flush()).context("cannot write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_binds_are_announced_as_loopback() {
        let check = |bound: &str, expected: &str| assert_eq!(reachable(bound.parse().unwrap()).to_string(), expected);
        check("127.0.0.1:3100", "127.0.0.1:3100");
        check("0.0.0.0:4000", "127.0.0.1:4000");
        check("[::]:4000", "[::1]:4000");
        check("[::1]:5", "[::1]:5");
        check("10.1.2.3:7", "10.1.2.3:7");
    }
}
