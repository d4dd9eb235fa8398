//! Ports: the traits through which the core reaches the outside world. Adapters implement them; the core only
//! calls them. Every state-changing repository method takes the [`Event`] that records the change and must write
//! it as an audit row in the same DB transaction (all or nothing).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::domain::decision::Decision;
use crate::domain::{Agent, AgentStatus, Asset, EvmAddress, KillSwitch, Policy, Session, Tier, TxKind, TxStatus};
use crate::event::{Event, EventType, Severity};
use crate::{AgentId, Amount, PolicyId, Result, SessionId, TxId, UnixSeconds};

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

pub use crate::system::{Clock, Entropy};
#[cfg(any(test, feature = "mocks"))]
pub use crate::system::{MockClock, MockEntropy};

/// One page of a keyset-paginated list, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
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

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AgentRepo: Send + Sync {
    async fn insert(&self, agent: &Agent, event: &Event) -> Result<()>;
    async fn get(&self, id: AgentId) -> Result<Option<Agent>>;
    /// Agents newest first; `before` is the last id of the previous page.
    async fn list(&self, before: Option<AgentId>, limit: u32) -> Result<Vec<Agent>>;
    /// Compare-and-set of the status, in one write transaction: moves the agent from `from` to `to` only if it is
    /// still in `from`, else writes nothing and returns `None` (a resume racing a terminate never revives it);
    /// `AGENT_NOT_FOUND` when there is no such agent. Leaving ACTIVE (suspend, terminate) cancels every transaction
    /// of the agent not yet signed (PENDING, QUEUED, EXECUTING) and releases what they reserved; terminating also
    /// revokes the agent's sessions. Moving to ACTIVE is refused with `SYSTEM_LOCKED` while the stored kill switch
    /// is tripped. `events` builds the audit events from those effects (the status event, then one `TX_CANCELLED`
    /// per cancelled transaction), written in the same transaction and returned as written.
    async fn set_status(
        &self,
        id: AgentId,
        from: AgentStatus,
        to: AgentStatus,
        now: UnixSeconds,
        events: EventsFromStatusEffects,
    ) -> Result<Option<(StatusEffects, Vec<Event>)>>;
    async fn set_owner(&self, id: AgentId, owner: Option<EvmAddress>, now: UnixSeconds, event: &Event) -> Result<()>;
    async fn count_by_status(&self, status: AgentStatus) -> Result<u64>;
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SessionRepo: Send + Sync {
    async fn insert(&self, session: &Session, event: &Event) -> Result<()>;
    async fn get(&self, id: SessionId) -> Result<Option<Session>>;
    /// Sessions newest first, optionally of one agent.
    async fn list(&self, agent_id: Option<AgentId>, before: Option<SessionId>, limit: u32) -> Result<Vec<Session>>;
    async fn revoke(&self, id: SessionId, now: UnixSeconds, event: &Event) -> Result<()>;
    /// Replaces the token hash and expiry (the old token stops working) and counts the renewal.
    async fn renew(&self, id: SessionId, token_hash: &str, expires_at: UnixSeconds, event: &Event) -> Result<()>;
    async fn count_active(&self, now: UnixSeconds) -> Result<u64>;
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait PolicyRepo: Send + Sync {
    async fn insert(&self, policy: &Policy, event: &Event) -> Result<()>;
    async fn get(&self, id: PolicyId) -> Result<Option<Policy>>;
    /// Policies newest first; `agent_id` filters to that agent's own policies.
    async fn list(&self, agent_id: Option<AgentId>, before: Option<PolicyId>, limit: u32) -> Result<Vec<Policy>>;
    async fn update(&self, policy: &Policy, event: &Event) -> Result<()>;
    async fn delete(&self, id: PolicyId, event: &Event) -> Result<()>;
    /// Enabled policies that apply to `agent`: the global ones and its own.
    async fn in_force(&self, agent: AgentId) -> Result<Vec<Policy>>;
}

/// Key-value settings that belong to the daemon's database (master password hash, token signing key, ...).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SettingsRepo: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>>;
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

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KillSwitchRepo: Send + Sync {
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
    pub agent_id: Option<AgentId>,
    pub event_types: Vec<EventType>,
    pub severity: Option<Severity>,
    pub tx_id: Option<TxId>,
    pub actor: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    pub from: Option<UnixSeconds>,
    /// Inclusive upper bound, Unix seconds.
    pub to: Option<UnixSeconds>,
    /// Keyset position: rows strictly older than `(created_at, id)`.
    pub before: Option<(UnixSeconds, i64)>,
    pub limit: u32,
}

/// A stored audit row.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: Event,
    pub prev_hash: String,
    pub hash: String,
}

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
    pub agent_id: Option<AgentId>,
    /// Inclusive bounds, Unix seconds.
    pub from: UnixSeconds,
    pub to: UnixSeconds,
    /// Width of a time bucket in seconds (3600 or 86400).
    pub bucket_seconds: i64,
}

/// Audit row counts; every list is sorted by its key (agents: rows without an agent first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    pub total: u64,
    pub by_event_type: Vec<(EventType, u64)>,
    pub by_severity: Vec<(Severity, u64)>,
    pub by_agent: Vec<(Option<AgentId>, u64)>,
    /// `(bucket start, count)`, only buckets with rows.
    pub series: Vec<(UnixSeconds, u64)>,
}

/// Agent key storage: one encrypted file per agent. Private keys never leave the adapter in plaintext.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Generates a secp256k1 key for `agent`, stores it encrypted, and returns its address.
    async fn create_key(&self, agent: AgentId) -> Result<EvmAddress>;
    /// The address of the stored key (decrypts nothing).
    async fn address(&self, agent: AgentId) -> Result<EvmAddress>;
    /// Signs a 32-byte digest with the agent's key: 65 bytes `r || s || v` (v = 0 or 1).
    async fn sign_digest(&self, agent: AgentId, digest: [u8; 32]) -> Result<[u8; 65]>;
}

/// The outcome of executing a request against the chain's current state without sending it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationOutcome {
    pub success: bool,
    /// The revert reason (decoded `Error(string)` when possible) or the node's message.
    pub error: Option<String>,
    pub gas_used: Option<u64>,
}

/// A network's native coin (ETH on Ethereum and most L2s, POL on Polygon, ...), as the chain adapter knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeAsset {
    pub symbol: String,
    pub decimals: u8,
}

/// An ERC-20 token's metadata read from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMetadata {
    pub decimals: u8,
    /// `None` when `symbol()` is missing or not a string (some old tokens return bytes32).
    pub symbol: Option<String>,
}

/// An unsigned transaction built for one agent, with everything needed to sign it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedTx {
    pub network: String,
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_limit: u64,
    /// The latest block's base fee (what a transaction pays now, besides the priority fee).
    pub base_fee_per_gas: u128,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    /// Adapter-specific encoding of the unsigned transaction (RLP for EVM).
    pub unsigned: Vec<u8>,
    /// The digest the key signs.
    pub digest: [u8; 32],
    pub simulation: SimulationOutcome,
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
    pub raw: Vec<u8>,
    /// `0x`-prefixed transaction hash.
    pub hash: String,
}

/// What the chain says about a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOnChain {
    /// Not in a block (yet); `known` is false when the node has never seen it.
    Pending {
        known: bool,
    },
    Included {
        success: bool,
        gas_used: u64,
        block_number: u64,
    },
}

/// Reads from a chain and builds transactions. It cannot send anything: broadcasting is [`TxBroadcaster`], a
/// separate port that the simulate path is never given.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait ChainAdapter: Send + Sync {
    /// The names of the configured networks.
    fn networks(&self) -> Vec<String>;
    async fn native_balance(&self, network: &str, address: EvmAddress) -> Result<Amount>;
    /// The network's native coin: symbol and decimals, which the adapter knows per network (never assumed by the
    /// core).
    async fn native_asset(&self, network: &str) -> Result<NativeAsset>;
    async fn token_balance(&self, network: &str, token: EvmAddress, owner: EvmAddress) -> Result<Amount>;
    /// An ERC-20's `decimals()` and `symbol()` as the chain answers them; `None` when `token` does not answer as an
    /// ERC-20 (no code, or `decimals()` reverts or returns something else). Transport failures are errors.
    async fn token_metadata(&self, network: &str, token: EvmAddress) -> Result<Option<TokenMetadata>>;
    /// Builds the unsigned transaction for `kind` from `from` (nonce, gas, EIP-1559 fees) and simulates it from
    /// `from` at the latest block. A revert is reported in `simulation`, not as an error.
    async fn prepare(&self, network: &str, from: EvmAddress, kind: &TxKind) -> Result<PreparedTx>;
    /// Combines a prepared transaction with its signature.
    fn attach_signature(&self, prepared: &PreparedTx, signature: [u8; 65]) -> Result<SignedTx>;
    async fn status(&self, network: &str, hash: &str) -> Result<TxOnChain>;
    /// The account's nonce at the latest block: how many of its transactions are included (pending ones not
    /// counted). A signed transaction whose nonce is below it and that has no receipt can never be included.
    async fn account_nonce(&self, network: &str, address: EvmAddress) -> Result<u64>;
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
    async fn broadcast(&self, network: &str, signed: &SignedTx) -> Result<Broadcast>;
}

/// A stored transaction request and its progress.
#[derive(Clone, Debug, PartialEq)]
pub struct TxRecord {
    pub id: TxId,
    pub agent_id: AgentId,
    pub session_id: Option<SessionId>,
    pub network: String,
    pub kind: TxKind,
    pub status: TxStatus,
    /// None for a denied request.
    pub tier: Option<Tier>,
    /// Amounts held against the agent's limits while the row is not final.
    pub reserved: Vec<(Asset, Amount)>,
    pub usd_value: Option<f64>,
    /// DELAY: not before this time.
    pub execute_after: Option<UnixSeconds>,
    /// APPROVAL: expires after this time unless approved.
    pub approval_deadline: Option<UnixSeconds>,
    pub approved_at: Option<UnixSeconds>,
    /// Structured denial reason of a denied request.
    pub reason_code: Option<String>,
    pub tx_hash: Option<String>,
    /// The signed transaction, kept from signing until final so it can be re-broadcast.
    pub raw_tx: Option<Vec<u8>>,
    /// The account nonce it was signed with (unknown for rows signed before the daemon stored it).
    pub nonce: Option<u64>,
    pub error: Option<String>,
    pub attempts: u32,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

/// One recent request of the agent, for RATE_LIMIT and daily USD limits.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentTx {
    pub created_at: UnixSeconds,
    pub status: TxStatus,
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
}

/// What an admission's decision step produced: the row to insert, its events, and the decision itself (which
/// the caller answers with).
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    pub record: TxRecord,
    pub events: Vec<Event>,
    pub decision: Decision,
}

/// The pure decision step run inside the admission transaction: from the snapshot to the row, its events and the
/// decision.
pub type Decide = Box<dyn FnOnce(&AdmissionSnapshot) -> Admission + Send>;

/// Changes applied to a row together with a status move (None leaves a field as it is).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TxUpdate {
    pub tx_hash: Option<String>,
    pub raw_tx: Option<Vec<u8>>,
    /// The account nonce of the signature (with `tx_hash` and `raw_tx`).
    pub nonce: Option<u64>,
    pub error: Option<String>,
    pub approved_at: Option<UnixSeconds>,
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
    KillSwitchTripped,
    /// The agent is not ACTIVE (or no longer exists).
    AgentNotActive,
    /// The row left EXECUTING meanwhile (cancelled by the operator, the kill switch, a suspension, ...).
    NotExecuting,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait TxRepo: Send + Sync {
    /// In one write transaction: reads the agent's snapshot at `now` (its policies in force, its reserved totals
    /// and the requests those policies need, [`crate::policy_engine::history_since`]), calls `decide`, inserts the
    /// row and writes its events as audit rows. Two concurrent admissions never see each other half-done.
    async fn admit(&self, agent: AgentId, now: UnixSeconds, decide: Decide) -> Result<Admission>;
    /// The same snapshot, read-only (simulate).
    async fn snapshot(&self, agent: AgentId, now: UnixSeconds) -> Result<AdmissionSnapshot>;
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

/// A USD price for an asset and when it was observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceQuote {
    pub usd: f64,
    pub observed_at: UnixSeconds,
}

/// What a price is asked for: a native coin by its symbol (the same coin on every network that uses it), an
/// ERC-20 by its network and contract address — never by a symbol or decimals an agent wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceKey<'a> {
    Native { symbol: &'a str },
    Token { network: &'a str, address: EvmAddress },
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait PriceOracle: Send + Sync {
    /// The USD price of one whole unit of `asset`; `None` when unknown (never treated as zero).
    fn usd_price<'a>(&self, asset: PriceKey<'a>) -> Option<PriceQuote>;
}

/// Receives events after their transaction committed. Must not block.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait EventSink: Send + Sync {
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
    fn increment_counter<'a>(&self, name: &'static str, labels: Labels<'a>, by: u64);
    fn set_gauge<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64);
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
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the receiver answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookResponse {
    Status { code: u16, elapsed_ms: u64 },
    TransportError { message: String, elapsed_ms: u64 },
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Sends one POST without following redirects.
    async fn send(&self, request: &WebhookRequest) -> WebhookResponse;
}

/// One archive in the backup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// File name (no directory), e.g. `waiaas-20260101T000000Z.waiaas-backup`.
    pub name: String,
    /// Where it is, for the operator (a path on the daemon's host).
    pub location: String,
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
        pub fn at(seconds: i64) -> Self {
            FixedClock(AtomicI64::new(seconds))
        }
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
        pub counters: Mutex<std::collections::BTreeMap<SeriesKey, u64>>,
        pub gauges: Mutex<std::collections::BTreeMap<SeriesKey, f64>>,
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
