//! OPS-03 commands: `waiaas backup [--output DIR] [--kdf argon2id|pbkdf2]`, `waiaas backup list|inspect FILE|verify
//! FILE` and `waiaas restore --from FILE [--force]` (the store and the scheduler are the daemon crate's).
//!
//! `backup` goes through the running daemon (`POST /v1/admin/backup` with the output dir and KDF, a `VACUUM INTO`
//! snapshot through its own DB handle) whenever one runs on the data dir, whatever the flags; otherwise it opens
//! the stopped data dir itself. `restore` refuses while a daemon runs: it decrypts and verifies the archive into a
//! staging dir, opens the staged DB (migrating an older schema forward), runs `PRAGMA integrity_check`, checks
//! the archive's password unlocks the restored data, and only then swaps it in, keeping the previous data as
//! `restore-backup-<time>/` (`waiaas_daemon::backup::restore`, which also refuses a running daemon or existing
//! data without `--force`, holds the lock and rolls back an interrupted restore). This module parses, prompts and
//! prints: progress (bytes,
//! rate, ETA) goes to stderr when it is a terminal, the result (a path, a listing) to stdout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use waiaas_core::backup::{Header, Kdf, Manifest};
use waiaas_daemon::backup::{RestoreSteps, backup_dir, backup_error, offline_backup};
use waiaas_fs::backup as fsb;
use waiaas_fs::{DataDir, PidLock, ProgressSink};
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
    let progress = Progress::new("verifying");
    let manifest = fsb::verify(file, &password, &mut |done, total| Progress::show(&progress.bar, done, total));
    progress.finish();
    let manifest = manifest.map_err(backup_error)?;
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
        // The daemon seals the archive; the terminal shows that it is working (its bytes are on the daemon's side).
        let waiting = Progress::waiting("the daemon is sealing the archive");
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
        waiting.finish();
        emit(&made.map_err(anyhow::Error::new)?.path)?;
        return Ok(ExitCode::SUCCESS);
    }
    let out_dir = output.unwrap_or_else(|| backup_dir(&dir, &config.backup));
    eprintln!("sealing a snapshot of {} with {} ...", dir.root().display(), kdf.kdf().name());
    let progress = Progress::new("sealing");
    let sink: ProgressSink = {
        let bar = progress.bar.clone();
        Arc::new(move |done, total| Progress::show(&bar, done, total))
    };
    let runtime = runtime()?;
    let made = runtime.block_on(offline_backup(&dir, &out_dir, &password, kdf.kdf(), Some(sink)));
    progress.finish();
    emit(&made?.location)?;
    Ok(ExitCode::SUCCESS)
}

/// `waiaas restore --from FILE [--force]`: the daemon crate's restore (`waiaas_daemon::backup::restore`) with the
/// terminal's prompt, progress and notices.
pub fn restore(root: &Path, from: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let mut steps = RestoreTerminal { progress: None };
    let previous = waiaas_daemon::backup::restore(root, from, force, &mut steps);
    if let Some(progress) = &steps.progress {
        progress.finish();
    }
    eprintln!("previous data kept in {}", previous?.display());
    emit(&format!("restored {} into {}", from.display(), root.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The terminal side of a restore: notices on stderr, the password prompt, the decrypting progress bar.
struct RestoreTerminal {
    progress: Option<Progress>,
}

impl RestoreSteps for RestoreTerminal {
    fn rolled_back(&mut self) {
        eprintln!("an interrupted restore was rolled back first");
    }

    fn password(&mut self) -> anyhow::Result<Zeroizing<String>> {
        let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
        self.progress = Some(Progress::new("decrypting"));
        Ok(password)
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            Progress::show(&progress.bar, done, total);
        }
    }

    fn verified(&mut self, manifest: &Manifest) {
        if let Some(progress) = &self.progress {
            progress.bar.finish_and_clear();
        }
        eprintln!("archive verified: {}", describe_manifest(manifest));
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Progress of a long archive operation on stderr (bytes, rate, ETA) while stderr is a terminal; nothing at all
/// otherwise (a log file or a pipe gets only the result lines).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(what: &'static str) -> Self {
        Self::to(what, std::io::stderr().is_terminal())
    }

    fn to(what: &'static str, terminal: bool) -> Self {
        let target = if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style = ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, ETA {eta}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what);
        Progress { bar }
    }

    /// A spinner with the elapsed time, for work whose size this process cannot see.
    fn waiting(what: &'static str) -> Self {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress { bar }
    }

    fn show(bar: &ProgressBar, done: u64, total: u64) {
        bar.set_length(total);
        bar.set_position(done);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
