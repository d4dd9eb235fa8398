//! The webhook delivery task (OPS-04). It asks the core for due runs ([`Waiaas::due_webhook_runs`]: per webhook,
//! its next events in order, retries first when due), at most `[webhooks] concurrency` runs at a time and one per
//! webhook (so each receiver gets its events in order unless a retry is pending). A run attempts its deliveries
//! one after another ([`Waiaas::attempt_webhook`]) and stops at the first that does not succeed, or after
//! [`RUN_BUDGET`]; the task then settles every run that ended meanwhile in one write
//! ([`Waiaas::settle_webhooks`]), and only then takes that webhook's next run. So a busy receiver costs the single
//! writer one transaction per batch of deliveries, not one per delivery, and the transactions of the pipeline
//! are not queued behind them.
//!
//! It wakes on events (the sink's `Notify`; a burst of events is one wake-up, [`crate::wake::COALESCE`]), when a
//! run ends, when the next retry falls due, and at least every [`POLL`] (writes of the offline CLI). Sends run on
//! tokio's blocking pool inside the sender: a receiver that hangs holds one slot for at most the timeout; other
//! receivers, the pipeline and every transaction go on.
//! At stop, runs in flight are abandoned unsettled: their events are delivered again after the next start, with
//! the same `webhook-id` (at least once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use waiaas_core::WebhookId;
use waiaas_core::ports::{DueDelivery, WebhookSettlement};
use waiaas_core::services::{Waiaas, WebhookSettings};
use waiaas_core::webhooks::retry::{RetryPolicy, Verdict};

use crate::config::WebhooksConfig;

/// The longest the task sleeps without a wake-up.
const POLL: Duration = Duration::from_secs(1);
/// The most deliveries of one run.
const RUN_LENGTH: u32 = 64;
/// A run takes no new delivery after this long (its attempts are settled, and so logged, soon after they end).
const RUN_BUDGET: Duration = Duration::from_millis(250);
/// The queue-depth gauge counts every stream's backlog, which grows with it: the count may use at most 1/this of
/// the task's time (refreshed every second, or less often when it is slow).
const GAUGE_SHARE: u32 = 50;

/// The core's settings from `[webhooks]`.
pub fn settings(config: &WebhooksConfig) -> WebhookSettings {
    WebhookSettings {
        retry: RetryPolicy { schedule_ms: config.retry_schedule.clone(), ..RetryPolicy::default() },
        rotation_grace_seconds: config.rotation_grace_seconds,
        block_private_targets: config.block_private_targets,
    }
}

/// Attempts a run's deliveries in order until one does not succeed or the budget is spent; returns what to
/// settle.
async fn attempt_run(core: &Waiaas, run: Vec<DueDelivery>) -> Vec<WebhookSettlement> {
    let started = Instant::now();
    let mut settlements = Vec::with_capacity(run.len());
    for due in run {
        match core.attempt_webhook(&due).await {
            Ok((verdict, settlement)) => {
                settlements.push(settlement);
                if verdict != Verdict::Delivered || started.elapsed() >= RUN_BUDGET {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(code = %e.code, cause = ?e.internal, webhook = %due.webhook_id, "webhook delivery not attempted");
                break;
            }
        }
    }
    settlements
}

/// Runs until `stop` turns true.
pub async fn run_deliveries(core: Arc<Waiaas>, wake: Arc<Notify>, concurrency: u32, mut stop: watch::Receiver<bool>) {
    let mut running: JoinSet<Vec<WebhookSettlement>> = JoinSet::new();
    // Which webhook each running run is for (a panicking one frees its webhook too).
    let mut tasks: HashMap<tokio::task::Id, WebhookId> = HashMap::new();
    let (mut gauge_read, mut gauge_every) = (Instant::now() - POLL, POLL);
    loop {
        let free = concurrency.saturating_sub(running.len() as u32);
        if free > 0 {
            match core.due_webhook_runs(tasks.values().copied().collect(), free, RUN_LENGTH).await {
                Ok(runs) => {
                    for run in runs {
                        let core = Arc::clone(&core);
                        let webhook = run[0].webhook_id;
                        let task = running.spawn(async move { attempt_run(&core, run).await });
                        tasks.insert(task.id(), webhook);
                    }
                }
                Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "cannot read due webhook deliveries"),
            }
        }
        // The gauge counts every stream's backlog: at most once a second, not at every event.
        if gauge_read.elapsed() >= gauge_every {
            gauge_read = Instant::now();
            if let Err(e) = core.refresh_webhook_queue_gauge().await {
                tracing::debug!(code = %e.code, "cannot read the webhook queue depth");
            }
            gauge_every = POLL.max(gauge_read.elapsed() * GAUGE_SHARE);
        }
        let sleep = match core.next_webhook_due_ms().await {
            // A due one not taken is busy or waits for a slot: a finishing run wakes the task.
            Ok(Some(at)) if at > core.ports().clock.now_millis() => {
                Duration::from_millis(at - core.ports().clock.now_millis()).min(POLL)
            }
            _ => POLL,
        };
        tokio::select! {
            () = wake.notified() => {
                if !crate::wake::after_burst(&mut stop).await {
                    running.abort_all();
                    return;
                }
            }
            () = tokio::time::sleep(sleep) => {}
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let mut finished = vec![done];
                while let Some(more) = running.try_join_next_with_id() {
                    finished.push(more);
                }
                let mut settlements = Vec::new();
                let mut freed = Vec::new();
                for done in finished {
                    let id = match done {
                        Ok((id, attempted)) => {
                            settlements.extend(attempted);
                            id
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "a webhook delivery task failed; its deliveries stay queued");
                            e.id()
                        }
                    };
                    freed.push(id);
                }
                // Settled before their webhooks are freed: the next run of each starts after what this one did.
                if let Err(e) = core.settle_webhooks(&settlements).await {
                    tracing::warn!(code = %e.code, cause = ?e.internal, "webhook deliveries not recorded; they are sent again");
                }
                for id in freed {
                    tasks.remove(&id);
                }
            }
            _ = stop.changed() => {
                running.abort_all();
                return;
            }
        }
    }
}
