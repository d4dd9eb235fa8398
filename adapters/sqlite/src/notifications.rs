//! [`NotificationRepo`] over SQLite: the notifier's cursor, its queue (`notification_outbox`), the held-back counts
//! of each channel (`notification_digests`) and `notification_logs` (schema 9). The notifier reads the audit log on
//! the reader pool and writes its entries with the cursor in a transaction of its own: the event's own
//! transaction (the audit append) is not touched.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use waiaas_core::event::EventType;
use waiaas_core::notifications::{ChannelKind, LogKind, LogStatus};
use waiaas_core::ports::{
    AuditRecord, DueNotification, HeldBack, NotificationLogEntry, NotificationLogQuery, NotificationRepo, QueueNext,
    QueuedNotification, Settlement,
};
use waiaas_core::{Result, UnixSeconds};

use crate::error::{db_err, decode_err, parse_column};
use crate::{Pools, WriteTx, fetch_page};

/// Entries per multi-row `INSERT` (4 parameters each).
const ROWS_PER_INSERT: usize = 200;

fn channels_json(channels: &[ChannelKind]) -> String {
    serde_json::Value::from(channels.iter().map(|c| c.as_str()).collect::<Vec<_>>()).to_string()
}

fn parse_channels(raw: &str) -> Result<Vec<ChannelKind>> {
    let names: Vec<String> =
        parse_column("notification_outbox", "channels", raw, |s| serde_json::from_str::<Vec<String>>(s))?;
    names
        .iter()
        .map(|n| ChannelKind::parse(n).ok_or_else(|| decode_err("notification_outbox", "channels", format!("{n:?}"))))
        .collect()
}

fn parse_event_type(table: &'static str, raw: &str) -> Result<EventType> {
    EventType::parse(raw).ok_or_else(|| decode_err(table, "event_type", format!("unknown {raw:?}")))
}

fn entry_from_row(row: &SqliteRow) -> Result<NotificationLogEntry> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let channel = text("channel")?;
    let kind = text("kind")?;
    let status = text("status")?;
    let event_type: Option<String> = row.try_get("event_type").map_err(db_err)?;
    Ok(NotificationLogEntry {
        id: row.try_get("id").map_err(db_err)?,
        channel: ChannelKind::parse(&channel)
            .ok_or_else(|| decode_err("notification_logs", "channel", format!("{channel:?}")))?,
        kind: LogKind::parse(&kind).ok_or_else(|| decode_err("notification_logs", "kind", format!("{kind:?}")))?,
        audit_id: row.try_get("audit_id").map_err(db_err)?,
        event_type: event_type.as_deref().map(|t| parse_event_type("notification_logs", t)).transpose()?,
        attempt: row.try_get::<i64, _>("attempt").map_err(db_err)?.try_into().unwrap_or(u32::MAX),
        status: LogStatus::parse(&status)
            .ok_or_else(|| decode_err("notification_logs", "status", format!("{status:?}")))?,
        error: row.try_get("error").map_err(db_err)?,
        response_time_ms: row.try_get::<i64, _>("response_time").map_err(db_err)?.try_into().unwrap_or(0),
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
    })
}

async fn insert_log(tx: &mut WriteTx, entries: &[NotificationLogEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO notification_logs (channel, kind, audit_id, event_type, attempt, status, error, response_time, \
         created_at) ",
    );
    insert.push_values(entries, |mut row, e| {
        row.push_bind(e.channel.as_str())
            .push_bind(e.kind.as_str())
            .push_bind(e.audit_id)
            .push_bind(e.event_type.map(|t| t.as_str()))
            .push_bind(i64::from(e.attempt.max(1)))
            .push_bind(e.status.as_str())
            .push_bind(e.error.clone())
            .push_bind(i64::try_from(e.response_time_ms).unwrap_or(i64::MAX))
            .push_bind(e.created_at.0);
    });
    insert.build().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// [`NotificationRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteNotificationRepo {
    pools: Pools,
}

impl SqliteNotificationRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteNotificationRepo { pools }
    }
}

#[async_trait]
impl NotificationRepo for SqliteNotificationRepo {
    async fn cursor(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT last_audit_id FROM notification_cursor WHERE id = 1")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        crate::audit::chain_after(&self.pools.reader, after, limit).await
    }

    async fn enqueue(&self, cursor: i64, entries: &[QueuedNotification], now_ms: u64) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO notification_outbox (audit_id, channels, rounds, next_attempt_at) ",
            );
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(e.audit_id)
                    .push_bind(channels_json(&e.channels))
                    .push_bind(0_i64)
                    .push_bind(millis(now_ms));
            });
            insert.build().execute(&mut *tx).await.map_err(db_err)?;
        }
        sqlx::query("UPDATE notification_cursor SET last_audit_id = MAX(last_audit_id, ?) WHERE id = 1")
            .bind(cursor)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn due(&self, now_ms: u64, busy: Vec<i64>, limit: u32) -> Result<Vec<DueNotification>> {
        let mut sql = QueryBuilder::<Sqlite>::new(format!(
            "SELECT o.id AS entry_id, o.channels, o.rounds, o.audit_id AS entry_audit_id, {} FROM notification_outbox o \
             LEFT JOIN audit_logs a ON a.id = o.audit_id WHERE o.next_attempt_at <= ",
            crate::audit::COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        ));
        sql.push_bind(millis(now_ms));
        if !busy.is_empty() {
            sql.push(" AND o.id NOT IN (");
            let mut list = sql.separated(", ");
            for id in &busy {
                list.push_bind(*id);
            }
            sql.push(")");
        }
        sql.push(" ORDER BY o.next_attempt_at, o.id LIMIT ").push_bind(i64::from(limit));
        let rows = sql.build().fetch_all(&self.pools.reader).await.map_err(db_err)?;
        let mut due = Vec::new();
        let mut orphans = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get("entry_id").map_err(db_err)?;
            let present: Option<i64> = row.try_get("id").map_err(db_err)?;
            if present.is_none() {
                // Its audit row is gone (a restore of an older backup): nothing to say.
                orphans.push(id);
                continue;
            }
            let record = crate::audit::record_from_row(row)?;
            due.push(DueNotification {
                id,
                audit_id: row.try_get("entry_audit_id").map_err(db_err)?,
                event: record.event,
                channels: parse_channels(&row.try_get::<String, _>("channels").map_err(db_err)?)?,
                rounds: row.try_get::<i64, _>("rounds").map_err(db_err)?.try_into().unwrap_or(u32::MAX),
            });
        }
        if !orphans.is_empty() {
            let mut tx = self.pools.begin_write().await?;
            for id in orphans {
                sqlx::query("DELETE FROM notification_outbox WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
        Ok(due)
    }

    async fn next_due(&self) -> Result<Option<u64>> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM notification_outbox")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        Ok(next.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn settle(&self, id: i64, settlement: &Settlement) -> Result<bool> {
        let mut tx = self.pools.begin_write().await?;
        insert_log(&mut tx, &settlement.log).await?;
        let audit_id: Option<i64> = sqlx::query_scalar("SELECT audit_id FROM notification_outbox WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        match &settlement.next {
            QueueNext::Done => {
                sqlx::query("DELETE FROM notification_outbox WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            QueueNext::RetryAt { at_ms, channels } => {
                sqlx::query(
                    "UPDATE notification_outbox SET rounds = rounds + 1, next_attempt_at = ?, channels = ? WHERE id = ?",
                )
                .bind(millis(*at_ms))
                .bind(channels_json(channels))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
        }
        if let Some((channel, event_type)) = settlement.held {
            let at = settlement.log.last().map(|e| e.created_at.0).unwrap_or(0);
            sqlx::query(
                "INSERT INTO notification_digests (channel, event_type, count, first_at) VALUES (?, ?, 1, ?) \
                 ON CONFLICT (channel, event_type) DO UPDATE SET count = count + 1",
            )
            .bind(channel.as_str())
            .bind(event_type.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let mut wrote = false;
        if let (Some(event), Some(audit_id)) = (&settlement.failed, audit_id) {
            // Another channel of a critical event still queued, or one that already took it: not every channel failed.
            let other: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM notification_outbox WHERE audit_id = ? UNION ALL \
                 SELECT 1 FROM notification_logs WHERE audit_id = ? AND kind = 'event' AND status IN ('sent', 'held') \
                 LIMIT 1",
            )
            .bind(audit_id)
            .bind(audit_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if other.is_none() {
                crate::audit::append_audit(&mut tx, event).await?;
                wrote = true;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(wrote)
    }

    async fn held_back(&self) -> Result<Vec<HeldBack>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT channel, event_type, count FROM notification_digests ORDER BY channel, first_at, event_type",
        )
        .fetch_all(&self.pools.reader)
        .await
        .map_err(db_err)?;
        let mut out: Vec<HeldBack> = Vec::new();
        for (channel, event_type, count) in rows {
            let channel = ChannelKind::parse(&channel)
                .ok_or_else(|| decode_err("notification_digests", "channel", format!("{channel:?}")))?;
            let item = (parse_event_type("notification_digests", &event_type)?, u64::try_from(count).unwrap_or(0));
            match out.last_mut() {
                Some(last) if last.channel == channel => last.counts.push(item),
                _ => out.push(HeldBack { channel, counts: vec![item] }),
            }
        }
        Ok(out)
    }

    async fn settle_digest(&self, entry: &NotificationLogEntry, sent: &[(EventType, u64)]) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        insert_log(&mut tx, std::slice::from_ref(entry)).await?;
        for (event_type, count) in sent {
            let count = i64::try_from(*count).unwrap_or(i64::MAX);
            for sql in [
                "DELETE FROM notification_digests WHERE channel = ? AND event_type = ? AND count <= ?",
                "UPDATE notification_digests SET count = count - ? WHERE channel = ? AND event_type = ?",
            ] {
                let query = sqlx::query(sql);
                let query = if sql.starts_with("DELETE") {
                    query.bind(entry.channel.as_str()).bind(event_type.as_str()).bind(count)
                } else {
                    query.bind(count).bind(entry.channel.as_str()).bind(event_type.as_str())
                };
                query.execute(&mut *tx).await.map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)
    }

    async fn log(&self, entry: &NotificationLogEntry) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        insert_log(&mut tx, std::slice::from_ref(entry)).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn logs(&self, query: &NotificationLogQuery) -> Result<Vec<NotificationLogEntry>> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, channel, kind, audit_id, event_type, attempt, status, error, response_time, created_at \
             FROM notification_logs WHERE 1 = 1",
        );
        if let Some(channel) = query.channel {
            sql.push(" AND channel = ").push_bind(channel.as_str());
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(before) = query.before {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
        fetch_page(&self.pools.reader, sql, entry_from_row).await
    }

    async fn queue_depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notification_outbox")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
