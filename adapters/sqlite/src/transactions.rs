//! [`TxRepo`] over SQLite: the `transactions` table (0001, extended by 0002).
//!
//! * **Admission** ([`TxRepo::admit`]) runs inside a `BEGIN IMMEDIATE` transaction on the writer connection,
//!   grouped with the admissions queued meanwhile ([`crate::admission`]): the agent's snapshot is read, the core's
//!   pure `decide` runs, the row and its events (as audit rows) are written. Admissions run one after the other,
//!   so a second admission for the agent sees the first one's reservation.
//! * **Reservations** are a JSON array per row (`reserved`); the snapshot reads their per-asset sum over the
//!   agent's non-final rows from `reserved_totals`, which the admission and every move to a final status keep in
//!   the same transaction (see [`crate::reserved`]).
//! * **Status moves** ([`TxRepo::transition`]) are compare-and-set on `(id, status)` with their audit row in the
//!   same transaction; a lost race writes nothing. The move to SUBMITTED ([`TxRepo::submit`]) also reads the kill
//!   switch and the agent's status in its transaction, so a signature is recorded (and then broadcast) only while
//!   neither has stopped the work.
//! * **Bulk cancellation** of unsigned rows ([`crate::unsigned::cancel_unsigned`]) is shared by the kill switch and an agent's
//!   suspension or termination, inside their write transactions.
//! * **The worker's batch** ([`TxRepo::work`]) is bounded per class of row, so stuck rows of one class never keep
//!   another class out.
//!
//! The request is stored as its canonical JSON (`TxKind::to_json`) and read back with `TxKind::parse`. The row ↔
//! [`TxRecord`] mapping is `insert_record` and `record_from_row`; a stored value that does not parse is an
//! internal error naming the column, never the value.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use waiaas_core::domain::{AgentStatus, TxStatus};
use waiaas_core::event::Event;
use waiaas_core::ports::{Admission, AdmissionSnapshot, Decide, Submission, TxRecord, TxRepo, TxUpdate};
use waiaas_core::{AgentId, Error, Result, TxId, UnixSeconds};

use crate::audit::append_audit;
use crate::error::{db_err, decode_err};
use crate::tx_rows::{COLUMNS, TABLE, from_json, nonce_to_i64, recent_requests, record_from_row};
use crate::{
    Pools, WriteTx, admission, anomalies, fetch_by_id, fetch_page, keyset_page, kill_switch, policies, reserved,
};

/// Most rows of each class one [`TxRepo::work`] call returns (new work: PENDING and due QUEUED; EXECUTING;
/// SUBMITTED); the rest come on the next calls, oldest first.
pub const WORK_BATCH: u32 = 256;

/// The worker's rows (`?1` = now, `?2` = the limit per class), found by status equality
/// (`idx_transactions_work`): PENDING, EXECUTING and SUBMITTED rows not held back by a retry backoff
/// (`execute_after`), and QUEUED rows whose delay has passed, that are approved, or whose approval deadline has
/// come. Each class (new work: PENDING and due QUEUED; EXECUTING; SUBMITTED) is its own oldest-first page of at
/// most `?2` rows, so rows stuck in one class (say SUBMITTED ones waiting on a slow chain) never push another
/// class out of the batch; the union is ordered oldest first again.
fn work_sql() -> String {
    let not_backing_off = "(execute_after IS NULL OR execute_after <= ?1)";
    let class = |filter: String| {
        format!("SELECT * FROM (SELECT {COLUMNS} FROM transactions WHERE {filter} ORDER BY created_at, id LIMIT ?2)")
    };
    let new_work = class(format!(
        "(status = '{pending}' AND {not_backing_off}) \
         OR (status = '{queued}' AND (execute_after <= ?1 OR approved_at IS NOT NULL OR approval_deadline <= ?1))",
        pending = TxStatus::Pending.as_str(),
        queued = TxStatus::Queued.as_str(),
    ));
    let executing = class(format!("status = '{}' AND {not_backing_off}", TxStatus::Executing.as_str()));
    let submitted = class(format!("status = '{}' AND {not_backing_off}", TxStatus::Submitted.as_str()));
    format!("{new_work} UNION ALL {executing} UNION ALL {submitted} ORDER BY created_at, id")
}

/// Applies a compare-and-set move of one row with its event, inside the caller's write transaction (see
/// [`TxRepo::transition`]). Returns false, having written nothing, when the row is not in `from`.
async fn apply_move(
    conn: &mut WriteTx,
    id: TxId,
    from: TxStatus,
    to: TxStatus,
    update: &TxUpdate,
    event: Option<&Event>,
) -> Result<bool> {
    if !from.can_become(to) {
        return Err(Error::internal_msg(format!("illegal transaction move {} -> {}", from.as_str(), to.as_str())));
    }
    let moved = sqlx::query(
        "UPDATE transactions SET status = ?, updated_at = COALESCE(?, updated_at), \
         tx_hash = COALESCE(?, tx_hash), raw_tx = COALESCE(?, raw_tx), nonce = COALESCE(?, nonce), \
         error = CASE WHEN ? THEN NULL ELSE COALESCE(?, error) END, \
         approved_at = COALESCE(?, approved_at), attempts = COALESCE(?, attempts), \
         execute_after = COALESCE(?, execute_after), reason_code = COALESCE(?, reason_code) \
         WHERE id = ? AND status = ? AND (? IS NULL OR approved_at IS NULL) RETURNING agent_id, reserved",
    )
    .bind(to.as_str())
    .bind(event.map(|e| e.created_at.0))
    .bind(update.tx_hash.as_deref())
    .bind(update.raw_tx.as_deref())
    .bind(nonce_to_i64(update.nonce)?)
    .bind(update.clear_error)
    .bind(update.error.as_deref())
    .bind(update.approved_at.map(|t| t.0))
    .bind(update.attempts.map(i64::from))
    .bind(update.execute_after.map(|t| t.0))
    .bind(update.reason_code.as_deref())
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(update.approved_at.map(|t| t.0))
    .fetch_optional(&mut **conn)
    .await
    .map_err(db_err)?;
    let Some(moved) = moved else { return Ok(false) };
    if to.is_final() && !from.is_final() {
        let agent: String = moved.try_get("agent_id").map_err(db_err)?;
        let held: String = moved.try_get("reserved").map_err(db_err)?;
        let held = from_json(&held).map_err(|what| decode_err(TABLE, "reserved", what))?;
        reserved::release(conn, &agent, &held).await?;
    }
    if let Some(event) = event {
        append_audit(conn, event).await?;
    }
    Ok(true)
}

/// One page of an agent's rows, newest first (`idx_transactions_agent_id`).
fn list_query(agent: AgentId, before: Option<TxId>, limit: u32) -> QueryBuilder<'static, Sqlite> {
    keyset_page(COLUMNS, TABLE, Some(agent.to_string()), before.map(|id| id.to_string()), limit)
}

/// Reads the agent's admission snapshot at `now` on a reader inside a read transaction (simulate; admissions
/// read the same parts inside their write transaction, [`crate::admission`]).
async fn read_snapshot(conn: &mut SqliteConnection, agent: AgentId, now: UnixSeconds) -> Result<AdmissionSnapshot> {
    let policies = policies::in_force(&mut *conn, agent).await?;
    let agent = agent.to_string();
    let reserved = reserved::totals(&mut *conn, &agent).await?;
    let recent = recent_requests(&mut *conn, &agent, &policies, now).await?;
    let tier_floor = anomalies::floor(conn, &agent).await?;
    Ok(AdmissionSnapshot { policies, reserved, recent, tier_floor })
}

/// [`TxRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteTxRepo {
    pools: Pools,
    admissions: mpsc::UnboundedSender<admission::Queued>,
}

impl SqliteTxRepo {
    /// Starts the admission task ([`crate::admission`]) on the current runtime.
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteTxRepo { admissions: admission::start(pools.clone()), pools }
    }
}

#[async_trait]
impl TxRepo for SqliteTxRepo {
    /// Queued to the admission task, which runs it in a `BEGIN IMMEDIATE` transaction on the writer connection
    /// (grouped with the admissions queued meanwhile), so no other write interleaves between the snapshot and the
    /// insert. `decide` must return a row of `agent`.
    async fn admit(&self, agent: AgentId, now: UnixSeconds, decide: Decide) -> Result<Admission> {
        let (answer, answered) = oneshot::channel();
        let stopped = || Error::internal_msg("the admission task has stopped");
        self.admissions.send(admission::Queued { agent, now, decide, answer }).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Read-only, on a reader connection, inside one read transaction (one consistent view).
    async fn snapshot(&self, agent: AgentId, now: UnixSeconds) -> Result<AdmissionSnapshot> {
        let mut tx = self.pools.reader.begin().await.map_err(db_err)?;
        let snapshot = read_snapshot(&mut tx, agent, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(snapshot)
    }

    async fn get(&self, id: TxId) -> Result<Option<TxRecord>> {
        fetch_by_id(&self.pools.reader, COLUMNS, TABLE, id, record_from_row).await
    }

    /// Newest first by id (UUID v7, time ordered); `before` is the last id of the previous page.
    async fn list(&self, agent: AgentId, before: Option<TxId>, limit: u32) -> Result<Vec<TxRecord>> {
        fetch_page(&self.pools.reader, list_query(agent, before, limit), record_from_row).await
    }

    /// `updated_at` becomes the event's time; an update without an event leaves it as it was. `approved_at` is
    /// set once: an update that sets it also compares it, so a second approval of the same row loses like a moved
    /// status (false, nothing written). A move the core's state machine does not have (e.g. CONFIRMED → PENDING)
    /// is refused as an internal error before any write.
    async fn transition(
        &self,
        id: TxId,
        from: TxStatus,
        to: TxStatus,
        update: &TxUpdate,
        event: Option<Event>,
    ) -> Result<bool> {
        let mut tx = self.pools.begin_write().await?;
        if !apply_move(&mut tx, id, from, to, update, event.as_ref()).await? {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// The kill switch row, the agent's status and the row's status are read in the write transaction that
    /// writes SUBMITTED; the kill switch's activation and an agent's suspension cancel EXECUTING rows in theirs,
    /// so either the signature is recorded before them (and they find the row signed) or it is refused.
    async fn submit(&self, id: TxId, update: &TxUpdate, event: Event) -> Result<Submission> {
        let mut tx = self.pools.begin_write().await?;
        let refused = if kill_switch::is_tripped(&mut tx).await? {
            Some(Submission::KillSwitchTripped)
        } else {
            let agent_status: Option<String> = sqlx::query_scalar(
                "SELECT agents.status FROM transactions JOIN agents ON agents.id = transactions.agent_id \
                 WHERE transactions.id = ?",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            match agent_status {
                None => Some(Submission::NotExecuting),
                Some(status) if status != AgentStatus::Active.as_str() => Some(Submission::AgentNotActive),
                Some(_) => {
                    let moved =
                        apply_move(&mut tx, id, TxStatus::Executing, TxStatus::Submitted, update, Some(&event)).await?;
                    (!moved).then_some(Submission::NotExecuting)
                }
            }
        };
        if let Some(refused) = refused {
            tx.rollback().await.map_err(db_err)?;
            return Ok(refused);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Submission::Recorded)
    }

    /// One `GROUP BY` over the `(status, execute_after)` index, on a reader connection.
    async fn count_non_final(&self) -> Result<Vec<(TxStatus, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM transactions \
             WHERE status IN ('PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED') GROUP BY status",
        )
        .fetch_all(&self.pools.reader)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(status, count)| {
                let status = TxStatus::parse(&status)
                    .ok_or_else(|| Error::internal_msg(format!("unknown transaction status {status:?}")))?;
                Ok((status, count.max(0) as u64))
            })
            .collect()
    }

    /// At most [`WORK_BATCH`] rows of each class, oldest first by `(created_at, id)`, in one statement (one
    /// consistent read).
    async fn work(&self, now: UnixSeconds) -> Result<Vec<TxRecord>> {
        let rows = sqlx::query(&work_sql())
            .bind(now.0)
            .bind(i64::from(WORK_BATCH))
            .fetch_all(&self.pools.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(record_from_row).collect()
    }
}

#[cfg(test)]
#[path = "transactions_tests.rs"]
mod tests;
