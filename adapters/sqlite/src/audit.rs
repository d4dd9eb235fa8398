//! The audit log: the one place audit rows are written (`append_audit`, called inside every state-changing
//! transaction), the [`AuditRepo`] port (append and filtered keyset queries), the ordered chain read used to
//! verify the SHA-256 hash chain, and the sealed chain head.
//!
//! Each row stores `prev_hash` (the previous row's `hash`, or [`GENESIS_HASH`] for the first) and
//! `hash = chain_hash(prev_hash, event)`. Writes are serialized by the single writer connection, so the head read
//! inside the transaction is the one the new rows follow.
//!
//! **The head** (`audit_head`: last id, last hash, MAC; see [`waiaas_core::audit`]). Once the key is installed
//! ([`crate::Database::install_audit_head_key`], at unlock), every append reads the sealed head, checks its MAC,
//! chains the new rows to the head's hash — not to whatever row is last, so rows deleted or added behind the
//! daemon's back leave a break at the next row — and writes the head sealed at the new last row, all in the
//! caller's transaction. Before a head exists (a fresh database before its first unlock, or one just upgraded)
//! appends chain to the last row and leave no head; once one exists, an append without the key is refused.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use waiaas_core::audit::{
    ChainHead, GENESIS_HASH, HeadFinding, HeadKey, SealReason, SealedHead, chain_hash, check_head, head_sealed_event,
};
use waiaas_core::event::{Actor, Event, EventType, RequestContext, Severity};
use waiaas_core::ports::{AuditQuery, AuditRecord, AuditRepo, AuditStats, AuditStatsQuery};
use waiaas_core::{Error, Result, UnixSeconds};

use crate::error::{db_err, decode_err, parse_column, parse_json};
use crate::{Pools, WriteTx};

const TABLE: &str = "audit_logs";

/// The columns of an audit row, in the order [`record_from_row`] reads them.
pub(crate) const COLUMNS: &str = "id, created_at, event_type, agent_id, session_id, tx_id, actor, severity, details, \
                       ip_address, prev_hash, hash";

/// Rows per multi-row `INSERT` (11 parameters each, far below SQLite's limit on bound parameters).
const ROWS_PER_INSERT: usize = 256;

/// Where a database keeps its audit head key once installed (shared by all its repositories; memory only).
#[derive(Debug, Default)]
pub(crate) struct HeadKeySlot(RwLock<Option<Arc<HeadKey>>>);

impl HeadKeySlot {
    pub(crate) fn get(&self) -> Option<Arc<HeadKey>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Installs `key` for every write transaction begun from now on.
    pub(crate) fn install(&self, key: HeadKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(key));
    }
}

/// Appends `event` as the next audit row, chained to the latest one, inside a write transaction (the caller
/// commits).
pub(crate) async fn append_audit(tx: &mut WriteTx, event: &Event) -> Result<()> {
    append_audits(tx, std::slice::from_ref(event)).await
}

/// Appends `events` in order as the next audit rows, each chained to the one before, inside a write transaction
/// (the caller commits).
pub(crate) async fn append_audits(tx: &mut WriteTx, events: &[Event]) -> Result<()> {
    if !events.is_empty() {
        append_audits_after(tx, None, events).await?;
    }
    Ok(())
}

/// [`append_audits`] after `latest`, the chain's end when the caller knows it (it appended the rows before in this
/// transaction); `None` reads it. Returns the chain's end afterwards. With the key installed, the head is sealed
/// at that end before returning.
pub(crate) async fn append_audits_after(
    tx: &mut WriteTx,
    latest: Option<ChainHead>,
    events: &[Event],
) -> Result<ChainHead> {
    let start = match latest {
        Some(head) => head,
        None => chain_start(tx).await?,
    };
    if events.is_empty() {
        return Ok(start);
    }
    let end = insert_rows(tx, start, events).await?;
    if let Some(key) = tx.head_key() {
        write_head(tx, &key, &end).await?;
    }
    Ok(end)
}

/// Where the next row links: the sealed head (its MAC checked) when the key is installed; the last row while the
/// log has no head yet.
async fn chain_start(tx: &mut WriteTx) -> Result<ChainHead> {
    let sealed = read_head(tx).await?;
    match (tx.head_key(), sealed) {
        (None, None) => read_last(tx).await,
        (Some(key), Some(sealed)) if key.verifies(&sealed.head, &sealed.mac) => Ok(sealed.head),
        (Some(_), Some(_)) => Err(Error::internal_msg("the sealed audit head was edited behind the daemon's back")),
        (Some(_), None) => Err(Error::internal_msg("the sealed audit head was deleted behind the daemon's back")),
        (None, Some(_)) => {
            Err(Error::internal_msg("the audit head is sealed: appending needs its key, installed at unlock"))
        }
    }
}

/// Inserts `events` chained after `start`; returns the new end of the chain.
async fn insert_rows(conn: &mut SqliteConnection, start: ChainHead, events: &[Event]) -> Result<ChainHead> {
    let ChainHead { last_id: mut last, last_hash: mut prev } = start;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_logs (created_at, event_type, agent_id, session_id, tx_id, actor, severity, details, \
             ip_address, prev_hash, hash) ",
        );
        insert.push_values(chunk, |mut row, event| {
            let hash = chain_hash(&prev, event);
            row.push_bind(event.created_at.0)
                .push_bind(event.event_type.as_str())
                .push_bind(event.agent_id.map(|id| id.to_string()))
                .push_bind(event.session_id.map(|id| id.to_string()))
                .push_bind(event.tx_id.map(|id| id.to_string()))
                .push_bind(event.actor.to_wire())
                .push_bind(event.severity.as_str())
                .push_bind(event.details.to_string())
                .push_bind(event.ip_address.map(|ip| ip.to_string()))
                .push_bind(std::mem::replace(&mut prev, hash.clone()))
                .push_bind(hash);
        });
        last = insert.build().execute(&mut *conn).await.map_err(db_err)?.last_insert_rowid();
    }
    Ok(ChainHead { last_id: last, last_hash: prev })
}

/// Stores `head` sealed with `key`.
async fn write_head(conn: &mut SqliteConnection, key: &HeadKey, head: &ChainHead) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_head (id, last_id, last_hash, mac) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
         last_id = excluded.last_id, last_hash = excluded.last_hash, mac = excluded.mac",
    )
    .bind(head.last_id)
    .bind(&head.last_hash)
    .bind(key.seal(head))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn read_head(conn: &mut SqliteConnection) -> Result<Option<SealedHead>> {
    let row = sqlx::query("SELECT last_id, last_hash, mac FROM audit_head WHERE id = 1")
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.map(|row| {
        Ok(SealedHead {
            head: ChainHead {
                last_id: row.try_get("last_id").map_err(db_err)?,
                last_hash: row.try_get("last_hash").map_err(db_err)?,
            },
            mac: row.try_get("mac").map_err(db_err)?,
        })
    })
    .transpose()
}

/// The log's last row, or the genesis head of an empty log.
async fn read_last(conn: &mut SqliteConnection) -> Result<ChainHead> {
    let last: Option<(i64, String)> = sqlx::query_as("SELECT id, hash FROM audit_logs ORDER BY id DESC LIMIT 1")
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    Ok(last.map_or_else(ChainHead::genesis, |(last_id, last_hash)| ChainHead { last_id, last_hash }))
}

/// The sealed head and the end of the log, read in one transaction: what [`check_head`] compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHeadState {
    pub sealed: Option<SealedHead>,
    /// The log's last row (the genesis head of an empty log).
    pub last: ChainHead,
    /// The stored hash of the row whose id the sealed head records ([`GENESIS_HASH`] for 0), if that row exists.
    pub at_head: Option<String>,
}

impl AuditHeadState {
    /// What is wrong with the log's end under `key`, if anything.
    pub fn check(&self, key: &HeadKey) -> std::result::Result<(), HeadFinding> {
        check_head(key, self.sealed.as_ref(), &self.last, self.at_head.as_deref())
    }
}

pub(crate) async fn head_state(conn: &mut SqliteConnection) -> Result<AuditHeadState> {
    let sealed = read_head(conn).await?;
    let last = read_last(conn).await?;
    let at_head = match &sealed {
        None => None,
        Some(s) if s.head.last_id == 0 => Some(GENESIS_HASH.to_owned()),
        Some(s) => sqlx::query_scalar("SELECT hash FROM audit_logs WHERE id = ?")
            .bind(s.head.last_id)
            .fetch_optional(conn)
            .await
            .map_err(db_err)?,
    };
    Ok(AuditHeadState { sealed, last, at_head })
}

/// What [`crate::Database::install_audit_head_key`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum HeadInstalled {
    /// The sealed head matches the end of the log.
    Intact { last_id: i64 },
    /// The log had no sealed head and is sealed now; `recorded` is the `AUDIT_HEAD_SEALED` row written first when
    /// the log already had rows (rows up to the one before it cannot be checked for deletions).
    Sealed { last_id: i64, recorded: Option<Event> },
    /// The sealed head does not match the log: nothing was written and the key is not installed, so no append
    /// can hide the finding.
    Broken(HeadFinding),
}

/// Seals the head at the end of the log after recording `reason` as an `AUDIT_HEAD_SEALED` row (when `record`),
/// ignoring any head there was. Returns the new end and the recorded event.
pub(crate) async fn seal_log_end(
    tx: &mut WriteTx,
    key: &HeadKey,
    last: ChainHead,
    record: Option<(&RequestContext, UnixSeconds, SealReason)>,
) -> Result<(ChainHead, Option<Event>)> {
    let (end, recorded) = match record {
        None => (last, None),
        Some((ctx, now, reason)) => {
            let event = head_sealed_event(ctx, now, last.last_id, &reason);
            let end = insert_rows(tx, last, std::slice::from_ref(&event)).await?;
            (end, Some(event))
        }
    };
    write_head(tx, key, &end).await?;
    Ok((end, recorded))
}

/// Parses the stored form of an [`Actor`] (see [`Actor::to_wire`]).
fn parse_actor(wire: &str) -> Result<Actor, String> {
    match wire {
        "master" => Ok(Actor::Master),
        "system" => Ok(Actor::System),
        "anonymous" => Ok(Actor::Anonymous),
        _ => {
            if let Some(id) = wire.strip_prefix("session:") {
                id.parse().map(Actor::Session).map_err(|e| e.to_string())
            } else if let Some(address) = wire.strip_prefix("owner:") {
                address.parse().map(Actor::Owner)
            } else {
                Err(format!("unknown actor {wire:?}"))
            }
        }
    }
}

fn optional<T, E: ToString>(
    column: &'static str,
    raw: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>> {
    raw.map(|raw| parse_column(TABLE, column, &raw, parse)).transpose()
}

/// Maps a row selected with [`COLUMNS`] back to a record; a value that does not parse is an internal error.
pub(crate) fn record_from_row(row: &SqliteRow) -> Result<AuditRecord> {
    let get_err = |e: sqlx::Error| db_err(e);
    let id: i64 = row.try_get("id").map_err(get_err)?;
    let event_type: String = row.try_get("event_type").map_err(get_err)?;
    let severity: String = row.try_get("severity").map_err(get_err)?;
    let actor: String = row.try_get("actor").map_err(get_err)?;
    let details: String = row.try_get("details").map_err(get_err)?;
    let event = Event {
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| decode_err(TABLE, "event_type", format!("unknown event type {event_type:?}")))?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(get_err)?),
        agent_id: optional("agent_id", row.try_get("agent_id").map_err(get_err)?, str::parse)?,
        session_id: optional("session_id", row.try_get("session_id").map_err(get_err)?, str::parse)?,
        tx_id: optional("tx_id", row.try_get("tx_id").map_err(get_err)?, str::parse)?,
        actor: parse_column(TABLE, "actor", &actor, parse_actor)?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| decode_err(TABLE, "severity", format!("unknown severity {severity:?}")))?,
        details: parse_json(TABLE, "details", &details)?,
        ip_address: optional("ip_address", row.try_get("ip_address").map_err(get_err)?, str::parse::<IpAddr>)?,
    };
    Ok(AuditRecord {
        id,
        event,
        prev_hash: row.try_get("prev_hash").map_err(get_err)?,
        hash: row.try_get("hash").map_err(get_err)?,
    })
}

/// The SQL of an audit query, every value bound. `prefix` goes before `SELECT` (tests pass
/// `EXPLAIN QUERY PLAN `).
///
/// The keyset bound is the row value `(created_at, id) < (?, ?)` — the same rows as
/// `created_at < ? OR (created_at = ? AND id < ?)` — which SQLite turns into an index range bound, so a page costs
/// the same at any depth.
pub(crate) fn build_query(prefix: &str, query: &AuditQuery) -> QueryBuilder<'static, Sqlite> {
    let mut sql = QueryBuilder::new(prefix);
    sql.push("SELECT ").push(COLUMNS).push(" FROM audit_logs WHERE 1 = 1");
    if let Some(agent_id) = query.agent_id {
        sql.push(" AND agent_id = ").push_bind(agent_id.to_string());
    }
    match query.event_types.as_slice() {
        [] => {}
        [one] => {
            sql.push(" AND event_type = ").push_bind(one.as_str());
        }
        many => {
            sql.push(" AND event_type IN (");
            let mut list = sql.separated(", ");
            for event_type in many {
                list.push_bind(event_type.as_str());
            }
            list.push_unseparated(")");
        }
    }
    if let Some(severity) = query.severity {
        sql.push(" AND severity = ").push_bind(severity.as_str());
    }
    if let Some(tx_id) = query.tx_id {
        sql.push(" AND tx_id = ").push_bind(tx_id.to_string());
    }
    if let Some(actor) = &query.actor {
        sql.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(from) = query.from {
        sql.push(" AND created_at >= ").push_bind(from.0);
    }
    if let Some(to) = query.to {
        sql.push(" AND created_at <= ").push_bind(to.0);
    }
    if let Some((created_at, id)) = query.before {
        sql.push(" AND (created_at, id) < (").push_bind(created_at.0).push(", ").push_bind(id).push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(query.limit));
    sql
}

/// Rows with `id > after_id` in id order, at most `limit`.
pub(crate) async fn chain_after(pool: &SqlitePool, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_logs WHERE id > ? ORDER BY id ASC LIMIT ?"))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
        .map_err(db_err)?;
    rows.iter().map(record_from_row).collect()
}

/// [`AuditRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteAuditRepo {
    pools: Pools,
}

impl SqliteAuditRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteAuditRepo { pools }
    }
}

#[async_trait]
impl AuditRepo for SqliteAuditRepo {
    async fn append(&self, event: &Event) -> Result<()> {
        crate::commit_with_audit(self.pools.begin_write().await?, event).await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let rows = build_query("", query).build().fetch_all(&self.pools.reader).await.map_err(db_err)?;
        rows.iter().map(record_from_row).collect()
    }

    async fn stats(&self, query: &AuditStatsQuery) -> Result<AuditStats> {
        // One read transaction: the four counts describe the same rows.
        let mut tx = self.pools.reader.begin().await.map_err(db_err)?;
        let grouped = |key: &str| {
            let mut sql = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {key} AS k, COUNT(*) AS n FROM audit_logs WHERE created_at >= "
            ));
            sql.push_bind(query.from.0).push(" AND created_at <= ").push_bind(query.to.0);
            if let Some(agent_id) = query.agent_id {
                sql.push(" AND agent_id = ").push_bind(agent_id.to_string());
            }
            sql.push(" GROUP BY k ORDER BY k");
            sql
        };
        let counts = |rows: Vec<SqliteRow>| -> Result<Vec<(Option<String>, u64)>> {
            rows.iter()
                .map(|row| {
                    let key: Option<String> = row.try_get("k").map_err(db_err)?;
                    let n: i64 = row.try_get("n").map_err(db_err)?;
                    Ok((key, u64::try_from(n).unwrap_or(0)))
                })
                .collect()
        };
        let by_type = counts(grouped("event_type").build().fetch_all(&mut *tx).await.map_err(db_err)?)?;
        let by_severity = counts(grouped("severity").build().fetch_all(&mut *tx).await.map_err(db_err)?)?;
        let by_agent = counts(grouped("agent_id").build().fetch_all(&mut *tx).await.map_err(db_err)?)?;
        let bucket = format!("CAST((created_at / {0}) * {0} AS TEXT)", query.bucket_seconds.max(1));
        let series = counts(grouped(&bucket).build().fetch_all(&mut *tx).await.map_err(db_err)?)?;
        let parse = |column: &'static str| {
            move |text: Option<String>| decode_err(TABLE, column, format!("unexpected {text:?}"))
        };
        let mut stats = AuditStats { total: by_type.iter().map(|(_, n)| n).sum(), ..AuditStats::default() };
        for (key, n) in by_type {
            let event_type =
                key.as_deref().and_then(EventType::parse).ok_or_else(|| parse("event_type")(key.clone()))?;
            stats.by_event_type.push((event_type, n));
        }
        for (key, n) in by_severity {
            let severity = key.as_deref().and_then(Severity::parse).ok_or_else(|| parse("severity")(key.clone()))?;
            stats.by_severity.push((severity, n));
        }
        for (key, n) in by_agent {
            let agent = key.as_deref().map(str::parse).transpose().map_err(|_| parse("agent_id")(key.clone()))?;
            stats.by_agent.push((agent, n));
        }
        for (key, n) in series {
            let start = key.as_deref().and_then(|k| k.parse().ok()).ok_or_else(|| parse("created_at")(key.clone()))?;
            stats.series.push((UnixSeconds(start), n));
        }
        stats.series.sort();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;
    use waiaas_core::audit::ChainBreak;
    use waiaas_core::event::RequestContext;
    use waiaas_core::{AgentId, SessionId, TxId};

    use super::*;
    use crate::test_support::{TestDb, count_audit_rows};

    /// Verifies the whole stored chain in batches, as `waiaas audit verify` does.
    async fn verify_stored_chain(t: &TestDb, batch: u32) -> Result<u64, ChainBreak> {
        let (verified, verdict) = t.db.verify_audit_chain(batch).await.unwrap();
        verdict.map(|()| verified)
    }

    fn query(limit: u32) -> AuditQuery {
        AuditQuery { limit, ..AuditQuery::default() }
    }

    fn ids(records: &[AuditRecord]) -> Vec<i64> {
        records.iter().map(|r| r.id).collect()
    }

    /// A mixed log: 2 agents × 3 types over 30 seconds, two rows per second (same-second ties), varied
    /// severities, actors and tx ids. Returns every appended event in insertion order (ids 1..).
    async fn seed(t: &TestDb, agents: &[AgentId; 2], tx: TxId) -> Vec<Event> {
        let types = [EventType::TxRequested, EventType::SessionCreated, EventType::AgentSuspended];
        let mut events = Vec::new();
        for i in 0..60_i64 {
            let event_type = types[(i % 3) as usize];
            let ctx = if i % 4 == 0 {
                RequestContext::master(Some("127.0.0.1".parse().unwrap()))
            } else {
                RequestContext::system()
            };
            let mut event = Event::new(event_type, &ctx, UnixSeconds(1_000 + i / 2))
                .agent(agents[(i % 2) as usize])
                .details(json!({ "i": i }));
            if i % 5 == 0 {
                event = event.tx(tx);
            }
            t.db.audit().append(&event).await.unwrap();
            events.push(event);
        }
        events
    }

    /// The ids (1-based insertion order) of `events` matching `keep`, newest first by (created_at, id).
    fn expected(events: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<i64> {
        let mut rows: Vec<(i64, i64)> =
            events.iter().enumerate().filter(|(_, e)| keep(e)).map(|(i, e)| (e.created_at.0, i as i64 + 1)).collect();
        rows.sort_by(|a, b| b.cmp(a));
        rows.into_iter().map(|(_, id)| id).collect()
    }

    #[tokio::test]
    async fn append_round_trips_every_field() {
        let t = TestDb::new().await;
        let session = SessionId::generate(&t.clock, &t.entropy);
        let owner = crate::test_support::owner_address(7);
        let events = [
            Event::new(
                EventType::TxApproved,
                &RequestContext { actor: Actor::Owner(owner), ip: Some("::1".parse().unwrap()) },
                UnixSeconds(5),
            )
            .agent(AgentId::generate(&t.clock, &t.entropy))
            .tx(TxId::generate(&t.clock, &t.entropy))
            .details(json!({ "b": [1, 2.5, null], "a": { "nested": "ü" } })),
            Event::new(
                EventType::SessionRenewed,
                &RequestContext { actor: Actor::Session(session), ip: None },
                UnixSeconds(6),
            ),
            Event::new(
                EventType::MasterAuthFailed,
                &RequestContext { actor: Actor::Anonymous, ip: None },
                UnixSeconds(7),
            ),
            Event::new(EventType::BackupCreated, &RequestContext::master(None), UnixSeconds(8)),
            Event::new(EventType::TxExpired, &RequestContext::system(), UnixSeconds(9)),
        ];
        for event in &events {
            t.db.audit().append(event).await.unwrap();
        }
        let stored = t.db.audit_chain(0, 100).await.unwrap();
        let read: Vec<Event> = stored.iter().map(|r| r.event.clone()).collect();
        assert_eq!(read, events);
        assert_eq!(stored[0].prev_hash, GENESIS_HASH);
        assert_eq!(stored[1].prev_hash, stored[0].hash);
        assert_eq!(stored[0].hash, chain_hash(GENESIS_HASH, &events[0]));
        let raw_actor: String = sqlx::query_scalar("SELECT actor FROM audit_logs WHERE id = 2")
            .fetch_one(&t.db.pools.reader)
            .await
            .unwrap();
        assert_eq!(raw_actor, format!("session:{session}"));
    }

    #[tokio::test]
    async fn each_filter_alone_and_combined() {
        let t = TestDb::new().await;
        let agents = [AgentId::generate(&t.clock, &t.entropy), AgentId::generate(&t.clock, &t.entropy)];
        let tx = TxId::generate(&t.clock, &t.entropy);
        let events = seed(&t, &agents, tx).await;
        let run = |q: AuditQuery| {
            let repo = t.db.audit();
            async move { ids(&repo.query(&q).await.unwrap()) }
        };

        let all = run(query(500)).await;
        assert_eq!(all, expected(&events, |_| true));
        assert_eq!(all.len(), 60);

        let by_agent = run(AuditQuery { agent_id: Some(agents[1]), ..query(500) }).await;
        assert_eq!(by_agent, expected(&events, |e| e.agent_id == Some(agents[1])));
        assert_eq!(by_agent.len(), 30);

        let one_type = run(AuditQuery { event_types: vec![EventType::SessionCreated], ..query(500) }).await;
        assert_eq!(one_type, expected(&events, |e| e.event_type == EventType::SessionCreated));
        assert_eq!(one_type.len(), 20);

        let two_types = vec![EventType::SessionCreated, EventType::AgentSuspended];
        let in_list = run(AuditQuery { event_types: two_types.clone(), ..query(500) }).await;
        assert_eq!(in_list, expected(&events, |e| two_types.contains(&e.event_type)));
        assert_eq!(in_list.len(), 40);

        let warnings = run(AuditQuery { severity: Some(Severity::Warning), ..query(500) }).await;
        assert_eq!(warnings, expected(&events, |e| e.event_type == EventType::AgentSuspended));

        let by_tx = run(AuditQuery { tx_id: Some(tx), ..query(500) }).await;
        assert_eq!(by_tx, expected(&events, |e| e.tx_id == Some(tx)));
        assert_eq!(by_tx.len(), 12);

        let by_actor = run(AuditQuery { actor: Some("master".into()), ..query(500) }).await;
        assert_eq!(by_actor, expected(&events, |e| e.actor == Actor::Master));
        assert_eq!(by_actor.len(), 15);

        let period =
            run(AuditQuery { from: Some(UnixSeconds(1_010)), to: Some(UnixSeconds(1_012)), ..query(500) }).await;
        assert_eq!(period, expected(&events, |e| (1_010..=1_012).contains(&e.created_at.0)));
        assert_eq!(period.len(), 6, "both bounds are inclusive");

        // T-04: agent + event type + period.
        let combined = run(AuditQuery {
            agent_id: Some(agents[0]),
            event_types: vec![EventType::TxRequested],
            from: Some(UnixSeconds(1_003)),
            to: Some(UnixSeconds(1_020)),
            ..query(500)
        })
        .await;
        let want = expected(&events, |e| {
            e.agent_id == Some(agents[0])
                && e.event_type == EventType::TxRequested
                && (1_003..=1_020).contains(&e.created_at.0)
        });
        assert!(!want.is_empty());
        assert_eq!(combined, want);

        let everything = run(AuditQuery {
            agent_id: Some(agents[0]),
            event_types: vec![EventType::TxRequested, EventType::AgentSuspended],
            severity: Some(Severity::Info),
            tx_id: Some(tx),
            actor: Some("master".into()),
            from: Some(UnixSeconds(1_000)),
            to: Some(UnixSeconds(1_029)),
            ..query(500)
        })
        .await;
        let want = expected(&events, |e| {
            e.agent_id == Some(agents[0])
                && e.event_type == EventType::TxRequested
                && e.tx_id == Some(tx)
                && e.actor == Actor::Master
        });
        assert!(!want.is_empty());
        assert_eq!(everything, want);

        let nothing = run(AuditQuery { agent_id: Some(AgentId::generate(&t.clock, &t.entropy)), ..query(500) }).await;
        assert!(nothing.is_empty());

        let limited = run(query(7)).await;
        assert_eq!(limited, all[..7]);
    }

    #[tokio::test]
    async fn keyset_pages_are_exact_without_duplicates() {
        let t = TestDb::new().await;
        let agents = [AgentId::generate(&t.clock, &t.entropy), AgentId::generate(&t.clock, &t.entropy)];
        let events = seed(&t, &agents, TxId::generate(&t.clock, &t.entropy)).await;
        for (filter, page_size) in [
            (AuditQuery::default(), 7_u32),
            (AuditQuery::default(), 1),
            (AuditQuery::default(), 60),
            (
                AuditQuery {
                    agent_id: Some(agents[0]),
                    event_types: vec![EventType::TxRequested],
                    ..Default::default()
                },
                3,
            ),
            (AuditQuery { severity: Some(Severity::Info), ..Default::default() }, 4),
        ] {
            let full = ids(&t.db.audit().query(&AuditQuery { limit: 1_000, ..filter.clone() }).await.unwrap());
            let mut pages = Vec::new();
            let mut before = None;
            loop {
                let page =
                    t.db.audit().query(&AuditQuery { before, limit: page_size, ..filter.clone() }).await.unwrap();
                assert!(page.len() <= page_size as usize);
                let Some(last) = page.last() else { break };
                before = Some((last.event.created_at, last.id));
                pages.extend(ids(&page));
                assert!(pages.len() <= full.len(), "{filter:?} by {page_size}: pages repeat rows");
                // Rows appended while paging are newer than the cursor and never shift the next page.
                let newer =
                    Event::new(EventType::TxRequested, &RequestContext::system(), UnixSeconds(5_000)).agent(agents[0]);
                t.db.audit().append(&newer).await.unwrap();
            }
            assert_eq!(pages, full, "{filter:?} by {page_size}");
            assert_eq!(pages.iter().collect::<HashSet<_>>().len(), pages.len(), "no duplicates");
            assert!(!full.is_empty());
        }
        // Past the end: an empty page.
        let oldest = t.db.audit_chain(0, 1).await.unwrap().remove(0);
        let after_last = AuditQuery { before: Some((oldest.event.created_at, oldest.id)), ..query(10) };
        assert!(t.db.audit().query(&after_last).await.unwrap().is_empty());
        assert_eq!(events.len(), 60);
    }

    #[tokio::test]
    async fn keyset_orders_same_second_rows_by_id() {
        let t = TestDb::new().await;
        for _ in 0..5 {
            t.db.audit()
                .append(&Event::new(EventType::TxQueued, &RequestContext::system(), UnixSeconds(10)))
                .await
                .unwrap();
        }
        // A row written later but stamped earlier sorts after by time, not by id.
        t.db.audit().append(&Event::new(EventType::TxQueued, &RequestContext::system(), UnixSeconds(9))).await.unwrap();
        let page = t.db.audit().query(&AuditQuery { before: Some((UnixSeconds(10), 4)), ..query(10) }).await.unwrap();
        assert_eq!(ids(&page), [3, 2, 1, 6]);
    }

    #[tokio::test]
    async fn stats_count_by_type_severity_agent_and_bucket() {
        let t = TestDb::new().await;
        let agents = [AgentId::generate(&t.clock, &t.entropy), AgentId::generate(&t.clock, &t.entropy)];
        let events = seed(&t, &agents, TxId::generate(&t.clock, &t.entropy)).await;
        let (from, to) = (events[0].created_at, events[59].created_at);
        let all = AuditStatsQuery { agent_id: None, from, to, bucket_seconds: 10 };
        let stats = t.db.audit().stats(&all).await.unwrap();
        assert_eq!(stats.total, 60);
        let count = |event_type| events.iter().filter(|e| e.event_type == event_type).count() as u64;
        for (event_type, n) in &stats.by_event_type {
            assert_eq!(*n, count(*event_type), "{event_type:?}");
        }
        assert_eq!(stats.by_event_type.len(), 3);
        assert_eq!(stats.by_severity.iter().map(|(_, n)| n).sum::<u64>(), 60);
        let of_agent = |agent: AgentId| events.iter().filter(|e| e.agent_id == Some(agent)).count() as u64;
        for (agent, n) in &stats.by_agent {
            assert_eq!(
                *n,
                agent.map(of_agent).unwrap_or_else(|| events.iter().filter(|e| e.agent_id.is_none()).count() as u64)
            );
        }
        let in_bucket = |start: i64| events.iter().filter(|e| e.created_at.0 / 10 * 10 == start).count() as u64;
        assert!(stats.series.windows(2).all(|w| w[0].0 < w[1].0), "ascending buckets");
        for (start, n) in &stats.series {
            assert_eq!(*n, in_bucket(start.0));
        }
        let one = AuditStatsQuery { agent_id: Some(agents[0]), ..all.clone() };
        assert_eq!(t.db.audit().stats(&one).await.unwrap().total, of_agent(agents[0]));
        let empty = AuditStatsQuery { from: UnixSeconds(to.0 + 1), to: UnixSeconds(to.0 + 100), ..all };
        assert_eq!(t.db.audit().stats(&empty).await.unwrap(), AuditStats::default());
    }

    #[tokio::test]
    async fn the_chain_verifies_and_detects_edits_and_deletions() {
        let t = TestDb::new().await;
        let agents = [AgentId::generate(&t.clock, &t.entropy), AgentId::generate(&t.clock, &t.entropy)];
        seed(&t, &agents, TxId::generate(&t.clock, &t.entropy)).await;
        assert_eq!(verify_stored_chain(&t, 7).await, Ok(60), "all 60 rows verify across batch borders");

        sqlx::query("UPDATE audit_logs SET details = '{\"i\":999}' WHERE id = 23")
            .execute(&t.db.pools.writer)
            .await
            .unwrap();
        assert_eq!(verify_stored_chain(&t, 7).await, Err(ChainBreak::ContentAltered { id: 23 }));

        let t = TestDb::new().await;
        seed(&t, &agents, TxId::generate(&t.clock, &t.entropy)).await;
        sqlx::query("DELETE FROM audit_logs WHERE id = 40").execute(&t.db.pools.writer).await.unwrap();
        assert_eq!(verify_stored_chain(&t, 7).await, Err(ChainBreak::LinkBroken { id: 41 }));
    }

    /// Many events in one call (the kill switch cancelling hundreds of requests) span several multi-row
    /// statements; the rows keep their order and the chain links across the statement borders.
    #[tokio::test]
    async fn a_batch_larger_than_one_statement_chains_in_order() {
        let t = TestDb::new().await;
        t.db.audit().append(&Event::new(EventType::TxQueued, &RequestContext::system(), UnixSeconds(1))).await.unwrap();
        let events: Vec<Event> = (0..2 * ROWS_PER_INSERT + 3)
            .map(|i| {
                Event::new(EventType::TxCancelled, &RequestContext::system(), UnixSeconds(2))
                    .details(serde_json::json!({ "i": i }))
            })
            .collect();
        let mut tx = t.db.pools.begin_write().await.unwrap();
        append_audits(&mut tx, &events).await.unwrap();
        tx.commit().await.unwrap();
        let stored: Vec<Event> = t.db.audit_chain(1, 1_000).await.unwrap().into_iter().map(|r| r.event).collect();
        assert_eq!(stored, events);
        assert_eq!(verify_stored_chain(&t, 100).await, Ok(1 + events.len() as u64));
    }

    #[tokio::test]
    async fn an_unreadable_row_is_an_internal_error() {
        let t = TestDb::new().await;
        t.db.audit().append(&Event::new(EventType::TxQueued, &RequestContext::system(), UnixSeconds(1))).await.unwrap();
        sqlx::query("UPDATE audit_logs SET event_type = 'NOT_A_TYPE'").execute(&t.db.pools.writer).await.unwrap();
        let err = t.db.audit().query(&query(10)).await.unwrap_err();
        assert_eq!(err.code, waiaas_core::ErrorCode::InternalError);
        assert!(!err.message.contains("NOT_A_TYPE"), "internal causes are not in the client message");
    }

    #[tokio::test]
    async fn append_writes_exactly_one_row() {
        let t = TestDb::new().await;
        assert_eq!(count_audit_rows(&t.db).await, 0);
        t.db.audit()
            .append(&Event::new(
                EventType::MasterAuthFailed,
                &RequestContext { actor: Actor::Anonymous, ip: None },
                UnixSeconds(1),
            ))
            .await
            .unwrap();
        assert_eq!(count_audit_rows(&t.db).await, 1);
    }

    async fn plan(t: &TestDb, query: &AuditQuery) -> Vec<String> {
        build_query("EXPLAIN QUERY PLAN ", query)
            .build()
            .fetch_all(&t.db.pools.reader)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    #[tokio::test]
    async fn the_three_filter_query_walks_the_composite_index() {
        let t = TestDb::new().await;
        let agents = [AgentId::generate(&t.clock, &t.entropy), AgentId::generate(&t.clock, &t.entropy)];
        seed(&t, &agents, TxId::generate(&t.clock, &t.entropy)).await;
        let three = AuditQuery {
            agent_id: Some(agents[0]),
            event_types: vec![EventType::TxRequested],
            from: Some(UnixSeconds(1_000)),
            to: Some(UnixSeconds(2_000)),
            ..query(51)
        };
        for q in [three.clone(), AuditQuery { before: Some((UnixSeconds(1_500), 40)), ..three }] {
            let plan = plan(&t, &q).await.join("\n");
            assert!(plan.contains("USING INDEX idx_audit_agent_type_time"), "{plan}");
            assert!(plan.contains("agent_id=? AND event_type=?"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
        // The unfiltered keyset page is an index range walk too.
        let plan = plan(&t, &AuditQuery { before: Some((UnixSeconds(1_500), 40)), ..query(51) }).await.join("\n");
        assert!(plan.contains("USING INDEX idx_audit_time"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
