//! The in-process event model. Every state change produces one [`Event`]: the repository that applies the change
//! writes it as an audit row in the same DB transaction, and after commit it is published to the
//! [`crate::ports::EventSink`] (webhooks, metrics, anomaly rules); the notifier reads the audit rows themselves.

use std::net::IpAddr;

use crate::domain::Address;
use crate::{AgentId, SessionId, TxId, UnixSeconds};

macro_rules! event_types {
    ($($variant:ident => $wire:literal, $severity:ident;)*) => {
        /// Every event type the daemon emits (SPEC §3). The wire form is SCREAMING_SNAKE_CASE.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum EventType { $(#[doc = concat!("`", $wire, "` (", stringify!($severity), ").")] $variant),* }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The wire and audit-row name (`TX_CONFIRMED`).
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $wire),* }
            }

            /// The severity an event of this type is recorded with.
            pub fn severity(self) -> Severity {
                match self { $(EventType::$variant => Severity::$severity),* }
            }
        }
    };
}

event_types! {
    TxRequested => "TX_REQUESTED", Info;
    TxQueued => "TX_QUEUED", Info;
    TxSubmitted => "TX_SUBMITTED", Info;
    TxConfirmed => "TX_CONFIRMED", Info;
    TxFailed => "TX_FAILED", Warning;
    TxCancelled => "TX_CANCELLED", Info;
    TxApprovalRequired => "TX_APPROVAL_REQUIRED", Warning;
    TxApproved => "TX_APPROVED", Info;
    TxRejected => "TX_REJECTED", Warning;
    TxExpired => "TX_EXPIRED", Warning;
    PolicyDenied => "POLICY_DENIED", Warning;
    SessionCreated => "SESSION_CREATED", Info;
    SessionRenewed => "SESSION_RENEWED", Info;
    SessionRevoked => "SESSION_REVOKED", Info;
    AgentCreated => "AGENT_CREATED", Info;
    AgentSuspended => "AGENT_SUSPENDED", Warning;
    AgentResumed => "AGENT_RESUMED", Info;
    AgentTerminated => "AGENT_TERMINATED", Warning;
    OwnerSet => "OWNER_SET", Info;
    KillSwitchActivated => "KILL_SWITCH_ACTIVATED", Critical;
    KillSwitchRecovered => "KILL_SWITCH_RECOVERED", Warning;
    MasterAuthFailed => "MASTER_AUTH_FAILED", Warning;
    AccessDeniedIp => "ACCESS_DENIED_IP", Warning;
    AnomalyDetected => "ANOMALY_DETECTED", Warning;
    AnomalyCleared => "ANOMALY_CLEARED", Info;
    BackupCreated => "BACKUP_CREATED", Info;
    BackupFailed => "BACKUP_FAILED", Warning;
    WebhookCreated => "WEBHOOK_CREATED", Info;
    WebhookDeleted => "WEBHOOK_DELETED", Info;
    WebhookUpdated => "WEBHOOK_UPDATED", Info;
    WebhookDisabled => "WEBHOOK_DISABLED", Warning;
    WebhookSecretRotated => "WEBHOOK_SECRET_ROTATED", Info;
    WebhookTest => "WEBHOOK_TEST", Info;
    PolicyCreated => "POLICY_CREATED", Info;
    PolicyUpdated => "POLICY_UPDATED", Info;
    PolicyDeleted => "POLICY_DELETED", Info;
    AuditHeadSealed => "AUDIT_HEAD_SEALED", Warning;
    NotificationFailed => "NOTIFICATION_FAILED", Warning;
}

impl EventType {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
/// How serious an event is (the audit row's severity).
pub enum Severity {
    /// Routine.
    Info,
    /// Worth an operator's attention.
    Warning,
    /// Needs an operator now.
    Critical,
}

impl Severity {
    /// The wire name (`info`, `warning`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical].into_iter().find(|v| v.as_str() == s)
    }
}

/// Who caused an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Actor {
    /// The operator, authenticated with the master password.
    Master,
    /// An agent, through one of its sessions.
    Session(SessionId),
    /// The agent's owner, by signature.
    Owner(Address),
    /// The daemon itself (workers, schedulers).
    System,
    /// A caller that failed to authenticate.
    Anonymous,
}

impl Actor {
    /// The stored form: `master`, `session:<id>`, `owner:<address>`, `system`, `anonymous`.
    pub fn to_wire(&self) -> String {
        match self {
            Actor::Master => "master".to_owned(),
            Actor::Session(id) => format!("session:{id}"),
            Actor::Owner(address) => format!("owner:{address}"),
            Actor::System => "system".to_owned(),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }
}

/// Who is asking, and from where (the socket peer, never a spoofable header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// Who acts.
    pub actor: Actor,
    /// The peer's IP address, when the request came over the network.
    pub ip: Option<IpAddr>,
}

impl RequestContext {
    /// The daemon itself (the worker, the scheduler).
    pub fn system() -> Self {
        RequestContext { actor: Actor::System, ip: None }
    }

    /// The operator, with the master password.
    pub fn master(ip: Option<IpAddr>) -> Self {
        RequestContext { actor: Actor::Master, ip }
    }

    /// The session acting, if the actor is one.
    pub fn session_id(&self) -> Option<SessionId> {
        match self.actor {
            Actor::Session(id) => Some(id),
            _ => None,
        }
    }
}

/// One event: the content of its audit row and of every downstream delivery.
/// `details` is structured and never holds a secret, token, password or key.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub event_type: EventType,
    /// When.
    pub created_at: UnixSeconds,
    /// The agent concerned, if any.
    pub agent_id: Option<AgentId>,
    /// The session concerned, if any.
    pub session_id: Option<SessionId>,
    /// The transaction concerned, if any.
    pub tx_id: Option<TxId>,
    /// Who acted.
    pub actor: Actor,
    /// The event type's severity.
    pub severity: Severity,
    /// Type-specific details (never a secret).
    pub details: serde_json::Value,
    /// The peer's IP address, if any.
    pub ip_address: Option<IpAddr>,
}

impl Event {
    /// An event of `event_type` caused by `ctx` at `now`, with the type's default severity.
    pub fn new(event_type: EventType, ctx: &RequestContext, now: UnixSeconds) -> Self {
        Event {
            event_type,
            created_at: now,
            agent_id: None,
            session_id: ctx.session_id(),
            tx_id: None,
            actor: ctx.actor.clone(),
            severity: event_type.severity(),
            details: serde_json::Value::Object(Default::default()),
            ip_address: ctx.ip,
        }
    }

    /// Names the agent concerned.
    pub fn agent(mut self, agent_id: AgentId) -> Self {
        self.agent_id = Some(agent_id);
        self
    }

    /// Names the session concerned.
    pub fn session(mut self, session_id: SessionId) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// Names the transaction concerned.
    pub fn tx(mut self, tx_id: TxId) -> Self {
        self.tx_id = Some(tx_id);
        self
    }

    /// Sets the details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(seen.insert(t.as_str()), "duplicate {}", t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("NOPE"), None);
    }
}
