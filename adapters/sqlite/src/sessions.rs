//! [`SessionRepo`] over SQLite: the `sessions` table. Only the token's hash is stored; every change writes its
//! audit row in the same transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use waiaas_core::domain::{Session, SessionConstraints};
use waiaas_core::event::Event;
use waiaas_core::ports::SessionRepo;
use waiaas_core::{AgentId, ErrorCode, Result, SessionId, UnixSeconds};

use crate::error::{db_err, decode_err, is_foreign_key_violation, not_found, parse_column, parse_json, to_u64};
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, require_row};

const TABLE: &str = "sessions";
const COLUMNS: &str = "id, agent_id, token_hash, constraints, created_at, expires_at, revoked_at, renewal_count";

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let constraints: Option<String> = row.try_get("constraints").map_err(db_err)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(db_err)?;
    let renewal_count: i64 = row.try_get("renewal_count").map_err(db_err)?;
    Ok(Session {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<SessionId>)?,
        agent_id: parse_column(TABLE, "agent_id", &text("agent_id")?, str::parse::<AgentId>)?,
        token_hash: text("token_hash")?,
        constraints: constraints
            .map(|raw| {
                let json = parse_json(TABLE, "constraints", &raw)?;
                SessionConstraints::parse(&json).map_err(|e| decode_err(TABLE, "constraints", e.message))
            })
            .transpose()?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
        expires_at: UnixSeconds(row.try_get("expires_at").map_err(db_err)?),
        revoked_at: revoked_at.map(UnixSeconds),
        renewal_count: u32::try_from(renewal_count).map_err(|e| decode_err(TABLE, "renewal_count", e))?,
    })
}

/// [`SessionRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteSessionRepo {
    pools: Pools,
}

impl SqliteSessionRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteSessionRepo { pools }
    }
}

#[async_trait]
impl SessionRepo for SqliteSessionRepo {
    /// A session of an agent that does not exist is `AGENT_NOT_FOUND`.
    async fn insert(&self, session: &Session, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, agent_id, token_hash, constraints, created_at, expires_at, revoked_at, \
             renewal_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.agent_id.to_string())
        .bind(&session.token_hash)
        .bind(session.constraints.as_ref().map(|c| c.to_json().to_string()))
        .bind(session.created_at.0)
        .bind(session.expires_at.0)
        .bind(session.revoked_at.map(|t| t.0))
        .bind(i64::from(session.renewal_count))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                not_found(ErrorCode::AgentNotFound, "agent", session.agent_id)
            } else {
                db_err(e)
            }
        })?;
        commit_with_audit(tx, event).await
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>> {
        fetch_by_id(&self.pools.reader, COLUMNS, TABLE, id, session_from_row).await
    }

    async fn list(&self, agent_id: Option<AgentId>, before: Option<SessionId>, limit: u32) -> Result<Vec<Session>> {
        let page =
            keyset_page(COLUMNS, TABLE, agent_id.map(|id| id.to_string()), before.map(|id| id.to_string()), limit);
        fetch_page(&self.pools.reader, page, session_from_row).await
    }

    /// Revoking an already revoked session keeps its first revocation time (the event is still recorded).
    async fn revoke(&self, id: SessionId, now: UnixSeconds, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now.0)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::SessionNotFound, "session", id))?;
        commit_with_audit(tx, event).await
    }

    async fn renew(&self, id: SessionId, token_hash: &str, expires_at: UnixSeconds, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query(
            "UPDATE sessions SET token_hash = ?, expires_at = ?, renewal_count = renewal_count + 1 WHERE id = ?",
        )
        .bind(token_hash)
        .bind(expires_at.0)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::SessionNotFound, "session", id))?;
        commit_with_audit(tx, event).await
    }

    async fn count_active(&self, now: UnixSeconds) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?")
                .bind(now.0)
                .fetch_one(&self.pools.reader)
                .await
                .map_err(db_err)?;
        to_u64(TABLE, "COUNT(*)", count)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use waiaas_core::event::EventType;

    use super::*;
    use crate::test_support::{TestDb, audit_types, count_audit_rows};

    #[tokio::test]
    async fn insert_get_round_trip_with_one_audit_row() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let mut session = t.session(agent.id);
        session.constraints = Some(
            SessionConstraints::parse(&json!({ "maxAmountPerTx": { "native": "100" }, "allowedNetworks": ["anvil"] }))
                .unwrap(),
        );
        let plain = t.session(agent.id);
        let event = t.event(EventType::SessionCreated).agent(agent.id).session(session.id);
        t.db.sessions().insert(&session, &event).await.unwrap();
        t.db.sessions().insert(&plain, &t.event(EventType::SessionCreated)).await.unwrap();
        assert_eq!(t.db.sessions().get(session.id).await.unwrap(), Some(session.clone()));
        assert_eq!(t.db.sessions().get(plain.id).await.unwrap(), Some(plain));
        assert_eq!(t.db.sessions().get(SessionId::generate(&t.clock, &t.entropy)).await.unwrap(), None);
        let rows = t.db.audit_chain(1, 1).await.unwrap();
        assert_eq!(rows[0].event, event);
        assert_eq!(count_audit_rows(&t.db).await, 3);
    }

    #[tokio::test]
    async fn a_session_for_a_missing_agent_is_agent_not_found_and_not_audited() {
        let t = TestDb::new().await;
        let session = t.session(t.agent().id);
        let err = t.db.sessions().insert(&session, &t.event(EventType::SessionCreated)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::AgentNotFound);
        assert_eq!(count_audit_rows(&t.db).await, 0);
    }

    #[tokio::test]
    async fn a_duplicate_token_hash_is_refused_without_an_audit_row() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let first = t.session(agent.id);
        t.insert_session(&first).await;
        let clash = Session { token_hash: first.token_hash.clone(), ..t.session(agent.id) };
        let err = t.db.sessions().insert(&clash, &t.event(EventType::SessionCreated)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InternalError);
        assert_eq!(count_audit_rows(&t.db).await, 2);
        assert_eq!(t.db.sessions().get(clash.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_filters_by_agent_newest_first_with_keyset_pages() {
        let t = TestDb::new().await;
        let (a, b) = (t.agent(), t.agent());
        t.insert_agent(&a).await;
        t.insert_agent(&b).await;
        let mut of_a = Vec::new();
        let mut all = Vec::new();
        for i in 0..6 {
            let session = t.session(if i % 2 == 0 { a.id } else { b.id });
            t.insert_session(&session).await;
            if i % 2 == 0 {
                of_a.push(session.clone());
            }
            all.push(session);
        }
        of_a.reverse();
        all.reverse();
        assert_eq!(t.db.sessions().list(None, None, 100).await.unwrap(), all);
        let page = t.db.sessions().list(Some(a.id), None, 2).await.unwrap();
        assert_eq!(page, of_a[..2]);
        let rest = t.db.sessions().list(Some(a.id), Some(page[1].id), 2).await.unwrap();
        assert_eq!(rest, of_a[2..]);
        let across = t.db.sessions().list(None, Some(all[1].id), 3).await.unwrap();
        assert_eq!(across, all[2..5]);
    }

    #[tokio::test]
    async fn revoke_and_renew_update_the_row_and_audit() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let session = t.session(agent.id);
        t.insert_session(&session).await;

        let expires = UnixSeconds(session.expires_at.0 + 500);
        t.db.sessions().renew(session.id, "new-hash", expires, &t.event(EventType::SessionRenewed)).await.unwrap();
        t.db.sessions().renew(session.id, "newer-hash", expires, &t.event(EventType::SessionRenewed)).await.unwrap();
        let renewed = t.db.sessions().get(session.id).await.unwrap().unwrap();
        assert_eq!(renewed.token_hash, "newer-hash");
        assert_eq!(renewed.expires_at, expires);
        assert_eq!(renewed.renewal_count, 2);
        assert_eq!(renewed.revoked_at, None);

        t.db.sessions().revoke(session.id, UnixSeconds(77), &t.event(EventType::SessionRevoked)).await.unwrap();
        t.db.sessions().revoke(session.id, UnixSeconds(99), &t.event(EventType::SessionRevoked)).await.unwrap();
        assert_eq!(t.db.sessions().get(session.id).await.unwrap().unwrap().revoked_at, Some(UnixSeconds(77)));
        assert_eq!(
            audit_types(&t.db).await,
            [
                EventType::AgentCreated,
                EventType::SessionCreated,
                EventType::SessionRenewed,
                EventType::SessionRenewed,
                EventType::SessionRevoked,
                EventType::SessionRevoked,
            ]
        );
    }

    #[tokio::test]
    async fn missing_sessions_are_not_found_and_not_audited() {
        let t = TestDb::new().await;
        let id = SessionId::generate(&t.clock, &t.entropy);
        let err = t.db.sessions().revoke(id, UnixSeconds(1), &t.event(EventType::SessionRevoked)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionNotFound);
        let err =
            t.db.sessions().renew(id, "h", UnixSeconds(1), &t.event(EventType::SessionRenewed)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::SessionNotFound);
        assert_eq!(count_audit_rows(&t.db).await, 0);
    }

    #[tokio::test]
    async fn count_active_excludes_revoked_and_expired() {
        let t = TestDb::new().await;
        let agent = t.agent();
        t.insert_agent(&agent).await;
        let now = UnixSeconds(10_000);
        let live = Session { expires_at: UnixSeconds(now.0 + 1), ..t.session(agent.id) };
        let at_expiry = Session { expires_at: now, ..t.session(agent.id) };
        let expired = Session { expires_at: UnixSeconds(now.0 - 1), ..t.session(agent.id) };
        let revoked = Session { expires_at: UnixSeconds(now.0 + 100), ..t.session(agent.id) };
        for s in [&live, &at_expiry, &expired, &revoked] {
            t.insert_session(s).await;
        }
        t.db.sessions().revoke(revoked.id, now, &t.event(EventType::SessionRevoked)).await.unwrap();
        assert_eq!(t.db.sessions().count_active(now).await.unwrap(), 1);
        assert_eq!(t.db.sessions().count_active(UnixSeconds(now.0 - 2)).await.unwrap(), 3);
    }
}
