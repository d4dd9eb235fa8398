//! Ports: the traits through which the core reaches the outside world. Adapters implement them; the core only
//! calls them. Every state-changing repository method takes the [`Event`] that records the change and must write
//! it as an audit row in the same DB transaction (all or nothing).

use std::net::IpAddr;

use async_trait::async_trait;

use crate::domain::{Agent, AgentStatus, EvmAddress, KillSwitch, Policy, Session};
use crate::event::{Event, EventType, Severity};
use crate::{AgentId, Amount, PolicyId, Result, SessionId, TxId, UnixSeconds};

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

/// Wall-clock time. The only source of "now" in the core.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixSeconds;
    /// Milliseconds since the epoch (for UUID v7 ordering within a second).
    fn now_millis(&self) -> u64;
}

/// Cryptographically secure randomness.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Entropy: Send + Sync {
    fn fill(&self, dest: &mut [u8]);
}

/// One page of a keyset-paginated list, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow; pass it back unchanged to get them.
    pub next_cursor: Option<String>,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AgentRepo: Send + Sync {
    async fn insert(&self, agent: &Agent, event: &Event) -> Result<()>;
    async fn get(&self, id: AgentId) -> Result<Option<Agent>>;
    /// Agents newest first; `before` is the last id of the previous page.
    async fn list(&self, before: Option<AgentId>, limit: u32) -> Result<Vec<Agent>>;
    /// Sets the status. Terminating also revokes the agent's sessions, in the same transaction.
    async fn set_status(&self, id: AgentId, status: AgentStatus, now: UnixSeconds, event: &Event) -> Result<()>;
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
}

/// Key-value settings that belong to the daemon's database (master password hash, token signing key, ...).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SettingsRepo: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>>;
    async fn put(&self, key: &str, value: &str) -> Result<()>;
}

/// What a kill-switch activation did, for the response and the event.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ActivationEffects {
    pub sessions_revoked: u64,
    pub agents_suspended: u64,
    pub transactions_cancelled: u64,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KillSwitchRepo: Send + Sync {
    async fn get(&self) -> Result<KillSwitch>;
    /// Stores the new state and, in the same transaction, revokes every active session, suspends every active
    /// agent and cancels every transaction not yet signed. Returns what it did.
    async fn activate(&self, new: &KillSwitch, event: &Event) -> Result<ActivationEffects>;
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
}

/// Agent key storage: one encrypted file per agent. Private keys never leave the adapter in plaintext.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Generates a secp256k1 key for `agent`, stores it encrypted, and returns its address.
    async fn create_key(&self, agent: AgentId) -> Result<EvmAddress>;
    /// The address of the stored key (decrypts nothing).
    async fn address(&self, agent: AgentId) -> Result<EvmAddress>;
}

/// Reads from a chain. Signing and broadcasting arrive with the transaction pipeline.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait ChainAdapter: Send + Sync {
    /// The names of the configured networks.
    fn networks(&self) -> Vec<String>;
    async fn native_balance(&self, network: &str, address: EvmAddress) -> Result<Amount>;
}

/// A USD price for an asset and when it was observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriceQuote {
    pub usd: f64,
    pub observed_at: UnixSeconds,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait PriceOracle: Send + Sync {
    /// The USD price of one whole unit of `symbol`; `None` when unknown (never treated as zero).
    fn usd_price(&self, symbol: &str) -> Option<PriceQuote>;
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
    fn increment_counter<'a>(&self, name: &'static str, labels: Labels<'a>, by: u64);
    fn set_gauge<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64);
    fn observe_histogram<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64);
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

/// A file to place in, or read from, a backup archive (path relative to the data dir).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupEntry {
    pub relative_path: String,
    pub size: u64,
}

#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Takes a consistent snapshot of the data dir's contents into a staging area and lists it.
    async fn snapshot(&self) -> Result<Vec<BackupEntry>>;
    /// Lists the archives in the backup directory, newest first.
    async fn list_archives(&self) -> Result<Vec<String>>;
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
}
