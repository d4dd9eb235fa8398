//! The webhook repository and the outbox the audit append fills: deliveries queued in the event's transaction
//! (and not for one that rolled back), per webhook oldest first, settled with their log row; the schema-5
//! upgrade.

use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{
    AuditRepo, DeliveryStatus, OutboxNext, StoredSecret, WebhookAttempt, WebhookLogQuery, WebhookRepo,
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

async fn outbox(t: &TestDb) -> Vec<(String, i64, i64)> {
    sqlx::query_as("SELECT webhook_id, audit_id, attempts FROM webhook_outbox ORDER BY webhook_id, audit_id")
        .fetch_all(&t.db.pools.reader)
        .await
        .unwrap()
}

fn event(event_type: EventType, at: i64) -> Event {
    Event::new(event_type, &RequestContext::system(), UnixSeconds(at))
}

#[tokio::test]
async fn every_appended_event_is_queued_for_each_subscribed_active_webhook() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let all = webhook(&t, EventFilter::All);
    let confirmed = webhook(&t, EventFilter::Only(vec![EventType::TxConfirmed]));
    repo.insert(&all, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    repo.insert(&confirmed, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    // The `*` webhook receives its own creation's row and the second webhook's.
    assert_eq!(outbox(&t).await.len(), 2);
    t.db.audit().append(&event(EventType::TxConfirmed, 11)).await.unwrap();
    t.db.audit().append(&event(EventType::TxQueued, 12)).await.unwrap();
    let rows = outbox(&t).await;
    let of = |w: &Webhook| rows.iter().filter(|r| r.0 == w.id.to_string()).map(|r| r.1).collect::<Vec<_>>();
    assert_eq!(of(&all), [1, 2, 3, 4]);
    assert_eq!(of(&confirmed), [3]);

    // The bulk path (one multi-row insert) queues each row with its own id.
    let mut tx = t.db.pools.begin_write().await.unwrap();
    let bulk: Vec<Event> = (0..300).map(|_| event(EventType::TxCancelled, 13)).collect();
    crate::audit::append_audits(&mut tx, &bulk).await.unwrap();
    tx.commit().await.unwrap();
    let rows = outbox(&t).await;
    assert_eq!(rows.iter().filter(|r| r.0 == all.id.to_string()).count(), 304);
    let ids: Vec<i64> = rows.iter().filter(|r| r.0 == all.id.to_string()).map(|r| r.1).collect();
    assert_eq!(ids, (1..=304).collect::<Vec<_>>());

    // An event whose transaction rolls back queues nothing.
    let mut tx = t.db.pools.begin_write().await.unwrap();
    crate::audit::append_audits(&mut tx, &[event(EventType::TxConfirmed, 14)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(outbox(&t).await.len(), 305);

    // Deactivating drops its pending deliveries and queues no more; deleting drops them too.
    let mut off = all.clone();
    off.active = false;
    repo.update(&off, &event(EventType::WebhookUpdated, 15)).await.unwrap();
    assert_eq!(outbox(&t).await.iter().filter(|r| r.0 == all.id.to_string()).count(), 0);
    t.db.audit().append(&event(EventType::TxConfirmed, 16)).await.unwrap();
    assert_eq!(of(&confirmed), [3]);
    let rows = outbox(&t).await;
    assert_eq!(rows.len(), 2, "the second webhook got the new TX_CONFIRMED only: {rows:?}");
    repo.delete(confirmed.id, &event(EventType::WebhookDeleted, 17)).await.unwrap();
    assert!(outbox(&t).await.is_empty());
}

#[tokio::test]
async fn due_deliveries_go_oldest_first_per_webhook_and_settle_with_a_log_row() {
    let t = TestDb::new().await;
    let repo = t.db.webhooks();
    let hook = webhook(&t, EventFilter::Only(vec![EventType::TxQueued]));
    repo.insert(&hook, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    for at in [20, 21] {
        t.db.audit().append(&event(EventType::TxQueued, at)).await.unwrap();
    }
    assert_eq!(repo.queue_depth().await.unwrap(), 2);
    assert_eq!(repo.next_due().await.unwrap(), Some(20_000));
    assert!(repo.due(19_999, vec![], 10).await.unwrap().is_empty(), "not due yet");
    let due = repo.due(30_000, vec![], 10).await.unwrap();
    assert_eq!(due.len(), 1, "one per webhook");
    assert_eq!((due[0].audit_id, due[0].attempts, due[0].event.event_type), (2, 0, EventType::TxQueued));
    assert_eq!(due[0].secrets.current, secret().sealed);
    assert!(repo.due(30_000, vec![hook.id], 10).await.unwrap().is_empty(), "busy webhooks are skipped");

    let attempt = WebhookAttempt {
        id: 0,
        webhook_id: hook.id,
        audit_id: 2,
        event_type: EventType::TxQueued,
        attempt: 1,
        status: DeliveryStatus::Pending,
        status_code: Some(500),
        response_time_ms: 4,
        error: Some("HTTP 500".into()),
        created_at: UnixSeconds(30),
    };
    repo.settle(&attempt, &OutboxNext::RetryAt(60_000), None).await.unwrap();
    // The head waits for its retry: the next event goes meanwhile.
    let due = repo.due(30_000, vec![], 10).await.unwrap();
    assert_eq!(due[0].audit_id, 3);
    let done =
        WebhookAttempt { audit_id: 3, status: DeliveryStatus::Success, status_code: Some(200), ..attempt.clone() };
    repo.settle(&done, &OutboxNext::Finished, None).await.unwrap();
    let retry = repo.due(60_000, vec![], 10).await.unwrap();
    assert_eq!((retry[0].audit_id, retry[0].attempts), (2, 1));

    let logs =
        repo.logs(&WebhookLogQuery { webhook_id: hook.id, status: None, before: None, limit: 10 }).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| (l.audit_id, l.status)).collect::<Vec<_>>(),
        [(3, DeliveryStatus::Success), (2, DeliveryStatus::Pending)]
    );
    let pending = WebhookLogQuery {
        status: Some(DeliveryStatus::Pending),
        ..WebhookLogQuery { webhook_id: hook.id, status: None, before: None, limit: 10 }
    };
    assert_eq!(repo.logs(&pending).await.unwrap().len(), 1);
    let page2 = WebhookLogQuery { before: Some(logs[0].id), ..pending.clone() };
    assert_eq!(repo.logs(&page2).await.unwrap()[0].audit_id, 2);

    // A redelivery of a logged delivery queues it again; an unknown one is refused.
    assert!(repo.redeliver(hook.id, 3, 70_000).await.unwrap());
    assert!(!repo.redeliver(hook.id, 99, 70_000).await.unwrap());

    // 410: disabled, pending deliveries dropped, the WEBHOOK_DISABLED row written.
    let gone = WebhookAttempt { status: DeliveryStatus::Failed, status_code: Some(410), ..attempt };
    assert!(repo.settle(&gone, &OutboxNext::Disable, Some(event(EventType::WebhookDisabled, 61))).await.unwrap());
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
    assert!(!repo.settle(&gone, &OutboxNext::Disable, Some(event(EventType::WebhookDisabled, 62))).await.unwrap());
    assert_eq!(disabled_rows().await, 1);
    assert_eq!(repo.queue_depth().await.unwrap(), 0);
    t.db.audit().append(&event(EventType::TxQueued, 62)).await.unwrap();
    assert_eq!(repo.queue_depth().await.unwrap(), 0, "an inactive webhook gets nothing");

    // A test ping goes to the tested webhook only, whatever it subscribes to.
    let other = webhook(&t, EventFilter::All);
    repo.insert(&other, &secret(), &event(EventType::WebhookCreated, 63)).await.unwrap();
    let before = outbox(&t).await.len();
    let test = event(EventType::WebhookTest, 64).details(serde_json::json!({"webhookId": hook.id.to_string()}));
    let id = repo.test(hook.id, &test).await.unwrap();
    let rows = outbox(&t).await;
    assert_eq!(rows.len(), before + 1);
    assert!(rows.contains(&(hook.id.to_string(), id, 0)));
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

/// A database at schema 5 upgrades to 6 with its rows, and its audit appends then queue deliveries.
#[tokio::test]
async fn a_version_5_database_upgrades_and_takes_webhooks() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("schema-5.db");
    {
        let migrations = [
            "0001_init.sql",
            "0002_pipeline.sql",
            "0003_reserved_totals.sql",
            "0004_tx_nonce.sql",
            "0005_audit_head.sql",
        ];
        let only = dir.path().join("migrations");
        std::fs::create_dir(&only).unwrap();
        for file in migrations {
            std::fs::copy(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(file),
                only.join(file),
            )
            .unwrap();
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(only.as_path()).await.unwrap().run(&pool).await.unwrap();
        let version: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(version, 5);
        pool.close().await;
    }
    let db = Database::open(&path).await.unwrap();
    assert_eq!(db.schema_version(), Database::latest_schema_version(), "upgraded to the latest schema");
    let t = TestDb::new().await;
    let hook = webhook(&t, EventFilter::All);
    db.webhooks().insert(&hook, &secret(), &event(EventType::WebhookCreated, 10)).await.unwrap();
    db.audit().append(&event(EventType::TxQueued, 11)).await.unwrap();
    assert_eq!(db.webhooks().queue_depth().await.unwrap(), 2);
    db.close().await;
}
