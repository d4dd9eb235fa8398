//! Test fixtures: a real database file in a temporary directory, a fixed clock and counting entropy for ids,
//! entity builders, and audit-table probes.

use tempfile::TempDir;
use waiaas_core::domain::{
    Address, Agent, AgentStatus, Chain, Policy, PolicyRules, PolicyType, Session, TxKind, TxStatus,
};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::policy_engine::Tier;
use waiaas_core::ports::testing::{CountingEntropy, FixedClock};
use waiaas_core::ports::{
    ActivationEffects, AgentRepo, Clock, EventFromEffects, EventsFromStatusEffects, SessionRepo, StatusEffects,
    TxRecord, TxRepo,
};
use waiaas_core::{AgentId, Amount, PolicyId, Result, SessionId, TxId, UnixSeconds};

use crate::Database;

/// A database file in its own temporary directory (removed on drop).
pub(crate) struct TestDb {
    pub(crate) dir: TempDir,
    pub(crate) db: Database,
    pub(crate) clock: FixedClock,
    pub(crate) entropy: CountingEntropy,
}

/// A distinct, valid EVM address per `n`.
pub(crate) fn address(n: u64) -> Address {
    Address::Evm(format!("0x{n:040x}").parse().expect("valid address"))
}

/// A distinct owner address per `n` (the agents of these tests are EVM agents, so are their owners).
pub(crate) fn owner_address(n: u64) -> Address {
    address(n)
}

impl TestDb {
    pub(crate) async fn new() -> TestDb {
        let dir = TempDir::new().expect("temp dir");
        let db = Database::open(&dir.path().join("waiaas.db")).await.expect("open database");
        TestDb { dir, db, clock: FixedClock::at(1_700_000_000), entropy: CountingEntropy::default() }
    }

    /// Moves the clock one second on, so ids generated one after the other sort in creation order.
    fn tick(&self) {
        self.clock.advance(1);
    }

    pub(crate) fn agent(&self) -> Agent {
        self.tick();
        let id = AgentId::generate(&self.clock, &self.entropy);
        let now = self.clock.now();
        Agent {
            id,
            name: format!("agent {id}"),
            chain: Chain::Ethereum,
            network: "anvil".into(),
            address: address(u64::try_from(now.0).unwrap_or(0)),
            status: AgentStatus::Active,
            owner_address: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub(crate) fn session(&self, agent_id: AgentId) -> Session {
        self.tick();
        let id = SessionId::generate(&self.clock, &self.entropy);
        let now = self.clock.now();
        Session {
            id,
            agent_id,
            token_hash: format!("hash-of-{id}"),
            constraints: None,
            created_at: now,
            expires_at: now.plus_seconds(3_600),
            revoked_at: None,
            renewal_count: 0,
        }
    }

    pub(crate) fn policy(&self, rules: PolicyRules) -> Policy {
        self.tick();
        let now = self.clock.now();
        Policy {
            id: PolicyId::generate(&self.clock, &self.entropy),
            agent_id: None,
            rules,
            enabled: true,
            created_at: now,
            updated_at: now,
        }
    }

    pub(crate) fn rate_limit_policy(&self) -> Policy {
        let rules = serde_json::json!({ "max_requests": 5, "window_seconds": 60 });
        self.policy(PolicyRules::parse(PolicyType::RateLimit, &rules).expect("valid rules"))
    }

    /// An event by the operator, now.
    pub(crate) fn event(&self, event_type: EventType) -> Event {
        Event::new(event_type, &RequestContext::master(Some("127.0.0.1".parse().expect("ip"))), self.clock.now())
    }

    /// A native transfer of `amount` wei by `agent` in `status`, created now, reserving what it moves.
    pub(crate) fn tx(&self, agent_id: AgentId, status: TxStatus, amount: u128) -> TxRecord {
        self.tick();
        let now = self.clock.now();
        let kind = TxKind::Transfer { to: address(7), amount: Amount::from_u128(amount) };
        TxRecord {
            reserved: kind.outflows(),
            status,
            tier: Some(Tier::Instant),
            ..TxRecord::pending(TxId::generate(&self.clock, &self.entropy), agent_id, None, "anvil".into(), kind, now)
        }
    }

    /// Stores `record` through admission, with its TX_REQUESTED event.
    pub(crate) async fn admit(&self, record: &TxRecord) {
        let event = self.event(EventType::TxRequested).agent(record.agent_id).tx(record.id);
        let stored = record.clone();
        let decide = Box::new(move |_: &_| admission(stored, vec![event]));
        let admitted = self.db.transactions().admit(record.agent_id, UnixSeconds(0), decide).await.expect("admit");
        assert_eq!(&admitted.record, record);
    }

    /// The kill-switch event builder the core passes: KILL_SWITCH_ACTIVATED with the effects in its details,
    /// then a TX_CANCELLED per cancelled transaction.
    pub(crate) fn activation(&self) -> EventFromEffects {
        let event = self.event(EventType::KillSwitchActivated);
        let cancelled_event = self.event(EventType::TxCancelled);
        Box::new(move |effects: &ActivationEffects| {
            let activation = event.details(serde_json::json!({
                "effects": {
                    "sessionsRevoked": effects.revoked_sessions.len(),
                    "agentsSuspended": effects.suspended_agents.len(),
                    "transactionsCancelled": effects.cancelled.len(),
                }
            }));
            let cancellations =
                effects.cancelled.iter().map(|(tx, agent)| cancelled_event.clone().agent(*agent).tx(*tx));
            std::iter::once(activation).chain(cancellations).collect()
        })
    }

    /// The events the core builds for an agent status change: the status event (`AGENT_RESUMED`,
    /// `AGENT_SUSPENDED` or `AGENT_TERMINATED` by `to`) with the effects in its details, then one `TX_CANCELLED`
    /// per cancelled transaction.
    pub(crate) fn status_events(&self, agent: AgentId, to: AgentStatus) -> EventsFromStatusEffects {
        let event_type = match to {
            AgentStatus::Active => EventType::AgentResumed,
            AgentStatus::Suspended => EventType::AgentSuspended,
            AgentStatus::Terminated => EventType::AgentTerminated,
        };
        let event = self.event(event_type).agent(agent);
        let cancelled_event = self.event(EventType::TxCancelled).agent(agent);
        Box::new(move |effects: &StatusEffects| {
            let change = event.details(serde_json::json!({
                "sessionsRevoked": effects.revoked_sessions.len(),
                "transactionsCancelled": effects.cancelled.len(),
            }));
            let cancellations = effects.cancelled.iter().map(|tx| cancelled_event.clone().tx(*tx));
            std::iter::once(change).chain(cancellations).collect()
        })
    }

    /// Compare-and-set of an agent's status at `now`, with [`TestDb::status_events`].
    pub(crate) async fn set_status(
        &self,
        agent: AgentId,
        from: AgentStatus,
        to: AgentStatus,
        now: UnixSeconds,
    ) -> Result<Option<(StatusEffects, Vec<Event>)>> {
        self.db.agents().set_status(agent, from, to, now, self.status_events(agent, to)).await
    }

    /// Refuses audit rows of one event type from now on (as a failing disk would, halfway through a transaction),
    /// until the `refuse_audit` trigger is dropped.
    pub(crate) async fn refuse_audit_of(&self, event_type: EventType) {
        sqlx::query(&format!(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs WHEN NEW.event_type = '{}' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            event_type.as_str()
        ))
        .execute(&self.db.pools.writer)
        .await
        .expect("create trigger");
    }

    pub(crate) async fn insert_agent(&self, agent: &Agent) {
        let event = self.event(EventType::AgentCreated).agent(agent.id);
        self.db.agents().insert(agent, &event).await.expect("insert agent");
    }

    pub(crate) async fn insert_session(&self, session: &Session) {
        let event = self.event(EventType::SessionCreated).agent(session.agent_id).session(session.id);
        self.db.sessions().insert(session, &event).await.expect("insert session");
    }
}

pub(crate) async fn count_audit_rows(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs").fetch_one(&db.pools.reader).await.expect("count")
}

/// The event types of every audit row, oldest first.
pub(crate) async fn audit_types(db: &Database) -> Vec<EventType> {
    db.audit_chain(0, 10_000).await.expect("chain").into_iter().map(|r| r.event.event_type).collect()
}

/// An admission of `record` with `events`, as a decision step returns it (the decision mirrors the row).
pub(crate) fn admission(record: TxRecord, events: Vec<waiaas_core::event::Event>) -> waiaas_core::ports::Admission {
    let decision = waiaas_core::policy_engine::Decision {
        allowed: record.tier.is_some(),
        tier: record.tier.unwrap_or(waiaas_core::domain::Tier::Instant),
        reason_code: None,
        reason: record.error.clone(),
        matched_policy_ids: Vec::new(),
        delay_seconds: None,
        downgraded: false,
        warnings: Vec::new(),
        request_usd: record.usd_value,
    };
    waiaas_core::ports::Admission { record, events, decision }
}
