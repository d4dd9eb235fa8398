//! [`KillSwitchRepo`] over SQLite: the single-row `kill_switch` table. Activation stores the new state and, in
//! the same transaction, revokes every unrevoked session, suspends every ACTIVE agent, cancels every transaction
//! not yet signed (PENDING, QUEUED or EXECUTING) and writes the audit rows. Other write transactions read the
//! stored state where it must hold at the moment of their write ([`is_tripped`]): recording a signature,
//! resuming an agent.

use async_trait::async_trait;
use sqlx::Row;
use waiaas_core::domain::{AgentStatus, KillSwitch, KillSwitchState};
use waiaas_core::event::Event;
use waiaas_core::ports::{ActivationEffects, EventFromEffects, KillSwitchRepo};
use waiaas_core::{AgentId, Error, Result, SessionId, UnixSeconds};

use crate::Pools;
use crate::audit::append_audits;
use crate::error::{db_err, decode_err, parse_column};
use crate::unsigned::cancel_unsigned;

const TABLE: &str = "kill_switch";

/// The `error` of a transaction the kill switch cancelled.
pub const CANCELLED_BY_KILL_SWITCH: &str = "kill switch activated";

/// [`KillSwitchRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteKillSwitchRepo {
    pools: Pools,
}

impl SqliteKillSwitchRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteKillSwitchRepo { pools }
    }
}

/// Whether the stored kill switch is tripped, read on the caller's connection (inside its transaction).
pub(crate) async fn is_tripped(conn: &mut sqlx::SqliteConnection) -> Result<bool> {
    let state: String = sqlx::query_scalar("SELECT state FROM kill_switch WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::internal_msg("the kill_switch row is missing"))?;
    let state = KillSwitchState::parse(&state).ok_or_else(|| decode_err(TABLE, "state", "unknown state"))?;
    Ok(state.is_tripped())
}

async fn store(conn: &mut sqlx::SqliteConnection, new: &KillSwitch) -> Result<()> {
    let done = sqlx::query("UPDATE kill_switch SET state = ?, reason = ?, changed_at = ? WHERE id = 1")
        .bind(new.state.as_str())
        .bind(new.reason.as_deref())
        .bind(new.changed_at.map(|t| t.0))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 1 { Ok(()) } else { Err(Error::internal_msg("the kill_switch row is missing")) }
}

#[async_trait]
impl KillSwitchRepo for SqliteKillSwitchRepo {
    async fn get(&self) -> Result<KillSwitch> {
        let row = sqlx::query("SELECT state, reason, changed_at FROM kill_switch WHERE id = 1")
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::internal_msg("the kill_switch row is missing"))?;
        let state: String = row.try_get("state").map_err(db_err)?;
        let changed_at: Option<i64> = row.try_get("changed_at").map_err(db_err)?;
        Ok(KillSwitch {
            state: KillSwitchState::parse(&state)
                .ok_or_else(|| decode_err(TABLE, "state", format!("unknown state {state:?}")))?,
            reason: row.try_get("reason").map_err(db_err)?,
            changed_at: changed_at.map(UnixSeconds),
        })
    }

    /// Revocation and update times are `new.changed_at`, which an activation must carry (the event is built only
    /// once the effects are known). The cancelled rows (oldest first) become final and their reservations are
    /// released. The event
    /// `event` builds is the audit row written and is returned as written.
    async fn activate(&self, new: &KillSwitch, events: EventFromEffects) -> Result<(ActivationEffects, Vec<Event>)> {
        let now = new.changed_at.ok_or_else(|| Error::internal_msg("a kill-switch activation without its time"))?.0;
        let mut tx = self.pools.begin_write().await?;
        store(&mut tx, new).await?;
        let sessions: Vec<(String, String)> =
            sqlx::query_as("UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL RETURNING id, agent_id")
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let agents: Vec<String> =
            sqlx::query_scalar("UPDATE agents SET status = ?, updated_at = ? WHERE status = ? RETURNING id")
                .bind(AgentStatus::Suspended.as_str())
                .bind(now)
                .bind(AgentStatus::Active.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let cancelled = cancel_unsigned(&mut tx, None, CANCELLED_BY_KILL_SWITCH, UnixSeconds(now)).await?;
        let agent_id = |text: &str| parse_column("agents", "id", text, str::parse::<AgentId>);
        let mut revoked_sessions = sessions
            .iter()
            .map(|(session, agent)| {
                Ok((parse_column("sessions", "id", session, str::parse::<SessionId>)?, agent_id(agent)?))
            })
            .collect::<Result<Vec<_>>>()?;
        revoked_sessions.sort_by_key(|(session, _)| session.to_string());
        let mut suspended_agents = agents.iter().map(|a| agent_id(a)).collect::<Result<Vec<_>>>()?;
        suspended_agents.sort_by_key(ToString::to_string);
        let effects = ActivationEffects { revoked_sessions, suspended_agents, cancelled };
        let events = events(&effects);
        append_audits(&mut tx, &events).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((effects, events))
    }

    async fn recover(&self, new: &KillSwitch, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        store(&mut tx, new).await?;
        crate::commit_with_audit(tx, event).await
    }
}

#[cfg(test)]
mod tests {
    use waiaas_core::domain::{Session, TxStatus};
    use waiaas_core::event::EventType;
    use waiaas_core::ports::{AgentRepo, SessionRepo, TxRepo};
    use waiaas_core::{Amount, TxId};

    use super::*;
    use crate::test_support::{TestDb, audit_types};

    async fn tx_row(t: &TestDb, id: TxId) -> (String, Option<String>, i64) {
        let row = sqlx::query("SELECT status, error, updated_at FROM transactions WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&t.db.pools.reader)
            .await
            .unwrap();
        (row.get("status"), row.get("error"), row.get("updated_at"))
    }

    #[tokio::test]
    async fn starts_active() {
        let t = TestDb::new().await;
        assert_eq!(t.db.kill_switch().get().await.unwrap(), KillSwitch::default());
    }

    #[tokio::test]
    async fn activation_revokes_suspends_cancels_and_audits_in_one_go() {
        let t = TestDb::new().await;
        let (active, suspended, terminated) = (t.agent(), t.agent(), t.agent());
        for agent in [&active, &suspended, &terminated] {
            t.insert_agent(agent).await;
        }
        t.set_status(suspended.id, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(2)).await.unwrap().unwrap();
        let open: Vec<Session> = (0..3).map(|_| t.session(active.id)).collect();
        let revoked = t.session(suspended.id);
        for session in open.iter().chain([&revoked]) {
            t.insert_session(session).await;
        }
        t.db.sessions().revoke(revoked.id, UnixSeconds(3), &t.event(EventType::SessionRevoked)).await.unwrap();
        t.set_status(terminated.id, AgentStatus::Active, AgentStatus::Terminated, UnixSeconds(4))
            .await
            .unwrap()
            .unwrap();
        let mut txs = Vec::new();
        for (i, status) in TxStatus::ALL.into_iter().enumerate() {
            let record = t.tx(active.id, status, 1 << i);
            t.admit(&record).await;
            txs.push(record);
        }
        let held = |t: &TestDb| {
            let repo = t.db.transactions();
            async move { repo.snapshot(active.id, UnixSeconds(0)).await.unwrap().reserved }
        };
        // PENDING 1 + QUEUED 2 + EXECUTING 4 + SUBMITTED 8.
        assert_eq!(held(&t).await, [(waiaas_core::domain::Asset::Native, Amount::from_u128(15))]);

        let switch = KillSwitch {
            state: KillSwitchState::Suspended,
            reason: Some("key leak suspected".into()),
            changed_at: Some(UnixSeconds(500)),
        };
        let (effects, events) = t.db.kill_switch().activate(&switch, t.activation()).await.unwrap();
        let unsigned = |status: TxStatus| matches!(status, TxStatus::Pending | TxStatus::Queued | TxStatus::Executing);
        let mut expected_cancelled: Vec<_> =
            txs.iter().filter(|r| unsigned(r.status)).map(|r| (r.id, r.agent_id)).collect();
        expected_cancelled.sort();
        let mut expected_sessions: Vec<_> = open.iter().map(|s| (s.id, active.id)).collect();
        expected_sessions.sort_by_key(|(session, _)| session.to_string());
        assert_eq!(
            effects,
            ActivationEffects {
                revoked_sessions: expected_sessions,
                suspended_agents: vec![active.id],
                cancelled: expected_cancelled.clone()
            }
        );
        assert_eq!(events[0].event_type, EventType::KillSwitchActivated);
        assert_eq!(
            events[0].details["effects"],
            serde_json::json!({"sessionsRevoked": 3, "agentsSuspended": 1, "transactionsCancelled": 3}),
            "the closure saw the effects"
        );
        let cancelled_events: Vec<_> = events[1..].iter().map(|e| (e.event_type, e.tx_id.unwrap())).collect();
        assert_eq!(
            cancelled_events,
            expected_cancelled.iter().map(|(tx, _)| (EventType::TxCancelled, *tx)).collect::<Vec<_>>()
        );
        let written: Vec<_> =
            t.db.audit_chain(0, 100).await.unwrap().into_iter().rev().take(events.len()).map(|r| r.event).collect();
        assert_eq!(
            written.into_iter().rev().collect::<Vec<_>>(),
            events,
            "the returned events are the audit rows written"
        );
        assert_eq!(t.db.kill_switch().get().await.unwrap(), switch);
        for session in &open {
            assert_eq!(t.db.sessions().get(session.id).await.unwrap().unwrap().revoked_at, Some(UnixSeconds(500)));
        }
        assert_eq!(t.db.sessions().get(revoked.id).await.unwrap().unwrap().revoked_at, Some(UnixSeconds(3)));
        assert_eq!(t.db.sessions().count_active(UnixSeconds(0)).await.unwrap(), 0);
        let status = |id| {
            let agents = t.db.agents();
            async move { agents.get(id).await.unwrap().unwrap().status }
        };
        assert_eq!(status(active.id).await, AgentStatus::Suspended);
        assert_eq!(status(suspended.id).await, AgentStatus::Suspended);
        assert_eq!(status(terminated.id).await, AgentStatus::Terminated);
        for record in &txs {
            let (after, error, updated_at) = tx_row(&t, record.id).await;
            if unsigned(record.status) {
                assert_eq!(
                    (after.as_str(), error.as_deref(), updated_at),
                    ("CANCELLED", Some(CANCELLED_BY_KILL_SWITCH), 500)
                );
            } else {
                assert_eq!(
                    (after.as_str(), error, updated_at),
                    (record.status.as_str(), None, record.updated_at.0),
                    "{:?} untouched",
                    record.status
                );
            }
        }
        // The cancelled rows (EXECUTING included) no longer hold anything; signed work (SUBMITTED 8) still does.
        assert_eq!(held(&t).await, [(waiaas_core::domain::Asset::Native, Amount::from_u128(8))]);

        // Tripping again (→ LOCKED) finds nothing left to do.
        let locked = KillSwitch { state: KillSwitchState::Locked, changed_at: Some(UnixSeconds(600)), ..switch };
        let (effects, events) = t.db.kill_switch().activate(&locked, t.activation()).await.unwrap();
        assert_eq!(effects, ActivationEffects::default());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].details["effects"]["transactionsCancelled"], 0);
        assert_eq!(t.db.kill_switch().get().await.unwrap().state, KillSwitchState::Locked);
    }

    #[tokio::test]
    async fn an_activation_without_its_time_is_refused_and_changes_nothing() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let timeless = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: None };
        let err = t.db.kill_switch().activate(&timeless, t.activation()).await.unwrap_err();
        assert_eq!(err.code, waiaas_core::ErrorCode::InternalError);
        assert_eq!(t.db.kill_switch().get().await.unwrap(), KillSwitch::default());
        assert_eq!(t.db.agents().get(agent.id).await.unwrap().unwrap().status, AgentStatus::Active);
        assert_eq!(audit_types(&t.db).await, [EventType::AgentCreated]);
    }

    #[tokio::test]
    async fn recovery_stores_the_state_and_leaves_agents_and_sessions() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let session = t.session(agent.id);
        t.insert_session(&session).await;
        let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(10)) };
        t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
        let recovered = KillSwitch { state: KillSwitchState::Active, reason: None, changed_at: Some(UnixSeconds(20)) };
        t.db.kill_switch().recover(&recovered, &t.event(EventType::KillSwitchRecovered)).await.unwrap();
        assert_eq!(t.db.kill_switch().get().await.unwrap(), recovered);
        assert_eq!(t.db.agents().get(agent.id).await.unwrap().unwrap().status, AgentStatus::Suspended);
        assert_eq!(t.db.sessions().get(session.id).await.unwrap().unwrap().revoked_at, Some(UnixSeconds(10)));
        assert_eq!(
            audit_types(&t.db).await,
            [
                EventType::AgentCreated,
                EventType::SessionCreated,
                EventType::KillSwitchActivated,
                EventType::KillSwitchRecovered
            ]
        );
    }
}
