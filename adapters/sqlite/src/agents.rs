//! [`AgentRepo`] over SQLite: the `agents` table. Terminating an agent revokes its sessions in the same
//! transaction; every change writes its audit row in that transaction too.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use waiaas_core::domain::{Agent, AgentStatus, Chain, EvmAddress};
use waiaas_core::event::Event;
use waiaas_core::ports::AgentRepo;
use waiaas_core::{AgentId, ErrorCode, Result, UnixSeconds};

use crate::error::{db_err, decode_err, not_found, parse_column, to_u64};
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, require_row};

const TABLE: &str = "agents";
const COLUMNS: &str = "id, name, chain, network, address, status, owner_address, created_at, updated_at";

fn agent_from_row(row: &SqliteRow) -> Result<Agent> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let chain = text("chain")?;
    let status = text("status")?;
    let owner: Option<String> = row.try_get("owner_address").map_err(db_err)?;
    Ok(Agent {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<AgentId>)?,
        name: text("name")?,
        chain: Chain::parse(&chain).ok_or_else(|| decode_err(TABLE, "chain", format!("unknown chain {chain:?}")))?,
        network: text("network")?,
        address: parse_column(TABLE, "address", &text("address")?, str::parse::<EvmAddress>)?,
        status: AgentStatus::parse(&status)
            .ok_or_else(|| decode_err(TABLE, "status", format!("unknown status {status:?}")))?,
        owner_address: owner
            .map(|raw| parse_column(TABLE, "owner_address", &raw, str::parse::<EvmAddress>))
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

    async fn set_status(&self, id: AgentId, status: AgentStatus, now: UnixSeconds, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query("UPDATE agents SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(now.0)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::AgentNotFound, "agent", id))?;
        if status == AgentStatus::Terminated {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL")
                .bind(now.0)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        commit_with_audit(tx, event).await
    }

    async fn set_owner(&self, id: AgentId, owner: Option<EvmAddress>, now: UnixSeconds, event: &Event) -> Result<()> {
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
    use crate::test_support::{TestDb, address, audit_types, count_audit_rows};

    #[tokio::test]
    async fn insert_get_round_trip_with_one_audit_row() {
        let t = TestDb::new().await;
        let mut agent = t.agent();
        agent.owner_address = Some(address(9));
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
        t.db.agents()
            .set_status(agent.id, AgentStatus::Suspended, now, &t.event(EventType::AgentSuspended).agent(agent.id))
            .await
            .unwrap();
        let owner = address(3);
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
        let err =
            t.db.agents()
                .set_status(id, AgentStatus::Suspended, UnixSeconds(1), &t.event(EventType::AgentSuspended))
                .await;
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
        t.db.agents()
            .set_status(doomed.id, AgentStatus::Terminated, now, &t.event(EventType::AgentTerminated).agent(doomed.id))
            .await
            .unwrap();
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
        t.db.agents()
            .set_status(agent.id, AgentStatus::Suspended, UnixSeconds(5), &t.event(EventType::AgentSuspended))
            .await
            .unwrap();
        assert_eq!(t.db.sessions().get(session.id).await.unwrap().unwrap().revoked_at, None);
    }
}
