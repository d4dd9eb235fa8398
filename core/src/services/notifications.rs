//! Notifications for people in the core: the notifier's steps, which a host drives (the daemon's notifier task).
//!
//! 1. [`Waiaas::route_notifications`]: reads the audit rows after the notifier's cursor, routes each
//!    ([`crate::notifications::routing`]) and writes the queue entries with the new cursor in one transaction. It
//!    adds nothing to an event's own transaction.
//! 2. [`Waiaas::deliver_notification`]: one round of a due entry. The message is rendered
//!    ([`crate::notifications::templates`]) from the audit row, the agent's name and the transaction's row; each
//!    channel of the entry is tried in order until one takes it (priority fallback, at once). A channel whose rate
//!    limit is spent is skipped (a critical event is never held back). When every channel failed, the entry goes
//!    round again after the `[notifications] retry_schedule` delay (jittered like webhook retries); when the
//!    schedule is used up, `NOTIFICATION_FAILED` is written (unless another channel took a critical event). When
//!    no channel could be tried for the limit, the message is held back and counted in the first channel's
//!    digest.
//! 3. [`Waiaas::send_notification_digests`]: a channel with held-back messages sends their digest as soon as its
//!    limit gives a token.
//!
//! Every attempt is in `notification_logs` (channel name, status, error; never a URL or credential) and counted in
//! `waiaas_notifications_total{channel,result}`. The hub is attached after unlock ([`Waiaas::attach_notifications`]);
//! without it the notifier only has to keep its cursor at the log's end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::domain::TxKind;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::metrics as m;
use crate::notifications::rate::{RateLimit, TokenBucket};
use crate::notifications::routing::{Routing, is_critical};
use crate::notifications::templates::{Facts, TxFacts, render, render_digest, render_test};
use crate::notifications::{ChannelKind, Locale, LogKind, LogStatus, Message, NotificationChannel, SendOutcome};
use crate::ports::{
    DueNotification, NotificationLogEntry, NotificationLogQuery, NotificationRepo, Page, QueueNext, QueuedNotification,
    Settlement,
};
use crate::webhooks::retry::{RetryPolicy, jittered};

const LOG_CURSOR_KIND: &str = "notification-logs";
/// Audit rows routed per pass.
const ROUTE_BATCH: u32 = 500;
/// Rows passed over without a queue entry before the cursor is written anyway (a restart re-reads at most these).
const CURSOR_LAG: i64 = 1_000;

/// Tunables of notifications (the `[notifications]` config section).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationSettings {
    /// The messages' language.
    pub locale: Locale,
    /// Which channel gets which event, in priority order.
    pub routing: Routing,
    /// Delays between rounds of an entry whose every channel failed (its length is the number of retries).
    pub retry: RetryPolicy,
    /// Each channel's rate limit.
    pub rate: RateLimit,
    /// Block explorer base URL per network (`[rpc] explorer_<network>`).
    pub explorers: HashMap<String, String>,
}

/// What the core needs for notifications: storage, the configured channels, the settings.
pub struct NotificationHub {
    /// Cursor, queue, digests and log.
    pub repo: Arc<dyn NotificationRepo>,
    /// The configured channels (each kind at most once).
    pub channels: Vec<Arc<dyn NotificationChannel>>,
    /// Locale, routing, retries, rate limit, explorers.
    pub settings: NotificationSettings,
}

/// The hub with the notifier's in-memory state.
pub(super) struct Notifier {
    hub: NotificationHub,
    /// Each channel's token bucket (full at start).
    buckets: Mutex<HashMap<ChannelKind, TokenBucket>>,
    /// The last audit row routed, possibly ahead of the stored cursor by rows that needed no entry.
    routed: Mutex<Option<(i64, i64)>>,
    /// Per channel, no digest attempt before this Unix millisecond (after a failed one).
    digest_not_before: Mutex<HashMap<ChannelKind, u64>>,
}

/// How a round of a queue entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundResult {
    /// A channel took it.
    Sent,
    /// Every channel failed; another round is scheduled.
    Retry,
    /// The rate limit held it back into a digest.
    Held,
    /// Given up (`NOTIFICATION_FAILED` when no channel took it).
    Failed,
}

/// What a test message gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// The channel tested.
    pub channel: ChannelKind,
    /// The send's outcome.
    pub outcome: SendOutcome,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the round decided, from what each channel did (pure).
fn decide_round(
    sent: bool,
    retryable: &[ChannelKind],
    tried: bool,
    limited: Option<ChannelKind>,
    rounds_left: bool,
) -> RoundResult {
    if sent {
        RoundResult::Sent
    } else if tried && !retryable.is_empty() && rounds_left {
        RoundResult::Retry
    } else if limited.is_some() {
        RoundResult::Held
    } else {
        RoundResult::Failed
    }
}

impl Waiaas {
    /// Attaches the notification hub. Returns false when one was attached already (the first stays).
    pub fn attach_notifications(&self, hub: NotificationHub) -> bool {
        let now = self.ports.clock.now_millis();
        let buckets = hub.channels.iter().map(|c| (c.kind(), TokenBucket::new(hub.settings.rate, now))).collect();
        let notifier = Notifier {
            hub,
            buckets: Mutex::new(buckets),
            routed: Mutex::new(None),
            digest_not_before: Mutex::default(),
        };
        self.notifications.set(Arc::new(notifier)).is_ok()
    }

    fn notifier(&self) -> Result<&Arc<Notifier>> {
        self.notifications
            .get()
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "notifications are not configured on this host"))
    }

    /// The configured channels, in priority order.
    pub fn notification_channels(&self) -> Vec<ChannelKind> {
        self.notifications
            .get()
            .map(|n| n.hub.settings.routing.channels.iter().map(|c| c.kind).collect())
            .unwrap_or_default()
    }

    /// Routes the audit rows after the cursor into the queue (at most one batch); returns how many rows it read.
    pub async fn route_notifications(&self) -> Result<usize> {
        let notifier = self.notifier()?;
        let repo = &notifier.hub.repo;
        let known = *lock(&notifier.routed);
        let (stored, routed) = match known {
            Some(known) => known,
            None => {
                let stored = repo.cursor().await?;
                (stored, stored)
            }
        };
        let records = repo.events_after(routed, ROUTE_BATCH).await?;
        let Some(last) = records.last().map(|r| r.id) else { return Ok(0) };
        let entries: Vec<QueuedNotification> = records
            .iter()
            .flat_map(|r| {
                notifier
                    .hub
                    .settings
                    .routing
                    .route(r.event.event_type)
                    .into_iter()
                    .map(|channels| QueuedNotification { audit_id: r.id, channels })
            })
            .collect();
        let stored = if entries.is_empty() && last - stored < CURSOR_LAG {
            stored
        } else {
            repo.enqueue(last, &entries, self.ports.clock.now_millis()).await?;
            last
        };
        *lock(&notifier.routed) = Some((stored, last));
        Ok(records.len())
    }

    /// Due queue entries now, none of `busy`, at most `limit`.
    pub async fn due_notifications(&self, busy: Vec<i64>, limit: u32) -> Result<Vec<DueNotification>> {
        self.notifier()?.hub.repo.due(self.ports.clock.now_millis(), busy, limit).await
    }

    /// When the next queue entry falls due, Unix milliseconds.
    pub async fn next_notification_due_ms(&self) -> Result<Option<u64>> {
        self.notifier()?.hub.repo.next_due().await
    }

    /// The facts a message about `event` is rendered from: the agent's name and the transaction's row (a fact that
    /// cannot be read is left out, never invented).
    async fn facts<'a>(&self, notifier: &Notifier, event: &'a Event, audit_id: i64) -> Facts<'a> {
        let agent_name = match event.agent_id {
            Some(id) => self.ports.agents.get(id).await.ok().flatten().map(|a| a.name),
            None => None,
        };
        let row = match event.tx_id {
            Some(id) => self.ports.transactions.get(id).await.ok().flatten(),
            None => None,
        };
        let mut explorer = None;
        let tx = match row {
            Some(row) => {
                explorer = notifier.hub.settings.explorers.get(&row.network).cloned();
                let native = || async {
                    match self.native_asset(&row.network).await {
                        Ok(native) => (native.symbol, native.decimals),
                        // The node is unreachable: base units, said so.
                        Err(_) => ("base units".to_owned(), 0),
                    }
                };
                let amount = match &row.kind {
                    TxKind::Transfer { amount, .. } | TxKind::ContractCall { value: amount, .. } => {
                        let (symbol, decimals) = native().await;
                        Some(format!("{} {symbol}", amount.to_units_string(decimals)))
                    }
                    TxKind::TokenTransfer { amount, token, .. } | TxKind::Approve { amount, token, .. } => {
                        Some(format!("{} {}", amount.to_units_string(token.decimals), token.symbol))
                    }
                    TxKind::Batch { .. } => None,
                };
                Some(TxFacts {
                    tx_type: row.kind.type_name().to_owned(),
                    amount,
                    counterparty: row.kind.counterparty().map(|a| a.to_string()),
                    network: row.network.clone(),
                    tier: row.tier,
                    tx_hash: row.tx_hash.clone(),
                    approval_deadline: row.approval_deadline,
                    execute_after: row.execute_after,
                })
            }
            None => None,
        };
        Facts { event, audit_id, agent_name, tx, explorer }
    }

    fn count(&self, channel: ChannelKind, status: LogStatus) {
        let labels = [("channel", channel.as_str()), ("result", status.result_label())];
        self.ports.metrics.increment_counter(m::NOTIFICATIONS_TOTAL, &labels, 1);
    }

    /// One round of a due entry: render, try its channels in order, log, settle. Returns how it ended.
    pub async fn deliver_notification(&self, due: DueNotification) -> Result<RoundResult> {
        let notifier = self.notifier()?;
        let settings = &notifier.hub.settings;
        let event_type = due.event.event_type;
        let message = render(settings.locale, &self.facts(notifier, &due.event, due.audit_id).await);
        let critical = is_critical(event_type);
        let round = due.rounds + 1;
        let now = self.now();
        let entry =
            |channel: ChannelKind, status: LogStatus, error: Option<String>, elapsed: u64| NotificationLogEntry {
                id: 0,
                channel,
                kind: LogKind::Event,
                audit_id: Some(due.audit_id),
                event_type: Some(event_type),
                attempt: round,
                status,
                error,
                response_time_ms: elapsed,
                created_at: now,
            };
        let (mut log, mut retryable, mut limited, mut tried, mut sent) = (Vec::new(), Vec::new(), None, false, false);
        for kind in &due.channels {
            let Some(channel) = notifier.hub.channels.iter().find(|c| c.kind() == *kind) else {
                log.push(entry(*kind, LogStatus::Failed, Some("the channel is no longer configured".to_owned()), 0));
                continue;
            };
            {
                let mut buckets = lock(&notifier.buckets);
                let bucket = buckets
                    .entry(*kind)
                    .or_insert_with(|| TokenBucket::new(settings.rate, self.ports.clock.now_millis()));
                let now_ms = self.ports.clock.now_millis();
                if critical {
                    bucket.take_anyway(now_ms);
                } else if !bucket.try_take(now_ms) {
                    limited.get_or_insert(*kind);
                    retryable.push(*kind);
                    continue;
                }
            }
            tried = true;
            match channel.send(&message).await {
                SendOutcome::Sent { elapsed_ms } => {
                    self.count(*kind, LogStatus::Sent);
                    log.push(entry(*kind, LogStatus::Sent, None, elapsed_ms));
                    sent = true;
                    break;
                }
                SendOutcome::Failed { retryable: again, error, elapsed_ms } => {
                    self.count(*kind, LogStatus::Failed);
                    log.push(entry(*kind, LogStatus::Failed, Some(error), elapsed_ms));
                    if again {
                        retryable.push(*kind);
                    }
                }
            }
        }
        let delay = settings.retry.schedule_ms.get(due.rounds as usize).copied();
        let result = decide_round(sent, &retryable, tried, limited, delay.is_some());
        let (next, held, failed) = match result {
            RoundResult::Sent => (QueueNext::Done, None, None),
            RoundResult::Retry => {
                let at_ms = self.ports.clock.now_millis() + jittered(delay.unwrap_or(0), self.ports.entropy.as_ref());
                (QueueNext::RetryAt { at_ms, channels: retryable.clone() }, None, None)
            }
            RoundResult::Held => {
                let channel = limited.expect("held only when a channel was limited");
                self.count(channel, LogStatus::Held);
                let reason = "held back by the channel's rate limit; counted in its next digest".to_owned();
                log.push(entry(channel, LogStatus::Held, Some(reason), 0));
                (QueueNext::Done, Some((channel, event_type)), None)
            }
            RoundResult::Failed => {
                let channels: Vec<&str> = due.channels.iter().map(|c| c.as_str()).collect();
                let event = Event::new(EventType::NotificationFailed, &RequestContext::system(), now).details(
                    serde_json::json!({
                        "auditId": due.audit_id,
                        "eventType": event_type.as_str(),
                        "channels": channels,
                        "rounds": round,
                        "lastError": log.iter().rev().find_map(|e| e.error.clone()),
                    }),
                );
                let event = match (due.event.agent_id, due.event.tx_id) {
                    (Some(agent), Some(tx)) => event.agent(agent).tx(tx),
                    (Some(agent), None) => event.agent(agent),
                    (None, Some(tx)) => event.tx(tx),
                    (None, None) => event,
                };
                (QueueNext::Done, None, Some(event))
            }
        };
        let settlement = Settlement { log, next, held, failed: failed.clone() };
        if notifier.hub.repo.settle(due.id, &settlement).await?
            && let Some(event) = &failed
        {
            self.publish(event);
        }
        Ok(result)
    }

    /// Sends the digest of every channel that has held-back messages and a token again. Returns how many it sent.
    pub async fn send_notification_digests(&self) -> Result<usize> {
        let notifier = self.notifier()?;
        let settings = &notifier.hub.settings;
        let mut sent_digests = 0;
        for held in notifier.hub.repo.held_back().await? {
            let now_ms = self.ports.clock.now_millis();
            if lock(&notifier.digest_not_before).get(&held.channel).is_some_and(|at| *at > now_ms) {
                continue;
            }
            let Some(channel) = notifier.hub.channels.iter().find(|c| c.kind() == held.channel) else { continue };
            {
                let mut buckets = lock(&notifier.buckets);
                let bucket = buckets.entry(held.channel).or_insert_with(|| TokenBucket::new(settings.rate, now_ms));
                if !bucket.try_take(now_ms) {
                    continue;
                }
            }
            let message = render_digest(settings.locale, &held.counts);
            let outcome = channel.send(&message).await;
            let total: u64 = held.counts.iter().map(|(_, n)| n).sum();
            let summary =
                held.counts.iter().map(|(t, n)| format!("{n}x {}", t.as_str())).collect::<Vec<_>>().join(", ");
            let (status, error, sent) = match &outcome {
                SendOutcome::Sent { .. } => {
                    (LogStatus::Sent, Some(format!("{total} held back: {summary}")), held.counts.clone())
                }
                SendOutcome::Failed { error, .. } => {
                    let retry = settings.retry.schedule_ms.first().copied().unwrap_or(5_000).max(1_000);
                    lock(&notifier.digest_not_before).insert(held.channel, now_ms + retry);
                    (LogStatus::Failed, Some(error.clone()), Vec::new())
                }
            };
            self.count(held.channel, status);
            let entry = NotificationLogEntry::standalone(
                held.channel,
                LogKind::Digest,
                (status, error),
                outcome.elapsed_ms(),
                self.now(),
            );
            notifier.hub.repo.settle_digest(&entry, &sent).await?;
            if outcome.is_sent() {
                sent_digests += 1;
            }
        }
        Ok(sent_digests)
    }

    /// Sends a test message through `channel` now (not rate limited), logs it and returns what it gave;
    /// `CHANNEL_NOT_CONFIGURED` when that channel is not configured.
    pub async fn test_notification(&self, channel: ChannelKind) -> Result<TestOutcome> {
        let notifier = self.notifications.get().ok_or_else(|| not_configured(channel))?;
        let target =
            notifier.hub.channels.iter().find(|c| c.kind() == channel).ok_or_else(|| not_configured(channel))?;
        let message: Message = render_test(notifier.hub.settings.locale, channel);
        let outcome = target.send(&message).await;
        let (status, error) = match &outcome {
            SendOutcome::Sent { .. } => (LogStatus::Sent, None),
            SendOutcome::Failed { error, .. } => (LogStatus::Failed, Some(error.clone())),
        };
        self.count(channel, status);
        let entry =
            NotificationLogEntry::standalone(channel, LogKind::Test, (status, error), outcome.elapsed_ms(), self.now());
        notifier.hub.repo.log(&entry).await?;
        Ok(TestOutcome { channel, outcome })
    }

    /// A page of the notification log, newest first; `channel` and `status` narrow it.
    pub async fn notification_log(
        &self,
        channel: Option<&str>,
        status: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<NotificationLogEntry>> {
        let notifier = self.notifier()?;
        let limit = page_limit(limit)?;
        let channel = channel
            .map(|c| {
                ChannelKind::parse(c)
                    .ok_or_else(|| Error::invalid_field("channel", "one of ntfy, slack, discord, telegram, email"))
            })
            .transpose()?;
        let status = status
            .map(|s| LogStatus::parse(s).ok_or_else(|| Error::invalid_field("status", "one of sent, failed, held")))
            .transpose()?;
        let before = cursor.map(|c| cursor::decode_parsed::<i64>(LOG_CURSOR_KIND, c)).transpose()?;
        let query = NotificationLogQuery { channel, status, before, limit: limit + 1 };
        let mut items = notifier.hub.repo.logs(&query).await?;
        let next_cursor = next_page(&mut items, limit, |e| cursor::encode(LOG_CURSOR_KIND, &e.id.to_string()));
        Ok(Page { items, next_cursor })
    }
}

fn not_configured(channel: ChannelKind) -> Error {
    Error::new(
        ErrorCode::ChannelNotConfigured,
        format!("the {} channel is not configured on this daemon", channel.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelKind::*;

    #[test]
    fn a_round_is_sent_retried_held_or_failed() {
        assert_eq!(decide_round(true, &[], true, None, true), RoundResult::Sent);
        assert_eq!(decide_round(true, &[Slack], true, Some(Ntfy), false), RoundResult::Sent);
        assert_eq!(decide_round(false, &[Ntfy], true, None, true), RoundResult::Retry);
        assert_eq!(decide_round(false, &[Ntfy], true, None, false), RoundResult::Failed, "schedule used up");
        assert_eq!(decide_round(false, &[], true, None, true), RoundResult::Failed, "nothing worth retrying");
        assert_eq!(decide_round(false, &[Ntfy], false, Some(Ntfy), true), RoundResult::Held, "nothing could be tried");
        assert_eq!(decide_round(false, &[Ntfy, Slack], true, Some(Slack), false), RoundResult::Held);
        assert_eq!(decide_round(false, &[Ntfy, Slack], true, Some(Slack), true), RoundResult::Retry);
    }
}
