//! The webhook outbox's producer: called by the audit append ([`crate::audit::append_audits_after`]) inside the
//! event's own write transaction, it queues one `webhook_outbox` row per active webhook subscribed to each
//! appended event (a `WEBHOOK_TEST` row only for the webhook it names). So no event commits without its
//! deliveries, none is delivered for a change that rolled back, and every writer (the kill switch's bulk rows,
//! grouped admissions, the offline CLI) is covered without wiring of its own.
//!
//! Cost: the active subscriptions are cached in memory ([`Subscriptions`]) and read again only after a webhook
//! change (which drops the cache inside its own transaction, and reads them uncached there); with no webhook an
//! append does no extra statement at all, with some it does one multi-row `INSERT` per append.

use std::sync::{Arc, PoisonError, RwLock};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use waiaas_core::event::{Event, EventType};
use waiaas_core::webhooks::EventFilter;
use waiaas_core::{Result, WebhookId};

use crate::error::{db_err, parse_column};

/// Outbox rows per multi-row `INSERT` (4 parameters each).
const ROWS_PER_INSERT: usize = 200;

/// One active webhook's subscription.
#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub(crate) id: WebhookId,
    pub(crate) events: EventFilter,
}

/// The active subscriptions, cached (memory only; one daemon per data dir is the database's only writer).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions(RwLock<Option<Arc<Vec<Subscription>>>>);

impl Subscriptions {
    fn get(&self) -> Option<Arc<Vec<Subscription>>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, subs: Arc<Vec<Subscription>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(subs);
    }

    /// Forgets the cache: the next write transaction reads the subscriptions from the database.
    pub(crate) fn invalidate(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Parses a stored `event_types` column.
pub(crate) fn parse_filter(raw: &str) -> Result<EventFilter> {
    let names: Vec<String> = parse_column("webhooks", "event_types", raw, |s| serde_json::from_str::<Vec<String>>(s))?;
    parse_column("webhooks", "event_types", "", |_| EventFilter::parse(&names).map_err(|e| e.message))
}

async fn load(conn: &mut SqliteConnection) -> Result<Vec<Subscription>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, event_types FROM webhooks WHERE active = 1")
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    rows.into_iter()
        .map(|(id, types)| {
            Ok(Subscription {
                id: parse_column("webhooks", "id", &id, str::parse::<WebhookId>)?,
                events: parse_filter(&types)?,
            })
        })
        .collect()
}

/// The subscriptions as this transaction must see them: cached, unless `fresh` (the transaction changed a webhook:
/// it reads them itself and caches nothing, so a rollback cannot leave its view behind).
pub(crate) async fn subscriptions(
    conn: &mut SqliteConnection,
    cache: &Subscriptions,
    fresh: bool,
) -> Result<Arc<Vec<Subscription>>> {
    if fresh {
        return Ok(Arc::new(load(conn).await?));
    }
    if let Some(subs) = cache.get() {
        return Ok(subs);
    }
    let subs = Arc::new(load(conn).await?);
    cache.set(Arc::clone(&subs));
    Ok(subs)
}

/// The webhook a `WEBHOOK_TEST` event is for (its `details.webhookId`).
fn tested(event: &Event) -> Option<String> {
    event.details.get("webhookId").and_then(|v| v.as_str()).map(str::to_owned)
}

/// Queues the deliveries of `events`, whose audit rows are `first_id`, `first_id + 1`, ... (one multi-row insert
/// by the single writer gives consecutive ids).
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    subs: &[Subscription],
    first_id: i64,
    events: &[Event],
) -> Result<()> {
    let mut rows: Vec<(String, i64, i64)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let audit_id = first_id + i as i64;
        let due = event.created_at.0.saturating_mul(1_000);
        if event.event_type == EventType::WebhookTest {
            if let Some(webhook) = tested(event) {
                rows.push((webhook, audit_id, due));
            }
            continue;
        }
        for sub in subs.iter().filter(|s| s.events.matches(event.event_type)) {
            rows.push((sub.id.to_string(), audit_id, due));
        }
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_outbox (webhook_id, audit_id, attempts, next_attempt_at) ",
        );
        insert.push_values(chunk, |mut row, (webhook, audit_id, due)| {
            row.push_bind(webhook.clone()).push_bind(*audit_id).push_bind(0_i64).push_bind(*due);
        });
        insert.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}
