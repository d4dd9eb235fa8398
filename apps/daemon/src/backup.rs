//! OPS-03 in the daemon: the backup store it attaches to the core (the fs adapter's archives over a snapshot of
//! its own SQLite handle) and the `[backup] interval` scheduler.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use waiaas_core::backup::Kdf;
use waiaas_core::event::RequestContext;
use waiaas_core::ports::BackupRequest;
use waiaas_core::services::Waiaas;
use waiaas_fs::{DataDir, DatabaseSnapshot, FsBackupStore};
use waiaas_sqlite::Database;
use zeroize::Zeroizing;

use crate::config::BackupConfig;

/// The archive directory of a config: `[backup] dir`, else `<data dir>/backups`.
pub fn backup_dir(dir: &DataDir, config: &BackupConfig) -> PathBuf {
    match &config.dir {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => dir.root().join(d),
        None => dir.backups_dir(),
    }
}

/// The SQLite database as the fs adapter's snapshot source: `VACUUM INTO` through the daemon's own handle.
struct SqliteSnapshot(Database);

#[async_trait]
impl DatabaseSnapshot for SqliteSnapshot {
    async fn snapshot_to(&self, dest: &Path) -> waiaas_core::Result<()> {
        self.0.snapshot_to(dest).await
    }

    fn schema_version(&self) -> i64 {
        self.0.schema_version()
    }
}

/// The backup store over `db`, sealing archives with `password` into `out_dir`.
pub fn backup_store(dir: &DataDir, db: &Database, out_dir: PathBuf, password: Zeroizing<String>) -> FsBackupStore {
    FsBackupStore::new(dir.clone(), Arc::new(SqliteSnapshot(db.clone())), out_dir, password, env!("CARGO_PKG_VERSION"))
}

/// The scheduler: every `interval` seconds a backup through the core (audited, last success recorded), then
/// pruning beyond `retention_count`. A failure is logged and audited by the core and retried next interval.
/// Returns only when `stop` changes.
pub async fn run_scheduler(core: Arc<Waiaas>, config: BackupConfig, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_secs(config.interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match core.create_backup(&RequestContext::system(), BackupRequest::new(Kdf::argon2id_default())).await {
            Ok(info) => {
                tracing::info!(archive = %info.location, size = info.size, "scheduled backup written");
                match core.prune_backups(config.retention_count as usize).await {
                    Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "old backups pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(code = %e.code, cause = ?e.internal, "pruning old backups failed"),
                }
            }
            Err(e) => {
                tracing::error!(code = %e.code, cause = ?e.internal, "scheduled backup failed; retrying next interval")
            }
        }
    }
}
