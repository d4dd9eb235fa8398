//! Services: the daemon's use cases over the ports. The REST server, the CLI and any embedding host call these;
//! every state change goes through a repository together with its [`crate::event::Event`] and is published to
//! the event sink after commit.

pub mod access;
mod agents;
pub mod anomaly;
mod audit_query;
pub mod backup;
pub mod cursor;
mod kill_switch;
pub mod master_auth;
mod metrics;
mod notifications;
pub mod owner;
mod policies;
mod sessions;
pub mod simulate;
pub mod transactions;
mod webhooks;

use std::sync::{Arc, RwLock};

pub use audit_query::{AuditLogFilter, StatsBucket};
pub use kill_switch::KillSwitchView;
pub use notifications::{NotificationHub, NotificationSettings, RoundResult, TestOutcome};
pub use sessions::{IssuedSession, SessionPrincipal};
pub use webhooks::{USER_AGENT, WebhookHub, WebhookPatch, WebhookSettings};

use crate::domain::KillSwitch;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::ports::{
    AgentRepo, AuditRepo, ChainAdapter, Clock, Entropy, EventSink, KeyStore, KillSwitchRepo, MetricsRegistry,
    PolicyRepo, PriceOracle, SessionRepo, SettingsRepo, TxBroadcaster, TxRepo,
};
use master_auth::MasterAuth;

/// The ports the services run over.
#[derive(Clone)]
pub struct Ports {
    /// Time; every timestamp and deadline comes from here.
    pub clock: Arc<dyn Clock>,
    /// Randomness for ids, keys and nonces.
    pub entropy: Arc<dyn Entropy>,
    /// Agents (rows and their audit rows).
    pub agents: Arc<dyn AgentRepo>,
    /// Sessions.
    pub sessions: Arc<dyn SessionRepo>,
    /// Policies.
    pub policies: Arc<dyn PolicyRepo>,
    /// Settings: the master password hash, signing key, audit head salt, last backup time.
    pub settings: Arc<dyn SettingsRepo>,
    /// The persisted kill switch.
    pub kill_switch: Arc<dyn KillSwitchRepo>,
    /// The audit log (appends and queries).
    pub audit: Arc<dyn AuditRepo>,
    /// Agent keys: creation and signing.
    pub keystore: Arc<dyn KeyStore>,
    /// Chain reads: balances, metadata, transaction preparation and receipts.
    pub chain: Arc<dyn ChainAdapter>,
    /// Sending signed transactions (only the execute stage holds it).
    pub broadcaster: Arc<dyn TxBroadcaster>,
    /// Transaction rows: admission, work, status changes.
    pub transactions: Arc<dyn TxRepo>,
    /// USD prices for policy thresholds and valuation.
    pub prices: Arc<dyn PriceOracle>,
    /// Where events go after commit.
    pub events: Arc<dyn EventSink>,
    /// Where the services record metrics (in memory; see [`crate::metrics`]).
    pub metrics: Arc<dyn MetricsRegistry>,
}

/// Tunables of the core services (from the `[security]` config section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// TTL of a session when the request names none, and of each renewal.
    pub session_ttl_seconds: u64,
    /// Longest TTL a session may be issued with.
    pub session_max_ttl_seconds: u64,
    /// A session can be renewed until this long after its creation.
    pub session_absolute_lifetime_seconds: u64,
    /// Failed master-password attempts allowed per client address within the window.
    pub master_auth_max_failures: u32,
    /// The window of that limit, in seconds.
    pub master_auth_window_seconds: u64,
    /// What holds when no policy of a type is in force (`[policy]`).
    pub policy_defaults: crate::policy_engine::PolicyDefaults,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            session_ttl_seconds: 86_400,
            session_max_ttl_seconds: 30 * 86_400,
            session_absolute_lifetime_seconds: 30 * 86_400,
            master_auth_max_failures: 5,
            master_auth_window_seconds: 60,
            policy_defaults: crate::policy_engine::PolicyDefaults::default(),
        }
    }
}

/// The daemon's core: services over ports, plus the little state kept in memory (the unlocked master password
/// digest, the token signing key, the cached kill-switch state).
pub struct Waiaas {
    ports: Ports,
    config: CoreConfig,
    master: MasterAuth,
    token_key: sessions::TokenKey,
    kill_switch: RwLock<KillSwitch>,
    nonces: owner::NonceBook,
    /// OPS-07: limits of the `ACCESS_DENIED_IP` rows.
    denials: access::AccessDenials,
    /// Each network's native coin, from the chain adapter.
    native_cache: RwLock<std::collections::HashMap<String, crate::ports::NativeAsset>>,
    /// ERC-20 metadata read from the chain, per (network, token).
    token_cache: RwLock<std::collections::HashMap<(String, crate::domain::Address), crate::ports::TokenMetadata>>,
    /// Attached by the host after unlock (OPS-03); absent in hosts without backups.
    backups: std::sync::OnceLock<Arc<dyn crate::ports::BackupStore>>,
    /// Attached by the host after unlock (OPS-04); absent in hosts without webhooks.
    webhooks: std::sync::OnceLock<Arc<webhooks::WebhookHub>>,
    /// Attached by the host after unlock (OPS-06); absent in hosts without anomaly detection.
    anomalies: std::sync::OnceLock<Arc<dyn crate::ports::AnomalyRepo>>,
    /// Attached by the host after unlock; absent in hosts without notifications for people.
    notifications: std::sync::OnceLock<Arc<notifications::Notifier>>,
}

impl Waiaas {
    /// Unlocks the core with the master password: on a fresh database the password's Argon2id hash is stored;
    /// otherwise the password must match it. Wrong password → `INVALID_MASTER_PASSWORD`.
    pub async fn unlock(ports: Ports, config: CoreConfig, master_password: &str) -> Result<Waiaas> {
        let master =
            MasterAuth::unlock(master_password, ports.settings.as_ref(), ports.entropy.as_ref(), &config).await?;
        let token_key = sessions::TokenKey::load_or_create(ports.settings.as_ref(), ports.entropy.as_ref()).await?;
        let kill_switch = RwLock::new(ports.kill_switch.get().await?);
        let entropy = Arc::clone(&ports.entropy);
        let core = Waiaas {
            ports,
            config,
            master,
            token_key,
            kill_switch,
            nonces: owner::NonceBook::new(entropy.as_ref()),
            denials: access::AccessDenials::new(),
            token_cache: RwLock::default(),
            native_cache: RwLock::default(),
            backups: std::sync::OnceLock::new(),
            webhooks: std::sync::OnceLock::new(),
            anomalies: std::sync::OnceLock::new(),
            notifications: std::sync::OnceLock::new(),
        };
        core.init_metrics().await?;
        Ok(core)
    }

    /// The ports the core runs over.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configuration it was unlocked with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The core's clock reading.
    pub fn now(&self) -> crate::UnixSeconds {
        self.ports.clock.now()
    }

    fn publish(&self, event: &Event) {
        self.ports.events.publish(event);
    }

    fn kill_switch_state(&self) -> KillSwitch {
        self.kill_switch.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Refuses work that would widen what agents can do while the kill switch is tripped.
    fn ensure_not_locked(&self) -> Result<()> {
        if self.kill_switch_state().state.is_tripped() {
            return Err(Error::new(ErrorCode::SystemLocked, "the kill switch is active"));
        }
        Ok(())
    }
}

/// The smallest page size a list accepts.
pub const MIN_PAGE_LIMIT: u32 = 1;
/// The largest page size a list accepts.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// Page size rules shared by every list: default 50, [`MIN_PAGE_LIMIT`]..=[`MAX_PAGE_LIMIT`].
pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(50),
        Some(n @ MIN_PAGE_LIMIT..=MAX_PAGE_LIMIT) => Ok(n),
        Some(_) => Err(Error::invalid_field("limit", format!("must be between {MIN_PAGE_LIMIT} and {MAX_PAGE_LIMIT}"))),
    }
}

#[cfg(test)]
mod tests;
