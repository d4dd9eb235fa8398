//! Sessions: bearer tokens the operator issues to one agent.

use crate::{AgentId, SessionId, UnixSeconds};

/// Optional limits attached to a session at issue time (kept as the operator's JSON; enforced by the pipeline).
pub type SessionConstraints = serde_json::Value;

/// A session. The token itself is never stored: only its SHA-256 hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub agent_id: AgentId,
    pub token_hash: String,
    pub constraints: Option<SessionConstraints>,
    pub created_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub revoked_at: Option<UnixSeconds>,
    pub renewal_count: u32,
}

impl Session {
    pub fn is_active(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}
