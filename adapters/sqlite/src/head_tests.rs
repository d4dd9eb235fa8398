//! Tests of the sealed audit head: it follows every append path (single rows, grouped admissions, the kill switch's
//! bulk rows) in the same transaction, a rollback leaves it unchanged, and what is done to the log behind the
//! daemon's back (trailing rows deleted or added, the last row replaced, the head edited) is found.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use waiaas_core::audit::{ChainBreak, ChainHead, GENESIS_HASH, HeadFinding, HeadKey, chain_hash};
use waiaas_core::domain::{KillSwitch, KillSwitchState, TxStatus};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{AuditRepo, KillSwitchRepo, TxRepo};
use waiaas_core::{ErrorCode, UnixSeconds};

use crate::audit::append_audits;
use crate::test_support::{TestDb, audit_types, count_audit_rows};
use crate::{Database, HeadInstalled};

const SALT: &str = "000102030405060708090a0b0c0d0e0f";

fn key() -> HeadKey {
    HeadKey::derive("master password", SALT).expect("derive")
}

fn event(n: i64) -> Event {
    Event::new(EventType::AnomalyDetected, &RequestContext::system(), UnixSeconds(n))
        .details(serde_json::json!({ "n": n }))
}

/// A database with its head key installed (sealed over an empty log) and `rows` appended.
async fn sealed(rows: i64) -> TestDb {
    let t = TestDb::new().await;
    let installed = t.db.install_audit_head_key(key(), UnixSeconds(1)).await.unwrap();
    assert_eq!(installed, HeadInstalled::Sealed { last_id: 0, recorded: None }, "an empty log records nothing");
    for n in 1..=rows {
        t.db.audit().append(&event(n)).await.unwrap();
    }
    t
}

/// The head matches the log's last row, and the chain verifies.
async fn assert_head_at_end(db: &Database) {
    let state = db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Ok(()), "{state:?}");
    assert_eq!(state.sealed.as_ref().map(|s| &s.head), Some(&state.last));
    let (verified, verdict) = db.verify_audit_chain(1_000).await.unwrap();
    assert_eq!(verdict, Ok(()));
    assert_eq!(verified, u64::try_from(count_audit_rows(db).await).unwrap());
}

async fn sql(db: &Database, statement: &str) {
    sqlx::query(statement).execute(&db.pools.writer).await.unwrap();
}

/// The same file opened again, as the next start of the daemon (or `waiaas audit verify`) would.
async fn reopen(t: &TestDb) -> Database {
    Database::open(t.db.path()).await.unwrap()
}

#[tokio::test]
async fn the_head_follows_single_grouped_and_bulk_appends() {
    let t = sealed(3).await;
    assert_head_at_end(&t.db).await;

    // Grouped admissions: concurrent callers share one transaction; each appends its rows.
    let agent = t.agent();
    t.insert_agent(&agent).await;
    let records: Vec<_> = (0..6).map(|i| t.tx(agent.id, TxStatus::Pending, 10 + i)).collect();
    let admissions: Vec<_> = records
        .iter()
        .map(|record| {
            let stored = record.clone();
            let events =
                vec![t.event(EventType::TxRequested).agent(agent.id).tx(record.id), t.event(EventType::TxQueued)];
            let decide = Box::new(move |_: &_| crate::test_support::admission(stored, events));
            let db = t.db.clone();
            tokio::spawn(async move { db.transactions().admit(agent.id, UnixSeconds(0), decide).await })
        })
        .collect();
    for admitted in admissions {
        admitted.await.unwrap().unwrap();
    }
    assert_eq!(count_audit_rows(&t.db).await, 3 + 1 + 12);
    assert_head_at_end(&t.db).await;

    // The kill switch: one activation row and a TX_CANCELLED row per pending transaction, in one statement batch.
    let tripped = KillSwitch {
        state: KillSwitchState::Suspended,
        reason: Some("incident".into()),
        changed_at: Some(UnixSeconds(50)),
    };
    let (effects, _) = t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
    assert_eq!(effects.cancelled.len(), 6);
    assert_eq!(count_audit_rows(&t.db).await, 16 + 7);
    assert_head_at_end(&t.db).await;

    // A reopened database (the next start) finds the head intact.
    let again = reopen(&t).await;
    assert_eq!(
        again.install_audit_head_key(key(), UnixSeconds(60)).await.unwrap(),
        HeadInstalled::Intact { last_id: 23 }
    );
    again.audit().append(&event(99)).await.unwrap();
    assert_head_at_end(&again).await;
    again.close().await;
}

#[tokio::test]
async fn a_rolled_back_append_leaves_the_head_unchanged() {
    let t = sealed(2).await;
    let before = t.db.audit_head_state().await.unwrap();

    let mut tx = t.db.pools.begin_write().await.unwrap();
    append_audits(&mut tx, &[event(3), event(4)]).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(t.db.audit_head_state().await.unwrap(), before);

    // A change whose audit row fails halfway rolls back the rows before it and the head with them.
    t.refuse_audit_of(EventType::TxCancelled).await;
    let agent = t.agent();
    t.insert_agent(&agent).await;
    let with_head = t.db.audit_head_state().await.unwrap();
    t.admit(&t.tx(agent.id, TxStatus::Pending, 1)).await;
    let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(5)) };
    let admitted = t.db.audit_head_state().await.unwrap();
    assert_ne!(admitted, with_head);
    let err = t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    assert_eq!(t.db.audit_head_state().await.unwrap(), admitted, "the activation row and the head rolled back");
    assert_head_at_end(&t.db).await;
}

#[tokio::test]
async fn deleted_trailing_rows_are_found_and_the_next_start_does_not_hide_them() {
    let t = sealed(5).await;
    sql(&t.db, "DELETE FROM audit_logs WHERE id > 3").await;
    let state = t.db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Err(HeadFinding::Truncated { last_id: 3, head_id: 5 }));
    assert_eq!(t.db.verify_audit_chain(100).await.unwrap(), (3, Ok(())), "the shortened chain itself is valid");

    // The next start refuses the head: nothing is written, the key stays out, so no append can re-seal.
    let next = reopen(&t).await;
    let installed = next.install_audit_head_key(key(), UnixSeconds(9)).await.unwrap();
    assert_eq!(installed, HeadInstalled::Broken(HeadFinding::Truncated { last_id: 3, head_id: 5 }));
    let refused = next.audit().append(&event(6)).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::InternalError);
    assert_eq!(count_audit_rows(&next).await, 3);
    assert_eq!(next.audit_head_state().await.unwrap(), state, "the finding stays in place");

    sql(&t.db, "DELETE FROM audit_logs").await;
    let emptied = t.db.audit_head_state().await.unwrap();
    assert_eq!(emptied.check(&key()), Err(HeadFinding::Truncated { last_id: 0, head_id: 5 }));
    next.close().await;
}

#[tokio::test]
async fn rows_deleted_while_the_daemon_runs_break_the_chain_at_its_next_row() {
    let t = sealed(5).await;
    sql(&t.db, "DELETE FROM audit_logs WHERE id > 3").await;
    // The running daemon chains its next row to the sealed head, not to what is left.
    t.db.audit().append(&event(6)).await.unwrap();
    assert_eq!(t.db.verify_audit_chain(100).await.unwrap().1, Err(ChainBreak::LinkBroken { id: 6 }));
    let state = t.db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Ok(()));
    assert_eq!(state.last.last_id, 6);
}

#[tokio::test]
async fn rows_added_without_the_key_and_a_replaced_last_row_are_found() {
    let t = sealed(3).await;
    let last: String =
        sqlx::query_scalar("SELECT hash FROM audit_logs WHERE id = 3").fetch_one(&t.db.pools.reader).await.unwrap();
    // A well-formed row chained to the last one, written straight into the file.
    let forged = event(4);
    sqlx::query(
        "INSERT INTO audit_logs (created_at, event_type, actor, severity, details, prev_hash, hash) \
         VALUES (?, 'ANOMALY_DETECTED', 'system', 'warning', ?, ?, ?)",
    )
    .bind(forged.created_at.0)
    .bind(forged.details.to_string())
    .bind(&last)
    .bind(chain_hash(&last, &forged))
    .execute(&t.db.pools.writer)
    .await
    .unwrap();
    assert_eq!(t.db.verify_audit_chain(100).await.unwrap(), (4, Ok(())));
    let state = t.db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Err(HeadFinding::Unsealed { head_id: 3, last_id: 4 }));

    let t = sealed(3).await;
    // The last row's content and hash rewritten together: the chain alone cannot tell.
    let rewritten = event(33);
    let prev: String = sqlx::query_scalar("SELECT prev_hash FROM audit_logs WHERE id = 3")
        .fetch_one(&t.db.pools.reader)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_logs SET created_at = ?, details = ?, hash = ? WHERE id = 3")
        .bind(rewritten.created_at.0)
        .bind(rewritten.details.to_string())
        .bind(chain_hash(&prev, &rewritten))
        .execute(&t.db.pools.writer)
        .await
        .unwrap();
    assert_eq!(t.db.verify_audit_chain(100).await.unwrap(), (3, Ok(())));
    let state = t.db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Err(HeadFinding::Replaced { head_id: 3 }));
}

#[tokio::test]
async fn an_edited_head_or_salt_is_found() {
    let t = sealed(4).await;
    // The head moved back to row 2 to hide rows 3 and 4, keeping the old MAC.
    sql(&t.db, "DELETE FROM audit_logs WHERE id > 2").await;
    let row_2: String =
        sqlx::query_scalar("SELECT hash FROM audit_logs WHERE id = 2").fetch_one(&t.db.pools.reader).await.unwrap();
    sqlx::query("UPDATE audit_head SET last_id = 2, last_hash = ?")
        .bind(&row_2)
        .execute(&t.db.pools.writer)
        .await
        .unwrap();
    let state = t.db.audit_head_state().await.unwrap();
    assert_eq!(state.check(&key()), Err(HeadFinding::Forged));
    // While running, the daemon refuses to chain to a head it did not seal.
    let err = t.db.audit().append(&event(5)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    assert_eq!(count_audit_rows(&t.db).await, 2);

    // The same head under another salt (or password) does not verify either.
    let t = sealed(1).await;
    let other = HeadKey::derive("master password", "ffeeddccbbaa99887766554433221100").unwrap();
    assert_eq!(t.db.audit_head_state().await.unwrap().check(&other), Err(HeadFinding::Forged));

    // A deleted head.
    sql(&t.db, "DELETE FROM audit_head").await;
    assert_eq!(t.db.audit_head_state().await.unwrap().check(&key()), Err(HeadFinding::Missing));
    assert_eq!(t.db.audit().append(&event(2)).await.unwrap_err().code, ErrorCode::InternalError);
}

#[tokio::test]
async fn appends_without_the_key_are_refused_once_a_head_is_sealed() {
    let t = sealed(1).await;
    let keyless = reopen(&t).await;
    let err = keyless.audit().append(&event(2)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    assert_eq!(count_audit_rows(&keyless).await, 1);
    keyless.close().await;
}

#[tokio::test]
async fn an_unsealed_log_is_sealed_at_first_unlock_and_that_is_recorded() {
    let t = TestDb::new().await;
    for n in 1..=3 {
        t.db.audit().append(&event(n)).await.unwrap();
    }
    assert_eq!(t.db.audit_head_state().await.unwrap().check(&key()), Err(HeadFinding::Missing));
    let installed = t.db.install_audit_head_key(key(), UnixSeconds(70)).await.unwrap();
    let HeadInstalled::Sealed { last_id: 4, recorded: Some(recorded) } = installed else {
        panic!("sealed after a record: {installed:?}")
    };
    assert_eq!(recorded.event_type, EventType::AuditHeadSealed);
    assert_eq!(recorded.details, serde_json::json!({ "reason": "no_head", "unprotectedThrough": 3 }));
    assert_eq!(audit_types(&t.db).await.last(), Some(&EventType::AuditHeadSealed));
    assert_head_at_end(&t.db).await;
}

#[tokio::test]
async fn a_reseal_records_the_finding_and_seals_the_log_as_it_stands() {
    let t = sealed(5).await;
    sql(&t.db, "DELETE FROM audit_logs WHERE id > 3").await;
    let db = reopen(&t).await;
    let (finding, recorded) =
        db.reseal_audit_head(key(), &RequestContext::master(None), UnixSeconds(80)).await.unwrap().expect("resealed");
    assert_eq!(finding, HeadFinding::Truncated { last_id: 3, head_id: 5 });
    assert_eq!(recorded.details["finding"], finding.to_string());
    assert_eq!(recorded.details["unprotectedThrough"], 3);
    assert_head_at_end(&db).await;
    assert_eq!(db.reseal_audit_head(key(), &RequestContext::master(None), UnixSeconds(81)).await.unwrap(), None);
    db.audit().append(&event(7)).await.unwrap();
    assert_head_at_end(&db).await;
    db.close().await;
}

/// A database at schema 3 (the release before heads) with a chained log upgrades, and its first unlock seals the
/// log as it stands.
#[tokio::test]
async fn a_schema_3_database_with_a_log_is_sealed_at_its_first_unlock() {
    let dir = tempfile::TempDir::new().unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    for name in ["0001_init.sql", "0002_pipeline.sql", "0003_reserved_totals.sql"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(name);
        std::fs::copy(from, old_migrations.join(name)).unwrap();
    }
    let path = dir.path().join("old.db");
    let mut prev = GENESIS_HASH.to_owned();
    {
        let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(old_migrations.as_path()).await.unwrap().run(&pool).await.unwrap();
        for n in 1..=4 {
            let event = event(n);
            let hash = chain_hash(&prev, &event);
            sqlx::query(
                "INSERT INTO audit_logs (created_at, event_type, actor, severity, details, prev_hash, hash) \
                 VALUES (?, 'ANOMALY_DETECTED', 'system', 'warning', ?, ?, ?)",
            )
            .bind(event.created_at.0)
            .bind(event.details.to_string())
            .bind(&prev)
            .bind(&hash)
            .execute(&pool)
            .await
            .unwrap();
            prev = hash;
        }
        pool.close().await;
    }

    let db = Database::open(&path).await.unwrap();
    assert_eq!(db.schema_version(), Database::latest_schema_version());
    let state = db.audit_head_state().await.unwrap();
    assert_eq!((state.sealed.as_ref(), &state.last), (None, &ChainHead { last_id: 4, last_hash: prev }));
    let installed = db.install_audit_head_key(key(), UnixSeconds(100)).await.unwrap();
    assert!(matches!(installed, HeadInstalled::Sealed { last_id: 5, recorded: Some(_) }), "{installed:?}");
    assert_head_at_end(&db).await;
    db.close().await;

    let db = Database::open(&path).await.unwrap();
    assert_eq!(db.install_audit_head_key(key(), UnixSeconds(101)).await.unwrap(), HeadInstalled::Intact { last_id: 5 });
    db.close().await;
}
