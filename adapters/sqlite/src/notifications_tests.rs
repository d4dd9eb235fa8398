//! The notifier's storage: the cursor starts at the log's end (fresh and upgraded databases), entries and the
//! cursor are written together, rounds are settled with their log, `NOTIFICATION_FAILED` is written only when no
//! channel took the event, held-back counts feed digests, and the log pages newest first.

use waiaas_core::UnixSeconds;
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::notifications::{ChannelKind, LogKind, LogStatus};
use waiaas_core::ports::{
    AuditRepo, NotificationLogEntry, NotificationLogQuery, NotificationRepo, QueueNext, QueuedNotification, Settlement,
};

use crate::Database;
use crate::test_support::{TestDb, count_audit_rows};

fn event(event_type: EventType, at: i64) -> Event {
    Event::new(event_type, &RequestContext::system(), UnixSeconds(at))
}

fn log(channel: ChannelKind, audit_id: i64, status: LogStatus) -> NotificationLogEntry {
    NotificationLogEntry {
        id: 0,
        channel,
        kind: LogKind::Event,
        audit_id: Some(audit_id),
        event_type: Some(EventType::TxFailed),
        attempt: 1,
        status,
        error: (status == LogStatus::Failed).then(|| "HTTP 503".to_owned()),
        response_time_ms: 12,
        created_at: UnixSeconds(100),
    }
}

async fn last_audit_id(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_logs").fetch_one(&db.pools.reader).await.unwrap()
}

#[tokio::test]
async fn entries_and_the_cursor_are_written_together_and_rounds_settle_with_their_log() {
    let t = TestDb::new().await;
    let repo = t.db.notifications();
    assert_eq!(repo.cursor().await.unwrap(), 0, "a fresh database starts at its (empty) log's end");
    t.db.audit().append(&event(EventType::TxFailed, 10)).await.unwrap();
    t.db.audit().append(&event(EventType::KillSwitchActivated, 11)).await.unwrap();
    let rows = repo.events_after(0, 10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.event.event_type).collect::<Vec<_>>(),
        [EventType::TxFailed, EventType::KillSwitchActivated]
    );
    let (failed, critical) = (rows[0].id, rows[1].id);
    let entries = [
        QueuedNotification { audit_id: failed, channels: vec![ChannelKind::Ntfy, ChannelKind::Slack] },
        QueuedNotification { audit_id: critical, channels: vec![ChannelKind::Ntfy] },
        QueuedNotification { audit_id: critical, channels: vec![ChannelKind::Email] },
    ];
    repo.enqueue(critical, &entries, 5_000).await.unwrap();
    assert_eq!(repo.cursor().await.unwrap(), critical);
    repo.enqueue(1, &[], 5_000).await.unwrap();
    assert_eq!(repo.cursor().await.unwrap(), critical, "the cursor never moves back");
    assert_eq!(repo.queue_depth().await.unwrap(), 3);
    assert!(repo.due(4_999, vec![], 10).await.unwrap().is_empty(), "not due yet");
    let due = repo.due(5_000, vec![], 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert_eq!(
        (due[0].audit_id, due[0].channels.as_slice(), due[0].rounds),
        (failed, &[ChannelKind::Ntfy, ChannelKind::Slack][..], 0)
    );
    assert_eq!(due[0].event.event_type, EventType::TxFailed);
    let busy = repo.due(5_000, vec![due[0].id], 10).await.unwrap();
    assert_eq!(busy.len(), 2, "a busy entry is not handed out twice");

    // A failed round of the fallback entry: retried later through the channels still worth trying.
    let retry = Settlement {
        log: vec![
            log(ChannelKind::Ntfy, failed, LogStatus::Failed),
            log(ChannelKind::Slack, failed, LogStatus::Failed),
        ],
        next: QueueNext::RetryAt { at_ms: 9_000, channels: vec![ChannelKind::Slack] },
        held: None,
        failed: None,
    };
    assert!(!repo.settle(due[0].id, &retry).await.unwrap());
    assert_eq!(repo.next_due().await.unwrap(), Some(5_000));
    let again = repo.due(9_000, vec![due[1].id, due[2].id], 10).await.unwrap();
    assert_eq!((again[0].rounds, again[0].channels.as_slice()), (1, &[ChannelKind::Slack][..]));
    // Given up: every channel failed, NOTIFICATION_FAILED is written.
    let audit_rows = count_audit_rows(&t.db).await;
    let gave_up = Settlement {
        log: vec![log(ChannelKind::Slack, failed, LogStatus::Failed)],
        next: QueueNext::Done,
        held: None,
        failed: Some(event(EventType::NotificationFailed, 12)),
    };
    assert!(repo.settle(again[0].id, &gave_up).await.unwrap());
    assert_eq!(count_audit_rows(&t.db).await, audit_rows + 1);

    // The critical event: one channel took it, so the other's failure writes no NOTIFICATION_FAILED.
    let sent = Settlement {
        log: vec![log(ChannelKind::Ntfy, critical, LogStatus::Sent)],
        next: QueueNext::Done,
        held: None,
        failed: None,
    };
    repo.settle(due[1].id, &sent).await.unwrap();
    let email_failed = Settlement {
        log: vec![log(ChannelKind::Email, critical, LogStatus::Failed)],
        next: QueueNext::Done,
        held: None,
        failed: Some(event(EventType::NotificationFailed, 13)),
    };
    assert!(!repo.settle(due[2].id, &email_failed).await.unwrap(), "the ntfy channel took it");
    assert_eq!(count_audit_rows(&t.db).await, audit_rows + 1);
    assert_eq!(repo.queue_depth().await.unwrap(), 0);
    assert_eq!(repo.next_due().await.unwrap(), None);

    // The log: newest first, by channel and status, keyset.
    let all = repo.logs(&NotificationLogQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let slack = repo
        .logs(&NotificationLogQuery { channel: Some(ChannelKind::Slack), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(slack.len(), 2);
    assert_eq!((slack[0].error.as_deref(), slack[0].response_time_ms, slack[0].attempt), (Some("HTTP 503"), 12, 1));
    let sent_only = repo
        .logs(&NotificationLogQuery { status: Some(LogStatus::Sent), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(sent_only.iter().map(|e| e.channel).collect::<Vec<_>>(), [ChannelKind::Ntfy]);
    let page =
        repo.logs(&NotificationLogQuery { before: Some(all[1].id), limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id]);
}

#[tokio::test]
async fn held_back_messages_are_counted_per_channel_and_type_until_a_digest_takes_them() {
    let t = TestDb::new().await;
    let repo = t.db.notifications();
    t.db.audit().append(&event(EventType::PolicyDenied, 10)).await.unwrap();
    let id = last_audit_id(&t.db).await;
    let entries: Vec<QueuedNotification> =
        (0..3).map(|_| QueuedNotification { audit_id: id, channels: vec![ChannelKind::Telegram] }).collect();
    repo.enqueue(id, &entries, 0).await.unwrap();
    let due = repo.due(0, vec![], 10).await.unwrap();
    for entry in &due {
        let held = Settlement {
            log: vec![NotificationLogEntry {
                status: LogStatus::Held,
                ..log(ChannelKind::Telegram, id, LogStatus::Held)
            }],
            next: QueueNext::Done,
            held: Some((ChannelKind::Telegram, EventType::PolicyDenied)),
            failed: None,
        };
        repo.settle(entry.id, &held).await.unwrap();
    }
    let held = repo.held_back().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].channel, held[0].counts.as_slice()),
        (ChannelKind::Telegram, &[(EventType::PolicyDenied, 3)][..])
    );
    let digest = NotificationLogEntry {
        kind: LogKind::Digest,
        audit_id: None,
        event_type: None,
        error: Some("2 held back".into()),
        ..log(ChannelKind::Telegram, 0, LogStatus::Sent)
    };
    repo.settle_digest(&digest, &[(EventType::PolicyDenied, 2)]).await.unwrap();
    assert_eq!(repo.held_back().await.unwrap()[0].counts, [(EventType::PolicyDenied, 1)], "held meanwhile stays");
    repo.settle_digest(&digest, &[(EventType::PolicyDenied, 1)]).await.unwrap();
    assert!(repo.held_back().await.unwrap().is_empty());
    let failed_digest = NotificationLogEntry { status: LogStatus::Failed, ..digest };
    repo.settle_digest(&failed_digest, &[]).await.unwrap();
    let digests: Vec<String> =
        sqlx::query_scalar("SELECT status FROM notification_logs WHERE kind = 'digest' ORDER BY id")
            .fetch_all(&t.db.pools.reader)
            .await
            .unwrap();
    assert_eq!(digests, ["sent", "sent", "failed"]);
}

/// A database at schema 7 (the release before notifications) upgrades: its cursor starts at the end of the log it
/// already has (no history is sent), and new audit rows are what the notifier reads.
#[tokio::test]
async fn a_version_7_database_upgrades_with_its_cursor_at_the_end_of_its_log() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("schema-7.db");
    {
        let only = dir.path().join("migrations");
        std::fs::create_dir(&only).unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for entry in std::fs::read_dir(&source).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.split('_').next().and_then(|n| n.parse::<i64>().ok()).is_some_and(|n| n <= 7) {
                std::fs::copy(source.join(&name), only.join(&name)).unwrap();
            }
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(only.as_path()).await.unwrap().run(&pool).await.unwrap();
        let version: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
        assert_eq!(version, 7);
        for n in 0..3 {
            sqlx::query(
                "INSERT INTO audit_logs (created_at, event_type, actor, severity, details, prev_hash, hash) \
                 VALUES (?, 'TX_FAILED', 'system', 'warning', '{}', 'p', 'h')",
            )
            .bind(n)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let db = Database::open(&path).await.unwrap();
    assert_eq!(db.schema_version(), Database::latest_schema_version());
    let end = last_audit_id(&db).await;
    assert_eq!(end, 3);
    let repo = db.notifications();
    assert_eq!(repo.cursor().await.unwrap(), end, "history is not sent");
    assert!(repo.events_after(end, 10).await.unwrap().is_empty());
    assert_eq!(repo.queue_depth().await.unwrap(), 0);
    db.close().await;
}
