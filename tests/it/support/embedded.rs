//! The daemon embedded in the test process (the same `bind`/`run` the `waiaas start` command uses), with a clock
//! the test advances: DELAY waits, approval deadlines and expiry are exercised without sleeping. It serves real
//! HTTP on an ephemeral loopback port over a real SQLite file; only the clock is the test's.

use std::sync::Arc;
use std::thread::JoinHandle;

use tempfile::TempDir;
use tokio::sync::oneshot;
use waiaas_client::Client;
use waiaas_core::ports::Clock;
use waiaas_core::ports::testing::FixedClock;
use waiaas_core::services::anomaly::AnomalyMonitor;
use waiaas_daemon::config::Config;
use waiaas_daemon::{Overrides, bind};
use waiaas_fs::{DataDir, SystemClock};
use zeroize::Zeroizing;

use super::MASTER_PASSWORD;

pub struct EmbeddedDaemon {
    pub url: String,
    pub clock: Arc<FixedClock>,
    /// The daemon's core, for assertions on its in-memory state.
    pub core: Arc<waiaas_core::services::Waiaas>,
    /// The anomaly monitor, for assertions on the agents' rolling activity.
    pub anomaly: Arc<AnomalyMonitor>,
    /// How webhook host names resolve in this daemon (a table the test fills and changes; kept across restarts).
    pub resolver: Arc<waiaas_http::StaticResolver>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    config: Config,
    dir: TempDir,
}

/// What a started daemon thread hands back.
struct Launched {
    url: String,
    core: Arc<waiaas_core::services::Waiaas>,
    anomaly: Arc<AnomalyMonitor>,
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// Binds and runs the daemon on `root` with `config`, `clock` and `resolver` in a thread of its own.
fn launch(
    root: &std::path::Path,
    config: Config,
    clock: Arc<FixedClock>,
    resolver: Arc<waiaas_http::StaticResolver>,
) -> Launched {
    let data_dir = DataDir::create(root).expect("data dir");
    let daemon_clock: Arc<dyn Clock> = clock;
    let webhook_resolver: Arc<dyn waiaas_http::HostResolver> = resolver;
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let password = Zeroizing::new(MASTER_PASSWORD.to_owned());
            let overrides = Overrides { clock: daemon_clock, webhook_resolver };
            let bound = match bind(&data_dir, &config, password, overrides).await {
                Ok(bound) => bound,
                Err(e) => {
                    let _ = url_tx.send(Err(format!("{e:#}")));
                    return;
                }
            };
            let _ = url_tx.send(Ok((bound.base_url.clone(), bound.core(), bound.anomaly())));
            bound
                .run(async move {
                    let _ = shutdown_rx.await;
                })
                .await
                .expect("embedded daemon run");
        });
    });
    let (url, core, anomaly) = url_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("embedded daemon did not start")
        .unwrap_or_else(|e| panic!("embedded daemon failed: {e}"));
    Launched { url, core, anomaly, shutdown, thread }
}

impl EmbeddedDaemon {
    /// Starts on a fresh data dir; `settings` are extra `WAIAAS_<SECTION>_<KEY>` values (e.g. RPC URLs), replacing
    /// the test defaults they name (the worker interval of 20 ms, the cheap keystore KDF).
    pub fn start(settings: &[(&str, &str)]) -> EmbeddedDaemon {
        let dir = tempfile::tempdir().expect("temp data dir");
        let mut vars: Vec<(String, String)> = [
            ("WAIAAS_DAEMON_PORT", "0"),
            ("WAIAAS_KEYSTORE_ARGON2_M_COST_KIB", "1024"),
            ("WAIAAS_KEYSTORE_ARGON2_T_COST", "1"),
            ("WAIAAS_KEYSTORE_ARGON2_P_COST", "1"),
            ("WAIAAS_PIPELINE_WORKER_INTERVAL_MS", "20"),
        ]
        .iter()
        .filter(|(key, _)| settings.iter().all(|(set, _)| set != key))
        .chain(settings)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.sort();
        let config = Config::load(None, vars).expect("test config");
        let clock = Arc::new(FixedClock::at(SystemClock.now().0));
        let resolver = Arc::new(waiaas_http::StaticResolver::default());
        let launched = launch(dir.path(), config.clone(), clock.clone(), resolver.clone());
        EmbeddedDaemon {
            url: launched.url,
            clock,
            core: launched.core,
            anomaly: launched.anomaly,
            resolver,
            shutdown: Some(launched.shutdown),
            thread: Some(launched.thread),
            config,
            dir,
        }
    }

    /// Stops the daemon and starts it again on the same data dir, with the same configuration and clock.
    pub fn restart(&mut self) {
        self.stop();
        let launched = launch(self.dir.path(), self.config.clone(), self.clock.clone(), self.resolver.clone());
        self.url = launched.url;
        self.core = launched.core;
        self.anomaly = launched.anomaly;
        self.shutdown = Some(launched.shutdown);
        self.thread = Some(launched.thread);
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn admin(&self) -> Client {
        Client::new(&self.url).with_master_password(MASTER_PASSWORD)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The daemon's clock reading, Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now().0
    }

    /// Moves the daemon's clock forward.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }
}

impl Drop for EmbeddedDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
