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
//! * **Bulk cancellation** of unsigned rows ([`cancel_unsigned`]) is shared by the kill switch and an agent's
//!   suspension or termination, inside their write transactions.
//! * **The worker's batch** ([`TxRepo::work`]) is bounded per class of row, so stuck rows of one class never keep
//!   another class out.
//!
//! The request is stored as its canonical JSON (`TxKind::to_json`) and read back with `TxKind::parse`. The row ↔
//! [`TxRecord`] mapping is `insert_record` and `record_from_row`; a stored value that does not parse is an
//! internal error naming the column, never the value.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use waiaas_core::domain::{AgentStatus, Policy, TxKind, TxStatus};
use waiaas_core::event::Event;
use waiaas_core::policy_engine::{Tier, history_since};
use waiaas_core::ports::{AdmissionSnapshot, Decide, RecentTx, Submission, TxRecord, TxRepo, TxUpdate};
use waiaas_core::{AgentId, Error, ErrorCode, Result, SessionId, TxId, UnixSeconds};

use crate::audit::append_audit;
use crate::error::{db_err, decode_err, is_foreign_key_violation, not_found};
use crate::{Pools, WriteTx, admission, fetch_by_id, fetch_page, keyset_page, kill_switch, policies, reserved};

const TABLE: &str = "transactions";

/// The columns of a row, in the order [`record_from_row`] reads them.
const COLUMNS: &str = "id, agent_id, session_id, network, request, status, tier, reserved, usd_value, execute_after, \
                       approval_deadline, approved_at, reason_code, tx_hash, raw_tx, nonce, error, attempts, \
                       created_at, updated_at";

/// Most rows of each class one [`TxRepo::work`] call returns (new work: PENDING and due QUEUED; EXECUTING;
/// SUBMITTED); the rest come on the next calls, oldest first.
pub const WORK_BATCH: u32 = 256;

/// `'A', 'B', ...`: an SQL list of the statuses matching `keep`. The strings are the core's constants, never
/// input, so they are written into the statement (one statement text per query, cached by sqlx).
pub(crate) fn status_list(keep: impl Fn(TxStatus) -> bool) -> String {
    TxStatus::ALL.into_iter().filter(|s| keep(*s)).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

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
        let held = reserved::from_json(&held).map_err(|what| decode_err(TABLE, "reserved", what))?;
        reserved::release(&mut *conn, &owner, &held).await?;
        cancelled.push((
            id.parse().map_err(|_| decode_err(TABLE, "id", "not an id"))?,
            owner.parse().map_err(|_| decode_err(TABLE, "agent_id", "not an id"))?,
        ));
    }
    cancelled.sort();
    Ok(cancelled)
}

/// The amount shown in the `amount` column (the leaf's amount or value; none for a batch). Never read back.
fn display_amount(kind: &TxKind) -> Option<String> {
    match kind {
        TxKind::Transfer { amount, .. } | TxKind::TokenTransfer { amount, .. } | TxKind::Approve { amount, .. } => {
            Some(amount.to_string())
        }
        TxKind::ContractCall { value, .. } => Some(value.to_string()),
        TxKind::Batch { .. } => None,
    }
}

/// Reads a non-negative stored counter.
fn to_u32(column: &'static str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| decode_err(TABLE, column, "out of range"))
}

/// The stored form of a nonce: SQLite integers are signed 64-bit.
fn nonce_to_i64(nonce: Option<u64>) -> Result<Option<i64>> {
    nonce.map(|n| i64::try_from(n).map_err(|_| Error::internal_msg("a nonce above 2^63 cannot be stored"))).transpose()
}

/// Maps a row selected with [`COLUMNS`] back to a record. A stored value that does not parse is an internal
/// error naming the column (the value itself is not logged).
fn record_from_row(row: &SqliteRow) -> Result<TxRecord> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let opt_text = |column: &'static str| row.try_get::<Option<String>, _>(column).map_err(db_err);
    let opt_time =
        |column: &'static str| Ok::<_, Error>(row.try_get::<Option<i64>, _>(column).map_err(db_err)?.map(UnixSeconds));
    let bad = |column: &'static str, what: &'static str| decode_err(TABLE, column, what);

    let request =
        serde_json::from_str::<serde_json::Value>(&text("request")?).map_err(|_| bad("request", "not JSON"))?;
    let (kind, _) = TxKind::parse(&request).map_err(|_| bad("request", "not a valid request"))?;
    let tier = opt_text("tier")?.map(|t| Tier::parse(&t).ok_or_else(|| bad("tier", "unknown tier"))).transpose()?;
    Ok(TxRecord {
        id: text("id")?.parse::<TxId>().map_err(|_| bad("id", "not an id"))?,
        agent_id: text("agent_id")?.parse::<AgentId>().map_err(|_| bad("agent_id", "not an id"))?,
        session_id: opt_text("session_id")?
            .map(|s| s.parse::<SessionId>().map_err(|_| bad("session_id", "not an id")))
            .transpose()?,
        network: text("network")?,
        kind,
        status: TxStatus::parse(&text("status")?).ok_or_else(|| bad("status", "unknown status"))?,
        tier,
        reserved: reserved::from_json(&text("reserved")?).map_err(|what| bad("reserved", what))?,
        usd_value: row.try_get("usd_value").map_err(db_err)?,
        execute_after: opt_time("execute_after")?,
        approval_deadline: opt_time("approval_deadline")?,
        approved_at: opt_time("approved_at")?,
        reason_code: opt_text("reason_code")?,
        tx_hash: opt_text("tx_hash")?,
        raw_tx: row.try_get("raw_tx").map_err(db_err)?,
        nonce: row
            .try_get::<Option<i64>, _>("nonce")
            .map_err(db_err)?
            .map(|n| u64::try_from(n).map_err(|_| bad("nonce", "out of range")))
            .transpose()?,
        error: opt_text("error")?,
        attempts: to_u32("attempts", row.try_get("attempts").map_err(db_err)?)?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
        updated_at: UnixSeconds(row.try_get("updated_at").map_err(db_err)?),
    })
}

/// Inserts `record` as a new row on a connection inside a write transaction.
pub(crate) async fn insert_record(conn: &mut SqliteConnection, record: &TxRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO transactions (id, agent_id, session_id, type, status, tier, network, to_address, amount, \
         request, reserved, usd_value, execute_after, approval_deadline, approved_at, reason_code, tx_hash, raw_tx, \
         nonce, error, attempts, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(record.id.to_string())
    .bind(record.agent_id.to_string())
    .bind(record.session_id.map(|id| id.to_string()))
    .bind(record.kind.type_name())
    .bind(record.status.as_str())
    .bind(record.tier.map(Tier::as_str))
    .bind(&record.network)
    .bind(record.kind.counterparty().map(|a| a.to_string()))
    .bind(display_amount(&record.kind))
    .bind(record.kind.to_json().to_string())
    .bind(reserved::to_json(&record.reserved))
    .bind(record.usd_value)
    .bind(record.execute_after.map(|t| t.0))
    .bind(record.approval_deadline.map(|t| t.0))
    .bind(record.approved_at.map(|t| t.0))
    .bind(record.reason_code.as_deref())
    .bind(record.tx_hash.as_deref())
    .bind(record.raw_tx.as_deref())
    .bind(nonce_to_i64(record.nonce)?)
    .bind(record.error.as_deref())
    .bind(i64::from(record.attempts))
    .bind(record.created_at.0)
    .bind(record.updated_at.0)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            not_found(ErrorCode::AgentNotFound, "agent", record.agent_id)
        } else {
            db_err(e)
        }
    })?;
    Ok(())
}

/// The agent's requests since a time, oldest first (`idx_transactions_agent_time`).
const RECENT_SQL: &str = "SELECT created_at, status, usd_value, reason_code IS NOT NULL AS denied FROM transactions \
                          WHERE agent_id = ? AND created_at >= ? ORDER BY created_at, id";

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
        let held = reserved::from_json(&held).map_err(|what| decode_err(TABLE, "reserved", what))?;
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
    let recent = recent_requests(conn, &agent, &policies, now).await?;
    Ok(AdmissionSnapshot { policies, reserved, recent })
}

/// The agent's requests that `policies` need at `now` ([`history_since`]): none when no RATE_LIMIT or daily USD
/// limit is in force.
pub(crate) async fn recent_requests(
    conn: &mut SqliteConnection,
    agent: &str,
    policies: &[Policy],
    now: UnixSeconds,
) -> Result<Vec<RecentTx>> {
    let Some(since) = history_since(policies, now) else { return Ok(Vec::new()) };
    let rows = sqlx::query(RECENT_SQL).bind(agent).bind(since.0).fetch_all(&mut *conn).await.map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("status").map_err(db_err)?;
            Ok(RecentTx {
                created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
                status: TxStatus::parse(&status).ok_or_else(|| decode_err(TABLE, "status", "unknown status"))?,
                usd_value: row.try_get("usd_value").map_err(db_err)?,
                denied: row.try_get("denied").map_err(db_err)?,
            })
        })
        .collect()
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
    async fn admit(&self, agent: AgentId, now: UnixSeconds, decide: Decide) -> Result<TxRecord> {
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
mod tests {
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use waiaas_core::Amount;
    use waiaas_core::domain::{Asset, Policy, TokenRef};
    use waiaas_core::event::{EventType, RequestContext};
    use waiaas_core::ports::PolicyRepo;

    use super::*;
    use crate::test_support::{TestDb, address, audit_types, count_audit_rows};

    /// 2^255: two of them overflow 256 bits.
    const HALF_OF_U256: &str = "57896044618658097711785492504343953926634992332820282019728792003956564819968";
    const U256_MAX: &str = "115792089237316195423570985008687907853269984665640564039457584007913129639935";

    fn amount(text: &str) -> Amount {
        text.parse().unwrap()
    }

    fn token(n: u64) -> TokenRef {
        TokenRef { address: address(n), decimals: 6, symbol: format!("T{n}") }
    }

    async fn new_agent(t: &TestDb) -> AgentId {
        let agent = t.agent();
        t.insert_agent(&agent).await;
        agent.id
    }

    /// A queued APPROVAL record with every optional field set, for a batch touching three assets.
    fn full_record(t: &TestDb, agent: AgentId) -> TxRecord {
        let kind = TxKind::Batch {
            instructions: vec![
                TxKind::Transfer { to: address(1), amount: Amount::from_u128(10) },
                TxKind::TokenTransfer { to: address(2), amount: Amount::from_u128(20), token: token(100) },
                TxKind::ContractCall { to: address(3), calldata: vec![0xa9, 0x05], value: Amount::from_u128(5) },
                TxKind::Approve { spender: address(4), amount: amount(U256_MAX), token: token(101) },
            ],
        };
        TxRecord {
            session_id: Some(t.session(agent).id),
            reserved: kind.outflows(),
            kind,
            tier: Some(Tier::Approval),
            usd_value: Some(12.5),
            execute_after: Some(UnixSeconds(11)),
            approval_deadline: Some(UnixSeconds(12)),
            approved_at: Some(UnixSeconds(13)),
            reason_code: Some("RATE_LIMIT_EXCEEDED".into()),
            tx_hash: Some("0xabc".into()),
            raw_tx: Some(vec![0, 1, 2, 255]),
            nonce: Some(u64::try_from(i64::MAX).unwrap()),
            error: Some("boom".into()),
            attempts: 3,
            ..t.tx(agent, TxStatus::Queued, 0)
        }
    }

    fn decide_with(record: &TxRecord, events: &[Event]) -> Decide {
        let (record, events) = (record.clone(), events.to_vec());
        Box::new(move |_| (record, events))
    }

    async fn count_rows(t: &TestDb) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM transactions").fetch_one(&t.db.pools.reader).await.unwrap()
    }

    async fn get(t: &TestDb, id: TxId) -> TxRecord {
        t.db.transactions().get(id).await.unwrap().expect("row exists")
    }

    #[test]
    fn status_lists_follow_the_state_machine() {
        assert_eq!(reserved::holding_statuses(), "'PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED'");
        assert_eq!(cancellable_statuses(), "'PENDING', 'QUEUED', 'EXECUTING'");
    }

    #[tokio::test]
    async fn admit_writes_the_row_and_its_events_and_every_field_round_trips() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = full_record(&t, agent);
        let events = [
            t.event(EventType::TxRequested).agent(agent).tx(record.id),
            t.event(EventType::TxApprovalRequired).agent(agent).tx(record.id),
        ];
        let admitted = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap();
        assert_eq!(admitted, record);
        assert_eq!(get(&t, record.id).await, record);
        let chain = t.db.audit_chain(0, 100).await.unwrap();
        let written: Vec<Event> = chain.into_iter().skip(1).map(|r| r.event).collect();
        assert_eq!(written, events, "every event, in order");

        // A denied request: no tier, nothing reserved, final.
        let denied = TxRecord {
            status: TxStatus::Cancelled,
            tier: None,
            reserved: vec![],
            reason_code: Some("ADDRESS_NOT_WHITELISTED".into()),
            ..t.tx(agent, TxStatus::Cancelled, 3)
        };
        t.admit(&denied).await;
        assert_eq!(get(&t, denied.id).await, denied);

        // The columns kept for people reading the table follow the request.
        let shown: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT type, to_address, amount FROM transactions WHERE reserved_amount IS NULL ORDER BY id",
        )
        .fetch_all(&t.db.pools.reader)
        .await
        .unwrap();
        assert_eq!(
            shown,
            [("BATCH".into(), None, None), ("TRANSFER".into(), Some(address(7).to_string()), Some("3".into()))]
        );
    }

    #[tokio::test]
    async fn an_admission_that_fails_anywhere_writes_nothing() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = t.tx(agent, TxStatus::Queued, 9);
        let events = [
            t.event(EventType::TxRequested).agent(agent).tx(record.id),
            t.event(EventType::TxQueued).agent(agent).tx(record.id),
        ];
        // The second event's audit row fails after the row and the first event were written.
        t.refuse_audit_of(EventType::TxQueued).await;
        let err = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InternalError);
        assert_eq!(t.db.transactions().get(record.id).await.unwrap(), None);
        assert_eq!((count_rows(&t).await, audit_types(&t.db).await), (0, vec![EventType::AgentCreated]));
        sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();

        // A row for an agent that does not exist: no audit rows either.
        let orphan = t.tx(t.agent().id, TxStatus::Pending, 1);
        let err = t.db.transactions().admit(orphan.agent_id, UnixSeconds(0), decide_with(&orphan, &events)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::AgentNotFound);
        // A decision about another agent than the one whose snapshot was read.
        let err = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&orphan, &events)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!((count_rows(&t).await, count_audit_rows(&t.db).await), (0, 1));

        // With the audit log healthy the same admission goes through.
        t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap();
        assert_eq!((count_rows(&t).await, count_audit_rows(&t.db).await), (1, 3));
    }

    /// A batch reserving `native` wei and `tokens` of token 100.
    fn two_asset_tx(t: &TestDb, agent: AgentId, status: TxStatus, native: u128, tokens: u128) -> TxRecord {
        let kind = TxKind::Batch {
            instructions: vec![
                TxKind::Transfer { to: address(1), amount: Amount::from_u128(native) },
                TxKind::TokenTransfer { to: address(2), amount: Amount::from_u128(tokens), token: token(100) },
            ],
        };
        TxRecord { reserved: kind.outflows(), kind, ..t.tx(agent, status, 0) }
    }

    #[tokio::test]
    async fn the_snapshot_sums_reservations_of_non_final_rows_per_asset() {
        let t = TestDb::new().await;
        let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
        let huge = |t: &TestDb| {
            let kind = TxKind::Approve { spender: address(4), amount: amount(HALF_OF_U256), token: token(101) };
            TxRecord { reserved: kind.outflows(), kind, ..t.tx(agent, TxStatus::Queued, 0) }
        };
        // Token 101 is reserved first: the snapshot still lists the native coin, then tokens by address.
        t.admit(&huge(&t)).await;
        t.admit(&huge(&t)).await;
        for (i, status) in TxStatus::ALL.into_iter().enumerate() {
            t.admit(&two_asset_tx(&t, agent, status, 1 << i, 1 << (i + 8))).await;
            t.admit(&two_asset_tx(&t, other, status, 1_000, 1_000)).await;
        }

        let snapshot = t.db.transactions().snapshot(agent, UnixSeconds(0)).await.unwrap();
        // PENDING, QUEUED, EXECUTING and SUBMITTED are the first four statuses: 1+2+4+8.
        assert_eq!(
            snapshot.reserved,
            [
                (Asset::Native, Amount::from_u128(15)),
                (Asset::Token(address(100)), Amount::from_u128(15 << 8)),
                (Asset::Token(address(101)), amount(U256_MAX)),
            ],
            "summed per asset over non-final rows, saturating at 2^256 - 1"
        );
        let others = t.db.transactions().snapshot(other, UnixSeconds(0)).await.unwrap();
        assert_eq!(others.reserved[0], (Asset::Native, Amount::from_u128(4_000)));
        let nobody = t.db.transactions().snapshot(t.agent().id, UnixSeconds(0)).await.unwrap();
        assert_eq!(nobody, AdmissionSnapshot::default());
    }

    #[tokio::test]
    async fn the_snapshot_reads_the_agents_enabled_policies_and_recent_requests() {
        let t = TestDb::new().await;
        let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
        let mut applicable = Vec::new();
        for (owner, enabled) in
            [(None, true), (None, false), (Some(agent), true), (Some(agent), false), (Some(other), true)]
        {
            let policy = Policy { agent_id: owner, enabled, ..t.rate_limit_policy() };
            t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
            if enabled && owner != Some(other) {
                applicable.push(policy);
            }
        }
        let mut mine = Vec::new();
        for (i, status) in
            [TxStatus::Confirmed, TxStatus::Pending, TxStatus::Cancelled, TxStatus::Failed].iter().enumerate()
        {
            let record = TxRecord {
                usd_value: (i % 2 == 0).then_some(i as f64 + 0.5),
                reason_code: (*status == TxStatus::Cancelled).then(|| "RATE_LIMIT_EXCEEDED".to_owned()),
                ..t.tx(agent, *status, 1)
            };
            t.admit(&record).await;
            t.admit(&t.tx(other, TxStatus::Pending, 1)).await;
            mine.push(record);
        }
        // The rate limit's window is 60 s: at `now` the snapshot reads back to `since`.
        let since = mine[1].created_at;
        let snapshot = t.db.transactions().snapshot(agent, since.plus_seconds(60)).await.unwrap();
        assert_eq!(snapshot.policies, applicable);
        let expected: Vec<RecentTx> = mine[1..]
            .iter()
            .map(|r| RecentTx {
                created_at: r.created_at,
                status: r.status,
                usd_value: r.usd_value,
                denied: r.reason_code.is_some(),
            })
            .collect();
        assert_eq!(snapshot.recent, expected, "the agent's requests since `since`, inclusive, oldest first");
        assert!(snapshot.recent[1].denied && !snapshot.recent[0].denied);
        // Without a rate or daily limit in force no history is read.
        let unlimited = TestDb::new().await;
        let agent = new_agent(&unlimited).await;
        let record = unlimited.tx(agent, TxStatus::Pending, 1);
        unlimited.admit(&record).await;
        let snapshot = unlimited.db.transactions().snapshot(agent, record.created_at).await.unwrap();
        assert_eq!((snapshot.recent, snapshot.reserved.len()), (vec![], 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_admissions_for_one_agent_serialize() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let (first, second) = (t.tx(agent, TxStatus::Pending, 7), t.tx(agent, TxStatus::Queued, 11));
        let (entered, mut entries) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let (release, released) = mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Vec::new()));

        let admit = |name: &'static str, record: TxRecord, gate: Option<mpsc::Receiver<()>>| {
            let (repo, entered, seen) = (t.db.transactions(), entered.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let decide: Decide = Box::new(move |snapshot| {
                    seen.lock().unwrap().push((name, snapshot.reserved.clone()));
                    entered.send(name).unwrap();
                    if let Some(gate) = gate {
                        gate.recv_timeout(Duration::from_secs(10)).expect("released");
                    }
                    (record, vec![])
                });
                repo.admit(agent, UnixSeconds(0), decide).await
            })
        };
        let a = admit("first", first.clone(), Some(released));
        assert_eq!(entries.recv().await, Some("first"));
        let b = admit("second", second.clone(), None);
        // The first admission is open (deciding): the second cannot even read its snapshot meanwhile.
        let early = tokio::time::timeout(Duration::from_millis(300), entries.recv()).await;
        assert!(early.is_err(), "the second admission decided while the first was open: {early:?}");
        release.send(()).unwrap();
        assert_eq!(a.await.unwrap().unwrap(), first);
        assert_eq!(b.await.unwrap().unwrap(), second);
        assert_eq!(
            *seen.lock().unwrap(),
            [("first", vec![]), ("second", vec![(Asset::Native, Amount::from_u128(7))])],
            "the second decision saw the first one's reservation"
        );
    }

    #[tokio::test]
    async fn transition_is_compare_and_set_and_a_lost_race_writes_nothing() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = t.tx(agent, TxStatus::Pending, 5);
        t.admit(&record).await;
        let repo = t.db.transactions();
        let audit_rows = count_audit_rows(&t.db).await;

        // An event-less move: no audit row, `updated_at` kept.
        assert!(
            repo.transition(record.id, TxStatus::Pending, TxStatus::Executing, &TxUpdate::default(), None)
                .await
                .unwrap()
        );
        let executing = TxRecord { status: TxStatus::Executing, ..record.clone() };
        assert_eq!(get(&t, record.id).await, executing);
        assert_eq!(count_audit_rows(&t.db).await, audit_rows);

        // A lost race: the row is no longer PENDING, so nothing is written, not even the event.
        let cancel = TxUpdate { error: Some("too late".into()), ..TxUpdate::default() };
        let event = t.event(EventType::TxCancelled).agent(agent).tx(record.id);
        assert!(
            !repo.transition(record.id, TxStatus::Pending, TxStatus::Cancelled, &cancel, Some(event)).await.unwrap()
        );
        assert_eq!(get(&t, record.id).await, executing);
        assert_eq!(count_audit_rows(&t.db).await, audit_rows);
        let unknown = TxId::generate(&t.clock, &t.entropy);
        let event = t.event(EventType::TxCancelled);
        assert!(!repo.transition(unknown, TxStatus::Pending, TxStatus::Cancelled, &cancel, Some(event)).await.unwrap());
        assert_eq!(count_audit_rows(&t.db).await, audit_rows);

        // Signed: the hash and raw bytes land with the status and the event, at the event's time.
        let signed = TxUpdate {
            tx_hash: Some("0xfeed".into()),
            raw_tx: Some(vec![2, 0xf8]),
            nonce: Some(3),
            ..TxUpdate::default()
        };
        let submitted =
            Event::new(EventType::TxSubmitted, &RequestContext::system(), UnixSeconds(record.created_at.0 + 50))
                .agent(agent)
                .tx(record.id);
        assert!(
            repo.transition(record.id, TxStatus::Executing, TxStatus::Submitted, &signed, Some(submitted.clone()))
                .await
                .unwrap()
        );
        let stored = get(&t, record.id).await;
        let expected = TxRecord {
            status: TxStatus::Submitted,
            tx_hash: Some("0xfeed".into()),
            raw_tx: Some(vec![2, 0xf8]),
            nonce: Some(3),
            updated_at: submitted.created_at,
            ..executing
        };
        assert_eq!(stored, expected);
        assert_eq!(t.db.audit_chain(0, 100).await.unwrap().pop().unwrap().event, submitted);

        // In place: fields set, the others (None) left as they are.
        let retry = TxUpdate {
            attempts: Some(2),
            error: Some("rpc down".into()),
            execute_after: Some(UnixSeconds(99)),
            ..TxUpdate::default()
        };
        assert!(repo.transition(record.id, TxStatus::Submitted, TxStatus::Submitted, &retry, None).await.unwrap());
        let expected =
            TxRecord { attempts: 2, error: Some("rpc down".into()), execute_after: Some(UnixSeconds(99)), ..expected };
        assert_eq!(get(&t, record.id).await, expected);

        // A move the state machine does not have is refused before anything is written.
        let err = repo.transition(record.id, TxStatus::Submitted, TxStatus::Pending, &TxUpdate::default(), None).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(get(&t, record.id).await, expected);

        // Reaching a final status releases the reservation.
        assert_eq!(
            repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved,
            [(Asset::Native, Amount::from_u128(5))]
        );
        let confirmed = t.event(EventType::TxConfirmed).agent(agent).tx(record.id);
        assert!(
            repo.transition(record.id, TxStatus::Submitted, TxStatus::Confirmed, &TxUpdate::default(), Some(confirmed))
                .await
                .unwrap()
        );
        assert_eq!(repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved, []);
        assert_eq!(count_audit_rows(&t.db).await, audit_rows + 2);
    }

    #[tokio::test]
    async fn an_approval_is_set_once() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = TxRecord { tier: Some(Tier::Approval), ..t.tx(agent, TxStatus::Queued, 5) };
        t.admit(&record).await;
        let repo = t.db.transactions();
        let approve = |at: i64| TxUpdate { approved_at: Some(UnixSeconds(at)), ..TxUpdate::default() };
        let event = || t.event(EventType::TxApproved).agent(agent).tx(record.id);
        assert!(
            repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve(10), Some(event())).await.unwrap()
        );
        let audit_rows = count_audit_rows(&t.db).await;
        assert!(
            !repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve(20), Some(event())).await.unwrap()
        );
        assert_eq!(get(&t, record.id).await.approved_at, Some(UnixSeconds(10)));
        assert_eq!(count_audit_rows(&t.db).await, audit_rows, "the second approval wrote nothing");
        // Other in-place updates of an approved row still apply.
        let retry = TxUpdate { attempts: Some(1), ..TxUpdate::default() };
        assert!(repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &retry, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_transition_whose_audit_row_fails_is_rolled_back() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = t.tx(agent, TxStatus::Queued, 5);
        t.admit(&record).await;
        t.refuse_audit_of(EventType::TxApproved).await;
        let approve = TxUpdate { approved_at: Some(UnixSeconds(77)), ..TxUpdate::default() };
        let event = t.event(EventType::TxApproved).agent(agent).tx(record.id);
        let err =
            t.db.transactions().transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve, Some(event)).await;
        assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
        assert_eq!(get(&t, record.id).await, record);
    }

    #[tokio::test]
    async fn work_returns_exactly_the_due_rows_oldest_first() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let now = UnixSeconds(1_800_000_000);
        let (before, after) = (UnixSeconds(now.0 - 1), UnixSeconds(now.0 + 1));
        let queued = |t: &TestDb| t.tx(agent, TxStatus::Queued, 1);
        let rows: Vec<(&str, TxRecord, bool, bool)> = vec![
            // (what, row, due now, due a second later)
            ("pending", t.tx(agent, TxStatus::Pending, 1), true, true),
            ("executing", t.tx(agent, TxStatus::Executing, 1), true, true),
            ("submitted", t.tx(agent, TxStatus::Submitted, 1), true, true),
            // Retry backoffs.
            (
                "pending retry due",
                TxRecord { execute_after: Some(before), ..t.tx(agent, TxStatus::Pending, 1) },
                true,
                true,
            ),
            (
                "executing backing off",
                TxRecord { execute_after: Some(after), ..t.tx(agent, TxStatus::Executing, 1) },
                false,
                true,
            ),
            (
                "submitted retry due",
                TxRecord { execute_after: Some(now), ..t.tx(agent, TxStatus::Submitted, 1) },
                true,
                true,
            ),
            ("delay due", TxRecord { execute_after: Some(now), ..queued(&t) }, true, true),
            ("delay waiting", TxRecord { execute_after: Some(after), ..queued(&t) }, false, true),
            ("approval waiting", TxRecord { approval_deadline: Some(after), ..queued(&t) }, false, true),
            (
                "approved",
                TxRecord { approval_deadline: Some(after), approved_at: Some(before), ..queued(&t) },
                true,
                true,
            ),
            ("approval expired", TxRecord { approval_deadline: Some(now), ..queued(&t) }, true, true),
            ("confirmed", t.tx(agent, TxStatus::Confirmed, 1), false, false),
            ("failed", t.tx(agent, TxStatus::Failed, 1), false, false),
            ("cancelled", t.tx(agent, TxStatus::Cancelled, 1), false, false),
            (
                "expired",
                TxRecord { approval_deadline: Some(before), ..t.tx(agent, TxStatus::Expired, 1) },
                false,
                false,
            ),
        ];
        // Creation times run against the ids (later ids are older), two rows per second: the order is
        // (created_at, id), not the id alone.
        let count = rows.len() as i64;
        let mut rows: Vec<(&str, TxRecord, bool, bool)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (what, row, now_due, later_due))| {
                let created_at = UnixSeconds(1_000 + (count - i as i64) / 2);
                (what, TxRecord { created_at, updated_at: created_at, ..row }, now_due, later_due)
            })
            .collect();
        for (_, row, _, _) in &rows {
            t.admit(row).await;
        }
        rows.sort_by_key(|(_, row, _, _)| (row.created_at, row.id.to_string()));
        let names = |records: Vec<TxRecord>| -> Vec<&str> {
            records.iter().map(|r| rows.iter().find(|(_, row, _, _)| row.id == r.id).unwrap().0).collect()
        };
        let due_now: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.0).collect();
        let due_later: Vec<&str> = rows.iter().filter(|r| r.3).map(|r| r.0).collect();
        assert_eq!(names(t.db.transactions().work(now).await.unwrap()), due_now);
        assert_eq!(names(t.db.transactions().work(after).await.unwrap()), due_later);
        assert_eq!(due_now.first(), Some(&"approval expired"), "sanity: the order is not the insertion order");
    }

    /// Rows of every class older than the newest work, more of each stuck class than one batch holds.
    #[tokio::test]
    async fn stuck_rows_of_one_class_never_keep_another_class_out() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let now = UnixSeconds(1_800_000_000);
        let stuck = usize::try_from(WORK_BATCH).unwrap() + 10;
        let mut tx = t.db.pools.begin_write().await.unwrap();
        let (mut submitted, mut executing) = (Vec::new(), Vec::new());
        for _ in 0..stuck {
            let record = t.tx(agent, TxStatus::Submitted, 1);
            insert_record(&mut tx, &record).await.unwrap();
            submitted.push(record.id);
            let record = t.tx(agent, TxStatus::Executing, 1);
            insert_record(&mut tx, &record).await.unwrap();
            executing.push(record.id);
        }
        let pending = t.tx(agent, TxStatus::Pending, 1);
        let queued = TxRecord { execute_after: Some(now), ..t.tx(agent, TxStatus::Queued, 1) };
        let waiting = TxRecord { execute_after: Some(now.plus_seconds(1)), ..t.tx(agent, TxStatus::Queued, 1) };
        for record in [&pending, &queued, &waiting] {
            insert_record(&mut tx, record).await.unwrap();
        }
        tx.commit().await.unwrap();

        let batch: Vec<TxId> = t.db.transactions().work(now).await.unwrap().into_iter().map(|r| r.id).collect();
        let batch_size = usize::try_from(WORK_BATCH).unwrap();
        let mut expected: Vec<TxId> = submitted[..batch_size].to_vec();
        expected.extend(&executing[..batch_size]);
        expected.extend([pending.id, queued.id]);
        expected.sort_by_key(|id| expected_order(&submitted, &executing, *id));
        assert_eq!(batch.len(), 2 * batch_size + 2);
        assert_eq!(batch, expected, "the oldest of each class, and all the new work, oldest first");
    }

    /// The creation order of the rows in [`stuck_rows_of_one_class_never_keep_another_class_out`]: submitted and
    /// executing rows alternate, then the new work.
    fn expected_order(submitted: &[TxId], executing: &[TxId], id: TxId) -> usize {
        let position = |rows: &[TxId]| rows.iter().position(|r| *r == id);
        position(submitted).map(|i| 2 * i).or_else(|| position(executing).map(|i| 2 * i + 1)).unwrap_or(usize::MAX - 1)
    }

    #[tokio::test]
    async fn submit_records_the_signature_only_while_nothing_stopped_the_work() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let repo = t.db.transactions();
        let signed = || TxUpdate {
            tx_hash: Some("0xfeed".into()),
            raw_tx: Some(vec![2, 0xf8]),
            nonce: Some(7),
            clear_error: true,
            ..TxUpdate::default()
        };
        let event = |id: TxId| {
            Event::new(EventType::TxSubmitted, &RequestContext::system(), UnixSeconds(1_800_000_000))
                .agent(agent)
                .tx(id)
        };
        let executing = t.tx(agent, TxStatus::Executing, 1);
        let pending = t.tx(agent, TxStatus::Pending, 1);
        t.admit(&executing).await;
        t.admit(&pending).await;
        let audit_rows = count_audit_rows(&t.db).await;
        let set = |sql: &'static str| {
            let writer = t.db.pools.writer.clone();
            async move { sqlx::query(sql).execute(&writer).await.unwrap() }
        };

        // Each refusal writes nothing: the row stays as it was, no audit row.
        set("UPDATE kill_switch SET state = 'SUSPENDED'").await;
        assert_eq!(
            repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(),
            Submission::KillSwitchTripped
        );
        set("UPDATE kill_switch SET state = 'ACTIVE'").await;
        set("UPDATE agents SET status = 'SUSPENDED'").await;
        assert_eq!(
            repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(),
            Submission::AgentNotActive
        );
        set("UPDATE agents SET status = 'ACTIVE'").await;
        assert_eq!(repo.submit(pending.id, &signed(), event(pending.id)).await.unwrap(), Submission::NotExecuting);
        let unknown = TxId::generate(&t.clock, &t.entropy);
        assert_eq!(repo.submit(unknown, &signed(), event(unknown)).await.unwrap(), Submission::NotExecuting);
        let huge = TxUpdate { nonce: Some(u64::MAX), ..signed() };
        assert_eq!(
            repo.submit(executing.id, &huge, event(executing.id)).await.unwrap_err().code,
            ErrorCode::InternalError
        );
        t.refuse_audit_of(EventType::TxSubmitted).await;
        let err = repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InternalError);
        sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();
        assert_eq!((get(&t, executing.id).await, get(&t, pending.id).await), (executing.clone(), pending.clone()));
        assert_eq!(count_audit_rows(&t.db).await, audit_rows);

        // Nothing in the way: SUBMITTED with the hash, the raw bytes and the nonce, and its audit row.
        assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::Recorded);
        let stored = get(&t, executing.id).await;
        assert_eq!(
            (stored.status, stored.tx_hash.as_deref(), stored.raw_tx.as_deref(), stored.nonce),
            (TxStatus::Submitted, Some("0xfeed"), Some(&[2, 0xf8][..]), Some(7))
        );
        assert_eq!(t.db.audit_chain(0, 100).await.unwrap().pop().unwrap().event, event(executing.id));
        assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::NotExecuting);
    }

    /// The kill switch and a suspension cancel EXECUTING rows in their own write: a signature made meanwhile
    /// finds the row cancelled and is refused, even after the switch is recovered and the agent resumed.
    #[tokio::test]
    async fn a_signature_made_while_the_work_was_stopped_is_refused() {
        use waiaas_core::domain::{KillSwitch, KillSwitchState};
        use waiaas_core::ports::KillSwitchRepo;

        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let repo = t.db.transactions();
        let signed = TxUpdate { tx_hash: Some("0xfeed".into()), nonce: Some(0), ..TxUpdate::default() };
        let event = |id: TxId| t.event(EventType::TxSubmitted).agent(agent).tx(id);

        let first = t.tx(agent, TxStatus::Executing, 1);
        t.admit(&first).await;
        let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(5)) };
        t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
        assert_eq!(repo.submit(first.id, &signed, event(first.id)).await.unwrap(), Submission::KillSwitchTripped);
        t.db.kill_switch().recover(&KillSwitch::default(), &t.event(EventType::KillSwitchRecovered)).await.unwrap();
        t.set_status(agent, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(6)).await.unwrap().unwrap();
        assert_eq!(repo.submit(first.id, &signed, event(first.id)).await.unwrap(), Submission::NotExecuting);
        assert_eq!(get(&t, first.id).await.status, TxStatus::Cancelled);

        let second = t.tx(agent, TxStatus::Executing, 1);
        t.admit(&second).await;
        t.set_status(agent, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(7)).await.unwrap().unwrap();
        assert_eq!(repo.submit(second.id, &signed, event(second.id)).await.unwrap(), Submission::AgentNotActive);
        t.set_status(agent, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(8)).await.unwrap().unwrap();
        assert_eq!(repo.submit(second.id, &signed, event(second.id)).await.unwrap(), Submission::NotExecuting);
        assert_eq!(get(&t, second.id).await.status, TxStatus::Cancelled);
        assert_eq!(repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved, [], "nothing held any more");
    }

    #[tokio::test]
    async fn list_is_one_agents_rows_newest_first_in_keyset_pages() {
        let t = TestDb::new().await;
        let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
        let mut all = Vec::new();
        for i in 0..5 {
            let record = t.tx(agent, TxStatus::Pending, i);
            t.admit(&record).await;
            t.admit(&t.tx(other, TxStatus::Pending, i)).await;
            all.push(record);
        }
        all.reverse();
        let repo = t.db.transactions();
        assert_eq!(repo.list(agent, None, 10).await.unwrap(), all);
        let page = repo.list(agent, None, 2).await.unwrap();
        assert_eq!(page, all[..2]);
        assert_eq!(repo.list(agent, Some(page[1].id), 2).await.unwrap(), all[2..4]);
        assert_eq!(repo.list(agent, Some(all[4].id), 2).await.unwrap(), []);
    }

    #[tokio::test]
    async fn unreadable_stored_values_are_internal_errors_that_name_the_column_only() {
        let t = TestDb::new().await;
        let agent = new_agent(&t).await;
        let record = t.tx(agent, TxStatus::Pending, 1);
        t.admit(&record).await;
        let repo = t.db.transactions();
        for (column, value) in [
            ("request", r#"{"type":"s3cr3t"}"#),
            ("reserved", r#"[{"asset":"native","amount":"s3cr3t"}]"#),
            ("network", "anvil"),
        ] {
            let original: String = sqlx::query_scalar(&format!("SELECT {column} FROM transactions"))
                .fetch_one(&t.db.pools.reader)
                .await
                .unwrap();
            sqlx::query(&format!("UPDATE transactions SET {column} = ?"))
                .bind(value)
                .execute(&t.db.pools.writer)
                .await
                .unwrap();
            if column == "network" {
                assert!(repo.get(record.id).await.is_ok(), "the control case reads");
                continue;
            }
            let mut errors = vec![repo.get(record.id).await.unwrap_err(), repo.work(UnixSeconds(0)).await.unwrap_err()];
            if column == "reserved" {
                // Releasing it as the row becomes final reads it: the move fails and writes nothing.
                let none = TxUpdate::default();
                errors.push(
                    repo.transition(record.id, TxStatus::Pending, TxStatus::Cancelled, &none, None).await.unwrap_err(),
                );
            }
            for err in errors {
                assert_named_only(&err, &format!("transactions.{column}"));
            }
            sqlx::query(&format!("UPDATE transactions SET {column} = ?"))
                .bind(original)
                .execute(&t.db.pools.writer)
                .await
                .unwrap();
        }
        assert_eq!(get(&t, record.id).await, record);
        sqlx::query("UPDATE reserved_totals SET amount = 's3cr3t'").execute(&t.db.pools.writer).await.unwrap();
        assert_named_only(&repo.snapshot(agent, UnixSeconds(0)).await.unwrap_err(), "reserved_totals.amount");
    }

    fn assert_named_only(err: &Error, column: &str) {
        assert_eq!(err.code, ErrorCode::InternalError, "{column}");
        let cause = err.internal.as_ref().unwrap().to_string();
        assert!(cause.contains(column), "{cause}");
        assert!(!cause.contains("s3cr3t") && !err.message.contains("s3cr3t"), "{cause}");
    }

    async fn plan(t: &TestDb, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
            .bind("x")
            .bind(1)
            .bind(2)
            .fetch_all(&t.db.pools.reader)
            .await
            .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// The per-request queries read only what they need: the agent's non-final rows, its recent rows, the
    /// non-final rows of the worker; never a scan of the table (which keeps every final row forever).
    #[tokio::test]
    async fn the_pipeline_queries_walk_indexes() {
        let t = TestDb::new().await;
        let reserved = plan(&t, &reserved::rows_sql(true)).await;
        assert!(reserved.contains("USING INDEX idx_transactions_agent_status (agent_id=? AND status=?)"), "{reserved}");
        let recent = plan(&t, RECENT_SQL).await;
        assert!(recent.contains("USING INDEX idx_transactions_agent_time (agent_id=? AND created_at>?)"), "{recent}");
        let work = plan(&t, &work_sql()).await;
        assert!(work.contains("USING INDEX idx_transactions_work (status=?)"), "{work}");
        let before = TxId::generate(&t.clock, &t.entropy);
        let list = plan(&t, list_query(AgentId::generate(&t.clock, &t.entropy), Some(before), 10).sql()).await;
        assert!(list.contains("USING INDEX idx_transactions_agent_id (agent_id=? AND id<?)"), "{list}");
        for (what, plan) in [("recent", &recent), ("list", &list)] {
            assert!(!plan.contains("TEMP B-TREE"), "{what} needs no sort: {plan}");
        }
        for plan in [reserved, recent, work, list] {
            assert!(!plan.contains("SCAN transactions"), "{plan}");
        }
    }
}
