//! [`AgentRepo`] over SQLite: the `agents` table. A status change is compare-and-set on `(id, status)`;
//! suspending or terminating cancels the agent's unsigned transactions and terminating revokes its sessions, in
//! the same transaction; every change writes its audit rows in that transaction too.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use waiaas_core::domain::{Address, Agent, AgentStatus, Chain};
use waiaas_core::event::Event;
use waiaas_core::ports::{AgentRepo, EventsFromStatusEffects, StatusEffects};
use waiaas_core::{AgentId, Error, ErrorCode, Result, SessionId, UnixSeconds};

use crate::audit::append_audits;
use crate::error::{db_err, decode_err, not_found, parse_column, to_u64};
use crate::unsigned::cancel_unsigned;
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, kill_switch, require_row};

const TABLE: &str = "agents";
const COLUMNS: &str = "id, name, chain, network, address, status, owner_address, created_at, updated_at";

/// The `error` of a transaction cancelled because its agent was suspended.
pub const CANCELLED_BY_SUSPENSION: &str = "agent suspended";
/// The `error` of a transaction cancelled because its agent was terminated.
pub const CANCELLED_BY_TERMINATION: &str = "agent terminated";

fn agent_from_row(row: &SqliteRow) -> Result<Agent> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let chain = text("chain")?;
    let status = text("status")?;
    let owner: Option<String> = row.try_get("owner_address").map_err(db_err)?;
    let chain = Chain::parse(&chain).ok_or_else(|| decode_err(TABLE, "chain", format!("unknown chain {chain:?}")))?;
    Ok(Agent {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<AgentId>)?,
        name: text("name")?,
        chain,
        network: text("network")?,
        address: parse_column(TABLE, "address", &text("address")?, |a| Address::parse(chain.family(), a))?,
        status: AgentStatus::parse(&status)
            .ok_or_else(|| decode_err(TABLE, "status", format!("unknown status {status:?}")))?,
        owner_address: owner
            .map(|raw| parse_column(TABLE, "owner_address", &raw, |a| Address::parse(chain.family(), a)))
            .transpose()?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
        updated_at: UnixSeconds(row.try_get("updated_at").map_err(db_err)?),
    })
}

/// [`AgentRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteAgentRepo {
    pools: Pools,
}

impl SqliteAgentRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteAgentRepo { pools }
    }
}

#[async_trait]
impl AgentRepo for SqliteAgentRepo {
    async fn insert(&self, agent: &Agent, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        sqlx::query(
            "INSERT INTO agents (id, name, chain, network, address, status, owner_address, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(agent.id.to_string())
        .bind(&agent.name)
        .bind(agent.chain.as_str())
        .bind(&agent.network)
        .bind(agent.address.to_string())
        .bind(agent.status.as_str())
        .bind(agent.owner_address.map(|a| a.to_string()))
        .bind(agent.created_at.0)
        .bind(agent.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit_with_audit(tx, event).await
    }

    async fn get(&self, id: AgentId) -> Result<Option<Agent>> {
        fetch_by_id(&self.pools.reader, COLUMNS, TABLE, id, agent_from_row).await
    }

    async fn list(&self, before: Option<AgentId>, limit: u32) -> Result<Vec<Agent>> {
        let page = keyset_page(COLUMNS, TABLE, None, before.map(|id| id.to_string()), limit);
        fetch_page(&self.pools.reader, page, agent_from_row).await
    }

    async fn set_status(
        &self,
        id: AgentId,
        from: AgentStatus,
        to: AgentStatus,
        now: UnixSeconds,
        events: EventsFromStatusEffects,
    ) -> Result<Option<(StatusEffects, Vec<Event>)>> {
        let mut tx = self.pools.begin_write().await?;
        if to == AgentStatus::Active && kill_switch::is_tripped(&mut tx).await? {
            return Err(Error::new(ErrorCode::SystemLocked, "the kill switch is active"));
        }
        let done = sqlx::query("UPDATE agents SET status = ?, updated_at = ? WHERE id = ? AND status = ?")
            .bind(to.as_str())
            .bind(now.0)
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM agents WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.rollback().await.map_err(db_err)?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(not_found(ErrorCode::AgentNotFound, "agent", id)),
            };
        }
        let mut effects = StatusEffects::default();
        if to == AgentStatus::Terminated {
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL RETURNING id",
            )
            .bind(now.0)
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            effects.revoked_sessions = revoked
                .iter()
                .map(|text| parse_column("sessions", "id", text, str::parse::<SessionId>))
                .collect::<Result<_>>()?;
            effects.revoked_sessions.sort_by_key(ToString::to_string);
        }
        if to != AgentStatus::Active {
            let reason = match to {
                AgentStatus::Terminated => CANCELLED_BY_TERMINATION,
                AgentStatus::Active | AgentStatus::Suspended => CANCELLED_BY_SUSPENSION,
            };
            let cancelled = cancel_unsigned(&mut tx, Some(id), reason, now).await?;
            effects.cancelled = cancelled.into_iter().map(|(tx_id, _)| tx_id).collect();
        }
        let events = events(&effects);
        append_audits(&mut tx, &events).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some((effects, events)))
    }

    async fn set_owner(&self, id: AgentId, owner: Option<Address>, now: UnixSeconds, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query("UPDATE agents SET owner_address = ?, updated_at = ? WHERE id = ?")
            .bind(owner.map(|a| a.to_string()))
            .bind(now.0)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::AgentNotFound, "agent", id))?;
        commit_with_audit(tx, event).await
    }

    async fn count_by_status(&self, status: AgentStatus) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE status = ?")
            .bind(status.as_str())
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        to_u64(TABLE, "COUNT(*)", count)
    }
}

#[cfg(test)]
mod tests {
    use waiaas_core::event::EventType;
    use waiaas_core::ports::SessionRepo;

    use super::*;
    use crate::test_support::{TestDb, audit_types, count_audit_rows, owner_address};

    #[tokio::test]
    async fn insert_get_round_trip_with_one_audit_row() {
        let t = TestDb::new().await;
        let mut agent = t.agent();
        agent.owner_address = Some(owner_address(9));
        let event = t.event(EventType::AgentCreated).agent(agent.id);
        t.db.agents().insert(&agent, &event).await.unwrap();
        assert_eq!(t.db.agents().get(agent.id).await.unwrap(), Some(agent.clone()));
        assert_eq!(t.db.agents().get(t.agent().id).await.unwrap(), None);
        let rows = t.db.audit_chain(0, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event, event);
    }

    #[tokio::test]
    async fn a_failed_insert_writes_no_audit_row() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        assert_eq!(count_audit_rows(&t.db).await, 1);
        let duplicate = Agent { name: "again".into(), ..agent.clone() };
        let err = t.db.agents().insert(&duplicate, &t.event(EventType::AgentCreated)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InternalError);
        assert_eq!(count_audit_rows(&t.db).await, 1, "the audit row of a failed change is not kept");
        assert_eq!(t.db.agents().get(agent.id).await.unwrap(), Some(agent));
    }

    #[tokio::test]
    async fn list_is_newest_first_with_keyset_pages() {
        let t = TestDb::new().await;
        let mut agents = Vec::new();
        for _ in 0..5 {
            let agent = t.agent();
            t.insert_agent(&agent).await;
            agents.push(agent);
        }
        agents.reverse();
        let first = t.db.agents().list(None, 2).await.unwrap();
        assert_eq!(first, agents[..2]);
        let second = t.db.agents().list(Some(first[1].id), 2).await.unwrap();
        assert_eq!(second, agents[2..4]);
        let third = t.db.agents().list(Some(second[1].id), 2).await.unwrap();
        assert_eq!(third, agents[4..]);
        assert!(t.db.agents().list(Some(third[0].id), 2).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn set_status_and_owner_update_the_row_and_audit() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let now = UnixSeconds(agent.created_at.0 + 10);
        let (effects, _) =
            t.set_status(agent.id, AgentStatus::Active, AgentStatus::Suspended, now).await.unwrap().unwrap();
        assert_eq!(effects, StatusEffects::default(), "nothing to cancel or revoke");
        let owner = owner_address(3);
        t.db.agents()
            .set_owner(agent.id, Some(owner), UnixSeconds(now.0 + 1), &t.event(EventType::OwnerSet).agent(agent.id))
            .await
            .unwrap();
        let stored = t.db.agents().get(agent.id).await.unwrap().unwrap();
        assert_eq!(stored.status, AgentStatus::Suspended);
        assert_eq!(stored.owner_address, Some(owner));
        assert_eq!(stored.updated_at, UnixSeconds(now.0 + 1));
        assert_eq!(stored.created_at, agent.created_at);
        t.db.agents().set_owner(agent.id, None, now, &t.event(EventType::OwnerSet)).await.unwrap();
        assert_eq!(t.db.agents().get(agent.id).await.unwrap().unwrap().owner_address, None);
        assert_eq!(
            audit_types(&t.db).await,
            [EventType::AgentCreated, EventType::AgentSuspended, EventType::OwnerSet, EventType::OwnerSet]
        );
        assert_eq!(t.db.agents().count_by_status(AgentStatus::Suspended).await.unwrap(), 1);
        assert_eq!(t.db.agents().count_by_status(AgentStatus::Active).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn missing_agents_are_not_found_and_not_audited() {
        let t = TestDb::new().await;
        let id = t.agent().id;
        let err = t.set_status(id, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(1)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::AgentNotFound);
        let err = t.db.agents().set_owner(id, None, UnixSeconds(1), &t.event(EventType::OwnerSet)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::AgentNotFound);
        assert_eq!(count_audit_rows(&t.db).await, 0);
    }

    #[tokio::test]
    async fn terminating_revokes_only_that_agents_open_sessions() {
        let t = TestDb::new().await;
        let (doomed, other) = (t.agent(), t.agent());
        t.insert_agent(&doomed).await;
        t.insert_agent(&other).await;
        let open = t.session(doomed.id);
        let already = t.session(doomed.id);
        let unrelated = t.session(other.id);
        for session in [&open, &already, &unrelated] {
            t.insert_session(session).await;
        }
        t.db.sessions().revoke(already.id, UnixSeconds(50), &t.event(EventType::SessionRevoked)).await.unwrap();

        let now = UnixSeconds(100);
        let (effects, _) =
            t.set_status(doomed.id, AgentStatus::Active, AgentStatus::Terminated, now).await.unwrap().unwrap();
        assert_eq!(effects.revoked_sessions, [open.id], "one revocation each, for its event");
        let sessions = t.db.sessions();
        assert_eq!(sessions.get(open.id).await.unwrap().unwrap().revoked_at, Some(now));
        assert_eq!(sessions.get(already.id).await.unwrap().unwrap().revoked_at, Some(UnixSeconds(50)), "kept");
        assert_eq!(sessions.get(unrelated.id).await.unwrap().unwrap().revoked_at, None);
        assert_eq!(t.db.agents().get(doomed.id).await.unwrap().unwrap().status, AgentStatus::Terminated);
        assert_eq!(audit_types(&t.db).await.last(), Some(&EventType::AgentTerminated));
    }

    #[tokio::test]
    async fn suspending_keeps_sessions() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let session = t.session(agent.id);
        t.insert_session(&session).await;
        t.set_status(agent.id, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(5)).await.unwrap().unwrap();
        assert_eq!(t.db.sessions().get(session.id).await.unwrap().unwrap().revoked_at, None);
    }

    #[tokio::test]
    async fn a_status_change_from_a_status_the_agent_left_writes_nothing() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let rows = count_audit_rows(&t.db).await;
        for (from, to) in [
            (AgentStatus::Suspended, AgentStatus::Active),
            (AgentStatus::Suspended, AgentStatus::Terminated),
            (AgentStatus::Terminated, AgentStatus::Active),
        ] {
            assert_eq!(t.set_status(agent.id, from, to, UnixSeconds(9)).await.unwrap(), None, "{from:?} -> {to:?}");
        }
        assert_eq!(t.db.agents().get(agent.id).await.unwrap(), Some(agent.clone()));
        assert_eq!(count_audit_rows(&t.db).await, rows);

        t.set_status(agent.id, AgentStatus::Active, AgentStatus::Terminated, UnixSeconds(10)).await.unwrap().unwrap();
        assert_eq!(
            t.set_status(agent.id, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(11)).await.unwrap(),
            None
        );
        assert_eq!(t.db.agents().get(agent.id).await.unwrap().unwrap().status, AgentStatus::Terminated);
    }

    #[tokio::test]
    async fn resuming_is_refused_while_the_kill_switch_is_tripped() {
        use waiaas_core::domain::{KillSwitch, KillSwitchState};
        use waiaas_core::ports::KillSwitchRepo;
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(5)) };
        t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
        let rows = count_audit_rows(&t.db).await;
        let err = t.set_status(agent.id, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(6)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::SystemLocked);
        assert_eq!(t.db.agents().get(agent.id).await.unwrap().unwrap().status, AgentStatus::Suspended);
        assert_eq!(count_audit_rows(&t.db).await, rows);
        // Narrowing stays possible.
        t.set_status(agent.id, AgentStatus::Suspended, AgentStatus::Terminated, UnixSeconds(7)).await.unwrap().unwrap();
    }

    /// Suspending and terminating cancel the agent's unsigned rows (PENDING, QUEUED, EXECUTING) with one
    /// TX_CANCELLED each, release what they held, and leave signed and final rows and other agents alone.
    #[tokio::test]
    async fn leaving_active_cancels_the_agents_unsigned_work() {
        use waiaas_core::domain::{Asset, TxStatus};
        use waiaas_core::ports::TxRepo;
        use waiaas_core::{Amount, TxId};

        let t = TestDb::new().await;
        let (agent, other) = (t.agent(), t.agent());
        t.insert_agent(&agent).await;
        t.insert_agent(&other).await;
        let mut rows = Vec::new();
        for (i, status) in TxStatus::ALL.into_iter().enumerate() {
            let record = t.tx(agent.id, status, 1 << i);
            t.admit(&record).await;
            rows.push(record);
            t.admit(&t.tx(other.id, status, 1_000)).await;
        }
        let held = |id: AgentId| {
            let repo = t.db.transactions();
            async move { repo.snapshot(id, UnixSeconds(0)).await.unwrap().reserved }
        };
        assert_eq!(held(agent.id).await, [(Asset::Native, Amount::from_u128(15))]);

        let (effects, events) = t
            .set_status(agent.id, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(50))
            .await
            .unwrap()
            .unwrap();
        let unsigned: Vec<TxId> = rows
            .iter()
            .filter(|r| matches!(r.status, TxStatus::Pending | TxStatus::Queued | TxStatus::Executing))
            .map(|r| r.id)
            .collect();
        assert_eq!(effects, StatusEffects { revoked_sessions: Vec::new(), cancelled: unsigned.clone() });
        let written: Vec<Event> = t.db.audit_chain(0, 100).await.unwrap().into_iter().map(|r| r.event).collect();
        assert_eq!(written[written.len() - events.len()..], events, "the returned events are the rows written");
        let kinds: Vec<(EventType, Option<TxId>)> = events.iter().map(|e| (e.event_type, e.tx_id)).collect();
        let mut expected = vec![(EventType::AgentSuspended, None)];
        expected.extend(unsigned.iter().map(|id| (EventType::TxCancelled, Some(*id))));
        assert_eq!(kinds, expected);
        for record in &rows {
            let stored = t.db.transactions().get(record.id).await.unwrap().unwrap();
            if unsigned.contains(&record.id) {
                assert_eq!(
                    (stored.status, stored.error.as_deref(), stored.updated_at),
                    (TxStatus::Cancelled, Some(CANCELLED_BY_SUSPENSION), UnixSeconds(50))
                );
            } else {
                assert_eq!(stored, *record, "{:?} untouched", record.status);
            }
        }
        assert_eq!(held(agent.id).await, [(Asset::Native, Amount::from_u128(8))], "SUBMITTED still holds");
        assert_eq!(held(other.id).await, [(Asset::Native, Amount::from_u128(4_000))], "other agents untouched");

        // A row that arrived while suspended (an older daemon's) is cancelled by the termination.
        let late = t.tx(agent.id, TxStatus::Executing, 16);
        t.admit(&late).await;
        let (effects, _) = t
            .set_status(agent.id, AgentStatus::Suspended, AgentStatus::Terminated, UnixSeconds(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(effects.cancelled, [late.id]);
        let stored = t.db.transactions().get(late.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.error.as_deref()), (TxStatus::Cancelled, Some(CANCELLED_BY_TERMINATION)));
    }

    /// Each agent gets a resume and a terminate at the same time, each reading the status and then setting it
    /// from what it read (as the core does): whatever the interleaving, a terminate that went through is final.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_resume_racing_a_terminate_never_revives_the_agent() {
        let t = TestDb::new().await;
        let mut agents = Vec::new();
        for _ in 0..40 {
            let agent = t.agent();
            t.insert_agent(&agent).await;
            t.set_status(agent.id, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(1)).await.unwrap().unwrap();
            agents.push(agent.id);
        }
        let mut races = Vec::new();
        for id in &agents {
            let id = *id;
            let change = |to: AgentStatus, step: fn(AgentStatus) -> std::result::Result<AgentStatus, _>| {
                let (repo, events) = (t.db.agents(), t.status_events(id, to));
                tokio::spawn(async move {
                    let from = repo.get(id).await.unwrap().unwrap().status;
                    let Ok(to) = step(from) else { return false };
                    repo.set_status(id, from, to, UnixSeconds(2), events).await.unwrap().is_some()
                })
            };
            races.push((
                id,
                change(AgentStatus::Active, AgentStatus::resume),
                change(AgentStatus::Terminated, AgentStatus::terminate),
            ));
        }
        for (id, resumed, terminated) in races {
            let (resumed, terminated) = (resumed.await.unwrap(), terminated.await.unwrap());
            let status = t.db.agents().get(id).await.unwrap().unwrap().status;
            if terminated {
                assert_eq!(status, AgentStatus::Terminated, "resumed: {resumed}");
            } else {
                assert!(resumed, "one of the two goes through");
                assert_eq!(status, AgentStatus::Active);
            }
        }
        // The audit log agrees: no AGENT_RESUMED after an AGENT_TERMINATED of the same agent.
        let rows = t.db.audit_chain(0, 10_000).await.unwrap();
        for id in &agents {
            let of_agent: Vec<EventType> =
                rows.iter().filter(|r| r.event.agent_id == Some(*id)).map(|r| r.event.event_type).collect();
            if let Some(at) = of_agent.iter().position(|e| *e == EventType::AgentTerminated) {
                assert!(!of_agent[at..].contains(&EventType::AgentResumed), "{of_agent:?}");
            }
        }
    }
}
