//! [`AnomalyRepo`] over SQLite (0007): `anomaly_findings`, `tier_floors`, and the final transactions the
//! anomaly state is rebuilt from.
//!
//! A finding, the floor it raises and its `ANOMALY_DETECTED` audit row are written in one write transaction; the
//! floor is merged with the stored one there ([`TierFloor::merge`]: never lowered while in force), so a concurrent
//! clear is either before the merge or after the whole finding. Admissions read the floor inside their own write
//! transaction ([`floor`]), simulate in its read transaction.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use waiaas_core::anomaly::{Finding, FindingRecord, TierFloor};
use waiaas_core::domain::Tier;
use waiaas_core::event::Event;
use waiaas_core::ports::{AnomalyRepo, EventFromFinding, FindingQuery, TxRecord};
use waiaas_core::{AgentId, Result, TxId, UnixSeconds};

use crate::audit::append_audit;
use crate::error::{db_err, parse_column, to_u64};
use crate::tx_rows::{COLUMNS, record_from_row};
use crate::{Pools, fetch_page};

const FINDINGS: &str = "anomaly_findings";
const FLOORS: &str = "tier_floors";
const FINDING_COLUMNS: &str =
    "id, agent_id, tx_id, rule, observed, threshold, window_seconds, unit, shadow, created_at";

/// The agent's stored floor (expired or not), on any connection (a reader's transaction or the writer's).
pub(crate) async fn floor(conn: &mut SqliteConnection, agent: &str) -> Result<Option<TierFloor>> {
    let row = sqlx::query("SELECT agent_id, tier, expires_at, rule, updated_at FROM tier_floors WHERE agent_id = ?")
        .bind(agent)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(floor_from_row).transpose()
}

fn floor_from_row(row: &SqliteRow) -> Result<TierFloor> {
    let agent: String = row.try_get("agent_id").map_err(db_err)?;
    let tier: String = row.try_get("tier").map_err(db_err)?;
    Ok(TierFloor {
        agent_id: parse_column(FLOORS, "agent_id", &agent, str::parse::<AgentId>)?,
        tier: parse_column(FLOORS, "tier", &tier, |t| Tier::parse(t).ok_or("unknown tier"))?,
        expires_at: UnixSeconds(row.try_get("expires_at").map_err(db_err)?),
        rule: row.try_get("rule").map_err(db_err)?,
        updated_at: UnixSeconds(row.try_get("updated_at").map_err(db_err)?),
    })
}

fn finding_from_row(row: &SqliteRow) -> Result<FindingRecord> {
    let agent: String = row.try_get("agent_id").map_err(db_err)?;
    let tx: Option<String> = row.try_get("tx_id").map_err(db_err)?;
    let window: i64 = row.try_get("window_seconds").map_err(db_err)?;
    Ok(FindingRecord {
        id: row.try_get("id").map_err(db_err)?,
        agent_id: parse_column(FINDINGS, "agent_id", &agent, str::parse::<AgentId>)?,
        tx_id: tx.map(|tx| parse_column(FINDINGS, "tx_id", &tx, str::parse::<TxId>)).transpose()?,
        finding: Finding {
            rule: row.try_get("rule").map_err(db_err)?,
            observed: row.try_get("observed").map_err(db_err)?,
            threshold: row.try_get("threshold").map_err(db_err)?,
            window_seconds: to_u64(FINDINGS, "window_seconds", window)?,
            unit: row.try_get("unit").map_err(db_err)?,
        },
        shadow: row.try_get("shadow").map_err(db_err)?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
    })
}

/// [`AnomalyRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteAnomalyRepo {
    pools: Pools,
}

impl SqliteAnomalyRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteAnomalyRepo { pools }
    }
}

#[async_trait]
impl AnomalyRepo for SqliteAnomalyRepo {
    async fn record(
        &self,
        record: &FindingRecord,
        raised: Option<TierFloor>,
        event: EventFromFinding,
    ) -> Result<(FindingRecord, Option<TierFloor>, Event)> {
        let mut tx = self.pools.begin_write().await?;
        let finding = &record.finding;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO anomaly_findings (agent_id, tx_id, rule, observed, threshold, window_seconds, unit, shadow, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(record.agent_id.to_string())
        .bind(record.tx_id.map(|t| t.to_string()))
        .bind(&finding.rule)
        .bind(finding.observed)
        .bind(finding.threshold)
        .bind(i64::try_from(finding.window_seconds).unwrap_or(i64::MAX))
        .bind(&finding.unit)
        .bind(record.shadow)
        .bind(record.created_at.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let stored = FindingRecord { id, ..record.clone() };
        let agent = record.agent_id.to_string();
        let existing = floor(&mut tx, &agent).await?;
        let in_force = match raised {
            None => existing.filter(|f| f.in_force(record.created_at)),
            Some(raised) => {
                let merged = TierFloor::merge(existing.as_ref(), raised, record.created_at);
                sqlx::query(
                    "INSERT INTO tier_floors (agent_id, tier, expires_at, rule, updated_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (agent_id) DO UPDATE SET tier = excluded.tier, expires_at = excluded.expires_at, \
                     rule = excluded.rule, updated_at = excluded.updated_at",
                )
                .bind(&agent)
                .bind(merged.tier.as_str())
                .bind(merged.expires_at.0)
                .bind(&merged.rule)
                .bind(merged.updated_at.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                Some(merged)
            }
        };
        let event = event(&stored, in_force.as_ref());
        append_audit(&mut tx, &event).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((stored, in_force, event))
    }

    async fn floor(&self, agent: AgentId) -> Result<Option<TierFloor>> {
        let mut conn = self.pools.reader.acquire().await.map_err(db_err)?;
        floor(&mut conn, &agent.to_string()).await
    }

    async fn clear_floor(&self, agent: AgentId, now: UnixSeconds, event: &Event) -> Result<Option<TierFloor>> {
        let mut tx = self.pools.begin_write().await?;
        let key = agent.to_string();
        let Some(current) = floor(&mut tx, &key).await?.filter(|f| f.in_force(now)) else {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        };
        sqlx::query("DELETE FROM tier_floors WHERE agent_id = ?").bind(&key).execute(&mut *tx).await.map_err(db_err)?;
        append_audit(&mut tx, event).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(current))
    }

    /// Newest first by `(created_at, id)`, over `idx_anomaly_findings_agent_time` for one agent and
    /// `idx_anomaly_findings_time` for all.
    async fn findings(&self, query: &FindingQuery) -> Result<Vec<FindingRecord>> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!("SELECT {FINDING_COLUMNS} FROM {FINDINGS} WHERE 1 = 1"));
        if let Some(agent) = query.agent_id {
            sql.push(" AND agent_id = ").push_bind(agent.to_string());
        }
        if let Some(since) = query.since {
            sql.push(" AND created_at >= ").push_bind(since.0);
        }
        if let Some((created_at, id)) = query.before {
            sql.push(" AND (created_at, id) < (").push_bind(created_at.0).push(", ").push_bind(id).push(")");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(query.limit));
        fetch_page(&self.pools.reader, sql, finding_from_row).await
    }

    /// Over the partial index `idx_transactions_final_time`.
    async fn final_since(
        &self,
        since: UnixSeconds,
        after: Option<(UnixSeconds, TxId)>,
        limit: u32,
    ) -> Result<Vec<TxRecord>> {
        fetch_page(&self.pools.reader, final_since_query(since, after, limit), record_from_row).await
    }
}

/// The rebuild's page of final rows (see [`AnomalyRepo::final_since`]).
pub(crate) fn final_since_query(
    since: UnixSeconds,
    after: Option<(UnixSeconds, TxId)>,
    limit: u32,
) -> QueryBuilder<'static, Sqlite> {
    // The keyset is written as a range start on `updated_at` plus the tie-break on `id` within the same second,
    // and the partial index is named: without statistics SQLite prefers the status index and sorts every final
    // row for each page (quadratic over a rebuild).
    let mut sql = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {COLUMNS} FROM transactions INDEXED BY idx_transactions_final_time \
         WHERE status IN ('CONFIRMED', 'FAILED') AND updated_at >= "
    ));
    match after {
        None => {
            sql.push_bind(since.0);
        }
        Some((updated_at, id)) => {
            sql.push_bind(updated_at.0.max(since.0));
            sql.push(" AND (updated_at > ").push_bind(updated_at.0);
            sql.push(" OR id > ").push_bind(id.to_string()).push(")");
        }
    }
    sql.push(" ORDER BY updated_at, id LIMIT ").push_bind(i64::from(limit));
    sql
}

#[cfg(test)]
#[path = "anomalies_tests.rs"]
mod tests;
