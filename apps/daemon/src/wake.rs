//! Event wake-ups for the delivery tasks (webhooks, notifications): the sink's `Notify` fires on every event, and
//! a busy pipeline writes thousands a second. A task that woke on one waits [`COALESCE`] before it reads, so a
//! burst costs it one read of the audit log (and one cursor write) per interval, not one per event, and the
//! single writer is not queued behind it.

use std::time::Duration;

use tokio::sync::watch;

/// How long a task waits after an event's wake-up before it reads what the events wrote.
pub const COALESCE: Duration = Duration::from_millis(5);

/// Waits out the burst an event's wake-up announced: `false` when `stop` changed meanwhile (the task returns).
pub async fn after_burst(stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(COALESCE) => true,
        _ = stop.changed() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_waited_out_unless_the_task_stops() {
        let (tx, mut rx) = watch::channel(false);
        let started = tokio::time::Instant::now();
        assert!(after_burst(&mut rx).await);
        assert_eq!(started.elapsed(), COALESCE);
        tx.send(true).unwrap();
        assert!(!after_burst(&mut rx).await, "a stop ends the wait");
    }
}
