//! OPS-03 in the core: creating, listing and pruning encrypted backups through the [`BackupStore`] port, with a
//! `BACKUP_CREATED` / `BACKUP_FAILED` audit row and event for each attempt and the time of the last success kept
//! in settings (exported as `waiaas_backup_last_success_timestamp_seconds`); what a restore checks of an archive
//! before its data may replace the live data ([`check_restorable`]).
//!
//! [`create_recorded`] is one attempt with its records over the ports alone, so a stopped data dir's backup (the
//! `waiaas backup` command, no daemon) records it exactly as the daemon does.
//!
//! The store is attached after unlock ([`Waiaas::attach_backup_store`]): an embedding host without backups
//! simply never attaches one, and the calls answer `NOT_FOUND`.

use std::sync::Arc;

use super::Waiaas;
use crate::UnixSeconds;
use crate::backup::{Kdf, Manifest};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::ports::{AuditRepo, BackupInfo, BackupRequest, BackupStore, SettingsRepo};

/// Settings key of the last successful backup's Unix time.
pub const LAST_BACKUP_SUCCESS_KEY: &str = "backup_last_success_at";

/// One backup attempt and its records: a `BACKUP_CREATED` row and the last success time in settings, or a
/// `BACKUP_FAILED` row (whose own failure to be written is not the caller's concern: the backup's failure is).
/// Returns the outcome and the event that was written, for the caller to publish.
pub async fn create_recorded(
    store: &dyn BackupStore,
    audit: &dyn AuditRepo,
    settings: &dyn SettingsRepo,
    ctx: &RequestContext,
    request: BackupRequest,
    now: UnixSeconds,
) -> (Result<BackupInfo>, Option<Event>) {
    if request.output_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
        return (Err(Error::invalid_field("outputDir", "must be an absolute path")), None);
    }
    let kdf = request.kdf;
    match store.create(request, now).await {
        Ok(info) => {
            let event = Event::new(EventType::BackupCreated, ctx, now).details(serde_json::json!({
                "name": info.name,
                "size": info.size,
                "kdf": kdf.name(),
            }));
            if let Err(e) = audit.append(&event).await {
                return (Err(e), None);
            }
            if let Err(e) = settings.put(LAST_BACKUP_SUCCESS_KEY, &now.0.to_string()).await {
                return (Err(e), None);
            }
            (Ok(info), Some(event))
        }
        Err(error) => {
            let event = Event::new(EventType::BackupFailed, ctx, now)
                .details(serde_json::json!({ "code": error.code.as_str() }));
            let written = audit.append(&event).await.is_ok();
            (Err(error), written.then_some(event))
        }
    }
}

/// What a restore checks of an archive's manifest before anything is swapped in: a schema newer than this build
/// (`latest_schema`) cannot be opened, so it is refused (`INVALID_BACKUP_FORMAT`); an older one is migrated
/// forward when the restored database is opened.
pub fn check_restorable(manifest: &Manifest, latest_schema: i64) -> Result<()> {
    if manifest.schema_version > latest_schema {
        return Err(Error::new(
            ErrorCode::InvalidBackupFormat,
            format!(
                "the archive's schema {} is newer than this build supports ({latest_schema})",
                manifest.schema_version
            ),
        ));
    }
    Ok(())
}

impl Waiaas {
    /// Attaches the backup store. Returns false when one was attached already (the first stays).
    pub fn attach_backup_store(&self, store: Arc<dyn BackupStore>) -> bool {
        self.backups.set(store).is_ok()
    }

    fn backup_store(&self) -> Result<&Arc<dyn BackupStore>> {
        self.backups.get().ok_or_else(|| Error::new(ErrorCode::NotFound, "backups are not configured on this host"))
    }

    /// Creates an archive now. Success and failure are both audited and published; success also records the
    /// time of the last successful backup. An `output_dir` must be absolute.
    pub async fn create_backup(&self, ctx: &RequestContext, request: BackupRequest) -> Result<BackupInfo> {
        let store = self.backup_store()?;
        let now = self.now();
        let (outcome, recorded) =
            create_recorded(store.as_ref(), self.ports.audit.as_ref(), self.ports.settings.as_ref(), ctx, request, now)
                .await;
        if outcome.is_ok() {
            self.record_backup_success(now);
        }
        if let Some(event) = recorded {
            self.publish(&event);
        }
        outcome
    }

    /// One run of the `[backup] interval` schedule: a backup by the system (audited like any), then, only when it
    /// succeeded, pruning to the newest `retention` archives. Returns the archive and the pruned names; a failed
    /// pruning is not a failed backup, so it comes back separately.
    pub async fn scheduled_backup(&self, retention: usize) -> Result<(BackupInfo, Result<Vec<String>>)> {
        let info = self.create_backup(&RequestContext::system(), BackupRequest::new(Kdf::argon2id_default())).await?;
        let pruned = self.prune_backups(retention).await;
        Ok((info, pruned))
    }

    /// The archives in the backup directory, newest first.
    pub async fn list_backups(&self) -> Result<Vec<BackupInfo>> {
        self.backup_store()?.list().await
    }

    /// Deletes the oldest archives beyond `keep`.
    pub async fn prune_backups(&self, keep: usize) -> Result<Vec<String>> {
        self.backup_store()?.prune(keep).await
    }

    /// When the last backup succeeded, if ever (from settings, so it survives restarts).
    pub async fn last_backup_success(&self) -> Result<Option<UnixSeconds>> {
        let stored = self.ports.settings.get(LAST_BACKUP_SUCCESS_KEY).await?;
        Ok(stored.and_then(|v| v.parse::<i64>().ok()).map(UnixSeconds))
    }
}
