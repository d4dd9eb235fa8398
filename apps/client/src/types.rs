//! Request and response bodies of the REST API as plain serde structs (camelCase on the wire).
//!
//! Responses are decoded leniently: fields the daemon adds later are ignored, and fields that only some
//! endpoints return are `Option`s with `#[serde(default)]`. Amounts stay decimal strings (wei) and times Unix
//! seconds, exactly as on the wire. The agent-side responses (wallet, transactions, simulation) serialize back
//! to the same camelCase shape (absent options as `null`), so a relay such as the MCP server can hand them on.

use serde::{Deserialize, Serialize};

/// One page of a list: `{data, nextCursor, hasMore}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

    /// A Solana agent on `network` (a name from `[rpc] solana_<network>`).
    pub fn solana(name: impl Into<String>, network: impl Into<String>) -> Self {
        CreateAgent { name: name.into(), chain: "solana".into(), network: network.into() }
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletAddress {
    pub agent_id: String,
    pub chain: String,
    pub network: String,
    pub address: String,
}

/// `GET /v1/wallet/balance`: the native balance in the smallest unit (wei), as a decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// `GET /v1/wallet/balance?token=...`: an ERC-20 balance in the token's smallest unit, as a decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenBalance {
    pub agent_id: String,
    pub network: String,
    pub address: String,
    /// The token contract, EIP-55 checksummed.
    pub token: String,
    pub balance: String,
}

/// An ERC-20 token named by a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRef {
    /// The token contract.
    pub address: String,
    /// 0 to 36.
    pub decimals: u8,
    /// 1 to 16 characters.
    pub symbol: String,
}

impl TokenRef {
    pub fn new(address: impl Into<String>, decimals: u8, symbol: impl Into<String>) -> Self {
        TokenRef { address: address.into(), decimals, symbol: symbol.into() }
    }
}

/// The body of `POST /v1/transactions/send` (and simulate): `{"type": "TRANSFER", ...}`. Amounts are decimal
/// strings in the smallest unit; addresses `0x` + 40 hex digits (mixed case must be a valid EIP-55 checksum).
/// `network` defaults to the agent's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum TxRequest {
    /// Send the native coin.
    Transfer {
        to: String,
        amount: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// Send an ERC-20 token.
    TokenTransfer {
        to: String,
        amount: String,
        token: TokenRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// Call a contract with `calldata` (`0x`-prefixed hex) and an optional native `value` (default 0); on Solana
    /// a program with its instruction data and the `accounts` it uses.
    ContractCall {
        to: String,
        calldata: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accounts: Option<Vec<ProgramAccount>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// Let `spender` move up to `amount` of a token.
    Approve {
        spender: String,
        amount: String,
        token: TokenRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// 2 to 20 instructions evaluated by policy as a whole (refused on EVM networks: an EOA cannot batch
    /// atomically).
    Batch {
        instructions: Vec<TxInstruction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
}

impl TxRequest {
    /// A native transfer of `amount` (wei; anything that displays as decimal digits: `"1000"`, `1000u128`).
    pub fn transfer(to: impl Into<String>, amount: impl std::fmt::Display) -> Self {
        TxRequest::Transfer { to: to.into(), amount: amount.to_string(), network: None }
    }

    pub fn token_transfer(to: impl Into<String>, amount: impl std::fmt::Display, token: TokenRef) -> Self {
        TxRequest::TokenTransfer { to: to.into(), amount: amount.to_string(), token, network: None }
    }

    /// A contract call without value; see [`TxRequest::with_value`].
    pub fn contract_call(to: impl Into<String>, calldata: impl Into<String>) -> Self {
        TxRequest::ContractCall { to: to.into(), calldata: calldata.into(), value: None, accounts: None, network: None }
    }

    pub fn approve(spender: impl Into<String>, amount: impl std::fmt::Display, token: TokenRef) -> Self {
        TxRequest::Approve { spender: spender.into(), amount: amount.to_string(), token, network: None }
    }

    pub fn batch(instructions: Vec<TxInstruction>) -> Self {
        TxRequest::Batch { instructions, network: None }
    }

    /// The same request on `network` instead of the agent's.
    pub fn with_network(mut self, name: impl Into<String>) -> Self {
        let slot = match &mut self {
            TxRequest::Transfer { network, .. }
            | TxRequest::TokenTransfer { network, .. }
            | TxRequest::ContractCall { network, .. }
            | TxRequest::Approve { network, .. }
            | TxRequest::Batch { network, .. } => network,
        };
        *slot = Some(name.into());
        self
    }

    /// A Solana program call with the `accounts` its instruction uses (other types are returned unchanged).
    pub fn with_accounts(mut self, list: Vec<ProgramAccount>) -> Self {
        if let TxRequest::ContractCall { accounts, .. } = &mut self {
            *accounts = Some(list);
        }
        self
    }

    /// A CONTRACT_CALL with a native `value` (other types are returned unchanged).
    pub fn with_value(mut self, amount: impl std::fmt::Display) -> Self {
        if let TxRequest::ContractCall { value, .. } = &mut self {
            *value = Some(amount.to_string());
        }
        self
    }
}

/// One account of a Solana program call (its `AccountMeta`); only the agent's own account may sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramAccount {
    pub pubkey: String,
    #[serde(default)]
    pub signer: bool,
    #[serde(default)]
    pub writable: bool,
}

/// One instruction of a BATCH: the request types other than BATCH, without `network`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum TxInstruction {
    Transfer {
        to: String,
        amount: String,
    },
    TokenTransfer {
        to: String,
        amount: String,
        token: TokenRef,
    },
    ContractCall {
        to: String,
        calldata: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accounts: Option<Vec<ProgramAccount>>,
    },
    Approve {
        spender: String,
        amount: String,
        token: TokenRef,
    },
}

/// The answer to a send: `{id, status}` (`PENDING` or `QUEUED`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    pub id: String,
    pub status: String,
}

/// A transaction request and its progress (`GET /v1/transactions/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: String,
    pub agent_id: String,
    /// `TRANSFER`, `TOKEN_TRANSFER`, `CONTRACT_CALL`, `APPROVE` or `BATCH`.
    #[serde(rename = "type")]
    pub tx_type: String,
    /// `PENDING`, `QUEUED`, `EXECUTING`, `SUBMITTED`, `CONFIRMED`, `FAILED`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    /// `INSTANT`, `NOTIFY`, `DELAY` or `APPROVAL`; `None` for a request denied by policy.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub network: Option<String>,
    /// Recipient, spender or contract; `None` for BATCH.
    #[serde(default)]
    pub to: Option<String>,
    /// The main amount (decimal string, smallest unit); `None` for BATCH.
    #[serde(default)]
    pub amount: Option<String>,
    /// The canonical request (see [`Transaction::typed_request`]).
    #[serde(default)]
    pub request: serde_json::Value,
    #[serde(default)]
    pub tx_hash: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// The structured denial reason, e.g. `ADDRESS_NOT_WHITELISTED`.
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub execute_after: Option<i64>,
    #[serde(default)]
    pub approval_deadline: Option<i64>,
    #[serde(default)]
    pub approved_at: Option<i64>,
    /// Failed execution attempts so far.
    #[serde(default)]
    pub attempts: Option<u32>,
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: Option<i64>,
}

impl Transaction {
    /// The canonical request as a [`TxRequest`] (`None` if it has a shape this SDK does not know).
    pub fn typed_request(&self) -> Option<TxRequest> {
        serde_json::from_value(self.request.clone()).ok()
    }

    /// Whether the status is final (CONFIRMED, FAILED, CANCELLED, EXPIRED).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED")
    }
}

/// The answer of `POST /v1/transactions/simulate` (SPEC OPS-01): what a send of the same body would do now,
/// without doing it. A policy denial is a normal answer (`success: false`, the denial in [`SimulationResult::policy`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationResult {
    /// True only when policy would accept the send, the on-chain simulation succeeded and no warning has
    /// `error` severity.
    pub success: bool,
    pub policy: SimulatedPolicy,
    pub fee: SimulatedFee,
    #[serde(default)]
    pub balance_changes: Vec<BalanceChange>,
    #[serde(default)]
    pub warnings: Vec<SimulationWarning>,
    pub simulation: ChainSimulation,
    pub meta: SimulationMeta,
}

impl SimulationResult {
    /// Whether a warning with `code` is present.
    pub fn has_warning(&self, code: &str) -> bool {
        self.warnings.iter().any(|w| w.code == code)
    }
}

/// The policy engine's read-only verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedPolicy {
    pub allowed: bool,
    /// `INSTANT`, `NOTIFY`, `DELAY` or `APPROVAL` (what the daemon reports for a denial too).
    pub tier: String,
    /// The structured denial reason, e.g. `ADDRESS_NOT_WHITELISTED`.
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub matched_policy_ids: Vec<String>,
    /// The DELAY tier's wait.
    #[serde(default)]
    pub delay_seconds: Option<u64>,
    /// APPROVAL downgraded to DELAY because the agent has no owner.
    #[serde(default)]
    pub downgraded: Option<bool>,
    #[serde(default)]
    pub cumulative_warning: Option<String>,
}

/// The fee estimate, in the native coin's smallest unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulatedFee {
    /// Decimal string (wei).
    pub estimated_fee: String,
    /// e.g. `ETH`.
    pub fee_symbol: String,
    pub fee_decimals: u8,
    pub gas_limit: u64,
    /// Decimal string (wei).
    #[serde(default)]
    pub max_fee_per_gas: Option<String>,
    /// `None` when no price is known.
    #[serde(default)]
    pub fee_usd: Option<f64>,
}

/// How one asset's balance would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceChange {
    /// `native` or the token contract address.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    /// Decimal string, smallest unit.
    pub current_balance: String,
    /// Signed decimal string, smallest unit: `"-123"` for an outflow.
    pub change_amount: String,
    /// Decimal string, smallest unit (may be negative when the balance does not cover the change).
    pub after_balance: String,
}

/// A warning of the simulation, e.g. `INSUFFICIENT_BALANCE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationWarning {
    pub code: String,
    pub message: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
}

/// The on-chain simulation (`eth_call` / `eth_estimateGas` from the agent's address).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainSimulation {
    pub success: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub gas_used: Option<u64>,
}

/// Where and how fast the simulation ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationMeta {
    pub chain: String,
    pub network: String,
    /// `TRANSFER`, `TOKEN_TRANSFER`, `CONTRACT_CALL`, `APPROVE` or `BATCH`.
    pub transaction_type: String,
    pub block_number: u64,
    pub duration_ms: f64,
}

/// `GET /v1/nonce`: a single-use nonce for an owner's signed decision.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nonce {
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: i64,
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

/// `GET /v1/audit-logs/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditStats {
    pub from: i64,
    pub to: i64,
    /// `hour` or `day`.
    pub bucket: String,
    pub total: u64,
    pub by_event_type: Vec<EventTypeCount>,
    pub by_severity: Vec<SeverityCount>,
    pub by_agent: Vec<AgentCount>,
    pub series: Vec<BucketCount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeCount {
    pub event_type: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCount {
    pub severity: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCount {
    #[serde(default)]
    pub agent_id: Option<String>,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketCount {
    pub bucket_start: i64,
    pub count: u64,
}

/// One audit row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

    const A: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    /// The typed requests serialize to the daemon's wire shapes (the ones its parser accepts): `type` tag in
    /// SCREAMING_SNAKE_CASE, camelCase fields, absent options omitted, no extra keys.
    #[test]
    fn typed_requests_have_the_wire_shape() {
        let usdc = TokenRef::new(A, 6, "USDC");
        let token = json!({"address": A, "decimals": 6, "symbol": "USDC"});
        let cases = [
            (TxRequest::transfer(A, 1_000u128), json!({"type": "TRANSFER", "to": A, "amount": "1000"})),
            (
                TxRequest::transfer(A, "5").with_network("anvil"),
                json!({"type": "TRANSFER", "to": A, "amount": "5", "network": "anvil"}),
            ),
            (
                TxRequest::token_transfer(A, 7, usdc.clone()),
                json!({"type": "TOKEN_TRANSFER", "to": A, "amount": "7", "token": token}),
            ),
            (
                TxRequest::contract_call(A, "0xa9059cbb"),
                json!({"type": "CONTRACT_CALL", "to": A, "calldata": "0xa9059cbb"}),
            ),
            (
                TxRequest::contract_call(A, "0x").with_value(3),
                json!({"type": "CONTRACT_CALL", "to": A, "calldata": "0x", "value": "3"}),
            ),
            (
                TxRequest::approve(A, "9", usdc.clone()),
                json!({"type": "APPROVE", "spender": A, "amount": "9", "token": token}),
            ),
            (
                TxRequest::batch(vec![
                    TxInstruction::Transfer { to: A.into(), amount: "1".into() },
                    TxInstruction::ContractCall { to: A.into(), calldata: "0x".into(), value: None, accounts: None },
                ])
                .with_network("anvil"),
                json!({"type": "BATCH", "network": "anvil", "instructions": [
                    {"type": "TRANSFER", "to": A, "amount": "1"},
                    {"type": "CONTRACT_CALL", "to": A, "calldata": "0x"},
                ]}),
            ),
        ];
        for (request, expected) in cases {
            let wire = serde_json::to_value(&request).unwrap();
            assert_eq!(wire, expected);
            assert_eq!(serde_json::from_value::<TxRequest>(wire).unwrap(), request, "round trip");
        }
        // `with_value` leaves other types alone.
        assert_eq!(TxRequest::transfer(A, 1).with_value(5), TxRequest::transfer(A, 1));
    }

    #[test]
    fn decodes_transactions_leniently() {
        let full: Transaction = serde_json::from_value(json!({
            "id": "t", "agentId": "a", "type": "CONTRACT_CALL", "status": "QUEUED", "tier": "DELAY",
            "network": "anvil", "to": A, "amount": "3",
            "request": {"type": "CONTRACT_CALL", "to": A, "calldata": "0x", "value": "3"},
            "executeAfter": 10, "createdAt": 1, "updatedAt": 2, "somethingNew": [1]
        }))
        .unwrap();
        assert_eq!((full.tier.as_deref(), full.execute_after, full.updated_at), (Some("DELAY"), Some(10), Some(2)));
        assert_eq!(full.typed_request(), Some(TxRequest::contract_call(A, "0x").with_value(3)));
        assert!(!full.is_final());
        let denied: Transaction = serde_json::from_value(json!({
            "id": "t", "agentId": "a", "type": "BATCH", "status": "CANCELLED", "tier": null, "to": null,
            "amount": null, "reasonCode": "RATE_LIMIT_EXCEEDED", "createdAt": 1
        }))
        .unwrap();
        assert_eq!((&denied.tier, &denied.to, &denied.amount), (&None, &None, &None));
        assert_eq!(denied.reason_code.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
        assert!(denied.is_final());
        assert_eq!(denied.typed_request(), None);
    }

    #[test]
    fn decodes_a_full_simulation() {
        let result: SimulationResult = serde_json::from_value(json!({
            "success": true,
            "policy": {"allowed": true, "tier": "DELAY", "matchedPolicyIds": ["p1"], "delaySeconds": 300,
                       "downgraded": true, "cumulativeWarning": "80% of the daily limit"},
            "fee": {"estimatedFee": "42000000000000", "feeSymbol": "ETH", "feeDecimals": 18, "gasLimit": 21000,
                    "maxFeePerGas": "2000000000", "feeUsd": 0.12},
            "balanceChanges": [{"asset": "native", "symbol": "ETH", "decimals": 18, "currentBalance": "1000",
                                "changeAmount": "-123", "afterBalance": "877"}],
            "warnings": [{"code": "DOWNGRADED_NO_OWNER", "message": "no owner", "severity": "warning"}],
            "simulation": {"success": true, "gasUsed": 21000},
            "meta": {"chain": "ethereum", "network": "anvil", "transactionType": "TRANSFER", "blockNumber": 7,
                     "durationMs": 2.5},
            "somethingNew": {}
        }))
        .unwrap();
        assert!(result.success);
        assert_eq!(
            result.policy,
            SimulatedPolicy {
                allowed: true,
                tier: "DELAY".into(),
                reason_code: None,
                reason: None,
                matched_policy_ids: vec!["p1".into()],
                delay_seconds: Some(300),
                downgraded: Some(true),
                cumulative_warning: Some("80% of the daily limit".into()),
            }
        );
        assert_eq!(
            result.fee,
            SimulatedFee {
                estimated_fee: "42000000000000".into(),
                fee_symbol: "ETH".into(),
                fee_decimals: 18,
                gas_limit: 21_000,
                max_fee_per_gas: Some("2000000000".into()),
                fee_usd: Some(0.12),
            }
        );
        assert_eq!(result.balance_changes[0].change_amount, "-123");
        assert_eq!(result.balance_changes[0].after_balance, "877");
        assert!(result.has_warning("DOWNGRADED_NO_OWNER") && !result.has_warning("INSUFFICIENT_BALANCE"));
        assert_eq!(result.simulation, ChainSimulation { success: true, error: None, gas_used: Some(21_000) });
        assert_eq!((result.meta.block_number, result.meta.duration_ms), (7, 2.5));
        assert_eq!(result.meta.transaction_type, "TRANSFER");
    }

    #[test]
    fn decodes_a_simulated_denial() {
        let result: SimulationResult = serde_json::from_value(json!({
            "success": false,
            "policy": {"allowed": false, "tier": "INSTANT", "reasonCode": "ADDRESS_NOT_WHITELISTED",
                       "reason": "recipient is not whitelisted", "matchedPolicyIds": ["p9"]},
            "fee": {"estimatedFee": "0", "feeSymbol": "ETH", "feeDecimals": 18, "gasLimit": 0},
            "balanceChanges": [],
            "warnings": [],
            "simulation": {"success": false, "error": "not simulated: denied by policy"},
            "meta": {"chain": "ethereum", "network": "anvil", "transactionType": "TRANSFER", "blockNumber": 0,
                     "durationMs": 1}
        }))
        .unwrap();
        assert!(!result.success && !result.policy.allowed);
        assert_eq!(result.policy.reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));
        assert_eq!(result.policy.matched_policy_ids, ["p9"]);
        assert_eq!((result.policy.delay_seconds, result.policy.downgraded), (None, None));
        assert_eq!((result.fee.max_fee_per_gas.as_deref(), result.fee.fee_usd), (None, None));
        assert_eq!(result.simulation.error.as_deref(), Some("not simulated: denied by policy"));
        assert_eq!(result.simulation.gas_used, None);
        assert_eq!(result.meta.duration_ms, 1.0);
    }

    #[test]
    fn issued_session_debug_hides_the_token() {
        let issued = IssuedSession { id: "s".into(), token: "wai_sess_secret".into(), expires_at: 1 };
        assert!(!format!("{issued:?}").contains("secret"));
    }
}
