//! The core's `BackupStore` port over the filesystem: a consistent snapshot of the live database (through the
//! [`DatabaseSnapshot`] seam, implemented by whoever holds the database handle), the keystore files and the
//! config, sealed with the master password into an archive in the backup dir; listing and pruning that dir.
//!
//! The seam keeps this adapter independent of the SQLite adapter: the daemon hands in its open database as a
//! `DatabaseSnapshot` (for SQLite, a `VACUUM INTO` through the daemon's own handle, so there is never a second
//! writer on the file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::lock::Mutex;
use waiaas_core::ports::{BackupInfo, BackupRequest, BackupStore};
use waiaas_core::{Error, Result, UnixSeconds};
use zeroize::Zeroizing;

use crate::backup as fsb;
use crate::blocking::run_blocking;
use crate::datadir::{DataDir, ensure_dir_keeping_mode, ensure_private_dir};
use crate::system::OsEntropy;

/// A live database that can write a consistent copy of itself.
#[async_trait]
pub trait DatabaseSnapshot: Send + Sync {
    /// Writes a consistent copy of the database to `dest`, a path that does not exist yet.
    async fn snapshot_to(&self, dest: &Path) -> Result<()>;
    /// The schema version recorded in the archive's manifest.
    fn schema_version(&self) -> i64;
}

/// Receives `(bytes done, bytes total)` while an archive is sealed.
pub type ProgressSink = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// The daemon's [`BackupStore`]: snapshots through its open database and seals archives with its master
/// password into the backup dir.
pub struct FsBackupStore {
    dir: DataDir,
    db: Arc<dyn DatabaseSnapshot>,
    out_dir: PathBuf,
    password: Zeroizing<String>,
    daemon_version: String,
    progress: Option<ProgressSink>,
    /// One archive operation at a time: a scheduled backup, an API-made one and the pruning after them would
    /// otherwise race for the snapshot file, the archive name and the files being pruned.
    exclusive: Mutex<()>,
}

impl FsBackupStore {
    /// A store for the data dir `dir` writing into `out_dir`; `daemon_version` goes into each manifest.
    pub fn new(
        dir: DataDir,
        db: Arc<dyn DatabaseSnapshot>,
        out_dir: PathBuf,
        password: Zeroizing<String>,
        daemon_version: &str,
    ) -> Self {
        FsBackupStore {
            dir,
            db,
            out_dir,
            password,
            daemon_version: daemon_version.to_owned(),
            progress: None,
            exclusive: Mutex::new(()),
        }
    }

    /// Removes the leftovers of an archive operation killed midway in the backup dir (see
    /// [`fsb::remove_leftovers`]); for a daemon's start, before any backup runs. Returns the removed paths.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>> {
        fsb::remove_leftovers(&self.out_dir)
    }

    /// Reports sealing progress to `sink`.
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }
}

#[async_trait]
impl BackupStore for FsBackupStore {
    async fn create(&self, request: BackupRequest, now: UnixSeconds) -> Result<BackupInfo> {
        let _exclusive = self.exclusive.lock().await;
        let kdf = request.kdf;
        let out_dir = request.output_dir.unwrap_or_else(|| self.out_dir.clone());
        // The backup dir may be the operator's (`--output`, `[backup] dir`): an existing one keeps its mode, so the
        // plaintext snapshot goes into a 0700 directory of its own, removed with it.
        ensure_dir_keeping_mode(&out_dir)?;
        let private = tempfile::Builder::new()
            .prefix(&format!(".snapshot-{}-", fsb::utc_stamp(now.0)))
            .tempdir_in(&out_dir)
            .map_err(Error::from_io)?;
        ensure_private_dir(private.path())?;
        let snapshot = private.path().join("waiaas.db");
        let taken = self.db.snapshot_to(&snapshot).await;
        let result = match taken {
            Ok(()) => {
                let (dir, password, snap) = (self.dir.clone(), self.password.clone(), snapshot.clone());
                let schema_version = self.db.schema_version();
                let daemon_version = self.daemon_version.clone();
                let progress = self.progress.clone();
                run_blocking("waiaas-backup", move || {
                    let sources = fsb::sources(&dir, &snap)?;
                    let opts = fsb::CreateOptions {
                        password: &password,
                        kdf,
                        schema_version,
                        daemon_version,
                        created_at: now.0,
                        entropy: &OsEntropy,
                    };
                    fsb::create_archive(&out_dir, &sources, &opts, &mut |done, total| {
                        if let Some(progress) = &progress {
                            progress(done, total);
                        }
                    })
                })
                .await
            }
            Err(e) => Err(e),
        };
        let _ = private.close();
        let path = result?;
        info_of(&path)
    }

    async fn list(&self) -> Result<Vec<BackupInfo>> {
        // An archive pruned between the directory read and the stat is simply no longer listed.
        let mut listed = Vec::new();
        for archive in fsb::list_archives(&self.out_dir)? {
            match std::fs::metadata(&archive.path) {
                Ok(meta) => listed.push(info_from(&archive.path, &meta)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::internal(e)),
            }
        }
        Ok(listed)
    }

    async fn prune(&self, keep: usize) -> Result<Vec<String>> {
        let _exclusive = self.exclusive.lock().await;
        Ok(fsb::prune(&self.out_dir, keep)?
            .into_iter()
            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            .collect())
    }
}

fn info_of(path: &Path) -> Result<BackupInfo> {
    Ok(info_from(path, &std::fs::metadata(path).map_err(Error::internal)?))
}

fn info_from(path: &Path, meta: &std::fs::Metadata) -> BackupInfo {
    let created_at = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    BackupInfo {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        location: path.display().to_string(),
        size: meta.len(),
        created_at: UnixSeconds(created_at),
    }
}
