//! Which channels an event goes to.
//!
//! * A channel accepts the event types of its own `events = [...]` list when the operator gave one, else the
//!   default set [`DEFAULT_EVENTS`].
//! * **Critical** events ([`is_critical`]: the kill switch, anomalies) go to every channel that accepts them: one
//!   queue entry per channel, each retried on its own.
//! * Every other event goes to the first channel that accepts it, in the configured priority order; when that
//!   channel fails (or its rate limit is spent), the next one is tried at once: one queue entry holding the
//!   ordered candidates.
//! * `NOTIFICATION_FAILED` is never routed, whatever a channel's list says: a failure to notify does not notify
//!   about itself in a loop (it is in the audit log and at webhooks).

use super::ChannelKind;
use crate::event::EventType;

/// The event types every channel accepts unless its own list says otherwise.
pub const DEFAULT_EVENTS: &[EventType] = &[
    EventType::TxApprovalRequired,
    EventType::TxQueued,
    EventType::TxFailed,
    EventType::PolicyDenied,
    EventType::KillSwitchActivated,
    EventType::KillSwitchRecovered,
    EventType::AnomalyDetected,
    EventType::AgentSuspended,
    EventType::BackupFailed,
    EventType::WebhookDisabled,
];

/// Events that go to every channel (not only the first that accepts them).
pub fn is_critical(event_type: EventType) -> bool {
    matches!(event_type, EventType::KillSwitchActivated | EventType::KillSwitchRecovered | EventType::AnomalyDetected)
}

/// Events never routed to people.
pub fn never_routed(event_type: EventType) -> bool {
    event_type == EventType::NotificationFailed
}

/// One configured channel's place in the routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRoute {
    /// The channel.
    pub kind: ChannelKind,
    /// Its own event list; `None` takes [`DEFAULT_EVENTS`].
    pub events: Option<Vec<EventType>>,
}

/// The configured channels in priority order (the first is tried first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// Channels, highest priority first, each at most once.
    pub channels: Vec<ChannelRoute>,
}

impl Routing {
    /// Whether `channel` takes events of `event_type`.
    pub fn accepts(&self, channel: ChannelKind, event_type: EventType) -> bool {
        if never_routed(event_type) {
            return false;
        }
        self.channels.iter().find(|c| c.kind == channel).is_some_and(|c| match &c.events {
            Some(own) => own.contains(&event_type),
            None => DEFAULT_EVENTS.contains(&event_type),
        })
    }

    /// The queue entries for an event of `event_type`: each the channels to try in order. Critical events give one
    /// entry per accepting channel; others one entry with every accepting channel in priority order; none when no
    /// channel accepts it.
    pub fn route(&self, event_type: EventType) -> Vec<Vec<ChannelKind>> {
        let accepting: Vec<ChannelKind> =
            self.channels.iter().map(|c| c.kind).filter(|k| self.accepts(*k, event_type)).collect();
        if accepting.is_empty() {
            Vec::new()
        } else if is_critical(event_type) {
            accepting.into_iter().map(|k| vec![k]).collect()
        } else {
            vec![accepting]
        }
    }
}
