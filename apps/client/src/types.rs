//! Request and response bodies of the REST API as plain serde structs (camelCase on the wire).
//!
//! Responses are decoded leniently: fields the daemon adds later are ignored, and fields that only some
//! endpoints return are `Option`s with `#[serde(default)]`. Amounts stay decimal strings (wei) and times Unix
//! seconds, exactly as on the wire.

use serde::{Deserialize, Serialize};

/// One page of a list: `{data, nextCursor, hasMore}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// Cursor and page size of a list request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
    pub version: String,
    pub schema_version: i64,
    pub uptime_seconds: u64,
}

/// `POST /v1/agents` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAgent {
    pub name: String,
    pub chain: String,
    pub network: String,
}

impl CreateAgent {
    /// An Ethereum-family agent on `network` (a name from `[rpc] evm_<network>`).
    pub fn ethereum(name: impl Into<String>, network: impl Into<String>) -> Self {
        CreateAgent { name: name.into(), chain: "ethereum".into(), network: network.into() }
    }
}

/// An agent: `{id, name, chain, network, address, status, ownerAddress?, createdAt}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub chain: String,
    pub network: String,
    pub address: String,
    /// `ACTIVE`, `SUSPENDED` or `TERMINATED`.
    pub status: String,
    #[serde(default)]
    pub owner_address: Option<String>,
    pub created_at: i64,
}

/// `PUT /v1/agents/{id}/owner` body; `None` clears the owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetOwner {
    pub owner_address: Option<String>,
}

/// `POST /v1/sessions` body.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<serde_json::Value>,
}

impl CreateSession {
    /// A session for `agent_id` with the daemon's default TTL and no constraints.
    pub fn for_agent(agent_id: impl Into<String>) -> Self {
        CreateSession { agent_id: agent_id.into(), ttl_seconds: None, constraints: None }
    }
}

/// A freshly issued (or renewed) session: the token is shown only here.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedSession {
    pub id: String,
    /// `wai_sess_...`; pass to [`crate::Client::with_session_token`].
    pub token: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSession")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A session as listed (never with its token).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub agent_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    #[serde(default)]
    pub revoked_at: Option<i64>,
    pub renewal_count: u32,
    /// Not revoked and not expired.
    pub active: bool,
}

/// `GET /v1/sessions` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub agent_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `POST /v1/policies` body. `rules` keys are snake_case, as in SPEC §3.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(rename = "type")]
    pub policy_type: String,
    pub rules: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `PUT /v1/policies/{id}` body: either or both fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A policy: `{id, agentId, type, rules, enabled, createdAt}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub id: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(rename = "type")]
    pub policy_type: String,
    pub rules: serde_json::Value,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `GET /v1/policies` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFilter {
    pub agent_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET /v1/wallet/address`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletAddress {
    pub agent_id: String,
    pub chain: String,
    pub network: String,
    pub address: String,
}

/// `GET /v1/wallet/balance`: the native balance in the smallest unit (wei), as a decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletBalance {
    pub agent_id: String,
    pub network: String,
    pub address: String,
    /// Wei, as a decimal string.
    pub balance: String,
    /// e.g. `ETH`.
    pub symbol: String,
    pub decimals: u8,
}

/// `POST /v1/admin/kill-switch` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivateKillSwitch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an activation did.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitchEffects {
    pub sessions_revoked: u64,
    pub agents_suspended: u64,
    pub transactions_cancelled: u64,
}

/// The kill switch: `{state, reason?, changedAt?, effects?}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitch {
    /// `ACTIVE`, `SUSPENDED` or `LOCKED`.
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub changed_at: Option<i64>,
    #[serde(default)]
    pub effects: Option<KillSwitchEffects>,
}

/// `GET /v1/audit-logs` filters (query parameters are snake_case on the wire; `event_type` repeats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditLogFilter {
    pub agent_id: Option<String>,
    pub event_types: Vec<String>,
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    pub tx_id: Option<String>,
    pub actor: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    pub from: Option<i64>,
    /// Inclusive upper bound, Unix seconds.
    pub to: Option<i64>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    pub id: i64,
    pub created_at: i64,
    pub event_type: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub tx_id: Option<String>,
    pub actor: String,
    pub severity: String,
    #[serde(default)]
    pub details: serde_json::Value,
    #[serde(default)]
    pub ip_address: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_list_and_agent() {
        let page: Page<Agent> = serde_json::from_value(json!({
            "data": [{
                "id": "0190", "name": "a", "chain": "ethereum", "network": "anvil",
                "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "status": "ACTIVE",
                "ownerAddress": null, "createdAt": 1700000000, "somethingNew": true
            }],
            "nextCursor": null,
            "hasMore": false
        }))
        .unwrap();
        assert_eq!(page.data.len(), 1);
        assert_eq!(page.data[0].owner_address, None);
        assert_eq!(page.data[0].created_at, 1_700_000_000);
        assert!(!page.has_more);
    }

    #[test]
    fn request_bodies_are_camel_case_and_skip_absent_fields() {
        let body = serde_json::to_value(CreatePolicy {
            agent_id: None,
            policy_type: "RATE_LIMIT".into(),
            rules: json!({"max_requests": 1, "window_seconds": 60}),
            enabled: Some(false),
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"type": "RATE_LIMIT", "rules": {"max_requests": 1, "window_seconds": 60}, "enabled": false})
        );
        let body = serde_json::to_value(CreateSession::for_agent("x")).unwrap();
        assert_eq!(body, json!({"agentId": "x"}));
        let body = serde_json::to_value(SetOwner { owner_address: None }).unwrap();
        assert_eq!(body, json!({"ownerAddress": null}));
    }

    #[test]
    fn issued_session_debug_hides_the_token() {
        let issued = IssuedSession { id: "s".into(), token: "wai_sess_secret".into(), expires_at: 1 };
        assert!(!format!("{issued:?}").contains("secret"));
    }
}
