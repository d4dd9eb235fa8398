//! The webhook repository: each webhook's stream read from the audit log (nothing written with the event, nothing
//! for a change that rolled back; in order; a test ping only for its webhook; starting at the end of the log when
//! created or reactivated), attempts settled in one write with their log rows, the retry queue, the disable
//! compare-and-set, and the upgrades from schemas 5 and 7.

use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{
    AuditRepo, DeliverySource, DeliveryStatus, DueDelivery, OutboxNext, StoredSecret, WebhookAttempt, WebhookLogQuery,
    WebhookRepo, WebhookSettlement,
};
use waiaas_core::webhooks::{EventFilter, Webhook};
use waiaas_core::{UnixSeconds, WebhookId};

use crate::Database;
use crate::test_support::TestDb;

fn webhook(t: &TestDb, events: EventFilter) -> Webhook {
    Webhook {
        id: WebhookId::generate(&t.clock, &t.entropy),
        url: "http://127.0.0.1:9/hook".into(),
        events,
        active: true,
        description: Some("ops".into()),
        created_at: UnixSeconds(10),
        updated_at: UnixSeconds(10),
    }
}

fn secret() -> StoredSecret {
    StoredSecret { hash: "ab".repeat(32), sealed: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13] }
}

async fn outbox(db: &Database) -> Vec<(String, i64, i64)> {
    sqlx::query_as("SELECT webhook_id, audit_id, attempts FROM webhook_outbox ORDER BY webhook_id, audit_id")
        .fetch_all(&db.pools.reader)
        .await
        .unwrap()
}

fn event(event_type: EventType, at: i64) -> Event {
    Event::new(event_type, &RequestContext::system(), UnixSeconds(at))
}

/// The audit ids each webhook's run holds now (runs of at most `per`).
async fn runs(db: &Database, now_ms: u64, per: u32) -> Vec<(WebhookId, Vec<i64>)> {
    let runs = db.webhooks().due(now_ms, vec![], 100, per).await.unwrap();
    runs.into_iter().map(|run| (run[0].webhook_id, run.iter().map(|d| d.audit_id).collect())).collect()
}

fn of(runs: &[(WebhookId, Vec<i64>)], hook: &Webhook) -> Vec<i64> {
    runs.iter().find(|(id, _)| *id == hook.id).map(|(_, ids)| ids.clone()).unwrap_or_default()
}

/// A settlement of `due` as `status` with `next`.
fn settled(
    due: &DueDelivery,
    status: DeliveryStatus,
    code: u16,
    next: OutboxNext,
    event: Option<Event>,
) -> WebhookSettlement {
    WebhookSettlement {
        attempt: WebhookAttempt {
            id: 0,
            webhook_id: due.webhook_id,
            audit_id: due.audit_id,
            event_type: due.event.event_type,
            attempt: due.attempts + 1,
            status,
            status_code: Some(code),
            response_time_ms: 4,
            error: (code != 200).then(|| format!("HTTP {code}")),
            created_at: UnixSeconds(30),
        },
        source: due.source,
        next,
        event,
    }
}

#[tokio::test]
async fn each_webhook_streams_its_subscribed_events_in_order_and_writing_an_event_queues_nothing() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let all = webhook(&t, EventFilter::All);
    let confirmed = webhook(&t, EventFilter::Only(vec![EventType::TxConfirmed]));
    repo.insert(&all, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    repo.insert(&confirmed, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    t.db.audit().append(&event(EventType::TxConfirmed, 11)).await.unwrap();
    t.db.audit().append(&event(EventType::TxQueued, 12)).await.unwrap();
    assert!(outbox(&t.db).await.is_empty(), "nothing is written with the events");
    // The `*` webhook streams its own creation's row and everything after; the other its subscription only.
    let now = runs(&t.db, 0, 50).await;
    assert_eq!(of(&now, &all), [1, 2, 3, 4]);
    assert_eq!(of(&now, &confirmed), [3]);
    assert_eq!(repo.queue_depth().await.unwrap(), 5);

    // The bulk path (one multi-row insert) streams each row with its own id; a run is bounded.
    let mut tx = t.db.pools.begin_write().await.unwrap();
    let bulk: Vec<Event> = (0..300).map(|_| event(EventType::TxCancelled, 13)).collect();
    crate::audit::append_audits(&mut tx, &bulk).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(of(&runs(&t.db, 0, 1000).await, &all), (1..=304).collect::<Vec<_>>());
    assert_eq!(of(&runs(&t.db, 0, 7).await, &all), (1..=7).collect::<Vec<_>>());
    // Busy webhooks are skipped, and at most `webhooks` runs are returned.
    assert_eq!(repo.due(0, vec![all.id], 100, 10).await.unwrap().len(), 1);
    assert_eq!(repo.due(0, vec![], 1, 10).await.unwrap().len(), 1);

    // An event whose transaction rolls back is in no stream.
    let mut tx = t.db.pools.begin_write().await.unwrap();
    crate::audit::append_audits(&mut tx, &[event(EventType::TxConfirmed, 14)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(of(&runs(&t.db, 0, 50).await, &confirmed), [3]);

    // Deactivated: no stream. Reactivated: it starts at the end of the log (its own WEBHOOK_UPDATED row first).
    let mut off = all.clone();
    off.active = false;
    repo.update(&off, &event(EventType::WebhookUpdated, 15)).await.unwrap();
    assert!(of(&runs(&t.db, 0, 50).await, &all).is_empty());
    t.db.audit().append(&event(EventType::TxConfirmed, 16)).await.unwrap();
    let now = runs(&t.db, 0, 50).await;
    assert_eq!(of(&now, &confirmed), [3, 306]);
    let mut on = all.clone();
    on.updated_at = UnixSeconds(17);
    repo.update(&on, &event(EventType::WebhookUpdated, 17)).await.unwrap();
    t.db.audit().append(&event(EventType::TxQueued, 18)).await.unwrap();
    assert_eq!(of(&runs(&t.db, 0, 50).await, &all), [307, 308]);
    repo.delete(confirmed.id, &event(EventType::WebhookDeleted, 19)).await.unwrap();
    assert!(of(&runs(&t.db, 0, 50).await, &confirmed).is_empty());
}

#[tokio::test]
async fn a_webhook_of_rare_events_finds_each_one_past_many_others() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let rare = webhook(&t, EventFilter::Only(vec![EventType::BackupFailed]));
    repo.insert(&rare, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    for round in 0..3 {
        let mut tx = t.db.pools.begin_write().await.unwrap();
        let noise: Vec<Event> = (0..500).map(|_| event(EventType::TxConfirmed, 11)).collect();
        crate::audit::append_audits(&mut tx, &noise).await.unwrap();
        tx.commit().await.unwrap();
        // Read (and remembered as holding nothing for it) before the rare event arrives.
        assert!(of(&runs(&t.db, 0, 10).await, &rare).is_empty(), "round {round}");
        t.db.audit().append(&event(EventType::BackupFailed, 12)).await.unwrap();
        let ids = of(&runs(&t.db, 0, 10).await, &rare);
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
        let run = repo.due(0, vec![], 10, 10).await.unwrap().remove(0);
        repo.settle(&[settled(&run[0], DeliveryStatus::Success, 200, OutboxNext::Finished, None)]).await.unwrap();
        assert!(of(&runs(&t.db, 0, 10).await, &rare).is_empty());
    }
    assert_eq!(repo.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn settling_moves_the_stream_queues_retries_and_logs_every_attempt_in_one_write() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let hook = webhook(&t, EventFilter::Only(vec![EventType::TxQueued]));
    repo.insert(&hook, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    for at in [20, 21, 22] {
        t.db.audit().append(&event(EventType::TxQueued, at)).await.unwrap();
    }
    let run = repo.due(30_000, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!(
        run.iter().map(|d| (d.audit_id, d.attempts, d.source)).collect::<Vec<_>>(),
        [(2, 0, DeliverySource::Stream), (3, 0, DeliverySource::Stream), (4, 0, DeliverySource::Stream)]
    );
    assert_eq!(run[0].secrets.current, secret().sealed);
    // The first fails (retry at 60 s), the second is delivered; the third was not attempted (the run stopped).
    let written = repo
        .settle(&[
            settled(&run[0], DeliveryStatus::Pending, 500, OutboxNext::RetryAt(60_000), None),
            settled(&run[1], DeliveryStatus::Success, 200, OutboxNext::Finished, None),
        ])
        .await
        .unwrap();
    assert_eq!(written, [false, false]);
    assert_eq!(outbox(&t.db).await, [(hook.id.to_string(), 2, 1)]);
    assert_eq!(repo.next_due().await.unwrap(), Some(60_000));
    // The third is next; the retry waits for its time.
    let run = repo.due(30_000, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!(run.iter().map(|d| d.audit_id).collect::<Vec<_>>(), [4]);
    repo.settle(&[settled(&run[0], DeliveryStatus::Success, 200, OutboxNext::Finished, None)]).await.unwrap();
    assert!(repo.due(30_000, vec![], 10, 10).await.unwrap().is_empty());
    let retry = repo.due(60_000, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!(
        retry.iter().map(|d| (d.audit_id, d.attempts, d.source)).collect::<Vec<_>>(),
        [(2, 1, DeliverySource::Retry)]
    );
    repo.settle(&[settled(&retry[0], DeliveryStatus::Success, 200, OutboxNext::Finished, None)]).await.unwrap();
    assert!(outbox(&t.db).await.is_empty());
    assert_eq!(repo.queue_depth().await.unwrap(), 0);

    let query = WebhookLogQuery { webhook_id: hook.id, status: None, before: None, limit: 10 };
    let logs = repo.logs(&query).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| (l.audit_id, l.attempt, l.status)).collect::<Vec<_>>(),
        [
            (2, 2, DeliveryStatus::Success),
            (4, 1, DeliveryStatus::Success),
            (3, 1, DeliveryStatus::Success),
            (2, 1, DeliveryStatus::Pending)
        ]
    );
    let pending = WebhookLogQuery { status: Some(DeliveryStatus::Pending), ..query.clone() };
    assert_eq!(repo.logs(&pending).await.unwrap().len(), 1);
    let page2 = WebhookLogQuery { before: Some(logs[1].id), ..query.clone() };
    assert_eq!(repo.logs(&page2).await.unwrap()[0].audit_id, 3);

    // A redelivery of a logged delivery queues it again as a retry; an unknown one is refused.
    assert!(repo.redeliver(hook.id, 3, 70_000).await.unwrap());
    assert!(!repo.redeliver(hook.id, 99, 70_000).await.unwrap());
    let again = repo.due(70_000, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!((again[0].audit_id, again[0].attempts, again[0].source), (3, 0, DeliverySource::Retry));

    // 410: disabled, pending deliveries dropped, the WEBHOOK_DISABLED row written.
    let gone = settled(
        &again[0],
        DeliveryStatus::Failed,
        410,
        OutboxNext::Disable,
        Some(event(EventType::WebhookDisabled, 61)),
    );
    assert_eq!(repo.settle(std::slice::from_ref(&gone)).await.unwrap(), [true]);
    assert!(!repo.get(hook.id).await.unwrap().unwrap().active);
    // A second 410 (a delivery that was already on its way) finds it inactive: no second WEBHOOK_DISABLED row.
    let disabled_rows = || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs WHERE event_type = 'WEBHOOK_DISABLED'")
            .fetch_one(&t.db.pools.reader)
            .await
            .unwrap();
        n
    };
    assert_eq!(disabled_rows().await, 1);
    assert_eq!(repo.settle(&[gone]).await.unwrap(), [false]);
    assert_eq!(disabled_rows().await, 1);
    assert_eq!(repo.queue_depth().await.unwrap(), 0);
    t.db.audit().append(&event(EventType::TxQueued, 62)).await.unwrap();
    assert_eq!(repo.queue_depth().await.unwrap(), 0, "an inactive webhook gets nothing");

    // A test ping goes to the tested webhook only, whatever it subscribes to.
    let (tested, other) = (webhook(&t, EventFilter::Only(vec![EventType::TxQueued])), webhook(&t, EventFilter::All));
    repo.insert(&tested, &secret(), &event(EventType::WebhookCreated, 63)).await.unwrap();
    repo.insert(&other, &secret(), &event(EventType::WebhookCreated, 63)).await.unwrap();
    let test = event(EventType::WebhookTest, 64).details(serde_json::json!({"webhookId": tested.id.to_string()}));
    let id = repo.test(tested.id, &test).await.unwrap();
    let now = runs(&t.db, 0, 50).await;
    assert_eq!(of(&now, &tested), [id]);
    assert!(!of(&now, &other).contains(&id), "{now:?}");
}

#[tokio::test]
async fn rotation_keeps_the_previous_secret_for_its_grace_period() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let hook = webhook(&t, EventFilter::All);
    repo.insert(&hook, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    let new = StoredSecret { hash: "cd".repeat(32), sealed: vec![9; 40] };
    repo.rotate_secret(hook.id, &new, UnixSeconds(100), &event(EventType::WebhookSecretRotated, 20)).await.unwrap();
    let during = repo.secrets(hook.id, UnixSeconds(99)).await.unwrap().unwrap();
    assert_eq!((during.current, during.previous), (new.sealed.clone(), Some((secret().sealed, UnixSeconds(100)))));
    let after = repo.secrets(hook.id, UnixSeconds(100)).await.unwrap().unwrap();
    assert_eq!(after.previous, None);
    let missing = WebhookId::generate(&t.clock, &t.entropy);
    let error = repo.rotate_secret(missing, &new, UnixSeconds(1), &event(EventType::WebhookSecretRotated, 21)).await;
    assert_eq!(error.unwrap_err().code, waiaas_core::ErrorCode::WebhookNotFound);
}

/// A database at `schema` (the first `schema` migrations), with `fill` run on it.
async fn database_at(dir: &std::path::Path, schema: usize, fill: &str) -> std::path::PathBuf {
    let path = dir.join(format!("schema-{schema}.db"));
    let only = dir.join(format!("migrations-{schema}"));
    std::fs::create_dir(&only).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&source).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    for file in files.into_iter().take(schema) {
        std::fs::copy(source.join(&file), only.join(&file)).unwrap();
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(only.as_path()).await.unwrap().run(&pool).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(version, schema as i64);
    sqlx::raw_sql(fill).execute(&pool).await.unwrap();
    pool.close().await;
    path
}

/// A database at schema 5 upgrades to the latest with its rows, and takes webhooks.
#[tokio::test]
async fn a_version_5_database_upgrades_and_takes_webhooks() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = Database::open(&database_at(dir.path(), 5, "").await).await.unwrap();
    assert_eq!(db.schema_version(), Database::latest_schema_version(), "upgraded to the latest schema");
    let t = TestDb::new().await;
    let hook = webhook(&t, EventFilter::All);
    db.webhooks().insert(&hook, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    db.audit().append(&event(EventType::TxQueued, 11)).await.unwrap();
    assert_eq!(db.webhooks().queue_depth().await.unwrap(), 2);
    db.close().await;
}

/// At schema 7 deliveries were queued with their events: those still queued are delivered after the upgrade (as
/// retries, attempts kept), and the webhook's stream starts after them, so none is sent twice.
#[tokio::test]
async fn a_version_7_outbox_is_delivered_after_the_upgrade_and_the_stream_starts_after_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let hook = "0193a000-0000-7000-8000-000000000001";
    let fill = format!(
        "INSERT INTO audit_logs (created_at, event_type, actor, severity, details, prev_hash, hash) VALUES \
         (10, 'TX_QUEUED', 'system', 'info', '{{}}', 'p', 'h1'), (11, 'TX_QUEUED', 'system', 'info', '{{}}', 'h1', 'h2');
         INSERT INTO webhooks (id, url, secret_hash, secret_encrypted, event_types, active, created_at, updated_at) \
         VALUES ('{hook}', 'http://127.0.0.1:9/', 'ab', x'0102', '[\"*\"]', 1, 1, 1);
         INSERT INTO webhook_outbox (webhook_id, audit_id, attempts, next_attempt_at) VALUES ('{hook}', 2, 1, 0);"
    );
    let db = Database::open(&database_at(dir.path(), 7, &fill).await).await.unwrap();
    let run = db.webhooks().due(1, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!(
        run.iter().map(|d| (d.audit_id, d.attempts, d.source)).collect::<Vec<_>>(),
        [(2, 1, DeliverySource::Retry)]
    );
    db.audit().append(&event(EventType::TxQueued, 12)).await.unwrap();
    let run = db.webhooks().due(1, vec![], 10, 10).await.unwrap().remove(0);
    assert_eq!(run.iter().map(|d| d.audit_id).collect::<Vec<_>>(), [2, 3]);
    db.close().await;
}
