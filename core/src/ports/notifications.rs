//! The storage port of notifications for people ([`crate::notifications`]).
//!
//! **Queue.** The notifier does not add to the event's transaction: it keeps a persisted cursor (the last audit
//! row it has routed), reads the audit rows after it (readers run beside the writer under WAL), routes them and
//! writes the queue entries and the new cursor in one transaction of its own ([`NotificationRepo::enqueue`]). An
//! event committed is notified even across a crash (at least once); a fresh or upgraded database starts its
//! cursor at the log's end, so history is not sent.

use async_trait::async_trait;

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

use super::AuditRecord;
use crate::event::{Event, EventType};
use crate::notifications::{ChannelKind, LogKind, LogStatus};
use crate::{Result, UnixSeconds};

/// One queue entry to write: an event to send through the first of `channels` that takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedNotification {
    /// The audit row of the event.
    pub audit_id: i64,
    /// The channels to try, in order (one for a critical event's per-channel entry).
    pub channels: Vec<ChannelKind>,
}

/// A queue entry that is due, with its event.
#[derive(Clone, Debug, PartialEq)]
pub struct DueNotification {
    /// The entry's id.
    pub id: i64,
    /// The audit row of the event.
    pub audit_id: i64,
    /// The event as recorded.
    pub event: Event,
    /// The channels still to try, in order.
    pub channels: Vec<ChannelKind>,
    /// Rounds made so far (a round tries every channel once, in order).
    pub rounds: u32,
}

/// One notification log row: an attempt on one channel, a message held back, a digest or a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationLogEntry {
    /// The row's id (0 before it is stored).
    pub id: i64,
    /// The channel (never its URL or credentials).
    pub channel: ChannelKind,
    /// What the message was.
    pub kind: LogKind,
    /// The event's audit row (event messages only).
    pub audit_id: Option<i64>,
    /// The event's type (event messages only).
    pub event_type: Option<EventType>,
    /// The round of the entry (1 for the first); 1 for digests and tests.
    pub attempt: u32,
    /// What happened.
    pub status: LogStatus,
    /// Why it failed, or what a digest summed up (never a credential).
    pub error: Option<String>,
    /// Milliseconds the attempt took (0 for a message held back).
    pub response_time_ms: u64,
    /// When.
    pub created_at: UnixSeconds,
}

impl NotificationLogEntry {
    /// The log row of a message that is no event's (a digest or a test): one attempt, no audit row.
    pub fn standalone(
        channel: ChannelKind,
        kind: LogKind,
        (status, error): (LogStatus, Option<String>),
        response_time_ms: u64,
        created_at: UnixSeconds,
    ) -> Self {
        NotificationLogEntry {
            id: 0,
            channel,
            kind,
            audit_id: None,
            event_type: None,
            attempt: 1,
            status,
            error,
            response_time_ms,
            created_at,
        }
    }
}

/// What becomes of a queue entry after a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueNext {
    /// Done (sent, held back into a digest, or given up): the entry goes.
    Done,
    /// Another round at this Unix time in milliseconds, through these channels in order.
    RetryAt {
        /// When, Unix milliseconds.
        at_ms: u64,
        /// The channels still worth trying.
        channels: Vec<ChannelKind>,
    },
}

/// The outcome of one round of a queue entry, written in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    /// The log rows of the round, in order.
    pub log: Vec<NotificationLogEntry>,
    /// The entry's fate.
    pub next: QueueNext,
    /// The message was held back by this channel's rate limit: count it in the channel's digest.
    pub held: Option<(ChannelKind, EventType)>,
    /// Given up: this `NOTIFICATION_FAILED` event is written unless another entry of the same audit row is still
    /// queued or a channel already took a message of it (a critical event's other channels).
    pub failed: Option<Event>,
}

/// What a channel's rate limit held back, by event type, oldest type first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldBack {
    /// The channel.
    pub channel: ChannelKind,
    /// (event type, how many) held back since its last digest.
    pub counts: Vec<(EventType, u64)>,
}

/// Filters of the notification log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationLogQuery {
    /// Only this channel's rows.
    pub channel: Option<ChannelKind>,
    /// Only rows with this status.
    pub status: Option<LogStatus>,
    /// Keyset position: rows with a smaller id.
    pub before: Option<i64>,
    /// The most rows returned.
    pub limit: u32,
}

/// The notifier's cursor, queue, digests and log.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait NotificationRepo: Send + Sync {
    /// The last audit row id routed (a fresh or upgraded database starts at the log's end).
    async fn cursor(&self) -> Result<i64>;
    /// Audit rows with an id above `after`, oldest first, at most `limit` (read beside the writer).
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>>;
    /// In one write transaction: inserts `entries` due at `now_ms` and moves the cursor to `cursor` (never back).
    async fn enqueue(&self, cursor: i64, entries: &[QueuedNotification], now_ms: u64) -> Result<()>;
    /// Entries due at `now_ms`, oldest first, none of `busy`, at most `limit`. An entry whose audit row is gone is
    /// dropped.
    async fn due(&self, now_ms: u64, busy: Vec<i64>, limit: u32) -> Result<Vec<DueNotification>>;
    /// When the next entry falls due (Unix milliseconds), if any is queued.
    async fn next_due(&self) -> Result<Option<u64>>;
    /// In one write transaction: logs the round, settles the entry, counts a held-back message, and writes the
    /// `NOTIFICATION_FAILED` event under [`Settlement::failed`]'s condition. Returns whether it wrote the event.
    async fn settle(&self, id: i64, settlement: &Settlement) -> Result<bool>;
    /// Every channel's held-back counts (channels with none are absent).
    async fn held_back(&self) -> Result<Vec<HeldBack>>;
    /// In one write transaction: logs a digest attempt and, when it was sent, takes `sent` off the counts (what
    /// was held back meanwhile stays for the next digest).
    async fn settle_digest(&self, entry: &NotificationLogEntry, sent: &[(EventType, u64)]) -> Result<()>;
    /// Logs one row (a test message).
    async fn log(&self, entry: &NotificationLogEntry) -> Result<()>;
    /// Log rows matching `query`, newest first.
    async fn logs(&self, query: &NotificationLogQuery) -> Result<Vec<NotificationLogEntry>>;
    /// Entries queued.
    async fn queue_depth(&self) -> Result<u64>;
}
