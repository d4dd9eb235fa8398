//! Cross-repository tests of the audit invariant: a state change and its audit row commit together or not at
//! all, and concurrent writers keep the hash chain intact.

use serde_json::json;
use waiaas_core::audit::{ChainLink, GENESIS_HASH, verify_chain};
use waiaas_core::domain::{AgentStatus, KillSwitch, KillSwitchState, PolicyRules, PolicyType, TxStatus};
use waiaas_core::event::{EventType, RequestContext};
use waiaas_core::ports::{AgentRepo, AuditRepo, Decide, KillSwitchRepo, PolicyRepo, SessionRepo, TxRepo, TxUpdate};
use waiaas_core::{ErrorCode, UnixSeconds};

use crate::test_support::{TestDb, count_audit_rows, owner_address};

/// Makes every audit insert fail, as a full disk or a constraint would halfway through a transaction.
async fn break_audit(t: &TestDb) {
    sqlx::query("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs BEGIN SELECT RAISE(ABORT, 'refused'); END")
        .execute(&t.db.pools.writer)
        .await
        .unwrap();
}

async fn repair_audit(t: &TestDb) {
    sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();
}

/// A dump of every table but the audit log, to compare before and after a failed change.
async fn state(t: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT id || status || COALESCE(owner_address, '-') || updated_at FROM agents ORDER BY id",
        "SELECT id || token_hash || expires_at || COALESCE(revoked_at, '-') || renewal_count FROM sessions ORDER BY id",
        "SELECT id || rules || enabled || updated_at FROM policies ORDER BY id",
        "SELECT id || status || COALESCE(error, '-') || COALESCE(tx_hash, '-') || attempts || updated_at || reserved \
         FROM transactions ORDER BY id",
        "SELECT state || COALESCE(reason, '-') || COALESCE(changed_at, '-') FROM kill_switch",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&t.db.pools.reader).await.unwrap();
        out.extend(rows);
    }
    out
}

#[tokio::test]
async fn a_change_whose_audit_row_fails_is_rolled_back() {
    let t = TestDb::new().await;
    let agent = t.agent();
    t.insert_agent(&agent).await;
    let session = t.session(agent.id);
    t.insert_session(&session).await;
    let policy = t.rate_limit_policy();
    t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
    let pending = t.tx(agent.id, TxStatus::Pending, 5);
    t.admit(&pending).await;
    let audit_rows = count_audit_rows(&t.db).await;
    let before = state(&t).await;

    break_audit(&t).await;
    let now = UnixSeconds(9_999);
    let e = |event_type| t.event(event_type);
    let changed_policy = waiaas_core::domain::Policy {
        rules: PolicyRules::parse(PolicyType::RateLimit, &json!({"max_requests": 1, "window_seconds": 1})).unwrap(),
        ..policy.clone()
    };
    let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(now) };
    let (admitted, requested) = (t.tx(agent.id, TxStatus::Pending, 1), e(EventType::TxRequested));
    let admission: Decide = Box::new(move |_| crate::test_support::admission(admitted, vec![requested]));
    let signed = TxUpdate { tx_hash: Some("0xabc".into()), attempts: Some(1), ..TxUpdate::default() };
    let results = [
        ("agent insert", t.db.agents().insert(&t.agent(), &e(EventType::AgentCreated)).await.err()),
        ("terminate", t.set_status(agent.id, AgentStatus::Active, AgentStatus::Terminated, now).await.err()),
        (
            "set owner",
            t.db.agents().set_owner(agent.id, Some(owner_address(1)), now, &e(EventType::OwnerSet)).await.err(),
        ),
        ("session insert", t.db.sessions().insert(&t.session(agent.id), &e(EventType::SessionCreated)).await.err()),
        ("revoke", t.db.sessions().revoke(session.id, now, &e(EventType::SessionRevoked)).await.err()),
        ("renew", t.db.sessions().renew(session.id, "other", now, &e(EventType::SessionRenewed)).await.err()),
        ("policy insert", t.db.policies().insert(&t.rate_limit_policy(), &e(EventType::PolicyCreated)).await.err()),
        ("policy update", t.db.policies().update(&changed_policy, &e(EventType::PolicyUpdated)).await.err()),
        ("policy delete", t.db.policies().delete(policy.id, &e(EventType::PolicyDeleted)).await.err()),
        ("activate", t.db.kill_switch().activate(&tripped, t.activation()).await.err()),
        ("admit", t.db.transactions().admit(agent.id, now, admission).await.err()),
        (
            "transition",
            t.db.transactions()
                .transition(
                    pending.id,
                    TxStatus::Pending,
                    TxStatus::Executing,
                    &signed,
                    Some(e(EventType::TxSubmitted)),
                )
                .await
                .err(),
        ),
        ("append", t.db.audit().append(&e(EventType::MasterAuthFailed)).await.err()),
    ];
    for (what, err) in &results {
        let err = err.as_ref().unwrap_or_else(|| panic!("{what} succeeded without its audit row"));
        assert_eq!(err.code, ErrorCode::InternalError, "{what}");
    }
    assert_eq!(state(&t).await, before, "no change survived without its audit row");
    assert_eq!(count_audit_rows(&t.db).await, audit_rows);

    repair_audit(&t).await;
    t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
    let before = state(&t).await;
    break_audit(&t).await;
    let recovered = KillSwitch { state: KillSwitchState::Active, reason: None, changed_at: Some(now) };
    let err = t.db.kill_switch().recover(&recovered, &e(EventType::KillSwitchRecovered)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    assert_eq!(state(&t).await, before);
    assert_eq!(t.db.kill_switch().get().await.unwrap().state, KillSwitchState::Suspended);
}

#[tokio::test]
async fn every_successful_change_writes_exactly_one_audit_row() {
    let t = TestDb::new().await;
    let mut expected = 0;
    let mut check = async |what: &str| {
        expected += 1;
        assert_eq!(count_audit_rows(&t.db).await, expected, "after {what}");
    };
    let agent = t.agent();
    t.insert_agent(&agent).await;
    check("agent insert").await;
    let session = t.session(agent.id);
    t.insert_session(&session).await;
    check("session insert").await;
    let now = UnixSeconds(10);
    t.db.agents().set_owner(agent.id, Some(owner_address(2)), now, &t.event(EventType::OwnerSet)).await.unwrap();
    check("set owner").await;
    t.db.sessions().renew(session.id, "h2", now, &t.event(EventType::SessionRenewed)).await.unwrap();
    check("renew").await;
    let record = t.tx(agent.id, TxStatus::Pending, 1);
    t.admit(&record).await;
    check("admit").await;
    let moved =
        t.db.transactions()
            .transition(
                record.id,
                TxStatus::Pending,
                TxStatus::Cancelled,
                &TxUpdate::default(),
                Some(t.event(EventType::TxCancelled)),
            )
            .await
            .unwrap();
    assert!(moved);
    check("transition").await;
    t.db.sessions().revoke(session.id, now, &t.event(EventType::SessionRevoked)).await.unwrap();
    check("revoke").await;
    let policy = t.rate_limit_policy();
    t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
    check("policy insert").await;
    t.db.policies().update(&policy, &t.event(EventType::PolicyUpdated)).await.unwrap();
    check("policy update").await;
    t.db.policies().delete(policy.id, &t.event(EventType::PolicyDeleted)).await.unwrap();
    check("policy delete").await;
    let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(now) };
    t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
    check("activate").await;
    t.db.kill_switch().recover(&KillSwitch::default(), &t.event(EventType::KillSwitchRecovered)).await.unwrap();
    check("recover").await;
    // Suspended by the kill switch; nothing left to cancel or revoke, so one row.
    t.set_status(agent.id, AgentStatus::Suspended, AgentStatus::Terminated, now).await.unwrap().expect("moved");
    check("terminate").await;
    t.db.audit().append(&t.event(EventType::BackupCreated)).await.unwrap();
    check("append").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_one_unbroken_chain() {
    let t = TestDb::new().await;
    let mut tasks = Vec::new();
    for worker in 0..8_i64 {
        let db = t.db.clone();
        let agents: Vec<_> = (0..10).map(|_| t.agent()).collect();
        tasks.push(tokio::spawn(async move {
            for (i, agent) in agents.iter().enumerate() {
                let ctx = RequestContext::system();
                let created =
                    waiaas_core::event::Event::new(EventType::AgentCreated, &ctx, UnixSeconds(worker)).agent(agent.id);
                db.agents().insert(agent, &created).await.unwrap();
                let other = waiaas_core::event::Event::new(EventType::AnomalyDetected, &ctx, UnixSeconds(worker))
                    .details(json!({ "worker": worker, "i": i }));
                db.audit().append(&other).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rows = t.db.audit_chain(0, 1_000).await.unwrap();
    assert_eq!(rows.len(), 160);
    let links = rows.iter().map(|r| ChainLink { id: r.id, event: &r.event, prev_hash: &r.prev_hash, hash: &r.hash });
    assert_eq!(verify_chain(GENESIS_HASH, links), Ok(rows[159].hash.clone()));
}
