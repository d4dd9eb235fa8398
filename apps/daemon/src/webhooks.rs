//! The webhook delivery task (OPS-04): takes due deliveries from the outbox and runs each through the core's
//! [`Waiaas::deliver_webhook`], at most `[webhooks] concurrency` at a time and one per webhook at a time (so each
//! receiver gets its events in order unless a retry is pending). It wakes on every event (the sink's `Notify`),
//! when a delivery ends, when the next retry falls due, and at least every [`POLL`] (writes of the offline CLI).
//!
//! Sends run on tokio's blocking pool inside the sender: a receiver that hangs holds one slot for at most the
//! timeout; other receivers, the pipeline and every transaction go on. At stop, deliveries in flight are
//! abandoned: their outbox rows stay, and the next start sends them again with the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use waiaas_core::WebhookId;
use waiaas_core::services::{Waiaas, WebhookSettings};
use waiaas_core::webhooks::retry::RetryPolicy;

use crate::config::WebhooksConfig;

/// The longest the task sleeps without a wake-up.
const POLL: Duration = Duration::from_secs(1);

/// The core's settings from `[webhooks]`.
pub fn settings(config: &WebhooksConfig) -> WebhookSettings {
    WebhookSettings {
        retry: RetryPolicy { schedule_ms: config.retry_schedule.clone(), ..RetryPolicy::default() },
        rotation_grace_seconds: config.rotation_grace_seconds,
        block_private_targets: config.block_private_targets,
    }
}

/// Runs until `stop` turns true.
pub async fn run_deliveries(core: Arc<Waiaas>, wake: Arc<Notify>, concurrency: u32, mut stop: watch::Receiver<bool>) {
    let mut running: JoinSet<()> = JoinSet::new();
    // Which webhook each running delivery is for (a panicking one frees its webhook too).
    let mut tasks: HashMap<tokio::task::Id, WebhookId> = HashMap::new();
    let mut busy: HashSet<WebhookId> = HashSet::new();
    let mut gauge_read = Instant::now() - POLL;
    loop {
        let free = concurrency.saturating_sub(running.len() as u32);
        if free > 0 {
            match core.due_webhook_deliveries(busy.iter().copied().collect(), free).await {
                Ok(due) => {
                    for delivery in due {
                        busy.insert(delivery.webhook_id);
                        let core = Arc::clone(&core);
                        let webhook = delivery.webhook_id;
                        let task = running.spawn(async move {
                            if let Err(e) = core.deliver_webhook(delivery).await {
                                tracing::warn!(code = %e.code, cause = ?e.internal, %webhook, "webhook delivery not recorded");
                            }
                        });
                        tasks.insert(task.id(), webhook);
                    }
                }
                Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "cannot read due webhook deliveries"),
            }
        }
        // The gauge is a COUNT over the outbox: at most once a second, not at every event.
        if gauge_read.elapsed() >= POLL {
            gauge_read = Instant::now();
            if let Err(e) = core.refresh_webhook_queue_gauge().await {
                tracing::debug!(code = %e.code, "cannot read the webhook queue depth");
            }
        }
        let sleep = match core.next_webhook_due_ms().await {
            // A due one not taken is busy or waits for a slot: a finishing delivery wakes the task.
            Ok(Some(at)) if at > core.ports().clock.now_millis() => {
                Duration::from_millis(at - core.ports().clock.now_millis()).min(POLL)
            }
            _ => POLL,
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let mut finished = vec![done];
                while let Some(more) = running.try_join_next_with_id() {
                    finished.push(more);
                }
                for done in finished {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a webhook delivery task failed; its delivery stays queued");
                            e.id()
                        }
                    };
                    if let Some(webhook) = tasks.remove(&id) {
                        busy.remove(&webhook);
                    }
                }
            }
            _ = stop.changed() => {
                running.abort_all();
                return;
            }
        }
    }
}
