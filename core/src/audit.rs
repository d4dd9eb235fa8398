//! The audit log's tamper-evidence chain: each row's hash covers the previous row's hash and the row's canonical
//! content, so an edited, inserted or deleted row breaks every hash after it.

use sha2::{Digest, Sha256};

use crate::event::Event;

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical content of an event: a JSON array with a fixed field order (object keys in `details` are sorted,
/// as `serde_json` keeps them).
pub fn canonical_content(event: &Event) -> String {
    serde_json::json!([
        event.created_at.0,
        event.event_type.as_str(),
        event.agent_id.map(|id| id.to_string()),
        event.session_id.map(|id| id.to_string()),
        event.tx_id.map(|id| id.to_string()),
        event.actor.to_wire(),
        event.severity.as_str(),
        event.details,
        event.ip_address.map(|ip| ip.to_string()),
    ])
    .to_string()
}

/// `hex(SHA-256(prev_hash || "\n" || canonical_content(event)))`.
pub fn chain_hash(prev_hash: &str, event: &Event) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_content(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// A row as read back for verification.
#[derive(Clone, Debug)]
pub struct ChainLink<'a> {
    pub id: i64,
    pub event: &'a Event,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Why the chain is broken at a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The row's content no longer matches its hash: it was edited.
    ContentAltered { id: i64 },
    /// The row does not follow the previous one: a row before it was deleted or inserted.
    LinkBroken { id: i64 },
}

/// Walks rows in id order (the first must follow `expected_prev`) and returns the first break, if any.
pub fn verify_chain<'a>(
    expected_prev: &str,
    rows: impl IntoIterator<Item = ChainLink<'a>>,
) -> Result<String, ChainBreak> {
    let mut prev = expected_prev.to_owned();
    for row in rows {
        if row.prev_hash != prev {
            return Err(ChainBreak::LinkBroken { id: row.id });
        }
        if chain_hash(row.prev_hash, row.event) != row.hash {
            return Err(ChainBreak::ContentAltered { id: row.id });
        }
        prev = row.hash.to_owned();
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UnixSeconds;
    use crate::event::{EventType, RequestContext};

    fn event(n: i64) -> Event {
        Event::new(EventType::AgentCreated, &RequestContext::system(), UnixSeconds(n))
            .details(serde_json::json!({"n": n}))
    }

    #[test]
    fn detects_edit_and_deletion() {
        let events: Vec<Event> = (0..4).map(event).collect();
        let mut hashes = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for e in &events {
            let h = chain_hash(&prev, e);
            hashes.push((prev.clone(), h.clone()));
            prev = h;
        }
        let links = |events: &[Event], skip: Option<usize>| -> Result<String, ChainBreak> {
            let rows = events.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(i, e)| ChainLink {
                id: i as i64 + 1,
                event: e,
                prev_hash: &hashes[i].0,
                hash: &hashes[i].1,
            });
            verify_chain(GENESIS_HASH, rows.collect::<Vec<_>>())
        };
        assert_eq!(links(&events, None), Ok(prev.clone()));
        assert_eq!(links(&events, Some(1)), Err(ChainBreak::LinkBroken { id: 3 }));
        let mut edited = events.clone();
        edited[2].details = serde_json::json!({"n": 99});
        assert_eq!(links(&edited, None), Err(ChainBreak::ContentAltered { id: 3 }));
    }
}
