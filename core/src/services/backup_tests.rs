//! The backup service over a mocked `BackupStore`: success is audited, published and recorded as the last
//! success; failure is audited and published and leaves the last success alone; no store → NOT_FOUND.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{assert_code, block_on, harness};
use crate::backup::Kdf;
use crate::event::{EventType, RequestContext};
use crate::ports::{BackupInfo, BackupRequest, MockBackupStore};
use crate::services::backup::LAST_BACKUP_SUCCESS_KEY;
use crate::{Error, ErrorCode, UnixSeconds};

fn info() -> BackupInfo {
    BackupInfo {
        name: "a.waiaas-backup".into(),
        location: "/b/a.waiaas-backup".into(),
        size: 42,
        created_at: UnixSeconds(1),
    }
}

#[test]
fn a_backup_is_audited_published_and_recorded_as_the_last_success() {
    let settings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let h = harness("pw", settings.clone()).unwrap();
    assert_code(
        block_on(h.core.create_backup(&RequestContext::system(), BackupRequest::new(Kdf::argon2id_default()))),
        ErrorCode::NotFound,
    );
    let mut store = MockBackupStore::new();
    store.expect_create().times(1).returning(|request, _| {
        assert_eq!(request, BackupRequest::new(Kdf::pbkdf2_default()));
        Ok(info())
    });
    assert!(h.core.attach_backup_store(Arc::new(store)));
    assert_eq!(block_on(h.core.last_backup_success()).unwrap(), None);
    let made =
        block_on(h.core.create_backup(&RequestContext::system(), BackupRequest::new(Kdf::pbkdf2_default()))).unwrap();
    assert_eq!(made, info());
    assert_eq!(h.audit_rows.lock().unwrap().last(), Some(&EventType::BackupCreated));
    assert!(h.sink.0.lock().unwrap().iter().any(|e| e.event_type == EventType::BackupCreated));
    let now = h.core.now();
    assert_eq!(block_on(h.core.last_backup_success()).unwrap(), Some(now));
    assert_eq!(settings.lock().unwrap().get(LAST_BACKUP_SUCCESS_KEY), Some(&now.0.to_string()));
}

#[test]
fn a_failed_backup_is_audited_and_keeps_the_last_success() {
    let settings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let h = harness("pw", settings.clone()).unwrap();
    let mut store = MockBackupStore::new();
    store.expect_create().returning(|_, _| Err(Error::internal_msg("disk full")));
    h.core.attach_backup_store(Arc::new(store));
    assert_code(
        block_on(h.core.create_backup(&RequestContext::system(), BackupRequest::new(Kdf::argon2id_default()))),
        ErrorCode::InternalError,
    );
    assert_eq!(h.audit_rows.lock().unwrap().last(), Some(&EventType::BackupFailed));
    assert!(h.sink.0.lock().unwrap().iter().any(|e| e.event_type == EventType::BackupFailed));
    assert_eq!(block_on(h.core.last_backup_success()).unwrap(), None);
}

#[test]
fn a_relative_output_dir_is_refused_before_the_store_is_asked() {
    let h = harness("pw", Arc::default()).unwrap();
    let mut store = MockBackupStore::new();
    store.expect_create().times(0);
    h.core.attach_backup_store(Arc::new(store));
    let request = BackupRequest { kdf: Kdf::pbkdf2_default(), output_dir: Some("backups/here".into()) };
    assert_code(block_on(h.core.create_backup(&RequestContext::system(), request)), ErrorCode::ValidationFailed);
    assert!(h.audit_rows.lock().unwrap().is_empty(), "nothing was attempted, nothing is audited");
}

#[test]
fn a_restore_accepts_the_current_and_older_schemas_and_refuses_a_newer_one() {
    let manifest = |schema_version| crate::backup::Manifest {
        schema_version,
        daemon_version: "0.1.0".into(),
        created_at: 0,
        files: Vec::new(),
    };
    assert!(crate::services::backup::check_restorable(&manifest(3), 3).is_ok());
    assert!(crate::services::backup::check_restorable(&manifest(1), 3).is_ok());
    assert_code(crate::services::backup::check_restorable(&manifest(4), 3), ErrorCode::InvalidBackupFormat);
}

#[test]
fn a_scheduled_run_prunes_after_a_success_and_never_after_a_failure() {
    let h = harness("pw", Arc::default()).unwrap();
    let mut store = MockBackupStore::new();
    store.expect_create().times(1).returning(|request, _| {
        assert_eq!(request, BackupRequest::new(Kdf::argon2id_default()), "the schedule seals with the default KDF");
        Ok(info())
    });
    store.expect_prune().withf(|keep| *keep == 3).times(1).returning(|_| Ok(vec!["old.waiaas-backup".into()]));
    h.core.attach_backup_store(Arc::new(store));
    let (made, pruned) = block_on(h.core.scheduled_backup(3)).unwrap();
    assert_eq!(made, info());
    assert_eq!(pruned.unwrap(), ["old.waiaas-backup"]);

    let h = harness("pw", Arc::default()).unwrap();
    let mut store = MockBackupStore::new();
    store.expect_create().times(1).returning(|_, _| Err(Error::internal_msg("disk full")));
    store.expect_prune().times(0);
    h.core.attach_backup_store(Arc::new(store));
    assert_code(block_on(h.core.scheduled_backup(3)).map(|_| ()), ErrorCode::InternalError);
}
