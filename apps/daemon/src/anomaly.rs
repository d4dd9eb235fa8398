//! OPS-06 in the daemon: the anomaly task. The event sink hands it every `TX_CONFIRMED` / `TX_FAILED` after
//! commit through a bounded queue (a full queue drops the event with a warning; admission and the worker never
//! wait on it); the task first rebuilds every agent's activity from the last 7 days of final transactions, then
//! runs the core's [`AnomalyMonitor::on_event`] for each event in order. SIGHUP replaces the `[anomaly]` settings
//! ([`reload_anomaly`]).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use waiaas_core::event::{Event, EventType};
use waiaas_core::ports::AnomalyRepo;
use waiaas_core::services::Waiaas;
use waiaas_core::services::anomaly::AnomalyMonitor;
use waiaas_fs::DataDir;

/// Events waiting for the anomaly task, at most.
pub const QUEUE: usize = 65_536;

/// The sending side, held by the event sink.
#[derive(Clone, Debug)]
pub struct AnomalyFeed(mpsc::Sender<Event>);

impl AnomalyFeed {
    /// A feed and the queue the task reads.
    pub fn new() -> (AnomalyFeed, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (AnomalyFeed(sender), receiver)
    }

    /// Queues a final transaction's event without waiting; any other event is not the monitor's.
    pub fn offer(&self, event: &Event) {
        if !matches!(event.event_type, EventType::TxConfirmed | EventType::TxFailed) {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.0.try_send(event.clone()) {
            tracing::warn!("the anomaly queue is full; a final transaction is not judged");
        }
    }
}

/// The task: rebuild, then judge each queued event until `stop` turns true.
pub async fn run(
    core: Arc<Waiaas>,
    monitor: Arc<AnomalyMonitor>,
    store: Arc<dyn AnomalyRepo>,
    mut events: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    match monitor.rebuild(store.as_ref(), core.now()).await {
        Ok(rows) => tracing::info!(
            rows,
            agents = monitor.agents(),
            ms = started.elapsed().as_millis() as u64,
            "anomaly state rebuilt from the last 7 days"
        ),
        Err(error) => tracing::error!(code = %error.code, cause = ?error.internal, "cannot rebuild the anomaly state"),
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        let Some(event) = event else { return };
        match monitor.on_event(&core, &event).await {
            Ok(found) => {
                for finding in found {
                    tracing::warn!(
                        agent = %finding.agent_id,
                        rule = %finding.finding.rule,
                        shadow = finding.shadow,
                        "anomaly detected"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(code = %error.code, cause = ?error.internal, "cannot judge a transaction for anomalies")
            }
        }
    }
}

/// SIGHUP: loads the configuration again and applies its `[anomaly]` settings (the rules' activity is kept). A
/// configuration that does not load keeps the settings in force and logs why.
pub fn reload_anomaly(dir: &DataDir, monitor: &AnomalyMonitor) {
    match crate::load_config(dir) {
        Ok(config) => {
            monitor.configure(config.anomaly);
            tracing::info!("SIGHUP: [anomaly] reloaded");
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "SIGHUP: the configuration does not load; the [anomaly] settings in force are kept")
        }
    }
}
