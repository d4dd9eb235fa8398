//! Backup archives on disk: which files of the data dir go into one, writing it atomically into the backup dir,
//! listing and pruning, and restoring into a staging dir and swapping it in. The format itself (sealing,
//! opening, hashes) is `waiaas_core::backup`; this module only opens and places files.
//!
//! Restore is two-phase. [`stage_restore`] decrypts and verifies the whole archive into
//! `<root>/.restore-staging-<ts>/` (removed on any failure: the data dir is untouched). The caller then checks
//! the staged DB (integrity, schema, password) and calls [`swap_in`], which moves the current `config.toml`,
//! `data/` and `keystore/` into `<root>/restore-backup-<ts>/` (the safety copy) and the staged ones into place,
//! with renames inside one filesystem; a failing rename undoes the ones before it.

use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use waiaas_core::backup::{self, Header, Kdf, Manifest, ManifestFile, Progress};
use waiaas_core::ports::Entropy;
use waiaas_core::{Error, ErrorCode, Result};

use crate::datadir::{DataDir, ensure_dir_keeping_mode, ensure_private_dir};
use crate::error::{io_ctx, io_err};

/// Path of the DB inside an archive.
pub const DB_ENTRY: &str = "data/waiaas.db";
/// Path of the config inside an archive.
pub const CONFIG_ENTRY: &str = "config.toml";
/// The top-level entries a restore replaces.
const SWAPPED: [&str; 3] = ["config.toml", "data", "keystore"];

/// An archive in the backup dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub path: PathBuf,
    pub size: u64,
}

/// Whether an archive path is one this build writes/restores: `config.toml`, `data/waiaas.db`,
/// `keystore/<name>.json`.
pub fn is_allowed_entry(path: &str) -> bool {
    backup::is_safe_relative_path(path)
        && (path == CONFIG_ENTRY
            || path == DB_ENTRY
            || path.strip_prefix("keystore/").is_some_and(|name| !name.contains('/') && name.ends_with(".json")))
}

/// The files of an archive of `dir`, with the DB taken from `db_snapshot` (a consistent copy, never the live
/// file): `(entry path, file on disk)`, sorted by entry path after the DB.
pub fn sources(dir: &DataDir, db_snapshot: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = vec![(DB_ENTRY.to_owned(), db_snapshot.to_owned())];
    if dir.config_file().is_file() {
        out.push((CONFIG_ENTRY.to_owned(), dir.config_file()));
    }
    let ks = dir.keystore_dir();
    if ks.is_dir() {
        let mut keys = Vec::new();
        for entry in fs::read_dir(&ks).map_err(|e| io_err("list keystore", &ks, e))? {
            let entry = entry.map_err(|e| io_err("list keystore", &ks, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("keystore/{name}");
            if entry.file_type().map_err(|e| io_err("stat", &entry.path(), e))?.is_file() && is_allowed_entry(&rel) {
                keys.push((rel, entry.path()));
            }
        }
        keys.sort();
        out.extend(keys);
    }
    Ok(out)
}

/// `waiaas-<YYYYMMDDTHHMMSSZ>.waiaas-backup` for a Unix time.
pub fn archive_file_name(created_at: i64) -> String {
    format!("waiaas-{}.{}", utc_stamp(created_at), backup::ARCHIVE_EXTENSION)
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for Unix seconds.
pub fn utc_stamp(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// What [`create_archive`] needs besides the files.
pub struct CreateOptions<'a> {
    pub password: &'a str,
    pub kdf: Kdf,
    pub schema_version: i64,
    pub daemon_version: String,
    pub created_at: i64,
    pub entropy: &'a dyn Entropy,
}

/// Hashes `sources`, then writes the archive to `<out_dir>/<archive_file_name>` through a 0600 temporary file
/// renamed into place (a crash never leaves a half archive under the final name). Returns its path. A missing
/// `out_dir` is created 0700; an existing one keeps its mode.
pub fn create_archive(
    out_dir: &Path,
    sources: &[(String, PathBuf)],
    opts: &CreateOptions<'_>,
    progress: Progress<'_>,
) -> Result<PathBuf> {
    ensure_dir_keeping_mode(out_dir)?;
    let mut files = Vec::with_capacity(sources.len());
    for (entry, path) in sources {
        let mut f = File::open(path).map_err(|e| io_err("open", path, e))?;
        let (size, sha256) = backup::hash_reader(&mut f)?;
        files.push(ManifestFile { path: entry.clone(), size, sha256 });
    }
    let manifest = Manifest {
        schema_version: opts.schema_version,
        daemon_version: opts.daemon_version.clone(),
        created_at: opts.created_at,
        files,
    };
    let header = Header::new(opts.kdf, opts.entropy)?;
    let tmp = tempfile::Builder::new()
        .prefix(".waiaas-backup-")
        .tempfile_in(out_dir)
        .map_err(|e| io_err("create temporary archive in", out_dir, e))?;
    {
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file());
        backup::write_archive(
            &mut out,
            opts.password,
            &header,
            &manifest,
            &mut |f| {
                let path = &sources.iter().find(|(e, _)| *e == f.path).ok_or_else(|| Error::internal_msg("source"))?.1;
                Ok(Box::new(File::open(path).map_err(|e| io_err("open", path, e))?))
            },
            progress,
        )?;
        out.flush().map_err(|e| io_err("write", out_dir, e))?;
    }
    crash_hook("archive:written");
    tmp.as_file().sync_all().map_err(|e| io_err("sync", out_dir, e))?;
    // The name is claimed by the rename itself: archives made in the same second (the schedule and API calls at
    // once) take `-1`, `-2`, ... whichever finishes first, and none replaces another.
    let (mut tmp, mut n) = (tmp, 0);
    loop {
        let final_path = out_dir.join(match n {
            0 => archive_file_name(opts.created_at),
            n => format!("waiaas-{}-{n}.{}", utc_stamp(opts.created_at), backup::ARCHIVE_EXTENSION),
        });
        match tmp.persist_noclobber(&final_path) {
            Ok(_) => {
                sync_dir(out_dir)?;
                return Ok(final_path);
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists && n < MAX_SAME_SECOND => {
                (tmp, n) = (e.file, n + 1);
            }
            Err(e) => return Err(io_err("rename archive to", &final_path, e.error)),
        }
    }
}

/// Removes what an archive operation killed midway left in `dir`: temporary archives (`.waiaas-backup-*`,
/// never listed as backups) and plaintext database snapshots (`.snapshot-*` directories). Call it only while no
/// archive is being made into `dir` (at the daemon's start, before it serves). Returns the removed paths.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_err("stat", &path, e))?;
        if name.starts_with(".waiaas-backup-") && kind.is_file() {
            fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
        } else if name.starts_with(".snapshot-") && kind.is_dir() {
            fs::remove_dir_all(&path).map_err(|e| io_err("remove", &path, e))?;
        } else {
            continue;
        }
        removed.push(path);
    }
    Ok(removed)
}

/// Archives of one second at most (names `-1` … `-999`).
const MAX_SAME_SECOND: u32 = 999;

/// The archives in `dir` (`*.waiaas-backup`), newest first (names carry the UTC time). A missing dir is empty.
pub fn list_archives(dir: &Path) -> Result<Vec<ArchiveInfo>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    let suffix = format!(".{}", backup::ARCHIVE_EXTENSION);
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(&suffix) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Removed since the directory was read (pruned meanwhile): not listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("stat", &entry.path(), e)),
        };
        if meta.is_file() {
            out.push(ArchiveInfo { path: entry.path(), size: meta.len() });
        }
    }
    out.sort_by(|a, b| b.path.cmp(&a.path));
    Ok(out)
}

/// Deletes the oldest archives of `dir` beyond `keep`. Returns the deleted paths.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for old in list_archives(dir)?.into_iter().skip(keep) {
        fs::remove_file(&old.path).map_err(|e| io_err("remove", &old.path, e))?;
        removed.push(old.path);
    }
    Ok(removed)
}

/// Reads only the cleartext header of an archive (no password).
pub fn inspect(path: &Path) -> Result<Header> {
    let mut f = File::open(path).map_err(|e| open_err(path, e))?;
    Header::read_from(&mut f)
}

/// Decrypts and checks a whole archive; writes nothing.
pub fn verify(path: &Path, password: &str, progress: Progress<'_>) -> Result<Manifest> {
    let f = File::open(path).map_err(|e| open_err(path, e))?;
    backup::verify_archive(&mut BufReader::with_capacity(256 * 1024, f), password, progress)
}

/// A verified, decrypted archive waiting in `<root>/.restore-staging-<ts>/`. Dropping it without
/// [`swap_in`] removes the staging dir.
#[derive(Debug)]
pub struct Staged {
    pub dir: PathBuf,
    pub manifest: Manifest,
    swapped: bool,
}

impl Staged {
    /// The staged database file.
    pub fn db_file(&self) -> PathBuf {
        self.dir.join(DB_ENTRY)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.swapped {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Decrypts and verifies `archive` into a staging dir inside the data dir. `manifest_check` can refuse the
/// archive (e.g. a schema newer than this build) before any file is written. Fails with the data dir untouched.
pub fn stage_restore(
    dir: &DataDir,
    archive: &Path,
    password: &str,
    stamp: &str,
    manifest_check: &mut dyn FnMut(&Manifest) -> Result<()>,
    progress: Progress<'_>,
) -> Result<Staged> {
    let f = File::open(archive).map_err(|e| open_err(archive, e))?;
    // Read the header first, so a non-archive fails before anything is created.
    backup::Header::read_from(&mut File::open(archive).map_err(|e| open_err(archive, e))?)?;
    let staging = dir.root().join(format!(".restore-staging-{stamp}"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| io_err("remove stale staging dir", &staging, e))?;
    }
    ensure_private_dir(&staging)?;
    let mut staged = Staged { dir: staging.clone(), manifest: empty_manifest(), swapped: false };
    let manifest = backup::read_archive(
        &mut BufReader::with_capacity(256 * 1024, f),
        password,
        &mut |m| {
            if let Some(bad) = m.files.iter().find(|f| !is_allowed_entry(&f.path)) {
                return Err(Error::new(ErrorCode::InvalidBackupFormat, format!("unexpected entry {}", bad.path)));
            }
            if !m.files.iter().any(|f| f.path == DB_ENTRY) {
                return Err(Error::new(ErrorCode::InvalidBackupFormat, "the archive holds no database"));
            }
            manifest_check(m)
        },
        &mut |file, reader| {
            let dest = staging.join(&file.path);
            if let Some(parent) = dest.parent() {
                ensure_private_dir(parent)?;
            }
            let mut out = private_create(&dest)?;
            std::io::copy(reader, &mut out).map_err(|e| io_err("write", &dest, e))?;
            out.sync_all().map_err(|e| io_err("sync", &dest, e))?;
            Ok(())
        },
        progress,
    )?;
    for sub in ["data", "keystore"] {
        ensure_private_dir(&staging.join(sub))?;
    }
    staged.manifest = manifest;
    crash_hook("staged");
    Ok(staged)
}

/// Name of the journal that marks a swap in progress (`<root>/restore-journal.json`).
pub const JOURNAL: &str = "restore-journal.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Journal {
    stamp: String,
    /// Which of [`SWAPPED`] existed before the swap.
    existing: Vec<String>,
}

/// Moves the current `config.toml`, `data/`, `keystore/` to `<root>/restore-backup-<stamp>/` and the staged
/// ones into their place. A journal written (and fsynced) before the first rename and removed after the last
/// makes the swap all-or-nothing across crashes: [`recover_interrupted_restore`] (run by `start`, `backup` and
/// `restore`) rolls an interrupted swap back to the old data. A failing rename rolls back at once. Returns the
/// safety-copy dir.
pub fn swap_in(dir: &DataDir, mut staged: Staged, stamp: &str) -> Result<PathBuf> {
    let root = dir.root();
    let safety = root.join(format!("restore-backup-{stamp}"));
    let existing: Vec<String> =
        SWAPPED.iter().filter(|n| fs::symlink_metadata(root.join(n)).is_ok()).map(|n| (*n).to_owned()).collect();
    let journal = Journal { stamp: stamp.to_owned(), existing: existing.clone() };
    let journal_bytes = serde_json::to_vec(&journal).map_err(Error::internal)?;
    fs::create_dir(&safety).map_err(|e| io_err("create safety copy dir", &safety, e))?;
    crate::datadir::write_secret_file(&root.join(JOURNAL), &journal_bytes)?;
    let result = (|| {
        let mut step = 0;
        let mut rename = |from: PathBuf, to: PathBuf| -> Result<()> {
            crash_hook(&format!("swap:{step}"));
            step += 1;
            fs::rename(&from, &to).map_err(|e| io_err("rename", &from, e))
        };
        for name in &existing {
            rename(root.join(name), safety.join(name))?;
        }
        for name in SWAPPED {
            if fs::symlink_metadata(staged.dir.join(name)).is_ok() {
                rename(staged.dir.join(name), root.join(name))?;
            }
        }
        sync_dir(root)?;
        crash_hook("swap:done");
        fs::remove_file(root.join(JOURNAL)).map_err(|e| io_err("remove", &root.join(JOURNAL), e))?;
        sync_dir(root)
    })();
    if let Err(e) = result {
        let _ = recover_interrupted_restore(dir);
        return Err(e);
    }
    staged.swapped = true;
    let _ = fs::remove_dir_all(&staged.dir);
    Ok(safety)
}

/// Rolls back a swap that a crash interrupted (a journal is present): the new entries go back to the staging
/// dir (then removed), the old ones come back from the safety copy. Returns whether anything was rolled back.
/// Without a journal it only removes staging dirs left by a restore killed before its swap. The caller holds
/// the daemon lock.
pub fn recover_interrupted_restore(dir: &DataDir) -> Result<bool> {
    let root = dir.root();
    let path = root.join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No swap was under way: a staging dir left by a restore killed while decrypting holds nothing
            // that was ever live; remove it.
            if let Ok(entries) = fs::read_dir(root) {
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().starts_with(".restore-staging-") {
                        let _ = fs::remove_dir_all(entry.path());
                    }
                }
            }
            return Ok(false);
        }
        Err(e) => return Err(io_err("read", &path, e)),
    };
    let journal: Journal =
        serde_json::from_slice(&bytes).map_err(|_| Error::internal_msg(format!("{} is unreadable", path.display())))?;
    if !backup::is_safe_relative_path(&journal.stamp) {
        return Err(Error::internal_msg(format!("{} is unreadable", path.display())));
    }
    let safety = root.join(format!("restore-backup-{}", journal.stamp));
    let staging = root.join(format!(".restore-staging-{}", journal.stamp));
    ensure_private_dir(&staging)?;
    for name in SWAPPED {
        let (current, old) = (root.join(name), safety.join(name));
        let was_there = journal.existing.iter().any(|n| n == name);
        let old_moved = fs::symlink_metadata(&old).is_ok();
        let current_is_new = fs::symlink_metadata(&current).is_ok() && (!was_there || old_moved);
        if current_is_new {
            let aside = staging.join(name);
            let _ = fs::remove_dir_all(&aside);
            let _ = fs::remove_file(&aside);
            fs::rename(&current, &aside).map_err(|e| io_err("roll back", &current, e))?;
        }
        if was_there && old_moved {
            fs::rename(&old, &current).map_err(|e| io_err("roll back", &old, e))?;
        }
    }
    sync_dir(root)?;
    fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
    let _ = fs::remove_dir_all(&staging);
    let _ = fs::remove_dir(&safety);
    sync_dir(root)?;
    Ok(true)
}

/// Test hook: when `WAIAAS_TEST_CRASH_AT` names this point, the process aborts here (as kill -9 would).
fn crash_hook(point: &str) {
    if std::env::var("WAIAAS_TEST_CRASH_AT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}

fn empty_manifest() -> Manifest {
    Manifest { schema_version: 0, daemon_version: String::new(), created_at: 0, files: Vec::new() }
}

fn private_create(path: &Path) -> Result<File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(crate::datadir::SECRET_FILE_MODE);
    }
    opts.open(path).map_err(|e| io_err("create", path, e))
}

fn open_err(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(ErrorCode::NotFound, format!("{} does not exist", path.display())),
        _ => io_err("open", path, e),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_ctx("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_764_000_000), "20251124T160000Z");
        assert_eq!(archive_file_name(0), "waiaas-19700101T000000Z.waiaas-backup");
    }

    #[test]
    fn only_known_entries_are_restored() {
        for ok in ["config.toml", "data/waiaas.db", "keystore/0190-a.json"] {
            assert!(is_allowed_entry(ok), "{ok}");
        }
        for bad in ["daemon.pid", "data/other.db", "keystore/a/b.json", "keystore/a.txt", "../config.toml", "logs/x"] {
            assert!(!is_allowed_entry(bad), "{bad}");
        }
    }

    #[test]
    fn list_is_newest_first_and_prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for t in [100, 300, 200] {
            write(&dir.path().join(archive_file_name(t)), "x");
        }
        write(&dir.path().join(".waiaas-backup-tmp.waiaas-backup"), "partial");
        write(&dir.path().join("notes.txt"), "other");
        let names = |v: Vec<ArchiveInfo>| v.into_iter().map(|a| a.path).collect::<Vec<_>>();
        assert_eq!(
            names(list_archives(dir.path()).unwrap()),
            [300, 200, 100].map(|t| dir.path().join(archive_file_name(t)))
        );
        assert_eq!(prune(dir.path(), 2).unwrap(), [dir.path().join(archive_file_name(100))]);
        assert_eq!(list_archives(dir.path()).unwrap().len(), 2);
        assert!(dir.path().join("notes.txt").exists());
        assert!(list_archives(&dir.path().join("missing")).unwrap().is_empty());
    }

    /// Archives made at once in the same second each get a name of their own; none replaces another.
    #[test]
    fn archives_of_one_second_made_at_once_keep_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.db");
        write(&source, "data");
        let out = dir.path().join("out");
        let sources = [("data/waiaas.db".to_owned(), source)];
        let made: Vec<PathBuf> = std::thread::scope(|scope| {
            let calls: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        let opts = CreateOptions {
                            password: "pw",
                            kdf: Kdf::argon2id_fast_for_tests(),
                            schema_version: 1,
                            daemon_version: "test".into(),
                            created_at: 1_764_000_000,
                            entropy: &crate::OsEntropy,
                        };
                        create_archive(&out, &sources, &opts, &mut |_, _| {}).expect("archive")
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let names: std::collections::BTreeSet<_> = made.iter().cloned().collect();
        assert_eq!(names.len(), 6, "{made:?}");
        assert_eq!(list_archives(&out).unwrap().len(), 6);
        assert!(names.contains(&out.join(archive_file_name(1_764_000_000))));
        assert!(names.contains(&out.join("waiaas-20251124T160000Z-5.waiaas-backup")));
    }

    /// Every point a swap can stop at rolls back to exactly the old files.
    #[test]
    fn an_interrupted_swap_rolls_back_to_the_old_state_at_every_step() {
        for steps in 0..=6 {
            let root = tempfile::tempdir().unwrap();
            let dd = DataDir::create(root.path()).unwrap();
            write(&dd.config_file(), "old config");
            write(&dd.db_file(), "old db");
            write(&dd.keystore_dir().join("a.json"), "old key");
            let staging = root.path().join(".restore-staging-S");
            write(&staging.join("config.toml"), "new config");
            write(&staging.join("data/waiaas.db"), "new db");
            write(&staging.join("keystore/b.json"), "new key");
            // Replay the first `steps` renames of swap_in by hand, as a crash would leave them.
            let safety = root.path().join("restore-backup-S");
            fs::create_dir(&safety).unwrap();
            let journal = Journal { stamp: "S".into(), existing: SWAPPED.iter().map(|s| (*s).to_owned()).collect() };
            fs::write(root.path().join(JOURNAL), serde_json::to_vec(&journal).unwrap()).unwrap();
            let moves: Vec<(PathBuf, PathBuf)> = SWAPPED
                .iter()
                .map(|n| (root.path().join(n), safety.join(n)))
                .chain(SWAPPED.iter().map(|n| (staging.join(n), root.path().join(n))))
                .collect();
            for (from, to) in moves.iter().take(steps) {
                fs::rename(from, to).unwrap();
            }
            assert!(recover_interrupted_restore(&dd).unwrap());
            assert_eq!(fs::read_to_string(dd.config_file()).unwrap(), "old config", "step {steps}");
            assert_eq!(fs::read_to_string(dd.db_file()).unwrap(), "old db", "step {steps}");
            assert_eq!(fs::read_to_string(dd.keystore_dir().join("a.json")).unwrap(), "old key");
            assert!(!dd.keystore_dir().join("b.json").exists(), "step {steps}");
            assert!(!root.path().join(JOURNAL).exists() && !staging.exists() && !safety.exists());
            assert!(!recover_interrupted_restore(&dd).unwrap());
        }
    }
}
