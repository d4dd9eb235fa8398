//! [`WebhookRepo`] over SQLite: the `webhooks` table (secrets hashed and sealed, never in plaintext), the
//! `webhook_logs` attempt log, and the consuming side of `webhook_outbox` (due rows, settling an attempt). The
//! outbox is filled by the audit append ([`crate::outbox`]); every change of a webhook drops the cached
//! subscriptions inside its own transaction.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use waiaas_core::event::{Event, EventType};
use waiaas_core::ports::{
    DeliveryStatus, DueDelivery, OutboxNext, SealedSecrets, StoredSecret, WebhookAttempt, WebhookLogQuery, WebhookRepo,
};
use waiaas_core::webhooks::{Webhook, delivery_id};
use waiaas_core::{ErrorCode, Result, UnixSeconds, WebhookId};

use crate::error::{db_err, decode_err, not_found, parse_column};
use crate::{Pools, commit_with_audit, fetch_by_id, fetch_page, keyset_page, require_row};

const TABLE: &str = "webhooks";
const COLUMNS: &str = "id, url, event_types, active, description, created_at, updated_at";

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    let text = |column: &'static str| row.try_get::<String, _>(column).map_err(db_err);
    Ok(Webhook {
        id: parse_column(TABLE, "id", &text("id")?, str::parse::<WebhookId>)?,
        url: text("url")?,
        events: crate::outbox::parse_filter(&text("event_types")?)?,
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
        tx.webhooks_changed();
        sqlx::query(
            "INSERT INTO webhooks (id, url, secret_hash, secret_encrypted, event_types, active, description, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        tx.webhooks_changed();
        let done = sqlx::query(
            "UPDATE webhooks SET url = ?, event_types = ?, active = ?, description = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&webhook.url)
        .bind(event_types_json(webhook))
        .bind(webhook.active)
        .bind(&webhook.description)
        .bind(webhook.updated_at.0)
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
        tx.webhooks_changed();
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

    async fn due(&self, now_ms: u64, busy: Vec<WebhookId>, limit: u32) -> Result<Vec<DueDelivery>> {
        let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
        // Per webhook (a short list), its oldest due row: a walk of the primary key (webhook_id, audit_id) that
        // stops at the first due row, so the cost does not grow with the queue.
        let webhooks: Vec<String> =
            sqlx::query_scalar("SELECT id FROM webhooks").fetch_all(&self.pools.reader).await.map_err(db_err)?;
        let busy_ids: Vec<String> = busy.iter().map(WebhookId::to_string).collect();
        let mut heads = Vec::new();
        for webhook in webhooks.into_iter().filter(|w| !busy_ids.contains(w)) {
            if heads.len() >= limit as usize {
                break;
            }
            let head: Option<i64> = sqlx::query_scalar(
                "SELECT audit_id FROM webhook_outbox WHERE webhook_id = ? AND next_attempt_at <= ? \
                 ORDER BY audit_id LIMIT 1",
            )
            .bind(&webhook)
            .bind(now_ms)
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(db_err)?;
            if let Some(audit_id) = head {
                heads.push((webhook, audit_id));
            }
        }
        let busy: Vec<String> = busy.iter().map(WebhookId::to_string).collect();
        let mut due = Vec::new();
        for (webhook, audit_id) in heads.into_iter().filter(|(w, _)| !busy.contains(w)) {
            if due.len() >= limit as usize {
                break;
            }
            let row = sqlx::query(&format!(
                "SELECT o.attempts, w.url, w.secret_encrypted, w.previous_secret_encrypted, \
                 w.previous_secret_expires_at, {} FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id \
                 JOIN audit_logs a ON a.id = o.audit_id WHERE o.webhook_id = ? AND o.audit_id = ?",
                crate::audit::COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
            ))
            .bind(&webhook)
            .bind(audit_id)
            .fetch_optional(&self.pools.reader)
            .await
            .map_err(db_err)?;
            let Some(row) = row else {
                // Its webhook or its audit row is gone: nothing can be delivered.
                let mut tx = self.pools.begin_write().await?;
                sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ? AND audit_id = ?")
                    .bind(&webhook)
                    .bind(audit_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                continue;
            };
            let record = crate::audit::record_from_row(&row)?;
            due.push(DueDelivery {
                webhook_id: parse_column("webhook_outbox", "webhook_id", &webhook, str::parse::<WebhookId>)?,
                url: row.try_get("url").map_err(db_err)?,
                audit_id,
                event: record.event,
                attempts: row.try_get::<i64, _>("attempts").map_err(db_err)?.try_into().unwrap_or(u32::MAX),
                secrets: sealed_secrets(&row)?,
            });
        }
        Ok(due)
    }

    async fn next_due(&self) -> Result<Option<u64>> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM webhook_outbox")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        Ok(next.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    async fn settle(&self, attempt: &WebhookAttempt, next: &OutboxNext, event: Option<Event>) -> Result<bool> {
        let mut tx = self.pools.begin_write().await?;
        let mut changed = true;
        let webhook = attempt.webhook_id.to_string();
        sqlx::query(
            "INSERT INTO webhook_logs (webhook_id, delivery_id, event_type, attempt, status, status_code, \
             response_time, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&webhook)
        .bind(delivery_id(attempt.audit_id))
        .bind(attempt.event_type.as_str())
        .bind(i64::from(attempt.attempt))
        .bind(attempt.status.as_str())
        .bind(attempt.status_code.map(i64::from))
        .bind(i64::try_from(attempt.response_time_ms).unwrap_or(i64::MAX))
        .bind(&attempt.error)
        .bind(attempt.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        match next {
            OutboxNext::Finished => {
                sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ? AND audit_id = ?")
                    .bind(&webhook)
                    .bind(attempt.audit_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            OutboxNext::RetryAt(at) => {
                sqlx::query(
                    "UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ? WHERE webhook_id = ? AND audit_id = ?",
                )
                .bind(i64::from(attempt.attempt))
                .bind(i64::try_from(*at).unwrap_or(i64::MAX))
                .bind(&webhook)
                .bind(attempt.audit_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            OutboxNext::Disable => {
                tx.webhooks_changed();
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
        match event.filter(|_| changed) {
            Some(event) => commit_with_audit(tx, &event).await?,
            None => tx.commit().await.map_err(db_err)?,
        }
        Ok(changed)
    }

    async fn queue_depth(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox")
            .fetch_one(&self.pools.reader)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Drops every pending delivery of a webhook.
async fn drop_pending(conn: &mut sqlx::SqliteConnection, id: WebhookId) -> Result<()> {
    sqlx::query("DELETE FROM webhook_outbox WHERE webhook_id = ?")
        .bind(id.to_string())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
