//! The `transactions` row: its columns, the mapping between a row and a [`TxRecord`] (including the JSON codec of
//! its `reserved` column), the insert, and the agent's recent requests. A leaf module: the repository, the
//! admission task and the reservation totals all build on it, and it depends on none of them.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use waiaas_core::domain::{Address, Asset, Policy, Tier, TxKind, TxStatus};
use waiaas_core::policy_engine::history_since;
use waiaas_core::ports::{RecentTx, TxRecord};
use waiaas_core::{AgentId, Amount, Error, ErrorCode, Result, SessionId, TxId, UnixSeconds};

use crate::error::{db_err, decode_err, is_foreign_key_violation, not_found};

pub(crate) const TABLE: &str = "transactions";

/// The columns of a row, in the order [`record_from_row`] reads them.
pub(crate) const COLUMNS: &str = "id, agent_id, session_id, network, request, status, tier, reserved, usd_value, execute_after, \
                       approval_deadline, approved_at, reason_code, tx_hash, raw_tx, nonce, error, attempts, \
                       created_at, updated_at";

/// `'A', 'B', ...`: an SQL list of the statuses matching `keep`. The strings are the core's constants, never
/// input, so they are written into the statement (one statement text per query, cached by sqlx).
pub(crate) fn status_list(keep: impl Fn(TxStatus) -> bool) -> String {
    TxStatus::ALL.into_iter().filter(|s| keep(*s)).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

/// The stored asset of the native coin, in `reserved` and in `reserved_totals`.
const NATIVE: &str = "native";

pub(crate) fn asset_to_str(asset: &Asset) -> String {
    match asset {
        Asset::Native => NATIVE.to_owned(),
        Asset::Token(address) => address.to_string(),
    }
}

pub(crate) fn asset_from_str(stored: &str) -> std::result::Result<Asset, &'static str> {
    match stored {
        NATIVE => Ok(Asset::Native),
        address => Ok(Asset::Token(address.parse::<Address>().map_err(|_| "an asset is not an address")?)),
    }
}

/// The stored form of a reservation: `[{"asset": "native" | "0x…", "amount": "<decimal>"}, ...]`.
pub(crate) fn to_json(reserved: &[(Asset, Amount)]) -> String {
    let items: Vec<serde_json::Value> = reserved
        .iter()
        .map(|(asset, amount)| serde_json::json!({ "asset": asset_to_str(asset), "amount": amount.to_string() }))
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// Parses the stored form of a reservation. The error names what is wrong, never the stored value.
pub(crate) fn from_json(raw: &str) -> std::result::Result<Vec<(Asset, Amount)>, &'static str> {
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| "not JSON")?;
    let items = value.as_array().ok_or("not an array")?;
    items
        .iter()
        .map(|item| {
            let object = item.as_object().filter(|o| o.len() == 2).ok_or("an item is not {asset, amount}")?;
            let asset = asset_from_str(object.get("asset").and_then(|a| a.as_str()).ok_or("an item has no asset")?)?;
            let amount = object
                .get("amount")
                .and_then(|a| a.as_str())
                .ok_or("an item has no amount")?
                .parse::<Amount>()
                .map_err(|_| "an amount is not a decimal string")?;
            Ok((asset, amount))
        })
        .collect()
}

/// The order of assets in a snapshot: the native coin, then tokens by address.
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
pub(crate) fn nonce_to_i64(nonce: Option<u64>) -> Result<Option<i64>> {
    nonce.map(|n| i64::try_from(n).map_err(|_| Error::internal_msg("a nonce above 2^63 cannot be stored"))).transpose()
}

/// Maps a row selected with [`COLUMNS`] back to a record. A stored value that does not parse is an internal
/// error naming the column (the value itself is not logged).
pub(crate) fn record_from_row(row: &SqliteRow) -> Result<TxRecord> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let opt_text = |column: &'static str| row.try_get::<Option<String>, _>(column).map_err(db_err);
    let opt_time =
        |column: &'static str| Ok::<_, Error>(row.try_get::<Option<i64>, _>(column).map_err(db_err)?.map(UnixSeconds));
    let bad = |column: &'static str, what: &'static str| decode_err(TABLE, column, what);

    let request =
        serde_json::from_str::<serde_json::Value>(&text("request")?).map_err(|_| bad("request", "not JSON"))?;
    let (kind, _) = TxKind::from_stored(&request).map_err(|_| bad("request", "not a valid request"))?;
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
        reserved: from_json(&text("reserved")?).map_err(|what| bad("reserved", what))?,
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
    .bind(to_json(&record.reserved))
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
pub(crate) const RECENT_SQL: &str = "SELECT created_at, status, usd_value, reason_code IS NOT NULL AS denied FROM transactions \
                          WHERE agent_id = ? AND created_at >= ? ORDER BY created_at, id";

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
