//! OPS-03 in the core: creating, listing and pruning encrypted backups through the [`BackupStore`] port, with a
//! `BACKUP_CREATED` / `BACKUP_FAILED` audit row and event for each attempt and the time of the last success kept
//! in settings (exported as `waiaas_backup_last_success_timestamp_seconds`).
//!
//! The store is attached after unlock ([`Waiaas::attach_backup_store`]): an embedding host without backups
//! simply never attaches one, and the calls answer `NOT_FOUND`.

use std::sync::Arc;

use super::Waiaas;
use crate::UnixSeconds;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::ports::{BackupInfo, BackupRequest, BackupStore};

/// Settings key of the last successful backup's Unix time.
pub const LAST_BACKUP_SUCCESS_KEY: &str = "backup_last_success_at";

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
        if request.output_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(Error::invalid_field("outputDir", "must be an absolute path"));
        }
        let kdf = request.kdf;
        let now = self.now();
        match store.create(request, now).await {
            Ok(info) => {
                let event = Event::new(EventType::BackupCreated, ctx, now).details(serde_json::json!({
                    "name": info.name,
                    "size": info.size,
                    "kdf": kdf.name(),
                }));
                self.ports.audit.append(&event).await?;
                self.ports.settings.put(LAST_BACKUP_SUCCESS_KEY, &now.0.to_string()).await?;
                self.record_backup_success(now);
                self.publish(&event);
                Ok(info)
            }
            Err(error) => {
                let event = Event::new(EventType::BackupFailed, ctx, now)
                    .details(serde_json::json!({ "code": error.code.as_str() }));
                // The failure itself is what the caller needs; a failing audit write is only logged by the edge.
                if self.ports.audit.append(&event).await.is_ok() {
                    self.publish(&event);
                }
                Err(error)
            }
        }
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
