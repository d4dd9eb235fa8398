//! OPS-03 commands: `waiaas backup [--output DIR] [--kdf argon2id|pbkdf2]`, `waiaas backup list|inspect FILE|verify
//! FILE` and `waiaas restore --from FILE [--force]` (the store and the scheduler are the daemon crate's).
//!
//! `backup` goes through the running daemon (`POST /v1/admin/backup` with the output dir and KDF, a `VACUUM INTO`
//! snapshot through its own DB handle) whenever one runs on the data dir, whatever the flags; otherwise it opens
//! the stopped data dir itself. `restore` refuses while a daemon runs: it decrypts and verifies the archive into a
//! staging dir, opens the staged DB (migrating an older schema forward), runs `PRAGMA integrity_check`, checks
//! the archive's password unlocks the restored data, and only then swaps it in, keeping the previous data as
//! `restore-backup-<time>/`. Progress goes to stderr; the result (a path, a listing) to stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use waiaas_core::backup::{Header, Kdf, Manifest};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{AuditRepo, BackupRequest, BackupStore, Clock, SettingsRepo};
use waiaas_core::services::backup::LAST_BACKUP_SUCCESS_KEY;
use waiaas_core::{Error, ErrorCode};
use waiaas_daemon::audit_head::{check_password, head_key, head_refusal};
use waiaas_daemon::backup::{backup_dir, backup_store};
use waiaas_fs::backup as fsb;
use waiaas_fs::{DataDir, PidLock, SystemClock};
use waiaas_sqlite::{Database, HeadInstalled};
use zeroize::Zeroizing;

use crate::password::{self, Terminal};
use crate::{core_error, emit};

/// `waiaas backup ...`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Directory for the new archive (default: `[backup] dir`, i.e. `<data dir>/backups`).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Key-derivation function sealing the archive.
    #[arg(long, value_enum, default_value_t = KdfChoice::Argon2id)]
    pub kdf: KdfChoice,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the archives in `[backup] dir`, newest first.
    List,
    /// Show an archive's cleartext header (format, KDF and params). Needs no password; reveals no contents.
    Inspect { file: PathBuf },
    /// Decrypt the whole archive and check every chunk and file hash; restores nothing.
    Verify { file: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KdfChoice {
    /// Argon2id, m = 64 MiB, t = 3, p = 4.
    Argon2id,
    /// PBKDF2-HMAC-SHA256, 600,000 iterations.
    Pbkdf2,
}

impl KdfChoice {
    pub fn kdf(self) -> Kdf {
        match self {
            KdfChoice::Argon2id => Kdf::argon2id_default(),
            KdfChoice::Pbkdf2 => Kdf::pbkdf2_default(),
        }
    }
}

/// `waiaas backup ...`
pub fn backup(root: &Path, args: BackupArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(BackupCommand::List) => list(root),
        Some(BackupCommand::Inspect { file }) => inspect(&file),
        Some(BackupCommand::Verify { file }) => verify(&file),
        None => create(root, args.output, args.kdf),
    }
}

fn list(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(root).map_err(core_error)?;
    let config = waiaas_daemon::load_config(&dir)?;
    let out_dir = backup_dir(&dir, &config.backup);
    let archives = fsb::list_archives(&out_dir).map_err(core_error)?;
    if archives.is_empty() {
        eprintln!("no archives in {}", out_dir.display());
    }
    for a in archives {
        emit(&format!("{}\t{}", a.path.display(), human_bytes(a.size)))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let header = fsb::inspect(file).map_err(backup_error)?;
    emit(&describe_header(file, &header))?;
    Ok(ExitCode::SUCCESS)
}

/// The header, as `inspect` prints it: nothing about the contents (they are sealed).
pub fn describe_header(file: &Path, header: &Header) -> String {
    let params = match header.kdf {
        Kdf::Argon2id { m_cost_kib, t_cost, p_cost } => format!("m={m_cost_kib} KiB, t={t_cost}, p={p_cost}"),
        Kdf::Pbkdf2Sha256 { iterations } => format!("iterations={iterations}"),
    };
    format!(
        "file: {}\nformat: WAIaaS backup v{}\ncipher: AES-256-GCM, {} KiB chunks\nkdf: {} ({params})\n\
         contents: encrypted (manifest, database, keystore, config); `waiaas backup verify` needs the master password",
        file.display(),
        header.version,
        header.chunk_size / 1024,
        header.kdf.name(),
    )
}

fn verify(file: &Path) -> anyhow::Result<ExitCode> {
    fsb::inspect(file).map_err(backup_error)?;
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    let mut progress = Progress::new("verifying");
    let manifest =
        fsb::verify(file, &password, &mut |done, total| progress.update(done, total)).map_err(backup_error)?;
    progress.finish();
    emit(&format!("ok: {}", describe_manifest(&manifest)))?;
    Ok(ExitCode::SUCCESS)
}

fn describe_manifest(m: &Manifest) -> String {
    format!(
        "{} files, {} (schema {}, written by waiaas {} at {})",
        m.files.len(),
        human_bytes(m.total_size()),
        m.schema_version,
        m.daemon_version,
        fsb::utc_stamp(m.created_at)
    )
}

fn create(root: &Path, output: Option<PathBuf>, kdf: KdfChoice) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(root).map_err(core_error)?;
    let config = waiaas_daemon::load_config(&dir)?;
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    if let Some(running) = PidLock::read_running(&dir) {
        // Whatever the flags, the running daemon makes the backup: it is the only writer of its database, and its
        // last-backup time and metric follow.
        let url = running.base_url.clone().ok_or_else(|| anyhow!("a daemon runs but has not started listening yet"))?;
        eprintln!("backing up through the running daemon at {url} ...");
        let client = waiaas_client::Client::new(&url).with_master_password(password.as_str());
        let kdf = match kdf {
            KdfChoice::Argon2id => waiaas_client::BackupKdf::Argon2id,
            KdfChoice::Pbkdf2 => waiaas_client::BackupKdf::Pbkdf2,
        };
        let made = match output {
            Some(output) => {
                // The daemon resolves nothing against its own working directory: it gets an absolute path.
                let output =
                    std::path::absolute(&output).with_context(|| format!("cannot resolve {}", output.display()))?;
                let output = output.to_str().ok_or_else(|| anyhow!("{} is not valid UTF-8", output.display()))?;
                client.create_backup_in(kdf, output)
            }
            None => client.create_backup(kdf),
        };
        emit(&made.map_err(|e| anyhow!("{e}"))?.path)?;
        return Ok(ExitCode::SUCCESS);
    }
    let out_dir = output.unwrap_or_else(|| backup_dir(&dir, &config.backup));
    let runtime = runtime()?;
    let path = runtime.block_on(async {
        let db = Database::open(&dir.db_file()).await.map_err(core_error).context("cannot open the database")?;
        let result = offline_backup(&dir, &db, &out_dir, &password, kdf.kdf()).await;
        db.close().await;
        result
    })?;
    emit(&path.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}

async fn offline_backup(
    dir: &DataDir,
    db: &Database,
    out_dir: &Path,
    password: &Zeroizing<String>,
    kdf: Kdf,
) -> anyhow::Result<PathBuf> {
    check_password(db, password).await?;
    let now = SystemClock.now();
    // The BACKUP_CREATED row below is an append: it needs the audit head key, as the daemon's appends do.
    if let Some(key) = head_key(db, password, false).await?
        && let HeadInstalled::Broken(finding) = db.install_audit_head_key(key, now).await.map_err(core_error)?
    {
        return Err(head_refusal(&finding));
    }
    let mut progress = Progress::new("sealing");
    let progress = std::sync::Mutex::new(move |done, total| progress.update(done, total));
    let progress: waiaas_fs::ProgressSink = std::sync::Arc::new(move |done, total| {
        if let Ok(mut p) = progress.lock() {
            p(done, total)
        }
    });
    let store = backup_store(dir, db, out_dir.to_owned(), password.clone()).with_progress(progress);
    eprintln!("sealing a snapshot of {} with {} ...", dir.root().display(), kdf.name());
    let ctx = RequestContext::master(None);
    match store.create(BackupRequest::new(kdf), now).await {
        Ok(info) => {
            let event = Event::new(EventType::BackupCreated, &ctx, now)
                .details(serde_json::json!({ "name": info.name, "size": info.size, "kdf": kdf.name() }));
            db.audit().append(&event).await.map_err(core_error)?;
            db.settings().put(LAST_BACKUP_SUCCESS_KEY, &now.0.to_string()).await.map_err(core_error)?;
            Ok(PathBuf::from(info.location))
        }
        Err(e) => {
            let event =
                Event::new(EventType::BackupFailed, &ctx, now).details(serde_json::json!({ "code": e.code.as_str() }));
            let _ = db.audit().append(&event).await;
            Err(backup_error(e))
        }
    }
}

/// `waiaas restore --from FILE [--force]`
pub fn restore(root: &Path, from: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let dir = DataDir::create(root).map_err(core_error).context("cannot prepare the data dir")?;
    if let Some(running) = PidLock::read_running(&dir) {
        bail!("a daemon runs on {} (pid {:?}); stop it first (`waiaas stop`)", root.display(), running.pid);
    }
    // Hold the lock for the whole restore: a daemon started meanwhile must not open half-swapped data.
    let lock = PidLock::acquire(&dir).map_err(core_error).context("cannot take the daemon lock")?;
    if fsb::recover_interrupted_restore(&dir).map_err(core_error)? {
        eprintln!("an interrupted restore was rolled back first");
    }
    fsb::inspect(from).map_err(backup_error)?;
    if dir.db_file().exists() && !force {
        bail!(
            "{} already holds data; pass --force to replace it (the current data is kept as restore-backup-<time>/)",
            root.display()
        );
    }
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    let stamp = fsb::utc_stamp(SystemClock.now().0);
    let mut progress = Progress::new("decrypting");
    let latest = Database::latest_schema_version();
    let staged = fsb::stage_restore(
        &dir,
        from,
        &password,
        &stamp,
        &mut |m| {
            if m.schema_version > latest {
                return Err(Error::new(
                    ErrorCode::InvalidBackupFormat,
                    format!("the archive's schema {} is newer than this build supports ({latest})", m.schema_version),
                ));
            }
            Ok(())
        },
        &mut |done, total| progress.update(done, total),
    )
    .map_err(backup_error)?;
    progress.finish();
    eprintln!("archive verified: {}", describe_manifest(&staged.manifest));
    let runtime = runtime()?;
    runtime.block_on(async {
        let db =
            Database::open(&staged.db_file()).await.map_err(core_error).context("cannot open the restored database")?;
        let checked = async {
            db.integrity_check()
                .await
                .map_err(core_error)
                .context("the restored database failed its integrity check")?;
            check_password(&db, &password).await.context("the archive's password does not unlock the restored data")
        }
        .await;
        db.close().await;
        checked
    })?;
    drop(runtime);
    let safety = fsb::swap_in(&dir, staged, &stamp).map_err(core_error).context("cannot swap the restored data in")?;
    drop(lock);
    eprintln!("previous data kept in {}", safety.display());
    emit(&format!("restored {} into {}", from.display(), root.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Backup format and authentication failures keep their code in the message (`BACKUP_CORRUPTED: ...`).
fn backup_error(e: Error) -> anyhow::Error {
    match e.code {
        ErrorCode::InvalidBackupFormat | ErrorCode::BackupCorrupted | ErrorCode::NotFound => {
            anyhow!("{}: {}", e.code, e.message)
        }
        _ => core_error(e),
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Percent progress on stderr, at most one line per 5 %.
struct Progress {
    what: &'static str,
    last: Option<u64>,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        Progress { what, last: None }
    }

    fn update(&mut self, done: u64, total: u64) {
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        if self.last.is_none_or(|l| pct >= l + 5) {
            eprintln!("{} {pct:>3}% ({} of {})", self.what, human_bytes(done), human_bytes(total));
            self.last = Some(pct);
        }
    }

    fn finish(&mut self) {
        if self.last != Some(100) {
            eprintln!("{} 100%", self.what);
        }
    }
}
