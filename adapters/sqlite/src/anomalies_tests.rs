//! Tests of the anomaly repository over a real SQLite file: a finding with its floor and audit row in one
//! transaction, floors never lowered, the floor in every admission snapshot, the operator's clear, keyset pages of
//! findings, and the rebuild's pages of final rows.

use std::sync::{Arc, Mutex};

use waiaas_core::anomaly::{Finding, FindingRecord, TierFloor};
use waiaas_core::domain::{Tier, TxStatus};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{AnomalyRepo, EventFromFinding, FindingQuery, TxRepo, TxUpdate};
use waiaas_core::{AgentId, ErrorCode, UnixSeconds};

use crate::test_support::{TestDb, admission, audit_types, count_audit_rows};

const NOW: i64 = 1_800_000_000;

fn finding(agent: AgentId, rule: &str, shadow: bool, at: i64) -> FindingRecord {
    FindingRecord {
        id: 0,
        agent_id: agent,
        tx_id: None,
        finding: Finding::new(rule, 12.5, 5.0, 3_600, "USD"),
        shadow,
        created_at: UnixSeconds(at),
    }
}

fn floor(agent: AgentId, tier: Tier, expires_at: i64, at: i64) -> TierFloor {
    TierFloor {
        agent_id: agent,
        tier,
        expires_at: UnixSeconds(expires_at),
        rule: "A-01".into(),
        updated_at: UnixSeconds(at),
    }
}

/// An `ANOMALY_DETECTED` builder that keeps the floor it was given.
fn detected(seen: Arc<Mutex<Vec<Option<TierFloor>>>>) -> EventFromFinding {
    Box::new(move |stored: &FindingRecord, floor: Option<&TierFloor>| {
        seen.lock().unwrap().push(floor.cloned());
        Event::new(EventType::AnomalyDetected, &RequestContext::system(), stored.created_at)
            .agent(stored.agent_id)
            .details(serde_json::json!({ "findingId": stored.id }))
    })
}

async fn agent(t: &TestDb) -> AgentId {
    let agent = t.agent();
    t.insert_agent(&agent).await;
    agent.id
}

#[tokio::test]
async fn a_finding_its_floor_and_its_audit_row_are_written_together() {
    let t = TestDb::new().await;
    let a = agent(&t).await;
    let repo = t.db.anomalies();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let raised = floor(a, Tier::Delay, NOW + 100, NOW);
    let (stored, in_force, event) =
        repo.record(&finding(a, "A-01", false, NOW), Some(raised.clone()), detected(seen.clone())).await.unwrap();
    assert!(stored.id > 0);
    assert_eq!(in_force, Some(raised.clone()));
    assert_eq!(event.details["findingId"], stored.id);
    assert_eq!(repo.floor(a).await.unwrap(), Some(raised.clone()));
    assert_eq!(audit_types(&t.db).await, [EventType::AgentCreated, EventType::AnomalyDetected]);

    // A failing audit append leaves neither the finding nor the floor behind.
    t.refuse_audit_of(EventType::AnomalyDetected).await;
    let higher = floor(a, Tier::Approval, NOW + 500, NOW + 1);
    let failed = repo.record(&finding(a, "A-02", false, NOW + 1), Some(higher), detected(seen)).await;
    assert_eq!(failed.unwrap_err().code, ErrorCode::InternalError);
    assert_eq!(repo.floor(a).await.unwrap(), Some(raised));
    let all = repo.findings(&FindingQuery { limit: 10, ..FindingQuery::default() }).await.unwrap();
    assert_eq!(all, [stored]);
}

#[tokio::test]
async fn a_floor_in_force_is_never_lowered_a_shadow_finding_sets_none_an_expired_one_is_replaced() {
    let t = TestDb::new().await;
    let a = agent(&t).await;
    let repo = t.db.anomalies();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shadow = repo.record(&finding(a, "A-03", true, NOW), None, detected(seen.clone())).await.unwrap();
    assert_eq!((shadow.0.shadow, shadow.1.clone()), (true, None));
    assert_eq!(repo.floor(a).await.unwrap(), None, "shadow mode changes no tier");

    repo.record(
        &finding(a, "A-01", false, NOW),
        Some(floor(a, Tier::Approval, NOW + 100, NOW)),
        detected(seen.clone()),
    )
    .await
    .unwrap();
    let (_, merged, _) = repo
        .record(
            &finding(a, "A-02", false, NOW + 10),
            Some(floor(a, Tier::Delay, NOW + 900, NOW + 10)),
            detected(seen.clone()),
        )
        .await
        .unwrap();
    let merged = merged.expect("a floor");
    assert_eq!((merged.tier, merged.expires_at), (Tier::Approval, UnixSeconds(NOW + 900)), "extended, never lowered");
    // A shadow finding reports the floor in force without changing it.
    let (_, reported, _) =
        repo.record(&finding(a, "A-03", true, NOW + 20), None, detected(seen.clone())).await.unwrap();
    assert_eq!(reported, Some(merged));
    // Once expired it is ignored and replaced.
    let (_, replaced, _) = repo
        .record(
            &finding(a, "A-01", false, NOW + 900),
            Some(floor(a, Tier::Delay, NOW + 1000, NOW + 900)),
            detected(seen.clone()),
        )
        .await
        .unwrap();
    assert_eq!(replaced.map(|f| (f.tier, f.expires_at)), Some((Tier::Delay, UnixSeconds(NOW + 1000))));
    assert_eq!(seen.lock().unwrap().len(), 5, "one event per finding");
}

/// The floor is part of the snapshot simulate reads and of the one each admission decides on, expired or not
/// (the core's decision applies it while in force).
#[tokio::test]
async fn admissions_and_snapshots_read_the_floor() {
    let t = TestDb::new().await;
    let a = agent(&t).await;
    let repo = t.db.anomalies();
    assert_eq!(t.db.transactions().snapshot(a, UnixSeconds(NOW)).await.unwrap().tier_floor, None);
    let raised = floor(a, Tier::Delay, NOW + 100, NOW);
    repo.record(&finding(a, "A-01", false, NOW), Some(raised.clone()), detected(Arc::default())).await.unwrap();
    assert_eq!(t.db.transactions().snapshot(a, UnixSeconds(NOW)).await.unwrap().tier_floor, Some(raised.clone()));
    let record = t.tx(a, TxStatus::Pending, 1);
    let seen = Arc::new(Mutex::new(None));
    let (s, r) = (seen.clone(), record.clone());
    let decide = Box::new(move |snapshot: &waiaas_core::ports::AdmissionSnapshot| {
        *s.lock().unwrap() = Some(snapshot.tier_floor.clone());
        admission(r, Vec::new())
    });
    t.db.transactions().admit(a, UnixSeconds(NOW), decide).await.unwrap();
    assert_eq!(seen.lock().unwrap().clone(), Some(Some(raised)));
}

#[tokio::test]
async fn the_operator_clears_a_floor_in_force_with_its_audit_row() {
    let t = TestDb::new().await;
    let a = agent(&t).await;
    let repo = t.db.anomalies();
    let cleared =
        |at: i64| Event::new(EventType::AnomalyCleared, &RequestContext::master(None), UnixSeconds(at)).agent(a);
    assert_eq!(repo.clear_floor(a, UnixSeconds(NOW), &cleared(NOW)).await.unwrap(), None);
    let raised = floor(a, Tier::Delay, NOW + 100, NOW);
    repo.record(&finding(a, "A-01", false, NOW), Some(raised.clone()), detected(Arc::default())).await.unwrap();
    assert_eq!(repo.clear_floor(a, UnixSeconds(NOW + 100), &cleared(NOW + 100)).await.unwrap(), None, "expired");
    let rows = count_audit_rows(&t.db).await;
    assert_eq!(repo.clear_floor(a, UnixSeconds(NOW + 1), &cleared(NOW + 1)).await.unwrap(), Some(raised));
    assert_eq!(repo.floor(a).await.unwrap(), None);
    assert_eq!(count_audit_rows(&t.db).await, rows + 1);
    assert_eq!(audit_types(&t.db).await.last(), Some(&EventType::AnomalyCleared));
}

#[tokio::test]
async fn findings_page_newest_first_by_agent_and_since() {
    let t = TestDb::new().await;
    let (a, b) = (agent(&t).await, agent(&t).await);
    let repo = t.db.anomalies();
    let mut ids = Vec::new();
    for (i, who) in [a, b, a, a, b].into_iter().enumerate() {
        let at = NOW + (i as i64 / 2) * 10;
        ids.push(repo.record(&finding(who, "A-01", true, at), None, detected(Arc::default())).await.unwrap().0);
    }
    let query = |agent_id, since, before, limit| FindingQuery { agent_id, since, before, limit };
    let page = repo.findings(&query(None, None, None, 10)).await.unwrap();
    assert_eq!(page.iter().map(|f| f.id).collect::<Vec<_>>(), [5, 4, 3, 2, 1].map(|i| ids[i - 1].id));
    let of_a = repo.findings(&query(Some(a), None, None, 2)).await.unwrap();
    assert_eq!(of_a, [ids[3].clone(), ids[2].clone()]);
    let next = repo.findings(&query(Some(a), None, Some((of_a[1].created_at, of_a[1].id)), 2)).await.unwrap();
    assert_eq!(next, [ids[0].clone()]);
    let since = repo.findings(&query(None, Some(UnixSeconds(NOW + 10)), None, 10)).await.unwrap();
    assert_eq!(since.len(), 3);
    assert!(repo.findings(&query(Some(b), Some(UnixSeconds(NOW + 30)), None, 10)).await.unwrap().is_empty());
}

/// The rebuild reads CONFIRMED and FAILED rows since a time, oldest first by `(updated_at, id)`, in pages (a page
/// may end inside a second).
#[tokio::test]
async fn final_rows_since_a_time_come_in_pages_oldest_first() {
    let t = TestDb::new().await;
    let a = agent(&t).await;
    let repo = t.db.anomalies();
    let mut finals = Vec::new();
    for (i, to) in
        [TxStatus::Confirmed, TxStatus::Failed, TxStatus::Cancelled, TxStatus::Confirmed, TxStatus::Confirmed]
            .into_iter()
            .enumerate()
    {
        let record = t.tx(a, TxStatus::Pending, 1);
        t.admit(&record).await;
        let from = if to == TxStatus::Cancelled { TxStatus::Pending } else { TxStatus::Submitted };
        if from == TxStatus::Submitted {
            let txs = t.db.transactions();
            assert!(
                txs.transition(record.id, TxStatus::Pending, TxStatus::Executing, &TxUpdate::default(), None)
                    .await
                    .unwrap()
            );
            assert!(
                txs.transition(record.id, TxStatus::Executing, TxStatus::Submitted, &TxUpdate::default(), None)
                    .await
                    .unwrap()
            );
        }
        // The final move's event time is the row's `updated_at`; the first one is older than `since`, and
        // the last two share a second (a page ends between them).
        let at = if i == 0 { NOW - 10 } else { NOW + (i as i64 + 1) / 2 };
        let event =
            Event::new(EventType::TxConfirmed, &RequestContext::system(), UnixSeconds(at)).agent(a).tx(record.id);
        assert!(t.db.transactions().transition(record.id, from, to, &TxUpdate::default(), Some(event)).await.unwrap());
        if to != TxStatus::Cancelled && i > 0 {
            finals.push(record.id);
        }
    }
    let first = repo.final_since(UnixSeconds(NOW), None, 2).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), finals[..2]);
    let last = &first[1];
    let rest = repo.final_since(UnixSeconds(NOW), Some((last.updated_at, last.id)), 2).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), finals[2..]);
    assert!(rest.iter().all(|r| r.status == TxStatus::Confirmed));
}

/// Each rebuild page seeks into the final-time index and needs no sort, whatever else indexes `status`.
#[tokio::test]
async fn a_rebuild_page_seeks_into_the_final_time_index() {
    let t = TestDb::new().await;
    let id = t.tx(t.agent().id, TxStatus::Confirmed, 1).id;
    let after = Some((UnixSeconds(NOW), id));
    let query = crate::anomalies::final_since_query(UnixSeconds(NOW - 10), after, 10);
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", query.sql()))
        .bind(NOW)
        .bind(NOW)
        .bind(id.to_string())
        .bind(10i64)
        .fetch_all(&t.db.pools.reader)
        .await
        .unwrap();
    let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
    assert_eq!(steps, ["SEARCH transactions USING INDEX idx_transactions_final_time (updated_at>?)"]);
}
