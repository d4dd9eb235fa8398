//! Cancelling unsigned work in bulk: the kill switch's activation and an agent's suspension or termination cancel
//! every transaction not yet signed, in their own write transaction, and release the reservations.

use sqlx::{Row, SqliteConnection};
use waiaas_core::domain::TxStatus;
use waiaas_core::{AgentId, Result, TxId, UnixSeconds};

use crate::error::{db_err, decode_err};
use crate::reserved;
use crate::tx_rows::{TABLE, from_json, status_list};

/// The statuses the kill switch and a suspension cancel: those the state machine lets be cancelled (not yet
/// signed).
pub(crate) fn cancellable_statuses() -> String {
    status_list(|s| s.cancel().is_ok())
}

/// Cancels every row not yet signed ([`cancellable_statuses`]), of one agent (by `idx_transactions_agent_status`)
/// or of all, with `error` and `updated_at = now`, and releases their reservations; inside the caller's write
/// transaction, which also writes one event per row. Returns the rows, oldest first (ids are UUID v7).
pub(crate) async fn cancel_unsigned(
    conn: &mut SqliteConnection,
    agent: Option<AgentId>,
    error: &str,
    now: UnixSeconds,
) -> Result<Vec<(TxId, AgentId)>> {
    let sql = format!(
        "UPDATE transactions SET status = ?, error = ?, updated_at = ? WHERE status IN ({}) {} \
         RETURNING id, agent_id, reserved",
        cancellable_statuses(),
        if agent.is_some() { "AND agent_id = ?" } else { "" }
    );
    let mut query = sqlx::query(&sql).bind(TxStatus::Cancelled.as_str()).bind(error).bind(now.0);
    if let Some(agent) = agent {
        query = query.bind(agent.to_string());
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(db_err)?;
    let mut cancelled = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id").map_err(db_err)?;
        let owner: String = row.try_get("agent_id").map_err(db_err)?;
        let held: String = row.try_get("reserved").map_err(db_err)?;
        let held = from_json(&held).map_err(|what| decode_err(TABLE, "reserved", what))?;
        reserved::release(&mut *conn, &owner, &held).await?;
        cancelled.push((
            id.parse().map_err(|_| decode_err(TABLE, "id", "not an id"))?,
            owner.parse().map_err(|_| decode_err(TABLE, "agent_id", "not an id"))?,
        ));
    }
    cancelled.sort();
    Ok(cancelled)
}
