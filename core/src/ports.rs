//! Ports: the traits through which the core reaches the outside world. Adapters implement them; the core only
//! calls them. Every state-changing repository method takes the [`Event`] that records the change and must write
//! it as an audit row in the same DB transaction (all or nothing).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::anomaly::{FindingRecord, TierFloor};
pub use crate::domain::TokenLog;
use crate::domain::decision::Decision;
use crate::domain::{
    Address, Agent, AgentStatus, Asset, ChainFamily, KillSwitch, Policy, Session, Tier, TxKind, TxStatus,
};
use crate::event::{Event, EventType, Severity};
use crate::webhooks::Webhook;
use crate::{AgentId, Amount, PolicyId, Result, SessionId, TxId, UnixSeconds, WebhookId};

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

mod notifications;

#[cfg(any(test, feature = "mocks"))]
pub use crate::notifications::MockNotificationChannel;
pub use crate::notifications::{Message, NotificationChannel, SendOutcome};
pub use crate::system::{Clock, Entropy};
#[cfg(any(test, feature = "mocks"))]
pub use crate::system::{MockClock, MockEntropy};
#[cfg(any(test, feature = "mocks"))]
pub use notifications::MockNotificationRepo;
pub use notifications::{
    DueNotification, HeldBack, NotificationLogEntry, NotificationLogQuery, NotificationRepo, QueueNext,
    QueuedNotification, Settlement,
};

/// One page of a keyset-paginated list, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page, at most the requested limit.
    pub items: Vec<T>,
    /// Present when more items follow; pass it back unchanged to get them.
    pub next_cursor: Option<String>,
}

/// What a change of an agent's status did besides the status, for its events.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StatusEffects {
    /// The agent's sessions revoked (on termination).
    pub revoked_sessions: Vec<SessionId>,
    /// The agent's transactions cancelled before signing, oldest first.
    pub cancelled: Vec<TxId>,
}

/// Builds the events of an agent status change once its effects are known.
pub type EventsFromStatusEffects = Box<dyn FnOnce(&StatusEffects) -> Vec<Event> + Send>;

/// Agent rows; every write also appends its event to the audit log in the same transaction.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AgentRepo: Send + Sync {
    /// Stores a new agent together with its creation event.
    async fn insert(&self, agent: &Agent, event: &Event) -> Result<()>;
    /// The agent with this id; `None` when there is none.
    async fn get(&self, id: AgentId) -> Result<Option<Agent>>;
    /// Agents newest first; `before` is the last id of the previous page.
    async fn list(&self, before: Option<AgentId>, limit: u32) -> Result<Vec<Agent>>;
    /// Compare-and-set of the status, in one write transaction: moves the agent from `from` to `to` only if it is
    /// still in `from`, else writes nothing and returns `None` (a resume racing a terminate never revives it);
    /// `AGENT_NOT_FOUND` when there is no such agent. Leaving ACTIVE (suspend, terminate) cancels every transaction
    /// of the agent not yet signed (PENDING, QUEUED, EXECUTING) and releases what they reserved; terminating also
    /// revokes the agent's sessions. Moving to ACTIVE is refused with `SYSTEM_LOCKED` while the stored kill switch
    /// is tripped. `events` builds the audit events from those effects (the status event, then one `SESSION_REVOKED`
    /// per revoked session and one `TX_CANCELLED` per cancelled transaction), written in the same transaction and
    /// returned as written.
    async fn set_status(
        &self,
        id: AgentId,
        from: AgentStatus,
        to: AgentStatus,
        now: UnixSeconds,
        events: EventsFromStatusEffects,
    ) -> Result<Option<(StatusEffects, Vec<Event>)>>;
    /// Sets (or with `None` clears) the agent's owner address at `now`; `AGENT_NOT_FOUND` when there is no such agent.
    async fn set_owner(&self, id: AgentId, owner: Option<Address>, now: UnixSeconds, event: &Event) -> Result<()>;
    /// How many agents are in `status` (for the state gauges).
    async fn count_by_status(&self, status: AgentStatus) -> Result<u64>;
}

/// Session rows; every write also appends its event to the audit log in the same transaction.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Stores a new session; `AGENT_NOT_FOUND` when its agent does not exist.
    async fn insert(&self, session: &Session, event: &Event) -> Result<()>;
    /// The session with this id, revoked and expired ones included; `None` when there is none.
    async fn get(&self, id: SessionId) -> Result<Option<Session>>;
    /// Sessions newest first, optionally of one agent.
    async fn list(&self, agent_id: Option<AgentId>, before: Option<SessionId>, limit: u32) -> Result<Vec<Session>>;
    /// Marks the session revoked at `now`; `SESSION_NOT_FOUND` when there is no such session.
    async fn revoke(&self, id: SessionId, now: UnixSeconds, event: &Event) -> Result<()>;
    /// Replaces the token hash and expiry (the old token stops working) and counts the renewal.
    async fn renew(&self, id: SessionId, token_hash: &str, expires_at: UnixSeconds, event: &Event) -> Result<()>;
    /// How many sessions are neither revoked nor expired at `now`.
    async fn count_active(&self, now: UnixSeconds) -> Result<u64>;
}

/// Policy rows; every write also appends its event to the audit log in the same transaction.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait PolicyRepo: Send + Sync {
    /// Stores a new policy; `AGENT_NOT_FOUND` when it names an agent that does not exist.
    async fn insert(&self, policy: &Policy, event: &Event) -> Result<()>;
    /// The policy with this id, enabled or not; `None` when there is none.
    async fn get(&self, id: PolicyId) -> Result<Option<Policy>>;
    /// Policies newest first; `agent_id` filters to that agent's own policies.
    async fn list(&self, agent_id: Option<AgentId>, before: Option<PolicyId>, limit: u32) -> Result<Vec<Policy>>;
    /// Replaces the stored policy with the same id; `POLICY_NOT_FOUND` when there is none.
    async fn update(&self, policy: &Policy, event: &Event) -> Result<()>;
    /// Deletes the policy; `POLICY_NOT_FOUND` when there is none.
    async fn delete(&self, id: PolicyId, event: &Event) -> Result<()>;
    /// Enabled policies that apply to `agent`: the global ones and its own.
    async fn in_force(&self, agent: AgentId) -> Result<Vec<Policy>>;
}

/// Key-value settings that belong to the daemon's database (master password hash, token signing key, ...).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SettingsRepo: Send + Sync {
    /// The value stored under `key`; `None` when it was never set.
    async fn get(&self, key: &str) -> Result<Option<String>>;
    /// Inserts or replaces the value of `key`.
    async fn put(&self, key: &str, value: &str) -> Result<()>;
}

/// What a kill-switch activation did, for the response and the events.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ActivationEffects {
    /// The sessions revoked, with their agents.
    pub revoked_sessions: Vec<(SessionId, AgentId)>,
    /// The agents suspended.
    pub suspended_agents: Vec<AgentId>,
    /// The transactions cancelled before signing, with their agents.
    pub cancelled: Vec<(TxId, AgentId)>,
}

/// Builds the kill-switch activation events once its effects are known: the activation itself, then one event
/// per entity it changed (`SESSION_REVOKED`, `AGENT_SUSPENDED`, `TX_CANCELLED`), so subscribers see each one.
pub type EventFromEffects = Box<dyn FnOnce(&ActivationEffects) -> Vec<Event> + Send>;

/// The persisted kill switch (one row), and the sweeping changes its activation makes.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KillSwitchRepo: Send + Sync {
    /// The stored kill-switch state.
    async fn get(&self) -> Result<KillSwitch>;
    /// Stores the new state and, in the same transaction, revokes every active session, suspends every active
    /// agent and cancels every transaction not yet signed (PENDING, QUEUED and EXECUTING: `TxStatus::cancel`),
    /// releasing what they reserved; `events` builds the audit events from those effects, so
    /// the stored rows record them. Returns the effects and the events as written.
    async fn activate(&self, new: &KillSwitch, events: EventFromEffects) -> Result<(ActivationEffects, Vec<Event>)>;
    /// Stores the recovered state. Sessions stay revoked; agents stay suspended until resumed one by one.
    async fn recover(&self, new: &KillSwitch, event: &Event) -> Result<()>;
}

/// Filters of an audit-log query; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    /// Only rows about this agent.
    pub agent_id: Option<AgentId>,
    /// Only rows of these event types; empty means every type.
    pub event_types: Vec<EventType>,
    /// Only rows of this severity.
    pub severity: Option<Severity>,
    /// Only rows about this transaction.
    pub tx_id: Option<TxId>,
    /// Only rows by this actor, in its stored form ([`crate::event::Actor::to_wire`], e.g. `session:<id>`).
    pub actor: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    pub from: Option<UnixSeconds>,
    /// Inclusive upper bound, Unix seconds.
    pub to: Option<UnixSeconds>,
    /// Keyset position: rows strictly older than `(created_at, id)`.
    pub before: Option<(UnixSeconds, i64)>,
    /// The most rows returned.
    pub limit: u32,
}

/// A stored audit row.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// The row's sequence number in the log (ascending in append order).
    pub id: i64,
    /// The recorded event.
    pub event: Event,
    /// The previous row's `hash` (a fixed genesis value for the first row): the hash chain link.
    pub prev_hash: String,
    /// This row's chain hash, [`crate::audit::chain_hash`] of `prev_hash` and the event.
    pub hash: String,
}

/// The append-only, hash-chained audit log.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Records an event that changes no other state (e.g. a failed master-password attempt).
    async fn append(&self, event: &Event) -> Result<()>;
    /// Rows matching `query`, newest first by `(created_at, id)`, at most `query.limit`.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Counts over a period: by event type, severity and agent, and per time bucket.
    async fn stats(&self, query: &AuditStatsQuery) -> Result<AuditStats>;
}

/// Filters of an audit statistics query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditStatsQuery {
    /// Only rows about this agent.
    pub agent_id: Option<AgentId>,
    /// Inclusive bounds, Unix seconds.
    pub from: UnixSeconds,
    /// Inclusive upper bound, Unix seconds.
    pub to: UnixSeconds,
    /// Width of a time bucket in seconds (3600 or 86400).
    pub bucket_seconds: i64,
}

/// Audit row counts; every list is sorted by its key (agents: rows without an agent first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Rows in the period (matching the query).
    pub total: u64,
    /// Row count per event type.
    pub by_event_type: Vec<(EventType, u64)>,
    /// Row count per severity.
    pub by_severity: Vec<(Severity, u64)>,
    /// Row count per agent; `None` counts the rows about no agent.
    pub by_agent: Vec<(Option<AgentId>, u64)>,
    /// `(bucket start, count)`, only buckets with rows.
    pub series: Vec<(UnixSeconds, u64)>,
}

/// Agent key storage: one encrypted file per agent. Private keys never leave the adapter in plaintext.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Generates a key for `agent` of the type its chain `family` signs with (secp256k1 for EVM, ed25519 for
    /// Solana), stores it encrypted with its type recorded, and returns its address in that family's form.
    async fn create_key(&self, agent: AgentId, family: ChainFamily) -> Result<Address>;
    /// The address of the stored key (decrypts nothing).
    async fn address(&self, agent: AgentId) -> Result<Address>;
    /// Signs what the chain adapter says to sign ([`PreparedTx::signing_payload`]) with the agent's key: a
    /// secp256k1 key signs a 32-byte digest into 65 bytes `r || s || v` (v = 0 or 1); an ed25519 key signs the
    /// message bytes themselves into 64 bytes. A payload the key type cannot sign is `KEYSTORE_ERROR`.
    async fn sign(&self, agent: AgentId, payload: Vec<u8>) -> Result<Vec<u8>>;
}

/// The outcome of executing a request against the chain's current state without sending it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationOutcome {
    /// Whether the execution would succeed (no revert).
    pub success: bool,
    /// The revert reason (decoded `Error(string)` when possible) or the node's message.
    pub error: Option<String>,
    /// Gas the execution used, when the node reported it.
    pub gas_used: Option<u64>,
    /// The token transfers and approvals the execution logged, when the node can tell (EVM: `eth_simulateV1`,
    /// asked only for requests with a token effect); `None` when it cannot, so only the receipt will show them.
    pub logs: Option<Vec<crate::domain::TokenLog>>,
}

/// A network's native coin (ETH on Ethereum and most L2s, POL on Polygon, ...), as the chain adapter knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeAsset {
    /// Ticker symbol, e.g. `ETH`; also the coin's price key ([`PriceKey::Native`]).
    pub symbol: String,
    /// Decimal places of the coin: one whole coin is `10^decimals` base units (18 for ETH).
    pub decimals: u8,
}

/// An ERC-20 token's metadata read from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMetadata {
    /// The token's `decimals()`: one whole token is `10^decimals` base units.
    pub decimals: u8,
    /// `None` when `symbol()` is missing or not a string (some old tokens return bytes32).
    pub symbol: Option<String>,
}

/// An unsigned transaction built for one agent, with everything needed to sign it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedTx {
    /// The configured network name it is built for.
    pub network: String,
    /// The network's EIP-155 chain id (part of what is signed).
    pub chain_id: u64,
    /// The sender account's nonce the transaction uses.
    pub nonce: u64,
    /// The gas limit, in gas units.
    pub gas_limit: u64,
    /// The latest block's base fee (what a transaction pays now, besides the priority fee).
    pub base_fee_per_gas: u128,
    /// EIP-1559 fee cap per gas, in wei (base units of the native coin).
    pub max_fee_per_gas: u128,
    /// EIP-1559 priority fee (tip) cap per gas, in wei.
    pub max_priority_fee_per_gas: u128,
    /// Adapter-specific encoding of the unsigned transaction (RLP for EVM).
    pub unsigned: Vec<u8>,
    /// What the key signs: the 32-byte signing digest on EVM, the serialized message on Solana.
    pub signing_payload: Vec<u8>,
    /// The result of executing it at `block_number` without sending it.
    pub simulation: SimulationOutcome,
    /// The latest block when it was built: the block its fees and simulation are from.
    pub block_number: u64,
}

impl PreparedTx {
    /// Worst-case fee: gas limit × max fee per gas, in the native unit.
    pub fn max_fee(&self) -> Amount {
        Amount(alloy_primitives::U256::from(self.gas_limit) * alloy_primitives::U256::from(self.max_fee_per_gas))
    }
}

/// A signed transaction ready to broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// The signed transaction's bytes as broadcast (EIP-2718 encoded for EVM).
    pub raw: Vec<u8>,
    /// `0x`-prefixed transaction hash.
    pub hash: String,
}

/// A configured network: its name (`[rpc] evm_<name>`) and the family of its chain, which says how the addresses
/// of requests on it are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The network's name.
    pub name: String,
    /// Its chain family.
    pub family: ChainFamily,
}

impl Network {
    /// An EVM network called `name`.
    pub fn evm(name: impl Into<String>) -> Network {
        Network { name: name.into(), family: ChainFamily::Evm }
    }

    /// A Solana network called `name`.
    pub fn solana(name: impl Into<String>) -> Network {
        Network { name: name.into(), family: ChainFamily::Solana }
    }
}

/// What the chain says about a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOnChain {
    /// Not in a block (yet); `known` is false when the node has never seen it.
    Pending {
        /// Whether the node knows the transaction (in its pool).
        known: bool,
    },
    /// In a block: mined, successfully or reverted.
    Included {
        /// Whether it executed without reverting (the receipt status).
        success: bool,
        /// Gas it used, in gas units.
        gas_used: u64,
        /// The block it was included in.
        block_number: u64,
        /// The token movements it logged, in log order.
        logs: Vec<TokenLog>,
    },
}

/// Reads from a chain and builds transactions. It cannot send anything: broadcasting is [`TxBroadcaster`], a
/// separate port that the simulate path is never given.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait ChainAdapter: Send + Sync {
    /// The configured networks, each with the family of its chain.
    fn networks(&self) -> Vec<Network>;
    /// The native-coin balance of `address` at the latest block, in base units.
    async fn native_balance(&self, network: &str, address: Address) -> Result<Amount>;
    /// The network's native coin: symbol and decimals, which the adapter knows per network (never assumed by the
    /// core).
    async fn native_asset(&self, network: &str) -> Result<NativeAsset>;
    /// The ERC-20 `token`'s `balanceOf(owner)` at the latest block, in the token's base units. `NOT_A_TOKEN` when
    /// the chain says `token` is no ERC-20 (no code there, `balanceOf` reverts or answers no balance); a transport
    /// failure or node error is `CHAIN_ERROR`.
    async fn token_balance(&self, network: &str, token: Address, owner: Address) -> Result<Amount>;
    /// An ERC-20's `decimals()` and `symbol()` as the chain answers them; `None` when `token` does not answer as an
    /// ERC-20 (no code, or `decimals()` reverts or returns something else). Transport failures are errors.
    async fn token_metadata(&self, network: &str, token: Address) -> Result<Option<TokenMetadata>>;
    /// Builds the unsigned transaction for `kind` from `from` (nonce, gas, EIP-1559 fees) and simulates it from
    /// `from` at the latest block. A revert is reported in `simulation`, not as an error.
    async fn prepare(&self, network: &str, from: Address, kind: &TxKind) -> Result<PreparedTx>;
    /// Combines a prepared transaction with its signature (as [`KeyStore::sign`] made it).
    fn attach_signature(&self, prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx>;
    /// Where the transaction with this `0x`-prefixed hash is: pending (known or not) or included, with its receipt.
    async fn status(&self, network: &str, hash: &str) -> Result<TxOnChain>;
    /// The account's nonce at the latest block: how many of its transactions are included (pending ones not
    /// counted). A signed transaction whose nonce is below it and that has no receipt can never be included.
    async fn account_nonce(&self, network: &str, address: Address) -> Result<u64>;
}

/// How a node took a broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// In the node's pool (or already known to it).
    Accepted,
    /// Refused because the sender's nonce was already used by another transaction: rebuild, do not retry.
    NonceAlreadyUsed,
}

/// Sends signed transactions. Only the pipeline's execute stage holds this port.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait TxBroadcaster: Send + Sync {
    /// Sends the signed transaction to the network's node; transport and other refusals are errors.
    async fn broadcast(&self, network: &str, signed: &SignedTx) -> Result<Broadcast>;
}

/// A stored transaction request and its progress.
#[derive(Clone, Debug, PartialEq)]
pub struct TxRecord {
    /// The transaction request's id.
    pub id: TxId,
    /// The agent that asked for it and whose key signs it.
    pub agent_id: AgentId,
    /// The session it was requested through, if any.
    pub session_id: Option<SessionId>,
    /// The configured network it is sent on.
    pub network: String,
    /// What is sent: a native transfer, a token transfer or a contract call.
    pub kind: TxKind,
    /// Where it is in its lifecycle.
    pub status: TxStatus,
    /// None for a denied request.
    pub tier: Option<Tier>,
    /// Amounts held against the agent's limits while the row is not final.
    pub reserved: Vec<(Asset, Amount)>,
    /// Its USD value at admission; `None` when a price was unknown.
    pub usd_value: Option<f64>,
    /// DELAY: not before this time.
    pub execute_after: Option<UnixSeconds>,
    /// APPROVAL: expires after this time unless approved.
    pub approval_deadline: Option<UnixSeconds>,
    /// APPROVAL: when it was approved; `None` until then.
    pub approved_at: Option<UnixSeconds>,
    /// Structured denial reason of a denied request.
    pub reason_code: Option<String>,
    /// The `0x`-prefixed hash of the signed transaction, once signed.
    pub tx_hash: Option<String>,
    /// The signed transaction, kept from signing until final so it can be re-broadcast.
    pub raw_tx: Option<Vec<u8>>,
    /// The account nonce it was signed with (unknown for rows signed before the daemon stored it).
    pub nonce: Option<u64>,
    /// The last error (of a failed attempt, or why it failed or was cancelled).
    pub error: Option<String>,
    /// Failed attempts so far; the pipeline fails the row when they reach its limit.
    pub attempts: u32,
    /// When it was requested.
    pub created_at: UnixSeconds,
    /// When the row last changed.
    pub updated_at: UnixSeconds,
}

impl TxRecord {
    /// A new PENDING request of `kind`, created at `now`: no tier, nothing reserved, scheduled, signed or failed
    /// yet. Admission and test fixtures fill in the rest with struct update syntax.
    pub fn pending(
        id: TxId,
        agent_id: AgentId,
        session_id: Option<SessionId>,
        network: String,
        kind: TxKind,
        now: UnixSeconds,
    ) -> TxRecord {
        TxRecord {
            id,
            agent_id,
            session_id,
            network,
            kind,
            status: TxStatus::Pending,
            tier: None,
            reserved: Vec::new(),
            usd_value: None,
            execute_after: None,
            approval_deadline: None,
            approved_at: None,
            reason_code: None,
            tx_hash: None,
            raw_tx: None,
            nonce: None,
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// One recent request of the agent, for RATE_LIMIT and daily USD limits.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentTx {
    /// When it was requested.
    pub created_at: UnixSeconds,
    /// Its current status (failed, cancelled and expired ones do not count as spent).
    pub status: TxStatus,
    /// Its USD value at admission; `None` when a price was unknown.
    pub usd_value: Option<f64>,
    /// Denied requests do not count toward limits.
    pub denied: bool,
}

/// What policy evaluation reads about one agent, in one consistent view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdmissionSnapshot {
    /// Enabled policies that apply to the agent (global and its own).
    pub policies: Vec<Policy>,
    /// Sum of `reserved` over the agent's non-final rows, per asset.
    pub reserved: Vec<(Asset, Amount)>,
    /// The agent's requests created since the snapshot's `since`.
    pub recent: Vec<RecentTx>,
    /// The agent's anomaly tier floor as stored, expired or not (the decision applies it only while in force).
    pub tier_floor: Option<TierFloor>,
}

/// What an admission's decision step produced: the row to insert, its events, and the decision itself (which
/// the caller answers with).
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    /// The row to insert.
    pub record: TxRecord,
    /// Its events, written as audit rows with the row.
    pub events: Vec<Event>,
    /// The policy decision, returned to the caller.
    pub decision: Decision,
}

/// The pure decision step run inside the admission transaction: from the snapshot to the row, its events and the
/// decision.
pub type Decide = Box<dyn FnOnce(&AdmissionSnapshot) -> Admission + Send>;

/// Changes applied to a row together with a status move (None leaves a field as it is).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TxUpdate {
    /// Sets the `0x`-prefixed hash of the signed transaction.
    pub tx_hash: Option<String>,
    /// Sets the signed transaction's bytes, kept for re-broadcast.
    pub raw_tx: Option<Vec<u8>>,
    /// The account nonce of the signature (with `tx_hash` and `raw_tx`).
    pub nonce: Option<u64>,
    /// Sets the error message.
    pub error: Option<String>,
    /// Sets the approval time.
    pub approved_at: Option<UnixSeconds>,
    /// Sets the failed-attempt count.
    pub attempts: Option<u32>,
    /// Not before this time (DELAY, or the backoff of a retry).
    pub execute_after: Option<UnixSeconds>,
    /// Forget the error of an earlier failed attempt (the transaction went through after all).
    pub clear_error: bool,
    /// The structured reason of a cancellation by policy (e.g. `ADDRESS_NOT_WHITELISTED`).
    pub reason_code: Option<String>,
}

/// The answer of [`TxRepo::submit`]: the signature was recorded, or why it was not (and must be dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submission {
    /// The row is SUBMITTED with the signature: broadcast it.
    Recorded,
    /// The kill switch is tripped.
    KillSwitchTripped,
    /// The agent is not ACTIVE (or no longer exists).
    AgentNotActive,
    /// The row left EXECUTING meanwhile (cancelled by the operator, the kill switch, a suspension, ...).
    NotExecuting,
}

/// Transaction rows: admission under policy, the pipeline's status moves, and the worker's queue.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait TxRepo: Send + Sync {
    /// In one write transaction: reads the agent's snapshot at `now` (its policies in force, its reserved totals
    /// and the requests those policies need, [`crate::policy_engine::history_since`]), calls `decide`, inserts the
    /// row and writes its events as audit rows. Two concurrent admissions never see each other half-done.
    async fn admit(&self, agent: AgentId, now: UnixSeconds, decide: Decide) -> Result<Admission>;
    /// The same snapshot, read-only (simulate).
    async fn snapshot(&self, agent: AgentId, now: UnixSeconds) -> Result<AdmissionSnapshot>;
    /// The row with this id; `None` when there is none.
    async fn get(&self, id: TxId) -> Result<Option<TxRecord>>;
    /// The agent's rows newest first.
    async fn list(&self, agent: AgentId, before: Option<TxId>, limit: u32) -> Result<Vec<TxRecord>>;
    /// Compare-and-set: moves the row from `from` to `to` with `update` and writes `event`, in one transaction.
    /// Returns false (and changes nothing) when the row is no longer in `from`. `from == to` updates in place.
    async fn transition(
        &self,
        id: TxId,
        from: TxStatus,
        to: TxStatus,
        update: &TxUpdate,
        event: Option<Event>,
    ) -> Result<bool>;
    /// The signing step's critical section, in one write transaction: only if the kill switch is not tripped, the
    /// row's agent is ACTIVE and the row is still EXECUTING, moves it to SUBMITTED with `update` (hash, raw bytes,
    /// nonce) and writes `event`. Otherwise writes nothing and says why: the caller drops the signature.
    async fn submit(&self, id: TxId, update: &TxUpdate, event: Event) -> Result<Submission>;
    /// Rows the worker must look at, oldest first: PENDING, EXECUTING and SUBMITTED ones whose `execute_after` (a
    /// retry backoff) is unset or passed, and QUEUED ones that are due (`execute_after <= now`), approved, or past
    /// their approval deadline. The batch is bounded per class (new work: PENDING and due QUEUED; EXECUTING;
    /// SUBMITTED), so rows stuck in one class never keep another class's rows out.
    async fn work(&self, now: UnixSeconds) -> Result<Vec<TxRecord>>;
    /// How many rows are in each non-final status (one index read; statuses without rows may be left out).
    async fn count_non_final(&self) -> Result<Vec<(TxStatus, u64)>>;
}

/// Builds the `ANOMALY_DETECTED` event once the finding's id and the floor in force after it are known.
pub type EventFromFinding = Box<dyn FnOnce(&FindingRecord, Option<&TierFloor>) -> Event + Send>;

/// Filters of a findings query; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FindingQuery {
    /// Only findings about this agent.
    pub agent_id: Option<AgentId>,
    /// Only findings made at or after this time.
    pub since: Option<UnixSeconds>,
    /// Keyset position: findings strictly older than `(created_at, id)`.
    pub before: Option<(UnixSeconds, i64)>,
    /// The most findings returned.
    pub limit: u32,
}

/// OPS-06 storage: findings, tier floors, and the final transactions the anomaly state is rebuilt from.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AnomalyRepo: Send + Sync {
    /// In one write transaction: stores the finding (`record.id` is assigned), merges `floor` into the agent's
    /// stored floor with [`TierFloor::merge`] when given (a shadow finding passes none), and writes the event
    /// `event` builds from the stored finding and the floor in force after it. Returns both.
    async fn record(
        &self,
        record: &FindingRecord,
        floor: Option<TierFloor>,
        event: EventFromFinding,
    ) -> Result<(FindingRecord, Option<TierFloor>, Event)>;
    /// The agent's stored floor, expired or not.
    async fn floor(&self, agent: AgentId) -> Result<Option<TierFloor>>;
    /// In one write transaction: deletes the agent's floor when it is in force at `now` and writes `event`;
    /// `None` (nothing written) when there is none in force.
    async fn clear_floor(&self, agent: AgentId, now: UnixSeconds, event: &Event) -> Result<Option<TierFloor>>;
    /// Findings matching `query`, newest first by `(created_at, id)`, at most `query.limit`.
    async fn findings(&self, query: &FindingQuery) -> Result<Vec<FindingRecord>>;
    /// Rows that reached CONFIRMED or FAILED at or after `since` (their `updated_at`), oldest first by
    /// `(updated_at, id)`, strictly after `after`, at most `limit`: the input of the startup rebuild.
    async fn final_since(
        &self,
        since: UnixSeconds,
        after: Option<(UnixSeconds, TxId)>,
        limit: u32,
    ) -> Result<Vec<TxRecord>>;
}

/// A USD price for an asset and when it was observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceQuote {
    /// US dollars per whole unit of the asset.
    pub usd: f64,
    /// When the price was observed (the price-age gauge reports from it).
    pub observed_at: UnixSeconds,
}

/// What a price is asked for: a native coin by its symbol (the same coin on every network that uses it), an
/// ERC-20 by its network and contract address — never by a symbol or decimals an agent wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceKey<'a> {
    /// A network's native coin.
    Native {
        /// The symbol its chain adapter gives ([`NativeAsset::symbol`]), e.g. `ETH`.
        symbol: &'a str,
    },
    /// An ERC-20 token.
    Token {
        /// The configured network it lives on.
        network: &'a str,
        /// Its contract address.
        address: Address,
    },
}

/// USD prices of assets; synchronous, so implementations answer from what they hold in memory.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait PriceOracle: Send + Sync {
    /// The USD price of one whole unit of `asset`; `None` when unknown (never treated as zero).
    fn usd_price<'a>(&self, asset: PriceKey<'a>) -> Option<PriceQuote>;
}

/// Receives events after their transaction committed. Must not block.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait EventSink: Send + Sync {
    /// Delivers one committed event to the subscribers.
    fn publish(&self, event: &Event);
}

/// Label values are bounded enumerations (tier, status, route template): never ids, addresses or raw paths.
pub type Labels<'a> = &'a [(&'static str, &'a str)];

/// Metrics collection. Implementations update memory only.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait MetricsRegistry: Send + Sync {
    /// Exports the series at zero before anything is recorded: a counter at 0, a histogram with no observation
    /// (a gauge at 0), so a `rate()` or an alert over it works from the first scrape.
    fn register<'a>(&self, name: &'static str, kind: crate::metrics::MetricKind, labels: Labels<'a>);
    /// Adds `by` to the counter series `name{labels}`.
    fn increment_counter<'a>(&self, name: &'static str, labels: Labels<'a>, by: u64);
    /// Sets the gauge series `name{labels}` to `value`.
    fn set_gauge<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64);
    /// Records one observation of `value` (in the metric's unit, e.g. seconds) in the histogram `name{labels}`.
    fn observe_histogram<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64);
}

/// A registry that records nothing: metrics disabled (`[metrics] enabled = false`), or a host without one.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMetrics;

impl MetricsRegistry for NoMetrics {
    fn register<'a>(&self, _name: &'static str, _kind: crate::metrics::MetricKind, _labels: Labels<'a>) {}
    fn increment_counter<'a>(&self, _name: &'static str, _labels: Labels<'a>, _by: u64) {}
    fn set_gauge<'a>(&self, _name: &'static str, _labels: Labels<'a>, _value: f64) {}
    fn observe_histogram<'a>(&self, _name: &'static str, _labels: Labels<'a>, _value: f64) {}
}

/// One signed webhook POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The receiver's URL.
    pub url: String,
    /// Request headers, the signature headers included, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The JSON payload `{id, type, timestamp, data}` the signature covers.
    pub body: Vec<u8>,
}

/// What the receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookResponse {
    /// The receiver answered with an HTTP status.
    Status {
        /// The HTTP status code.
        code: u16,
        /// Milliseconds from sending to the answer.
        elapsed_ms: u64,
        /// The `Retry-After` header in seconds (delta-seconds, or an HTTP date made relative), when present.
        retry_after_seconds: Option<u64>,
    },
    /// No HTTP answer (DNS, connection, TLS, timeout).
    TransportError {
        /// Why there was no answer.
        message: String,
        /// Milliseconds from sending to the failure.
        elapsed_ms: u64,
    },
    /// Not sent: the host resolves to an address that may not be a webhook target
    /// ([`crate::webhooks::target::check_address`]).
    Refused {
        /// Which address and why.
        message: String,
    },
}

/// Delivers webhook POSTs (OPS-04). Implementations resolve the host once, check every address with
/// [`crate::webhooks::target::check_address`] and connect only to a checked one (no DNS rebinding window).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Sends one POST without following redirects.
    async fn send(&self, request: &WebhookRequest) -> WebhookResponse;
    /// The addresses `host` resolves to (an IP literal resolves to itself); an error says why there are none.
    async fn resolve(&self, host: &str, port: u16) -> std::result::Result<Vec<IpAddr>, String>;
}

/// A webhook's stored secret: its hash and its sealed copy ([`crate::webhooks::secret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// The secret sealed under the webhook key.
    pub sealed: Vec<u8>,
}

/// The sealed secrets a delivery is signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecrets {
    /// The current secret, sealed.
    pub current: Vec<u8>,
    /// The previous secret during a rotation's grace period, sealed, with the end of that period.
    pub previous: Option<(Vec<u8>, UnixSeconds)>,
}

/// Where a delivery stands after an attempt (the `status` of its log row and its filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The receiver took it.
    Success,
    /// This attempt failed; another is scheduled.
    Pending,
    /// Given up (a final answer, the retries used up, or the webhook disabled).
    Failed,
}

impl DeliveryStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Success => "success",
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Success, DeliveryStatus::Pending, DeliveryStatus::Failed].into_iter().find(|d| d.as_str() == s)
    }
}

/// One delivery attempt, as logged (`webhook_logs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// The log row's id (0 before it is stored).
    pub id: i64,
    /// The webhook.
    pub webhook_id: WebhookId,
    /// The audit row of the event delivered.
    pub audit_id: i64,
    /// The event's type.
    pub event_type: EventType,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The delivery's state after this attempt.
    pub status: DeliveryStatus,
    /// The HTTP status, when the receiver answered.
    pub status_code: Option<u16>,
    /// Milliseconds until the answer or the failure.
    pub response_time_ms: u64,
    /// Why it failed, when it did (never a secret).
    pub error: Option<String>,
    /// When the attempt was made.
    pub created_at: UnixSeconds,
}

/// What becomes of a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxNext {
    /// Done (delivered or given up).
    Finished,
    /// Try again at this Unix time in milliseconds (it waits in the retry queue; later events go meanwhile).
    RetryAt(u64),
    /// The webhook is disabled: it goes inactive and every pending delivery of it is dropped.
    Disable,
}

/// Where a due delivery comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverySource {
    /// The webhook's stream: the next event of the audit log it subscribes to, past the last one it handled.
    Stream,
    /// The retry queue: an event whose delivery failed and is tried again, or one queued again by a redelivery.
    Retry,
}

/// A delivery that is due: the event, where it goes and how it is signed.
#[derive(Clone, Debug, PartialEq)]
pub struct DueDelivery {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Its URL.
    pub url: String,
    /// The audit row of the event ([`crate::webhooks::delivery_id`]).
    pub audit_id: i64,
    /// The event as recorded.
    pub event: Event,
    /// Attempts made so far.
    pub attempts: u32,
    /// The secrets to sign with.
    pub secrets: SealedSecrets,
    /// Where it comes from (what settling it moves).
    pub source: DeliverySource,
}

/// One attempt to record: its log row, what becomes of the delivery, and the event it causes (the
/// `WEBHOOK_DISABLED` row of a disabling answer).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettlement {
    /// The attempt, as logged.
    pub attempt: WebhookAttempt,
    /// Where the delivery came from.
    pub source: DeliverySource,
    /// What becomes of it.
    pub next: OutboxNext,
    /// The event written with it, if it changes something.
    pub event: Option<Event>,
}

/// Filters of a webhook's delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookLogQuery {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// Only attempts that left their delivery in this state.
    pub status: Option<DeliveryStatus>,
    /// Keyset position: rows with a smaller id.
    pub before: Option<i64>,
    /// The most rows returned.
    pub limit: u32,
}

/// Webhooks, their delivery log and their deliveries. Nothing is queued when an event is written: each active
/// webhook reads the audit log past the last row it handled (its stream), and only deliveries to try again wait
/// in a retry queue. So an event commits with no delivery work in its transaction, and none is delivered for a
/// change that rolled back.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait WebhookRepo: Send + Sync {
    /// Stores a new webhook with its secret, and its event.
    async fn insert(&self, webhook: &Webhook, secret: &StoredSecret, event: &Event) -> Result<()>;
    /// The webhook with this id; `None` when there is none.
    async fn get(&self, id: WebhookId) -> Result<Option<Webhook>>;
    /// Webhooks newest first; `before` is the last id of the previous page.
    async fn list(&self, before: Option<WebhookId>, limit: u32) -> Result<Vec<Webhook>>;
    /// Replaces the stored webhook (url, events, active, description, updated_at); deactivating it drops its
    /// pending deliveries. `WEBHOOK_NOT_FOUND` when there is none.
    async fn update(&self, webhook: &Webhook, event: &Event) -> Result<()>;
    /// Deletes the webhook and its pending deliveries; its log stays. `WEBHOOK_NOT_FOUND` when there is none.
    async fn delete(&self, id: WebhookId, event: &Event) -> Result<()>;
    /// Replaces the secret; the old one stays usable for signing until `previous_until`.
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &StoredSecret,
        previous_until: UnixSeconds,
        event: &Event,
    ) -> Result<()>;
    /// Writes `event` (a `WEBHOOK_TEST`) whose delivery goes to this webhook only; returns its audit row id.
    async fn test(&self, id: WebhookId, event: &Event) -> Result<i64>;
    /// The sealed secrets in force at `now` (the previous one only before its grace period ends).
    async fn secrets(&self, id: WebhookId, now: UnixSeconds) -> Result<Option<SealedSecrets>>;
    /// The webhook's logged attempts matching `query`, newest first.
    async fn logs(&self, query: &WebhookLogQuery) -> Result<Vec<WebhookAttempt>>;
    /// Queues the event of audit row `audit_id` again for the webhook, due at `now_ms` (a new series of
    /// attempts). False when the webhook never had a delivery of that event.
    async fn redeliver(&self, id: WebhookId, audit_id: i64, now_ms: u64) -> Result<bool>;
    /// Due deliveries at `now_ms`, one run per active webhook not in `busy` (at most `webhooks` runs): its due
    /// retries and the next events of its stream, oldest first, at most `per_webhook` of them.
    async fn due(
        &self,
        now_ms: u64,
        busy: Vec<WebhookId>,
        webhooks: u32,
        per_webhook: u32,
    ) -> Result<Vec<Vec<DueDelivery>>>;
    /// When the next retry falls due (Unix milliseconds), if any is queued.
    async fn next_due(&self) -> Result<Option<u64>>;
    /// In one write transaction, for each settlement in order: logs the attempt, settles the delivery as `next`
    /// says (a stream's position moves past its event; a retry is queued, rescheduled or removed) and writes its
    /// `event` when it changed something. A disable is a compare-and-set: on a webhook already inactive (a
    /// second 410, an operator's change meanwhile) it writes no event. Returns, per settlement, whether its event
    /// was written.
    async fn settle(&self, settlements: &[WebhookSettlement]) -> Result<Vec<bool>>;
    /// Deliveries waiting: the events of every active webhook's stream not yet handled, and the retries.
    async fn queue_depth(&self) -> Result<u64>;
}

/// One archive in the backup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// File name (no directory), e.g. `waiaas-20260101T000000Z.waiaas-backup`.
    pub name: String,
    /// Where it is, for the operator (a path on the daemon's host).
    pub location: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// When the file was written.
    pub created_at: UnixSeconds,
}

/// What a new backup archive is asked to be: how it is sealed and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRequest {
    /// The key-derivation function sealing the archive.
    pub kdf: crate::backup::Kdf,
    /// An absolute directory for this archive instead of the store's own backup directory.
    pub output_dir: Option<std::path::PathBuf>,
}

impl BackupRequest {
    /// An archive sealed with `kdf` in the store's own backup directory.
    pub fn new(kdf: crate::backup::Kdf) -> Self {
        BackupRequest { kdf, output_dir: None }
    }
}

/// Where encrypted backup archives are made and kept (the format is [`crate::backup`]). The implementation
/// holds the master password the archives are sealed with.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Takes a consistent snapshot of the DB, the keystore and the config and seals it into a new archive.
    async fn create(&self, request: BackupRequest, now: UnixSeconds) -> Result<BackupInfo>;
    /// The archives in the backup directory, newest first.
    async fn list(&self) -> Result<Vec<BackupInfo>>;
    /// Deletes the oldest archives beyond `keep`; returns the deleted names.
    async fn prune(&self, keep: usize) -> Result<Vec<String>>;
}

/// Where a request came from, for the IP-aware parts of the core (rate limits, audit).
pub type PeerIp = Option<IpAddr>;

/// Test doubles of the simple ports, usable by any crate's tests.
#[cfg(any(test, feature = "mocks"))]
pub mod testing {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use super::*;

    /// A clock that stands still until advanced.
    #[derive(Debug, Default)]
    pub struct FixedClock(AtomicI64);

    impl FixedClock {
        /// A clock standing at `seconds` since the Unix epoch.
        pub fn at(seconds: i64) -> Self {
            FixedClock(AtomicI64::new(seconds))
        }
        /// Moves the clock forward by `seconds` (backward when negative).
        pub fn advance(&self, seconds: i64) {
            self.0.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    impl Clock for FixedClock {
        fn now(&self) -> UnixSeconds {
            UnixSeconds(self.0.load(Ordering::SeqCst))
        }
        fn now_millis(&self) -> u64 {
            u64::try_from(self.0.load(Ordering::SeqCst)).unwrap_or(0) * 1000
        }
    }

    /// Deterministic "randomness": a counter spread over the buffer.
    #[derive(Debug, Default)]
    pub struct CountingEntropy(AtomicU64);

    impl Entropy for CountingEntropy {
        fn fill(&self, dest: &mut [u8]) {
            let n = self.0.fetch_add(1, Ordering::SeqCst).to_le_bytes();
            for (i, byte) in dest.iter_mut().enumerate() {
                *byte = n[i % 8] ^ (i as u8);
            }
        }
    }

    /// Collects published events.
    #[derive(Debug, Default)]
    pub struct RecordingSink(pub Mutex<Vec<Event>>);

    impl EventSink for RecordingSink {
        fn publish(&self, event: &Event) {
            self.0.lock().expect("sink lock").push(event.clone());
        }
    }

    /// One recorded metric update: (name, sorted labels).
    pub type SeriesKey = (&'static str, Vec<(String, String)>);

    /// Records counters, the last gauge values and histogram observations, for assertions.
    #[derive(Debug, Default)]
    pub struct RecordingMetrics {
        /// Each counter series' total.
        pub counters: Mutex<std::collections::BTreeMap<SeriesKey, u64>>,
        /// Each gauge series' last value.
        pub gauges: Mutex<std::collections::BTreeMap<SeriesKey, f64>>,
        /// Each histogram series' observations, in order.
        pub histograms: Mutex<std::collections::BTreeMap<SeriesKey, Vec<f64>>>,
    }

    fn key(name: &'static str, labels: Labels<'_>) -> SeriesKey {
        let mut labels: Vec<_> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.sort();
        (name, labels)
    }

    impl RecordingMetrics {
        /// The counter's value for exactly these labels (any order).
        pub fn counter(&self, name: &'static str, labels: Labels<'_>) -> u64 {
            self.counters.lock().expect("metrics lock").get(&key(name, labels)).copied().unwrap_or(0)
        }
        /// The gauge's last value for exactly these labels (any order); `None` when never set or registered.
        pub fn gauge(&self, name: &'static str, labels: Labels<'_>) -> Option<f64> {
            self.gauges.lock().expect("metrics lock").get(&key(name, labels)).copied()
        }
        /// Whether the series was registered or recorded.
        pub fn has(&self, name: &'static str, labels: Labels<'_>) -> bool {
            let key = key(name, labels);
            self.counters.lock().expect("metrics lock").contains_key(&key)
                || self.gauges.lock().expect("metrics lock").contains_key(&key)
                || self.histograms.lock().expect("metrics lock").contains_key(&key)
        }
        /// The histogram's observations for exactly these labels (any order), in order.
        pub fn observations(&self, name: &'static str, labels: Labels<'_>) -> Vec<f64> {
            self.histograms.lock().expect("metrics lock").get(&key(name, labels)).cloned().unwrap_or_default()
        }
        /// Whether anything at all was recorded.
        pub fn is_empty(&self) -> bool {
            self.counters.lock().expect("metrics lock").is_empty()
                && self.gauges.lock().expect("metrics lock").is_empty()
                && self.histograms.lock().expect("metrics lock").is_empty()
        }
    }

    impl MetricsRegistry for RecordingMetrics {
        fn register<'a>(&self, name: &'static str, kind: crate::metrics::MetricKind, labels: Labels<'a>) {
            use crate::metrics::MetricKind;
            let key = key(name, labels);
            match kind {
                MetricKind::Counter => drop(self.counters.lock().expect("metrics lock").entry(key).or_default()),
                MetricKind::Gauge => drop(self.gauges.lock().expect("metrics lock").entry(key).or_default()),
                MetricKind::Histogram => drop(self.histograms.lock().expect("metrics lock").entry(key).or_default()),
            }
        }
        fn increment_counter<'a>(&self, name: &'static str, labels: Labels<'a>, by: u64) {
            *self.counters.lock().expect("metrics lock").entry(key(name, labels)).or_default() += by;
        }
        fn set_gauge<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64) {
            self.gauges.lock().expect("metrics lock").insert(key(name, labels), value);
        }
        fn observe_histogram<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64) {
            self.histograms.lock().expect("metrics lock").entry(key(name, labels)).or_default().push(value);
        }
    }
}
