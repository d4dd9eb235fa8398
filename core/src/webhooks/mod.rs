//! OPS-04's pure part: what a webhook is, which events it receives, which URLs and addresses it may target, its
//! secret (Standard Webhooks `whsec_` form; stored hashed and sealed, never in plaintext), the signed request of
//! one delivery, and the retry decision table. The services ([`crate::services`]) run these over the
//! [`crate::ports::WebhookRepo`] and [`crate::ports::WebhookSender`] ports.
//!
//! **Delivery ids.** Every delivery of one event to one webhook carries `webhook-id: evt_<audit row id>`
//! ([`delivery_id`]): the audit row that recorded the event is the stable id across retries, restarts and
//! redeliveries, so a receiver deduplicates on it.

pub mod retry;
pub mod secret;
pub mod target;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType};
use crate::{UnixSeconds, WebhookId};

/// The wildcard event type: every event.
pub const ALL_EVENTS: &str = "*";

/// Which events a webhook receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event type (`["*"]`).
    All,
    /// These event types, without duplicates, in the order given.
    Only(Vec<EventType>),
}

impl EventFilter {
    /// Parses the wire list (`["*"]` or event type names). An empty list, or unknown names, are refused with a
    /// `VALIDATION_FAILED` that names every unknown one.
    pub fn parse(names: &[String]) -> Result<EventFilter> {
        if names.is_empty() {
            return Err(Error::invalid_field("eventTypes", "name at least one event type, or \"*\" for all"));
        }
        if names.iter().any(|n| n == ALL_EVENTS) {
            return Ok(EventFilter::All);
        }
        let unknown: Vec<&str> = names.iter().filter(|n| EventType::parse(n).is_none()).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(Error::invalid_field("eventTypes", format!("unknown event types: {}", unknown.join(", "))));
        }
        let mut types = Vec::new();
        for name in names {
            let t = EventType::parse(name).expect("checked above");
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(EventFilter::Only(types))
    }

    /// Whether an event of `event_type` is delivered. `WEBHOOK_TEST` is never delivered by subscription: a test
    /// ping goes only to the webhook tested.
    pub fn matches(&self, event_type: EventType) -> bool {
        if event_type == EventType::WebhookTest {
            return false;
        }
        match self {
            EventFilter::All => true,
            EventFilter::Only(types) => types.contains(&event_type),
        }
    }

    /// The wire list.
    pub fn to_wire(&self) -> Vec<String> {
        match self {
            EventFilter::All => vec![ALL_EVENTS.to_owned()],
            EventFilter::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

/// A webhook subscription (without its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where events are POSTed (`http` or `https`, checked by [`target::parse_url`]).
    pub url: String,
    /// Which events it receives.
    pub events: EventFilter,
    /// Inactive webhooks receive nothing (set by the operator, or by a 410 answer).
    pub active: bool,
    /// The operator's note.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// When it last changed.
    pub updated_at: UnixSeconds,
}

/// Longest description accepted.
pub const MAX_DESCRIPTION: usize = 500;

/// Checks a description's length.
pub fn check_description(description: Option<&str>) -> Result<()> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            Err(Error::invalid_field("description", format!("at most {MAX_DESCRIPTION} characters")))
        }
        _ => Ok(()),
    }
}

/// The `webhook-id` of the deliveries of the event recorded by audit row `audit_id`.
pub fn delivery_id(audit_id: i64) -> String {
    format!("evt_{audit_id}")
}

/// The audit row id inside a delivery id (`DELIVERY_NOT_FOUND` when it is not one).
pub fn parse_delivery_id(id: &str) -> Result<i64> {
    id.strip_prefix("evt_")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::new(ErrorCode::DeliveryNotFound, format!("{id:?} is not a delivery id (evt_<n>)")))
}

/// The JSON body of a delivery: `{id, type, timestamp, data}` with `timestamp` the event's Unix seconds and
/// `data` the audit row's details (which never hold a secret) plus, when the event names them, `agentId`,
/// `sessionId` and `txId`, and the `actor` (`master`, `system`, `session:<id>`, ...). The client's IP address is
/// not sent.
pub fn payload(delivery_id: &str, event: &Event) -> Vec<u8> {
    let mut data = match &event.details {
        serde_json::Value::Object(map) => map.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("details".to_owned(), other.clone())]),
    };
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            data.entry(key).or_insert(serde_json::Value::String(value));
        }
    };
    put("agentId", event.agent_id.map(|id| id.to_string()));
    put("sessionId", event.session_id.map(|id| id.to_string()));
    put("txId", event.tx_id.map(|id| id.to_string()));
    put("actor", Some(event.actor.to_wire()));
    serde_json::to_vec(&serde_json::json!({
        "id": delivery_id,
        "type": event.event_type.as_str(),
        "timestamp": event.created_at.0,
        "data": data,
    }))
    .expect("a JSON value serializes")
}
