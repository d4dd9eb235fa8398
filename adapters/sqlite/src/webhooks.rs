//! [`WebhookRepo`] over SQLite: the `webhooks` table (secrets hashed and sealed, never in plaintext), the
//! `webhook_logs` attempt log, each webhook's stream and the `webhook_outbox` retry queue.
//!
//! **Streams.** Writing an event does nothing for webhooks (no work in the event's transaction, whatever the
//! number of webhooks). A webhook's stream is the audit rows after its `delivered_through` that its subscription
//! matches (a `WEBHOOK_TEST` row only for the webhook it names), read in id order by [`SqliteWebhookRepo::due`];
//! settling an attempt moves the mark past the row, in the same write as its log row. The single writer gives
//! audit ids in commit order, so a reader never sees a row appear behind the mark. A webhook created or
//! reactivated starts at the end of the log (it receives its own `WEBHOOK_CREATED`/`WEBHOOK_UPDATED` row, written
//! in the same transaction after the mark is set). [`StreamHints`] keep, in memory, how far each stream is known
//! to hold nothing, so a webhook subscribed to rare events does not scan the same rows at every wake-up.
//!
//! **Retries.** A failed attempt to try again, or a redelivery, waits in `webhook_outbox` with its due time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use waiaas_core::event::{Event, EventType};
use waiaas_core::ports::{
    DeliverySource, DeliveryStatus, DueDelivery, OutboxNext, SealedSecrets, StoredSecret, WebhookAttempt,
    WebhookLogQuery, WebhookRepo, WebhookSettlement,
};
use waiaas_core::webhooks::{EventFilter, Webhook, delivery_id};
use waiaas_core::{ErrorCode, Result, UnixSeconds, WebhookId};

use crate::error::{db_err, decode_err, not_found, parse_column};
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, require_row};

/// Log rows per multi-row `INSERT` (9 parameters each).
const LOGS_PER_INSERT: usize = 100;

/// Per webhook, the audit id up to which its stream is known to hold nothing more for it (beyond
/// `delivered_through`). Memory only: after a restart the first read of each stream starts at its mark.
#[derive(Debug, Default)]
pub(crate) struct StreamHints(Mutex<HashMap<WebhookId, i64>>);

impl StreamHints {
    fn get(&self, id: WebhookId) -> i64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&id).copied().unwrap_or(0)
    }

    fn set(&self, id: WebhookId, through: i64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id, through);
    }

    /// Forgets the hint of a webhook whose subscription or state changed.
    fn forget(&self, id: WebhookId) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

/// Parses a stored `event_types` column.
pub(crate) fn parse_filter(raw: &str) -> Result<EventFilter> {
    let names: Vec<String> = parse_column("webhooks", "event_types", raw, |s| serde_json::from_str::<Vec<String>>(s))?;
    parse_column("webhooks", "event_types", "", |_| EventFilter::parse(&names).map_err(|e| e.message))
}

/// The stream's condition on audit rows: the subscribed types (never `WEBHOOK_TEST`), or a `WEBHOOK_TEST` row
/// naming this webhook.
fn push_stream_match(sql: &mut QueryBuilder<'_, Sqlite>, id: WebhookId, filter: &EventFilter) {
    let test = EventType::WebhookTest.as_str();
    sql.push("(");
    match filter {
        EventFilter::All => {
            sql.push("event_type != ").push_bind(test);
        }
        EventFilter::Only(types) => {
            sql.push("event_type IN (");
            let mut list = sql.separated(", ");
            for t in types.iter().filter(|t| **t != EventType::WebhookTest) {
                list.push_bind(t.as_str());
            }
            // An empty IN list is valid SQLite, but a filter of WEBHOOK_TEST alone leaves none: match nothing.
            list.push_unseparated(")");
        }
    }
    sql.push(" OR (event_type = ").push_bind(test);
    sql.push(" AND json_extract(details, '$.webhookId') = ").push_bind(id.to_string()).push("))");
}

const TABLE: &str = "webhooks";
const COLUMNS: &str = "id, url, event_types, active, description, created_at, updated_at";

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    Ok(Webhook {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<WebhookId>)?,
        url: text("url")?,
        events: parse_filter(&text("event_types")?)?,
        active: row.try_get("active").map_err(db_err)?,
        description: row.try_get("description").map_err(db_err)?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
        updated_at: UnixSeconds(row.try_get("updated_at").map_err(db_err)?),
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<WebhookAttempt> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    let event_type = text("event_type")?;
    let status = text("status")?;
    let delivery = text("delivery_id")?;
    Ok(WebhookAttempt {
        id: row.try_get("id").map_err(db_err)?,
        webhook_id: parse_column("webhook_logs", "webhook_id", &text("webhook_id")?, str::parse::<WebhookId>)?,
        audit_id: parse_column("webhook_logs", "delivery_id", &delivery, |d| {
            waiaas_core::webhooks::parse_delivery_id(d).map_err(|e| e.message)
        })?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| decode_err("webhook_logs", "event_type", format!("unknown {event_type:?}")))?,
        attempt: row.try_get::<i64, _>("attempt").map_err(db_err)?.try_into().unwrap_or(u32::MAX),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| decode_err("webhook_logs", "status", format!("unknown {status:?}")))?,
        status_code: row.try_get::<Option<i64>, _>("status_code").map_err(db_err)?.and_then(|c| c.try_into().ok()),
        response_time_ms: row.try_get::<i64, _>("response_time").map_err(db_err)?.try_into().unwrap_or(0),
        error: row.try_get("error").map_err(db_err)?,
        created_at: UnixSeconds(row.try_get("created_at").map_err(db_err)?),
    })
}

fn sealed_secrets(row: &SqliteRow) -> Result<SealedSecrets> {
    let previous: Option<Vec<u8>> = row.try_get("previous_secret_encrypted").map_err(db_err)?;
    let until: Option<i64> = row.try_get("previous_secret_expires_at").map_err(db_err)?;
    Ok(SealedSecrets {
        current: row.try_get("secret_encrypted").map_err(db_err)?,
        previous: previous.zip(until).map(|(sealed, until)| (sealed, UnixSeconds(until))),
    })
}

fn event_types_json(webhook: &Webhook) -> String {
    serde_json::Value::from(webhook.events.to_wire()).to_string()
}

/// [`WebhookRepo`] over SQLite.
#[derive(Clone, Debug)]
pub struct SqliteWebhookRepo {
    pools: Pools,
}

impl SqliteWebhookRepo {
    pub(crate) fn new(pools: Pools) -> Self {
        SqliteWebhookRepo { pools }
    }
}

#[async_trait]
impl WebhookRepo for SqliteWebhookRepo {
    async fn insert(&self, webhook: &Webhook, secret: &StoredSecret, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        // The stream starts at the end of the log: the creation's own row (appended below) is its first event.
        sqlx::query(
            "INSERT INTO webhooks (id, url, secret_hash, secret_encrypted, event_types, active, description, \
             created_at, updated_at, delivered_through) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(id), 0) FROM audit_logs))",
        )
        .bind(webhook.id.to_string())
        .bind(&webhook.url)
        .bind(&secret.hash)
        .bind(&secret.sealed)
        .bind(event_types_json(webhook))
        .bind(webhook.active)
        .bind(&webhook.description)
        .bind(webhook.created_at.0)
        .bind(webhook.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit_with_audit(tx, event).await
    }

    async fn get(&self, id: WebhookId) -> Result<Option<Webhook>> {
        fetch_by_id(&self.pools.reader, COLUMNS, TABLE, id, webhook_from_row).await
    }

    async fn list(&self, before: Option<WebhookId>, limit: u32) -> Result<Vec<Webhook>> {
        let page = keyset_page(COLUMNS, TABLE, None, before.map(|id| id.to_string()), limit);
        fetch_page(&self.pools.reader, page, webhook_from_row).await
    }

    async fn update(&self, webhook: &Webhook, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        self.pools.stream_hints.forget(webhook.id);
        // Reactivated, its stream starts at the end of the log: nothing written while it was inactive is sent.
        let done = sqlx::query(
            "UPDATE webhooks SET url = ?, event_types = ?, description = ?, updated_at = ?, \
             delivered_through = CASE WHEN active = 0 AND ? = 1 \
                 THEN (SELECT COALESCE(MAX(id), 0) FROM audit_logs) ELSE delivered_through END, \
             active = ? WHERE id = ?",
        )
        .bind(&webhook.url)
        .bind(event_types_json(webhook))
        .bind(&webhook.description)
        .bind(webhook.updated_at.0)
        .bind(webhook.active)
        .bind(webhook.active)
        .bind(webhook.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::WebhookNotFound, "webhook", webhook.id))?;
        if !webhook.active {
            drop_pending(&mut tx, webhook.id).await?;
        }
        commit_with_audit(tx, event).await
    }

    async fn delete(&self, id: WebhookId, event: &Event) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        self.pools.stream_hints.forget(id);
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::WebhookNotFound, "webhook", id))?;
        drop_pending(&mut tx, id).await?;
        commit_with_audit(tx, event).await
    }

    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &StoredSecret,
        previous_until: UnixSeconds,
        event: &Event,
    ) -> Result<()> {
        let mut tx = self.pools.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET previous_secret_encrypted = secret_encrypted, previous_secret_expires_at = ?, \
             secret_hash = ?, secret_encrypted = ?, updated_at = ? WHERE id = ?",
        )
        .bind(previous_until.0)
        .bind(&secret.hash)
        .bind(&secret.sealed)
        .bind(event.created_at.0)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        require_row(&done, || not_found(ErrorCode::WebhookNotFound, "webhook", id))?;
        commit_with_audit(tx, event).await
    }

    async fn test(&self, id: WebhookId, event: &Event) -> Result<i64> {
        let mut tx = self.pools.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM webhooks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(not_found(ErrorCode::WebhookNotFound, "webhook", id));
        }
        let end = crate::audit::append_audits_after(&mut tx, None, std::slice::from_ref(event)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(end.last_id)
    }

    async fn secrets(&self, id: WebhookId, now: UnixSeconds) -> Result<Option<SealedSecrets>> {
        let row = sqlx::query(
            "SELECT secret_encrypted, previous_secret_encrypted, previous_secret_expires_at FROM webhooks WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pools.reader)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut secrets = sealed_secrets(&row)?;
        secrets.previous = secrets.previous.filter(|(_, until)| *until > now);
        Ok(Some(secrets))
    }

    async fn logs(&self, query: &WebhookLogQuery) -> Result<Vec<WebhookAttempt>> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, webhook_id, delivery_id, event_type, attempt, status, status_code, response_time, error, \
             created_at FROM webhook_logs WHERE webhook_id = ",
        );
        sql.push_bind(query.webhook_id.to_string());
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(before) = query.before {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
        fetch_page(&self.pools.reader, sql, attempt_from_row).await
    }

    async fn redeliver(&self, id: WebhookId, audit_id: i64, now_ms: u64) -> Result<bool> {
        let mut tx = self.pools.begin_write().await?;
        let delivered: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM webhook_logs WHERE webhook_id = ? AND delivery_id = ? LIMIT 1")
                .bind(id.to_string())
                .bind(delivery_id(audit_id))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if delivered.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_outbox (webhook_id, audit_id, attempts, next_attempt_at) VALUES (?, ?, 0, ?) \
             ON CONFLICT (webhook_id, audit_id) DO UPDATE SET next_attempt_at = \
             MIN(next_attempt_at, excluded.next_attempt_at)",
        )
        .bind(id.to_string())
        .bind(audit_id)
        .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn due(
        &self,
        now_ms: u64,
        busy: Vec<WebhookId>,
        webhooks: u32,
        per_webhook: u32,
    ) -> Result<Vec<Vec<DueDelivery>>> {
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let per = i64::from(per_webhook.max(1));
        // One read transaction: the streams, the retries and the log's end are one snapshot.
        let mut read = self.pools.reader.begin().await.map_err(db_err)?;
        let hooks = sqlx::query(
            "SELECT id, url, event_types, delivered_through, secret_encrypted, previous_secret_encrypted, \
             previous_secret_expires_at FROM webhooks WHERE active = 1 ORDER BY id",
        )
        .fetch_all(&mut *read)
        .await
        .map_err(db_err)?;
        let log_end: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_logs")
            .fetch_one(&mut *read)
            .await
            .map_err(db_err)?;
        let audit_columns = crate::audit::COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ");
        let (mut runs, mut orphans) = (Vec::new(), Vec::new());
        for hook in hooks {
            if runs.len() >= webhooks as usize {
                break;
            }
            let text = |column: &'static str| hook.try_get::<String, _>(column).map_err(db_err);
            let id = parse_column(TABLE, "id", &text("id")?, str::parse::<WebhookId>)?;
            if busy.contains(&id) {
                continue;
            }
            let (url, filter, secrets) = (text("url")?, parse_filter(&text("event_types")?)?, sealed_secrets(&hook)?);
            let delivery = |row: &SqliteRow, attempts: u32, source: DeliverySource| -> Result<DueDelivery> {
                let record = crate::audit::record_from_row(row)?;
                Ok(DueDelivery {
                    webhook_id: id,
                    url: url.clone(),
                    audit_id: record.id,
                    event: record.event,
                    attempts,
                    secrets: secrets.clone(),
                    source,
                })
            };
            let mut run = Vec::new();
            let retries = sqlx::query(&format!(
                "SELECT o.audit_id AS queued, o.attempts, {audit_columns} FROM webhook_outbox o \
                 LEFT JOIN audit_logs a ON a.id = o.audit_id \
                 WHERE o.webhook_id = ? AND o.next_attempt_at <= ? ORDER BY o.audit_id LIMIT ?"
            ))
            .bind(id.to_string())
            .bind(now_ms)
            .bind(per)
            .fetch_all(&mut *read)
            .await
            .map_err(db_err)?;
            for row in retries {
                if row.try_get::<Option<i64>, _>("id").map_err(db_err)?.is_none() {
                    // Its audit row is gone: nothing can be delivered.
                    orphans.push((id, row.try_get::<i64, _>("queued").map_err(db_err)?));
                    continue;
                }
                let attempts = row.try_get::<i64, _>("attempts").map_err(db_err)?.try_into().unwrap_or(u32::MAX);
                run.push(delivery(&row, attempts, DeliverySource::Retry)?);
            }
            let from =
                hook.try_get::<i64, _>("delivered_through").map_err(db_err)?.max(self.pools.stream_hints.get(id));
            let mut stream = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {} FROM audit_logs NOT INDEXED WHERE id > ",
                crate::audit::COLUMNS
            ));
            stream.push_bind(from).push(" AND ");
            push_stream_match(&mut stream, id, &filter);
            stream.push(" ORDER BY id LIMIT ").push_bind(per);
            let events = stream.build().fetch_all(&mut *read).await.map_err(db_err)?;
            let mut first = None;
            for row in &events {
                let next = delivery(row, 0, DeliverySource::Stream)?;
                first.get_or_insert(next.audit_id);
                run.push(next);
            }
            // Nothing more for this webhook up to the first event read, or (none read) the log's end.
            self.pools.stream_hints.set(id, first.map_or(log_end, |f| f - 1));
            run.sort_by_key(|d| d.audit_id);
            run.truncate(per as usize);
            if !run.is_empty() {
                runs.push(run);
            }
        }
        read.commit().await.map_err(db_err)?;
        if !orphans.is_empty() {
            let mut tx = self.pools.begin_write().await?;
            for (id, audit_id) in orphans {
                sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ? AND audit_id = ?")
                    .bind(id.to_string())
                    .bind(audit_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
        }
        Ok(runs)
    }

    async fn next_due(&self) -> Result<Option<u64>> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM webhook_outbox")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        Ok(next.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn settle(&self, settlements: &[WebhookSettlement]) -> Result<Vec<bool>> {
        let mut tx = self.pools.begin_write().await?;
        insert_logs(&mut tx, settlements).await?;
        let mut marks: HashMap<WebhookId, i64> = HashMap::new();
        let (mut written, mut events) = (Vec::with_capacity(settlements.len()), Vec::new());
        for settlement in settlements {
            let attempt = &settlement.attempt;
            let webhook = attempt.webhook_id.to_string();
            if settlement.source == DeliverySource::Stream {
                let mark = marks.entry(attempt.webhook_id).or_insert(attempt.audit_id);
                *mark = (*mark).max(attempt.audit_id);
            }
            let mut changed = true;
            match (&settlement.next, settlement.source) {
                (OutboxNext::Finished, DeliverySource::Stream) => {}
                (OutboxNext::Finished, DeliverySource::Retry) => {
                    sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ? AND audit_id = ?")
                        .bind(&webhook)
                        .bind(attempt.audit_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                (OutboxNext::RetryAt(at), _) => {
                    sqlx::query(
                        "INSERT INTO webhook_outbox (webhook_id, audit_id, attempts, next_attempt_at) \
                         VALUES (?, ?, ?, ?) ON CONFLICT (webhook_id, audit_id) DO UPDATE SET \
                         attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at",
                    )
                    .bind(&webhook)
                    .bind(attempt.audit_id)
                    .bind(i64::from(attempt.attempt))
                    .bind(i64::try_from(*at).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                (OutboxNext::Disable, _) => {
                    self.pools.stream_hints.forget(attempt.webhook_id);
                    let disabled =
                        sqlx::query("UPDATE webhooks SET active = 0, updated_at = ? WHERE id = ? AND active = 1")
                            .bind(attempt.created_at.0)
                            .bind(&webhook)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                    changed = disabled.rows_affected() == 1;
                    drop_pending(&mut tx, attempt.webhook_id).await?;
                }
            }
            let write = changed && settlement.event.is_some();
            if let Some(event) = settlement.event.as_ref().filter(|_| write) {
                events.push(event.clone());
            }
            written.push(write);
        }
        for (id, mark) in marks {
            sqlx::query("UPDATE webhooks SET delivered_through = ? WHERE id = ? AND delivered_through < ?")
                .bind(mark)
                .bind(id.to_string())
                .bind(mark)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        crate::audit::append_audits(&mut tx, &events).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(written)
    }

    async fn queue_depth(&self) -> Result<u64> {
        let mut read = self.pools.reader.begin().await.map_err(db_err)?;
        let retries: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox").fetch_one(&mut *read).await.map_err(db_err)?;
        let hooks: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, event_types, delivered_through FROM webhooks WHERE active = 1")
                .fetch_all(&mut *read)
                .await
                .map_err(db_err)?;
        let mut waiting = retries;
        for (id, types, through) in hooks {
            let id = parse_column(TABLE, "id", &id, str::parse::<WebhookId>)?;
            let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM audit_logs NOT INDEXED WHERE id > ");
            count.push_bind(through.max(self.pools.stream_hints.get(id))).push(" AND ");
            push_stream_match(&mut count, id, &parse_filter(&types)?);
            let n: i64 = count.build_query_scalar().fetch_one(&mut *read).await.map_err(db_err)?;
            waiting += n;
        }
        read.commit().await.map_err(db_err)?;
        Ok(u64::try_from(waiting).unwrap_or(0))
    }
}

/// Logs the attempts, in order (multi-row inserts).
async fn insert_logs(conn: &mut SqliteConnection, settlements: &[WebhookSettlement]) -> Result<()> {
    for chunk in settlements.chunks(LOGS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_logs (webhook_id, delivery_id, event_type, attempt, status, status_code, \
             response_time, error, created_at) ",
        );
        insert.push_values(chunk, |mut row, settlement| {
            let attempt = &settlement.attempt;
            row.push_bind(attempt.webhook_id.to_string())
                .push_bind(delivery_id(attempt.audit_id))
                .push_bind(attempt.event_type.as_str())
                .push_bind(i64::from(attempt.attempt))
                .push_bind(attempt.status.as_str())
                .push_bind(attempt.status_code.map(i64::from))
                .push_bind(i64::try_from(attempt.response_time_ms).unwrap_or(i64::MAX))
                .push_bind(attempt.error.clone())
                .push_bind(attempt.created_at.0);
        });
        insert.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

/// Drops every pending delivery of a webhook.
async fn drop_pending(conn: &mut SqliteConnection, id: WebhookId) -> Result<()> {
    sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ?")
        .bind(id.to_string())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
