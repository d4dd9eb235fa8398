//! Test fixtures: a real database file in a temporary directory, a fixed clock and counting entropy for ids,
//! entity builders, and audit-table probes.

use tempfile::TempDir;
use waiaas_core::domain::{Agent, AgentStatus, Chain, EvmAddress, Policy, PolicyRules, PolicyType, Session};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::testing::{CountingEntropy, FixedClock};
use waiaas_core::ports::{AgentRepo, Clock, SessionRepo};
use waiaas_core::{AgentId, PolicyId, SessionId};

use crate::Database;

/// A database file in its own temporary directory (removed on drop).
pub(crate) struct TestDb {
    pub(crate) dir: TempDir,
    pub(crate) db: Database,
    pub(crate) clock: FixedClock,
    pub(crate) entropy: CountingEntropy,
}

/// A distinct, valid address per `n`.
pub(crate) fn address(n: u64) -> EvmAddress {
    format!("0x{n:040x}").parse().expect("valid address")
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
