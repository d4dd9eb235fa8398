//! Group commit of admissions ([`TxRepo::admit`](waiaas_core::ports::TxRepo::admit)).
//!
//! Every admission is queued to one task that owns admission writes. It takes whatever is queued (at most
//! [`MAX_GROUP`]) and runs the group one admission after the other inside a single `BEGIN IMMEDIATE` transaction on
//! the writer connection, then commits once and answers each caller. Each admission reads its snapshot after the
//! ones before it in the group were written, so every decision is the one it would get alone, in queue order; what a
//! group saves is a begin and a commit (a WAL write) per admission, and the reads whose answer it already has: the
//! agent's policies (no other write runs during the group), its reserved totals (the group wrote them) and the audit
//! chain's end (its head).
//!
//! An admission that fails before it writes anything (its agent does not exist, its decision names another agent,
//! its decision panics) gets its error alone and the group goes on. A failure while writing (the database refuses a
//! row) rolls the whole group back and every caller in it gets the error: nothing of any of them is stored.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};
use waiaas_core::anomaly::TierFloor;
use waiaas_core::audit::ChainHead;
use waiaas_core::domain::{Asset, Policy};
use waiaas_core::ports::{Admission, AdmissionSnapshot, Decide};
use waiaas_core::{AgentId, Amount, Error, ErrorCode, Result, UnixSeconds};

use crate::audit::append_audits_after;
use crate::error::{db_err, not_found};
use crate::tx_rows::{insert_record, recent_requests};
use crate::{Pools, WriteTx, anomalies, policies, reserved};

/// Most admissions one transaction carries.
pub(crate) const MAX_GROUP: usize = 64;

/// One queued admission and where its answer goes.
pub(crate) struct Queued {
    pub(crate) agent: AgentId,
    pub(crate) now: UnixSeconds,
    pub(crate) decide: Decide,
    pub(crate) answer: oneshot::Sender<Result<Admission>>,
}

/// Starts the admission task on the current runtime; admissions are sent to the returned queue. The task ends
/// when every sender is dropped. Each group runs as a task of its own, so a bug that panics fails that group's
/// callers (their answers are dropped) and not every admission after it.
pub(crate) fn start(pools: Pools) -> mpsc::UnboundedSender<Queued> {
    let (queue, mut received) = mpsc::unbounded_channel::<Queued>();
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while received.recv_many(&mut group, MAX_GROUP).await > 0 {
            let pools = pools.clone();
            let this_group = std::mem::take(&mut group);
            if let Err(panicked) = tokio::spawn(async move { admit_group(&pools, this_group).await }).await {
                tracing::error!(%panicked, "an admission group panicked");
            }
        }
    });
    queue
}

/// What the group already knows of an agent: its policies in force, its reserved totals as written so far and
/// its anomaly tier floor (no other write runs during the group).
struct Known {
    policies: Vec<Policy>,
    reserved: Vec<(Asset, Amount)>,
    tier_floor: Option<TierFloor>,
}

/// Runs one group in one transaction and answers every caller.
async fn admit_group(pools: &Pools, group: Vec<Queued>) {
    let (answers, admissions): (Vec<_>, Vec<_>) =
        group.into_iter().map(|q| (q.answer, (q.agent, q.now, q.decide))).unzip();
    let written = async {
        let mut tx = pools.begin_write().await?;
        let mut known: HashMap<AgentId, Known> = HashMap::new();
        let mut chain_end = None;
        let mut outcomes = Vec::with_capacity(admissions.len());
        for (agent, now, decide) in admissions {
            outcomes.push(admit_one(&mut tx, &mut known, &mut chain_end, agent, now, decide).await?);
        }
        tx.commit().await.map_err(db_err)?;
        Ok::<_, Error>(outcomes)
    }
    .await;
    match written {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
        }
        Err(error) => {
            tracing::warn!(code = %error.code, cause = ?error.internal, "an admission group was rolled back");
            for answer in answers {
                let _ = answer.send(Err(copy_of(&error)));
            }
        }
    }
}

/// One admission inside the group's transaction. `Ok(Err(_))`: this admission alone failed, before writing.
/// `Err(_)`: a write failed and the group must roll back.
async fn admit_one(
    conn: &mut WriteTx,
    known: &mut HashMap<AgentId, Known>,
    chain_end: &mut Option<ChainHead>,
    agent: AgentId,
    now: UnixSeconds,
    decide: Decide,
) -> Result<Result<Admission>> {
    let key = agent.to_string();
    let Known { policies, reserved, tier_floor } = match known.remove(&agent) {
        Some(known) => known,
        None => {
            if !agent_exists(conn, &key).await? {
                return Ok(Err(not_found(ErrorCode::AgentNotFound, "agent", agent)));
            }
            Known {
                policies: policies::in_force(conn, agent).await?,
                reserved: reserved::totals(conn, &key).await?,
                tier_floor: anomalies::floor(conn, &key).await?,
            }
        }
    };
    let recent = recent_requests(conn, &key, &policies, now).await?;
    let snapshot = AdmissionSnapshot { policies, reserved, recent, tier_floor };
    let Ok(admission) = std::panic::catch_unwind(AssertUnwindSafe(|| decide(&snapshot))) else {
        return Ok(Err(Error::internal_msg("the admission decision panicked")));
    };
    let AdmissionSnapshot { policies, reserved, tier_floor, .. } = snapshot;
    let Admission { record, events, decision } = admission;
    if record.agent_id != agent {
        known.insert(agent, Known { policies, reserved, tier_floor });
        return Ok(Err(Error::internal_msg("admission decided a row for another agent")));
    }
    insert_record(conn, &record).await?;
    let reserved = if record.status.is_final() {
        reserved
    } else {
        reserved::reserve(conn, &key, reserved, &record.reserved).await?
    };
    *chain_end = Some(append_audits_after(conn, chain_end.take(), &events).await?);
    known.insert(agent, Known { policies, reserved, tier_floor });
    Ok(Ok(Admission { record, events, decision }))
}

async fn agent_exists(conn: &mut SqliteConnection, agent: &str) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM agents WHERE id = ?)")
        .bind(agent)
        .fetch_one(conn)
        .await
        .map_err(db_err)
}

/// The group's failure, for each of its callers (the cause is kept as text for the log).
fn copy_of(error: &Error) -> Error {
    let mut copy = match &error.internal {
        Some(cause) => Error::internal_msg(format!("admission group rolled back: {cause}")),
        None => Error::internal_msg("admission group rolled back"),
    };
    copy.code = error.code;
    copy.message.clone_from(&error.message);
    copy.details.clone_from(&error.details);
    copy
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use waiaas_core::domain::TxStatus;
    use waiaas_core::event::EventType;
    use waiaas_core::ports::{Clock, TxRepo};

    use super::*;
    use waiaas_core::ports::TxRecord;

    use crate::test_support::{TestDb, admission, audit_types, count_audit_rows};

    /// Admits `record` (and a TX_REQUESTED event, plus `extra`) whatever the snapshot says.
    fn admit_as(t: &TestDb, record: &TxRecord, extra: Option<EventType>) -> Decide {
        let mut events = vec![t.event(EventType::TxRequested).agent(record.agent_id).tx(record.id)];
        events.extend(extra.map(|e| t.event(e).agent(record.agent_id).tx(record.id)));
        let record = record.clone();
        Box::new(move |_| admission(record, events))
    }

    /// Admissions queued together share one transaction: when one of them cannot be written, the others of its
    /// group are not written either and every caller hears of it; the next group is unaffected.
    #[tokio::test]
    async fn a_write_failure_rolls_back_the_whole_group_and_the_next_group_proceeds() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let repo = t.db.transactions();
        let (fine, doomed) = (t.tx(agent.id, TxStatus::Pending, 1), t.tx(agent.id, TxStatus::Queued, 2));
        t.refuse_audit_of(EventType::TxQueued).await;
        let now = t.clock.now();
        let later = t.tx(agent.id, TxStatus::Pending, 3);
        // All three are queued before the admission task runs (one runtime thread): one group.
        let (first, second, third) = tokio::join!(
            repo.admit(agent.id, now, admit_as(&t, &fine, None)),
            repo.admit(agent.id, now, admit_as(&t, &doomed, Some(EventType::TxQueued))),
            repo.admit(agent.id, now, admit_as(&t, &later, None)),
        );
        for outcome in [first, second, third] {
            assert_eq!(outcome.unwrap_err().code, ErrorCode::InternalError);
        }
        assert_eq!(repo.get(fine.id).await.unwrap(), None, "rolled back with its group");
        assert_eq!(repo.get(later.id).await.unwrap(), None, "never written");
        assert_eq!(audit_types(&t.db).await, [EventType::AgentCreated]);

        sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();
        assert_eq!(repo.admit(agent.id, now, admit_as(&t, &fine, None)).await.unwrap().record, fine);
        assert_eq!(count_audit_rows(&t.db).await, 2);
    }

    /// An admission that fails before writing anything fails alone: the rest of its group is written.
    #[tokio::test]
    async fn an_admission_failing_before_its_writes_fails_alone() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let repo = t.db.transactions();
        let now = t.clock.now();
        let (before, after) = (t.tx(agent.id, TxStatus::Pending, 1), t.tx(agent.id, TxStatus::Pending, 2));
        let stranger = t.tx(t.agent().id, TxStatus::Pending, 3);
        let panicking: Decide = Box::new(|_| panic!("a bug in a decision"));
        let (a, unknown, other_agent, panicked, b) = tokio::join!(
            repo.admit(agent.id, now, admit_as(&t, &before, None)),
            repo.admit(stranger.agent_id, now, admit_as(&t, &stranger, None)),
            repo.admit(agent.id, now, admit_as(&t, &stranger, None)),
            repo.admit(agent.id, now, panicking),
            repo.admit(agent.id, now, admit_as(&t, &after, None)),
        );
        assert_eq!((a.unwrap().record, b.unwrap().record), (before.clone(), after.clone()));
        assert_eq!(unknown.unwrap_err().code, ErrorCode::AgentNotFound);
        assert_eq!(other_agent.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(panicked.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(repo.list(agent.id, None, 10).await.unwrap(), [after, before]);
        assert_eq!(count_audit_rows(&t.db).await, 3);
        assert_eq!(t.db.verify_audit_chain(10).await.unwrap(), (3, Ok(())));
    }

    /// Many concurrent admissions under a cap of ten reserved per agent: each decision sees every admission
    /// written before it (in its group or earlier ones), so exactly ten per agent are admitted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_admissions_see_each_other_inside_and_across_groups() {
        let t = Arc::new(TestDb::new().await);
        let agents = [t.agent(), t.agent()];
        for agent in &agents {
            t.insert_agent(agent).await;
        }
        let mut calls = Vec::new();
        for i in 0..80 {
            let t = Arc::clone(&t);
            let agent = agents[i % 2].id;
            calls.push(tokio::spawn(async move {
                let record = t.tx(agent, TxStatus::Pending, 1);
                let requested = t.event(EventType::TxRequested).agent(agent).tx(record.id);
                let decide: Decide = Box::new(move |snapshot: &AdmissionSnapshot| {
                    let held = snapshot.reserved.first().map_or(Amount::ZERO, |(_, amount)| *amount);
                    let record = if held < Amount::from_u128(10) {
                        record
                    } else {
                        TxRecord { status: TxStatus::Cancelled, reason_code: Some("CAP".into()), ..record }
                    };
                    admission(record, vec![requested])
                });
                t.db.transactions().admit(agent, t.clock.now(), decide).await.unwrap().record.status
            }));
        }
        let mut admitted = 0;
        for call in calls {
            admitted += usize::from(call.await.unwrap() == TxStatus::Pending);
        }
        assert_eq!(admitted, 20);
        for agent in &agents {
            let snapshot = t.db.transactions().snapshot(agent.id, t.clock.now()).await.unwrap();
            assert_eq!(snapshot.reserved, [(Asset::Native, Amount::from_u128(10))]);
        }
        assert_eq!(t.db.verify_audit_chain(50).await.unwrap(), (82, Ok(())));
    }
}
