//! OPS-03 in the daemon: the backup store it attaches to the core (the fs adapter's archives over a snapshot of
//! its own SQLite handle), the `[backup] interval` scheduler, and the two operations on a stopped data dir: an
//! offline backup and restore. Restore is orchestrated here whole (no running daemon, the data dir's lock held
//! throughout, an interrupted restore rolled back first, `--force` before replacing data), so the command only
//! asks for the password and shows progress through [`RestoreSteps`]. What a backup records and what a restore
//! checks of an archive are the core's (`waiaas_core::services::backup`); placing files is the fs adapter's
//! (`waiaas_fs::backup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use waiaas_core::backup::{Kdf, Manifest};
use waiaas_core::event::RequestContext;
use waiaas_core::ports::{BackupInfo, BackupRequest, Clock};
use waiaas_core::services::Waiaas;
use waiaas_core::services::backup::{check_restorable, create_recorded};
use waiaas_core::{Error, ErrorCode};
use waiaas_fs::backup as fsb;
use waiaas_fs::{DataDir, DatabaseSnapshot, FsBackupStore, PidLock, ProgressSink, SystemClock};
use waiaas_sqlite::{Database, HeadInstalled};
use zeroize::Zeroizing;

use crate::audit_head::{check_password, head_key, head_refusal};
use crate::config::BackupConfig;
use crate::core_error;

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

/// The scheduler's clock: every `interval` seconds one [`Waiaas::scheduled_backup`] (what a run does — the backup,
/// its records, the pruning — is the core's). A failure is logged and audited by the core and retried next
/// interval.
/// Returns only when `stop` changes.
pub async fn run_scheduler(core: Arc<Waiaas>, config: BackupConfig, mut stop: tokio::sync::watch::Receiver<bool>) {
    // The overdue-backup alert compares the last success with this interval (0 while backups are off).
    core.record_backup_interval(config.interval);
    let period = Duration::from_secs(config.interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match core.scheduled_backup(config.retention_count as usize).await {
            Ok((info, pruned)) => {
                tracing::info!(archive = %info.location, size = info.size, "scheduled backup written");
                match pruned {
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

/// A backup of a stopped data dir (no daemon runs on it): the same snapshot, archive and records as the daemon's
/// (through [`waiaas_core::services::backup::create_recorded`]), made by opening the database directly. The caller
/// holds no lock: a daemon started meanwhile is a second writer for the few seconds of the snapshot, which
/// `VACUUM INTO` tolerates.
pub async fn offline_backup(
    dir: &DataDir,
    out_dir: &Path,
    password: &Zeroizing<String>,
    kdf: Kdf,
    progress: Option<ProgressSink>,
) -> anyhow::Result<BackupInfo> {
    let db = Database::open(&dir.db_file()).await.map_err(core_error).context("cannot open the database")?;
    let result = backup_with(dir, &db, out_dir, password, kdf, progress).await;
    db.close().await;
    result
}

async fn backup_with(
    dir: &DataDir,
    db: &Database,
    out_dir: &Path,
    password: &Zeroizing<String>,
    kdf: Kdf,
    progress: Option<ProgressSink>,
) -> anyhow::Result<BackupInfo> {
    check_password(db, password).await?;
    let now = SystemClock.now();
    // The BACKUP_CREATED row is an append: it needs the audit head key, as the daemon's appends do.
    if let Some(key) = head_key(db, password, false).await?
        && let HeadInstalled::Broken(finding) = db.install_audit_head_key(key, now).await.map_err(core_error)?
    {
        return Err(head_refusal(&finding));
    }
    let mut store = backup_store(dir, db, out_dir.to_owned(), password.clone());
    if let Some(progress) = progress {
        store = store.with_progress(progress);
    }
    let (audit, settings) = (db.audit(), db.settings());
    let ctx = RequestContext::master(None);
    let (outcome, _) =
        create_recorded(&store, audit.as_ref(), settings.as_ref(), &ctx, BackupRequest::new(kdf), now).await;
    outcome.map_err(backup_error)
}

/// Why an offline restore did not start. Nothing in the data dir was changed (beyond rolling back an interrupted
/// restore, which [`RestoreSteps::rolled_back`] reports first).
#[derive(Debug, thiserror::Error)]
pub enum RestoreRefused {
    /// A daemon holds the data dir's lock: restoring under it would swap its files away while it runs.
    #[error("a daemon runs on {} (pid {pid:?}); stop it first (`waiaas stop`)", root.display())]
    DaemonRunning {
        /// The data dir.
        root: PathBuf,
        /// The running daemon's pid, when its pid file says.
        pid: Option<u32>,
    },
    /// The data dir already holds a database and the caller did not ask to replace it.
    #[error(
        "{} already holds data; pass --force to replace it (the current data is kept as restore-backup-<time>/)",
        root.display()
    )]
    HoldsData {
        /// The data dir.
        root: PathBuf,
    },
}

/// What an offline restore asks of, and tells, its front end, in this order: [`rolled_back`](Self::rolled_back)
/// (when an interrupted restore was undone first), [`password`](Self::password) (only once the restore will go
/// ahead), [`progress`](Self::progress) while decrypting, [`verified`](Self::verified) before the swap.
pub trait RestoreSteps {
    /// An interrupted restore (a journal left by a crash) was rolled back before this one started.
    fn rolled_back(&mut self);
    /// The master password the archive was sealed with.
    fn password(&mut self) -> anyhow::Result<Zeroizing<String>>;
    /// Bytes of the archive decrypted so far, of `total`.
    fn progress(&mut self, done: u64, total: u64);
    /// The archive decrypted and verified into the staging dir; the checks of the staged data and the swap follow.
    fn verified(&mut self, manifest: &Manifest);
}

/// `waiaas restore`: restores the archive `from` into the data dir at `root` (created if missing), which no daemon
/// may be running on. Refuses ([`RestoreRefused`]) while a daemon holds the data dir's lock, and when the dir
/// already holds a database unless `force`. Holds the lock for the whole restore (a daemon started meanwhile must
/// not open half-swapped data), rolls back an interrupted restore first, reads the archive's header before asking
/// for the password, then stages, checks and swaps ([`restore_locked`]). Returns where the previous data was
/// kept (`restore-backup-<time>/`). Blocking: call it outside an async runtime.
pub fn restore(root: &Path, from: &Path, force: bool, steps: &mut dyn RestoreSteps) -> anyhow::Result<PathBuf> {
    let dir = DataDir::create(root).map_err(core_error).context("cannot prepare the data dir")?;
    if let Some(running) = PidLock::read_running(&dir) {
        return Err(RestoreRefused::DaemonRunning { root: root.to_owned(), pid: running.pid }.into());
    }
    let lock = PidLock::acquire(&dir).map_err(core_error).context("cannot take the daemon lock")?;
    if fsb::recover_interrupted_restore(&dir).map_err(core_error)? {
        steps.rolled_back();
    }
    fsb::inspect(from).map_err(backup_error)?;
    if dir.db_file().exists() && !force {
        return Err(RestoreRefused::HoldsData { root: root.to_owned() }.into());
    }
    let password = steps.password()?;
    let previous = restore_locked(&dir, from, &password, steps)?;
    drop(lock);
    Ok(previous)
}

/// Restores the archive `from` into the data dir, whose lock the caller holds (no daemon runs): decrypts and
/// verifies it into a staging dir (refusing a schema newer than this build, `check_restorable`), opens the staged
/// database (migrating an older schema forward), runs `PRAGMA integrity_check`, checks that `password` unlocks
/// the restored data, and only then swaps it in. Returns where the previous data was kept.
fn restore_locked(
    dir: &DataDir,
    from: &Path,
    password: &Zeroizing<String>,
    steps: &mut dyn RestoreSteps,
) -> anyhow::Result<PathBuf> {
    let stamp = fsb::utc_stamp(SystemClock.now().0);
    let latest = Database::latest_schema_version();
    let staged =
        fsb::stage_restore(dir, from, password, &stamp, &mut |m| check_restorable(m, latest), &mut |done, total| {
            steps.progress(done, total)
        })
        .map_err(backup_error)?;
    steps.verified(&staged.manifest);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let db =
            Database::open(&staged.db_file()).await.map_err(core_error).context("cannot open the restored database")?;
        let checked = async {
            db.integrity_check()
                .await
                .map_err(core_error)
                .context("the restored database failed its integrity check")?;
            check_password(&db, password).await.context("the archive's password does not unlock the restored data")
        }
        .await;
        db.close().await;
        checked
    })?;
    drop(runtime);
    fsb::swap_in(dir, staged, &stamp).map_err(core_error).context("cannot swap the restored data in")
}

/// Backup format and authentication failures keep their code in the message (`BACKUP_CORRUPTED: ...`).
pub fn backup_error(e: Error) -> anyhow::Error {
    match e.code {
        ErrorCode::InvalidBackupFormat | ErrorCode::BackupCorrupted | ErrorCode::NotFound => {
            anyhow::Error::new(crate::CoreFailure(Error::new(e.code, format!("{}: {}", e.code, e.message))))
        }
        _ => core_error(e),
    }
}

#[cfg(test)]
mod tests;
