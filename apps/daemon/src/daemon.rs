//! The daemon: [`bind`] opens the database, composes the adapters into the core, unlocks it with the master
//! password and binds the REST server's port; [`BoundDaemon::run`] serves until a shutdown future.
//!
//! Order of startup, each step failing with a clear message before anything is served: database → ports →
//! `Waiaas::unlock` (a wrong password stops here, and nothing else changes) → the audit head key (a log that does
//! not match its sealed head stops here) → the backup store → bind → the background tasks.
//!
//! **Supervision.** The background tasks (the transaction worker; the webhook delivery task; the notifier; the
//! anomaly task; the backup scheduler when
//! `[backup] interval` is set) run under [`BoundDaemon::run`]. A task that ends or panics while the daemon serves is
//! logged and stops the daemon: the server drains, the other tasks stop, the database closes and `run` returns an
//! error (so `waiaas start` exits 1 and the service manager restarts it). A daemon is not restarted task by task:
//! without its worker it would admit transactions that never execute, and a fresh start re-broadcasts whatever a
//! lost round had recorded as SUBMITTED. Logs never carry secrets: events are logged by type only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use waiaas_core::ErrorCode;
use waiaas_core::event::{Event, EventType, Severity};
use waiaas_core::ports::{Clock, EventSink, MetricsRegistry, NoMetrics};
use waiaas_core::prices::StaticPriceTable;
use waiaas_core::services::anomaly::AnomalyMonitor;
use waiaas_core::services::{Ports, Waiaas};
use waiaas_evm::EvmChain;
use waiaas_solana::SolanaChain;

use crate::chains::Chains;
use waiaas_fs::{DataDir, FsKeyStore, OsEntropy, SystemClock};
use waiaas_metrics::PrometheusMetrics;
use waiaas_server::ServerState;
use waiaas_sqlite::{Database, HeadInstalled};
use zeroize::Zeroizing;

use crate::config::{Config, MetricsAuthMode};
use crate::core_error;

/// How long in-flight requests get to finish after a shutdown signal (with the runtime's own shutdown timeout,
/// well within `waiaas stop`'s 10 s wait), and the background tasks after the server has stopped.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(5);

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
pub fn init_logging(log_level: &str) {
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

/// The daemon's event sink: logs each event by type (never its details), wakes the transaction worker when an
/// event means new work (a request admitted, an approval given) and queues final transactions for the anomaly
/// task.
pub struct DaemonEventSink {
    wake_worker: Arc<Notify>,
    /// The webhook delivery task: every committed event may have queued deliveries.
    wake_webhooks: Arc<Notify>,
    /// The notifier: every committed event is an audit row it may route.
    wake_notifier: Arc<Notify>,
    anomaly: crate::anomaly::AnomalyFeed,
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
        self.wake_webhooks.notify_one();
        self.wake_notifier.notify_one();
        self.anomaly.offer(event);
    }
}

/// How often the worker re-reads the state gauges (sessions expire without an event) and folds histogram samples.
const METRICS_HOUSEKEEPING: Duration = Duration::from_secs(15);

/// The first pause before a follow-up round; it doubles up to the worker interval while rows stay in flight.
const FIRST_FOLLOW_UP: Duration = Duration::from_millis(1);

/// The pause before the next follow-up round: none when nothing is in flight; [`FIRST_FOLLOW_UP`] after a round
/// that new work started; else twice the last pause, at most `interval` (the ticker's own period).
fn next_follow_up(last: Option<Duration>, in_flight: bool, new_work: bool, interval: Duration) -> Option<Duration> {
    match last {
        _ if !in_flight => None,
        Some(pause) if !new_work => Some((pause * 2).min(interval)),
        _ => Some(FIRST_FOLLOW_UP),
    }
}

/// Stages 4–6 of the pipeline: one round whenever woken or every `interval`, until `stop` turns true. Rounds
/// never overlap, so one agent's transactions are signed one at a time (nonces stay in order). A round that
/// broadcast a transaction or found one waiting for its receipt is followed by another after
/// [`FIRST_FOLLOW_UP`], doubling while rows stay in flight (new work starts the doubling over), so a confirmation
/// is seen as soon as the chain has it rather than a whole interval later; an idle worker only wakes on the
/// interval. Every [`METRICS_HOUSEKEEPING`]
/// it also refreshes the state gauges.
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
    let mut follow_up: Option<Duration> = None;
    loop {
        let pause = async {
            match follow_up {
                Some(pause) => tokio::time::sleep(pause).await,
                None => std::future::pending().await,
            }
        };
        // New work restarts the backoff; a tick or a follow-up continues it.
        let new_work = tokio::select! {
            _ = ticker.tick() => false,
            () = wake.notified() => true,
            () = pause => false,
            _ = stop.changed() => return,
        };
        let round = core.process_work().await;
        let in_flight = round.as_ref().is_ok_and(|report| report.follow_up);
        follow_up = next_follow_up(follow_up, in_flight, new_work, interval);
        match round {
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
    /// The core's clock (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// How webhook hosts resolve (default: the system resolver; tests use a table they change).
    pub webhook_resolver: Arc<dyn waiaas_http::HostResolver>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides { clock: Arc::new(SystemClock), webhook_resolver: Arc::new(waiaas_http::SystemResolver) }
    }
}

/// A daemon that is unlocked and bound to its port but not serving yet; its background tasks run already.
pub struct BoundDaemon {
    /// `http://<ip>:<port>` clients reach it at (loopback when bound to all interfaces).
    pub base_url: String,
    db: Database,
    state: ServerState,
    acceptor: poem::listener::TcpAcceptor,
    tasks: Tasks,
    monitor: Arc<AnomalyMonitor>,
}

/// The supervised background tasks: each returns only when `stop` turns true.
struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
    stop: watch::Sender<bool>,
}

impl Tasks {
    fn new() -> Self {
        Tasks { set: JoinSet::new(), names: HashMap::new(), stop: watch::channel(false).0 }
    }

    fn spawn(&mut self, name: &'static str, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Resolves when a task ends (a return before `stop` or a panic) with its name and what happened; pends
    /// forever when there is no task.
    async fn first_death(&mut self) -> (&'static str, String) {
        match self.set.join_next_with_id().await {
            Some(Ok((id, ()))) => (self.names.get(&id).copied().unwrap_or("task"), "returned".to_owned()),
            Some(Err(e)) => (self.names.get(&e.id()).copied().unwrap_or("task"), e.to_string()),
            None => std::future::pending().await,
        }
    }

    /// Asks every task to stop and waits for them (at most [`GRACEFUL_TIMEOUT`], then aborts the rest).
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let all = async {
            while let Some(joined) = self.set.join_next_with_id().await {
                if let Err(e) = joined {
                    let name = self.names.get(&e.id()).copied().unwrap_or("task");
                    tracing::error!(task = name, error = %e, "background task failed while stopping");
                }
            }
        };
        if tokio::time::timeout(GRACEFUL_TIMEOUT, all).await.is_err() {
            // A signature already recorded as SUBMITTED is re-broadcast by the next start if a round is cut short.
            tracing::warn!("background tasks did not stop in time");
            self.set.abort_all();
        }
    }
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
    let solana_networks: Vec<String> = config.rpc.solana.keys().cloned().collect();
    if networks.is_empty() && solana_networks.is_empty() {
        tracing::warn!(
            "no network configured: agents cannot be created until [rpc] evm_<network> or solana_<network> is set"
        );
    } else {
        tracing::info!(?networks, ?solana_networks, "networks");
    }
    let keystore = FsKeyStore::for_data_dir(dir, password.clone(), config.keystore);
    let metrics = Arc::new(PrometheusMetrics::new(env!("CARGO_PKG_VERSION")));
    // With `[metrics] enabled = false` nothing is collected at all, not only not served.
    let collected: Arc<dyn MetricsRegistry> =
        if config.metrics.enabled { metrics.clone() } else { Arc::new(NoMetrics) };
    let chain = Chains::new(
        EvmChain::with_metrics(config.rpc.evm_networks(), Arc::clone(&collected))
            .with_native_symbols(config.rpc.native.clone()),
        SolanaChain::with_metrics(config.rpc.solana_networks(), Arc::clone(&collected)),
    );
    let wake_worker = Arc::new(Notify::new());
    let wake_webhooks = Arc::new(Notify::new());
    let wake_notifier = Arc::new(Notify::new());
    let (anomaly_feed, anomaly_events) = crate::anomaly::AnomalyFeed::new();
    let prices = StaticPriceTable::new(config.oracle.usd.clone(), overrides.clock.now())
        .with_tokens(config.oracle.tokens.iter().cloned());
    let ports = Ports {
        clock: Arc::clone(&overrides.clock),
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
        events: Arc::new(DaemonEventSink {
            wake_worker: Arc::clone(&wake_worker),
            wake_webhooks: Arc::clone(&wake_webhooks),
            wake_notifier: Arc::clone(&wake_notifier),
            anomaly: anomaly_feed,
        }),
        metrics: collected,
    };
    let core = match Waiaas::unlock(ports, config.security.clone(), &password).await {
        Ok(core) => Arc::new(core),
        Err(e) => {
            db.close().await;
            return Err(match e.code {
                ErrorCode::InvalidMasterPassword => core_error(e),
                _ => core_error(e).context("cannot unlock the daemon"),
            });
        }
    };
    let head_key = match seal_audit_head(&db, &core, &password).await {
        Ok(key) => key,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    // OPS-04: secrets are sealed under a sub-key of the audit head key (the master password, no extra Argon2 run).
    let sender = waiaas_http::HttpWebhookSender::new(
        Duration::from_millis(config.webhooks.timeout_ms),
        config.webhooks.block_private_targets,
        Arc::clone(&overrides.webhook_resolver),
    );
    core.attach_webhooks(waiaas_core::services::WebhookHub {
        repo: db.webhooks(),
        sender: Arc::new(sender),
        key: waiaas_core::webhooks::secret::SecretKey::from_head_key(&head_key),
        settings: crate::webhooks::settings(&config.webhooks),
    });
    drop(head_key);
    // Notifications for people: channels from `[notifications]` (credentials read now, never logged).
    let notifications =
        match crate::notifications::hub(config, db.notifications(), Arc::clone(&overrides.webhook_resolver)) {
            Ok(hub) => hub,
            Err(e) => {
                db.close().await;
                return Err(e);
            }
        };
    let channels: Vec<&str> = config.notifications.order().iter().map(|c| c.as_str()).collect();
    tracing::info!(?channels, locale = config.notifications.locale.as_str(), "notification channels");
    core.attach_notifications(notifications);
    // OPS-03: archives are sealed with the master password, into `[backup] dir`.
    let backup_store =
        crate::backup::backup_store(dir, &db, crate::backup::backup_dir(dir, &config.backup), password.clone());
    // A backup killed midway (a crash, SIGKILL) left a temporary archive and a plaintext snapshot behind.
    match backup_store.remove_leftovers() {
        Ok(removed) if !removed.is_empty() => {
            tracing::warn!(count = removed.len(), "removed the leftovers of an interrupted backup");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not remove the leftovers of an interrupted backup"),
    }
    core.attach_backup_store(Arc::new(backup_store));
    drop(password);
    // OPS-06: findings and floors in the database; the rules over every agent's activity.
    let anomaly_store: Arc<dyn waiaas_core::ports::AnomalyRepo> = db.anomalies();
    core.attach_anomaly_store(Arc::clone(&anomaly_store));
    let registry = waiaas_core::anomaly::AnomalyRegistry::standard(config.anomaly.clone());
    let monitor = Arc::new(AnomalyMonitor::new(registry, core.ports().metrics.as_ref()));

    let hostname = config.daemon.hostname.as_str();
    let listener = tokio::net::TcpListener::bind((hostname, config.daemon.port))
        .await
        .with_context(|| format!("cannot listen on {hostname}:{}", config.daemon.port))?;
    let bound = listener.local_addr().context("cannot read the bound address")?;
    if bound.ip().is_unspecified() {
        tracing::info!(%bound, "bound to all interfaces; master endpoints answer loopback clients only ([acl])");
    }
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).context("cannot use the listener")?;

    let mut tasks = Tasks::new();
    let interval = Duration::from_millis(config.pipeline.worker_interval_ms);
    let worker = run_worker(Arc::clone(&core), wake_worker, interval, tasks.stop.subscribe(), metrics.clone());
    tasks.spawn("transaction worker", worker);
    let deliveries = crate::webhooks::run_deliveries(
        Arc::clone(&core),
        wake_webhooks,
        config.webhooks.concurrency,
        tasks.stop.subscribe(),
    );
    tasks.spawn("webhook delivery", deliveries);
    let notifier = crate::notifications::run(Arc::clone(&core), wake_notifier, tasks.stop.subscribe());
    tasks.spawn("notifier", notifier);
    let anomaly = crate::anomaly::run(
        Arc::clone(&core),
        Arc::clone(&monitor),
        anomaly_store,
        anomaly_events,
        tasks.stop.subscribe(),
    );
    tasks.spawn("anomaly task", anomaly);
    if config.backup.interval > 0 {
        let scheduler = crate::backup::run_scheduler(Arc::clone(&core), config.backup.clone(), tasks.stop.subscribe());
        tasks.spawn("backup scheduler", scheduler);
    }
    let state = ServerState {
        core,
        schema_version: db.schema_version(),
        started_at: Instant::now(),
        allowed_hosts: config.daemon.allowed_hosts.clone(),
        metrics: metrics_export(config, metrics),
        acl: waiaas_server::acl::AclHandle::new(config.acl.clone()),
    };
    Ok(BoundDaemon { base_url: format!("http://{}", reachable(bound)), db, state, acceptor, tasks, monitor })
}

/// Installs the audit head key (Argon2id of the master password with the database's head salt) so every append
/// seals the head, and returns it (the webhook secrets' key derives from it). A log without a head yet is sealed now
/// (the AUDIT_HEAD_SEALED row this writes over existing rows is published like any event); a head that does not
/// match the log stops the start with the finding, before anything is served or written.
async fn seal_audit_head(db: &Database, core: &Waiaas, password: &str) -> anyhow::Result<waiaas_core::audit::HeadKey> {
    let key = crate::audit_head::head_key(db, password, true).await?.context("no audit head salt")?;
    match db.install_audit_head_key(key.clone(), core.now()).await.map_err(core_error)? {
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
        HeadInstalled::Broken(finding) => return Err(crate::audit_head::head_refusal(&finding)),
    }
    Ok(key)
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
        content_type: waiaas_metrics::CONTENT_TYPE,
        oracle_symbols: config.oracle.usd.keys().cloned().collect(),
    }
}

/// SIGHUP: loads the configuration again (file and environment) and swaps in its `[acl]` as one value, so a
/// request sees the old rules or the new ones, never a mix. A configuration that does not load keeps the rules in
/// force and logs why. The other sections apply at the next start.
pub fn reload_acl(dir: &DataDir, acl: &waiaas_server::acl::AclHandle) {
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

    /// The anomaly monitor (its `[anomaly]` settings are replaceable while it runs).
    pub fn anomaly(&self) -> Arc<AnomalyMonitor> {
        Arc::clone(&self.monitor)
    }

    /// The core it serves (for embedding hosts and tests that inspect it).
    pub fn core(&self) -> Arc<Waiaas> {
        Arc::clone(&self.state.core)
    }

    /// Serves until `shutdown` completes or a background task dies (see the module's supervision note), then
    /// drains requests, stops the background tasks after their round and closes the database. A dead task makes
    /// this an error naming it.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(url = %self.base_url, schema_version = self.db.schema_version(), "listening");
        let BoundDaemon { db, state, acceptor, mut tasks, .. } = self;
        let (task_died, on_task_death) = oneshot::channel::<()>();
        let server = poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            waiaas_server::app(state),
            async move {
                tokio::select! {
                    () = shutdown => {}
                    _ = on_task_death => {}
                }
            },
            Some(GRACEFUL_TIMEOUT),
        );
        tokio::pin!(server);
        let (served, died) = tokio::select! {
            served = &mut server => (served, None),
            (name, how) = tasks.first_death() => {
                tracing::error!(task = name, error = %how, "a background task stopped; shutting the daemon down");
                let _ = task_died.send(());
                ((&mut server).await, Some(name))
            }
        };
        tasks.stop().await;
        db.close().await;
        served.context("the server failed")?;
        match died {
            Some(name) => bail!("the daemon stopped because its {name} stopped"),
            None => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon on a fresh data dir, on an ephemeral loopback port, with cheap key derivation.
    async fn bound(dir: &tempfile::TempDir) -> BoundDaemon {
        let data = DataDir::create(dir.path()).expect("data dir");
        let env = [
            ("WAIAAS_DAEMON_PORT", "0"),
            ("WAIAAS_KEYSTORE_ARGON2_M_COST_KIB", "1024"),
            ("WAIAAS_KEYSTORE_ARGON2_T_COST", "1"),
            ("WAIAAS_KEYSTORE_ARGON2_P_COST", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::load(None, env).expect("config");
        bind(&data, &config, Zeroizing::new("supervised".to_owned()), Overrides::default()).await.expect("bind")
    }

    /// A background task that dies while the daemon serves stops the daemon: `run` returns (without a shutdown
    /// signal) with an error naming the task, and the port is closed.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_dying_background_task_stops_the_daemon() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut daemon = bound(&dir).await;
        let address = daemon.base_url.trim_start_matches("http://").to_owned();
        let (die, dies) = oneshot::channel::<()>();
        daemon.tasks.spawn("doomed task", async move {
            let _ = dies.await;
            panic!("the doomed task fails");
        });
        let running = tokio::spawn(daemon.run(std::future::pending()));
        tokio::net::TcpStream::connect(&address).await.expect("the daemon serves before the task dies");
        die.send(()).expect("the task waits");
        let outcome = tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .expect("the daemon stopped by itself")
            .expect("run did not panic");
        let error = outcome.expect_err("a dead task is an error");
        assert!(error.to_string().contains("doomed task"), "{error:#}");
        assert!(tokio::net::TcpStream::connect(&address).await.is_err(), "the port is closed");
    }

    /// Without a dying task, `run` ends cleanly when its shutdown future completes, and the worker stops with it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_shutdown_stops_the_server_and_the_tasks_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let daemon = bound(&dir).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(daemon.run(async move {
            let _ = stopped.await;
        }));
        stop.send(()).expect("run waits for the shutdown");
        let outcome = tokio::time::timeout(Duration::from_secs(30), running).await.expect("stopped").expect("no panic");
        outcome.expect("a clean shutdown is no error");
    }

    /// Follow-up rounds back off while the same work stays in flight, start over with new work, and stop when
    /// nothing is in flight: a stream of sequential sends never inherits the last one's long pause.
    #[test]
    fn follow_up_pauses_double_per_flight_and_start_over_with_new_work() {
        let interval = Duration::from_millis(500);
        let ms = |n: u64| Some(Duration::from_millis(n));
        let mut pause = next_follow_up(None, true, true, interval);
        let mut pauses = vec![pause];
        for _ in 0..10 {
            pause = next_follow_up(pause, true, false, interval);
            pauses.push(pause);
        }
        assert_eq!(pauses, [ms(1), ms(2), ms(4), ms(8), ms(16), ms(32), ms(64), ms(128), ms(256), ms(500), ms(500)]);
        assert_eq!(next_follow_up(ms(256), true, true, interval), ms(1), "new work starts over");
        assert_eq!(next_follow_up(ms(256), false, false, interval), None, "nothing in flight");
        assert_eq!(next_follow_up(None, false, true, interval), None);
        assert_eq!(next_follow_up(None, true, false, interval), ms(1), "a tick that finds work in flight");
    }

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
