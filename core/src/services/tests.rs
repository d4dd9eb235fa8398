//! In-memory tests of the services over mockall mocks of the ports: no SQLite, no network, no real clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::domain::{Address, Agent, AgentStatus, Chain, KillSwitch, Session};
use crate::event::{EventType, RequestContext};
use crate::ports::testing::{CountingEntropy, FixedClock, RecordingMetrics, RecordingSink};
use crate::ports::{
    ActivationEffects, MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore, MockKillSwitchRepo,
    MockPolicyRepo, MockSessionRepo, MockSettingsRepo, MockTxBroadcaster, MockTxRepo,
};
use crate::{AgentId, ErrorCode, SessionId, UnixSeconds};

pub(super) const T0: i64 = 1_700_000_000;
pub(super) const ADDRESS: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// An ACTIVE agent on `anvil` at [`ADDRESS`], created at [`T0`].
pub(super) fn active_agent(id: AgentId) -> Agent {
    Agent {
        id,
        name: "a".into(),
        chain: Chain::Ethereum,
        network: "anvil".into(),
        address: ADDRESS.parse::<Address>().unwrap(),
        status: AgentStatus::Active,
        owner_address: None,
        created_at: UnixSeconds(T0),
        updated_at: UnixSeconds(T0),
    }
}

struct Harness {
    core: Waiaas,
    clock: Arc<FixedClock>,
    sink: Arc<RecordingSink>,
    audit_rows: Arc<Mutex<Vec<EventType>>>,
    agent_id: AgentId,
    metrics: Arc<RecordingMetrics>,
}

pub(super) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// A core over in-memory mocks: one ACTIVE agent, sessions kept in a map, settings in a map.
fn harness(password: &str, settings: Arc<Mutex<HashMap<String, String>>>) -> Result<Harness> {
    harness_with(password, settings, true)
}

/// [`harness`] whose audit appends fail when `audit_ok` is false.
fn harness_with(password: &str, settings: Arc<Mutex<HashMap<String, String>>>, audit_ok: bool) -> Result<Harness> {
    let clock = Arc::new(FixedClock::at(T0));
    let entropy = Arc::new(CountingEntropy::default());
    let agent_id = AgentId::generate(clock.as_ref(), entropy.as_ref());
    let agent = active_agent(agent_id);

    let mut settings_repo = MockSettingsRepo::new();
    let reads = settings.clone();
    settings_repo.expect_get().returning(move |key| Ok(reads.lock().unwrap().get(key).cloned()));
    let writes = settings.clone();
    settings_repo.expect_put().returning(move |key, value| {
        writes.lock().unwrap().insert(key.to_owned(), value.to_owned());
        Ok(())
    });

    let mut agents = MockAgentRepo::new();
    agents.expect_get().returning(move |_| Ok(Some(agent.clone())));
    agents.expect_count_by_status().returning(|_| Ok(1));

    let sessions: Arc<Mutex<HashMap<SessionId, Session>>> = Arc::default();
    let mut session_repo = MockSessionRepo::new();
    let (store, read, revoke) = (sessions.clone(), sessions.clone(), sessions.clone());
    let counted = sessions.clone();
    session_repo.expect_count_active().returning(move |now| {
        let map = counted.lock().unwrap();
        Ok(map.values().filter(|s| s.revoked_at.is_none() && s.expires_at > now).count() as u64)
    });
    session_repo.expect_insert().returning(move |session, _| {
        store.lock().unwrap().insert(session.id, session.clone());
        Ok(())
    });
    session_repo.expect_get().returning(move |id| Ok(read.lock().unwrap().get(&id).cloned()));
    session_repo.expect_revoke().returning(move |id, now, _| {
        revoke.lock().unwrap().get_mut(&id).expect("known session").revoked_at = Some(now);
        Ok(())
    });

    let audit_rows: Arc<Mutex<Vec<EventType>>> = Arc::default();
    let rows = audit_rows.clone();
    let mut audit = MockAuditRepo::new();
    audit.expect_append().returning(move |event| {
        if !audit_ok {
            return Err(crate::Error::internal_msg("disk full"));
        }
        rows.lock().unwrap().push(event.event_type);
        Ok(())
    });

    let mut kill_switch = MockKillSwitchRepo::new();
    kill_switch.expect_get().returning(|| Ok(KillSwitch::default()));
    kill_switch.expect_activate().returning(|_, events| {
        let effects = ActivationEffects::default();
        let events = events(&effects);
        Ok((effects, events))
    });

    let mut transactions = MockTxRepo::new();
    transactions.expect_count_non_final().returning(|| Ok(vec![(crate::domain::TxStatus::Queued, 2)]));

    let sink = Arc::new(RecordingSink::default());
    let metrics = Arc::new(RecordingMetrics::default());
    let ports = Ports {
        clock: clock.clone(),
        entropy,
        agents: Arc::new(agents),
        sessions: Arc::new(session_repo),
        policies: Arc::new(MockPolicyRepo::new()),
        settings: Arc::new(settings_repo),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(audit),
        keystore: Arc::new(MockKeyStore::new()),
        chain: Arc::new(MockChainAdapter::new()),
        broadcaster: Arc::new(MockTxBroadcaster::new()),
        transactions: Arc::new(transactions),
        prices: Arc::new(crate::prices::StaticPriceTable::default()),
        events: sink.clone(),
        metrics: metrics.clone(),
    };
    let core = block_on(Waiaas::unlock(ports, CoreConfig::default(), password))?;
    Ok(Harness { core, clock, sink, audit_rows, agent_id, metrics })
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode) {
    match result {
        Err(e) => assert_eq!(e.code, code, "{e}"),
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
    }
}

#[test]
fn unlock_stores_a_hash_once_and_then_requires_the_same_password() {
    let settings = Arc::new(Mutex::new(HashMap::new()));
    harness("first password", settings.clone()).expect("fresh unlock");
    let stored = settings.lock().unwrap().get(master_auth::MASTER_HASH_KEY).cloned().expect("hash stored");
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("first password"));
    assert_code(harness("other password", settings.clone()).map(|_| ()), ErrorCode::InvalidMasterPassword);
    harness("first password", settings).expect("same password unlocks again");
}

#[test]
fn master_password_failures_are_audited_then_rate_limited() {
    let h = harness("pw", Arc::default()).unwrap();
    let ip = Some("127.0.0.1".parse().unwrap());
    block_on(h.core.authenticate_master("pw", ip)).expect("right password");
    for _ in 0..5 {
        assert_code(block_on(h.core.authenticate_master("wrong", ip)), ErrorCode::InvalidMasterPassword);
    }
    assert_code(block_on(h.core.authenticate_master("pw", ip)), ErrorCode::RateLimited);
    assert_eq!(h.audit_rows.lock().unwrap().len(), 5);
    let other_ip = Some("127.0.0.2".parse().unwrap());
    block_on(h.core.authenticate_master("pw", other_ip)).expect("other peers are not locked out");
    h.clock.advance(60);
    block_on(h.core.authenticate_master("pw", ip)).expect("the window passes");
}

#[test]
fn session_tokens_expire_by_the_clock_and_revoke_at_once() {
    let h = harness("pw", Arc::default()).unwrap();
    let ctx = RequestContext::master(None);
    let issued = block_on(h.core.create_session(&ctx, h.agent_id, Some(60), None)).unwrap();
    let principal = block_on(h.core.authenticate_session(&issued.token, None)).expect("fresh token");
    assert_eq!(principal.agent.id, h.agent_id);
    h.clock.advance(59);
    block_on(h.core.authenticate_session(&issued.token, None)).expect("still valid");
    h.clock.advance(1);
    assert_code(block_on(h.core.authenticate_session(&issued.token, None)), ErrorCode::TokenExpired);

    let other = block_on(h.core.create_session(&ctx, h.agent_id, None, None)).unwrap();
    block_on(h.core.revoke_session(&ctx, other.session.id)).unwrap();
    assert_code(block_on(h.core.authenticate_session(&other.token, None)), ErrorCode::SessionRevoked);

    let mut forged = other.token.clone();
    forged.pop();
    assert_code(block_on(h.core.authenticate_session(&forged, None)), ErrorCode::InvalidToken);
    assert_code(block_on(h.core.authenticate_session("Bearer nonsense", None)), ErrorCode::InvalidToken);
    assert_code(block_on(h.core.create_session(&ctx, h.agent_id, Some(10), None)), ErrorCode::ValidationFailed);

    let published: Vec<EventType> = h.sink.0.lock().unwrap().iter().map(|e| e.event_type).collect();
    assert_eq!(published, [EventType::SessionCreated, EventType::SessionCreated, EventType::SessionRevoked]);
}

#[test]
fn kill_switch_refuses_agent_requests_and_new_sessions() {
    let h = harness("pw", Arc::default()).unwrap();
    let ctx = RequestContext::master(None);
    let issued = block_on(h.core.create_session(&ctx, h.agent_id, None, None)).unwrap();
    let view = block_on(h.core.activate_kill_switch(&ctx, Some("test".into()))).unwrap();
    assert_eq!(view.switch.state, crate::domain::KillSwitchState::Suspended);
    assert_code(block_on(h.core.authenticate_session(&issued.token, None)), ErrorCode::SystemLocked);
    assert_code(block_on(h.core.create_session(&ctx, h.agent_id, None, None)), ErrorCode::SystemLocked);
}

#[test]
fn state_gauges_start_from_the_repositories_and_follow_changes() {
    use crate::metrics as m;
    let h = harness("pw", Arc::default()).unwrap();
    assert_eq!(h.metrics.gauge(m::SESSIONS_ACTIVE, &[]), Some(0.0));
    assert_eq!(h.metrics.gauge(m::AGENTS_ACTIVE, &[]), Some(1.0));
    assert_eq!(h.metrics.gauge(m::KILLSWITCH_STATE, &[]), Some(0.0));
    assert_eq!(h.metrics.gauge(m::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS, &[]), Some(0.0));
    assert_eq!(h.metrics.gauge(m::TRANSACTIONS_NON_FINAL, &[("status", "queued")]), Some(2.0));
    assert_eq!(h.metrics.gauge(m::START_TIME_SECONDS, &[]), Some(T0 as f64));
    assert_eq!(h.metrics.gauge(m::BACKUP_INTERVAL_SECONDS, &[]), Some(0.0), "off until a scheduler runs");
    assert_eq!(h.metrics.gauge(m::TRANSACTIONS_NON_FINAL, &[("status", "submitted")]), Some(0.0), "absent is 0");
    let ctx = RequestContext::master(None);
    let issued = block_on(h.core.create_session(&ctx, h.agent_id, None, None)).unwrap();
    block_on(h.core.create_session(&ctx, h.agent_id, None, None)).unwrap();
    assert_eq!(h.metrics.gauge(m::SESSIONS_ACTIVE, &[]), Some(2.0));
    block_on(h.core.revoke_session(&ctx, issued.session.id)).unwrap();
    assert_eq!(h.metrics.gauge(m::SESSIONS_ACTIVE, &[]), Some(1.0));
    block_on(h.core.activate_kill_switch(&ctx, None)).unwrap();
    assert_eq!(h.metrics.gauge(m::KILLSWITCH_STATE, &[]), Some(1.0));
    block_on(h.core.activate_kill_switch(&ctx, None)).unwrap();
    assert_eq!(h.metrics.gauge(m::KILLSWITCH_STATE, &[]), Some(2.0));
    h.core.record_backup_interval(3600);
    assert_eq!(h.metrics.gauge(m::BACKUP_INTERVAL_SECONDS, &[]), Some(3600.0));
    h.core.record_backup_success(UnixSeconds(T0));
    assert_eq!(h.metrics.gauge(m::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS, &[]), Some(T0 as f64));
    assert_eq!(h.metrics.counter(m::AUDIT_WRITE_FAILURES_TOTAL, &[]), 0);
}

/// Every counter and histogram whose label values the catalog knows is exported at zero for each combination at
/// unlock, and every gauge whose label values it knows is set (the end-to-end test covers the emitters' series).
#[test]
fn unlock_exports_every_known_series_of_the_catalog() {
    use crate::metrics as m;
    let h = harness("pw", Arc::default()).unwrap();
    let mut checked = 0;
    for def in m::CATALOG {
        for labels in def.known_label_sets().unwrap_or_default() {
            assert!(h.metrics.has(def.name, &labels), "{} {labels:?} is not exported at unlock", def.name);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    let denied = [("tier", "none"), ("result", "denied")];
    assert_eq!(h.metrics.counter(m::POLICY_EVALUATIONS_TOTAL, &denied), 0);
    assert!(h.metrics.observations(m::TRANSACTION_DURATION_SECONDS, &[]).is_empty());
}

#[path = "backup_tests.rs"]
mod backup_tests;

mod anomaly;
mod pipeline;
mod signing;
mod webhooks;

#[test]
fn a_failed_audit_append_is_counted() {
    let h = harness_with("pw", Arc::default(), false).unwrap();
    assert_eq!(h.metrics.counter(crate::metrics::AUDIT_WRITE_FAILURES_TOTAL, &[]), 0);
    assert_code(block_on(h.core.authenticate_master("wrong", None)), ErrorCode::InternalError);
    assert_eq!(h.metrics.counter(crate::metrics::AUDIT_WRITE_FAILURES_TOTAL, &[]), 1);
}
