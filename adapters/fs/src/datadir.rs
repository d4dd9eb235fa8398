//! The data directory layout (SPEC §2 "data dir") and the primitives that keep it private.
//!
//! ```text
//! <root>/                 0700
//!   config.toml
//!   data/waiaas.db        data/ is 0700
//!   keystore/<agentId>.json   keystore/ is 0700, files 0600
//!   backups/              0700
//!   logs/                 0700
//!   daemon.pid            0600 (see `PidLock`)
//! ```
//!
//! The root itself is resolved by the caller (`--data-dir` > `WAIAAS_DATA_DIR` > `~/.waiaas`). Secret files are
//! written with [`write_secret_file`] / [`write_new_secret_file`]: a 0600 temporary file in the same directory,
//! written, fsynced, renamed over the target, then the directory fsynced, so a crash leaves either the old or the
//! new content, never a torn or world-readable file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use waiaas_core::{AgentId, Error, ErrorCode, Result};

use crate::error::{io_ctx, io_err};

/// Mode of every directory of the data dir.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every secret file (keystore files, config with secrets, pid file).
pub const SECRET_FILE_MODE: u32 = 0o600;

/// The data directory: the root and the well-known paths below it. Holds no open handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates (or completes) the layout under `root`: the root and `data/`, `keystore/`, `backups/`, `logs/`,
    /// each with mode 0700. Directories that already exist keep their content but get their mode tightened to
    /// 0700. Missing parents of `root` are created 0700 too.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let dir = DataDir { root: root.into() };
        ensure_private_dir(&dir.root)?;
        for sub in [dir.db_dir(), dir.keystore_dir(), dir.backups_dir(), dir.logs_dir()] {
            ensure_private_dir(&sub)?;
        }
        Ok(dir)
    }

    /// Opens an existing data dir. Fails with `NOT_FOUND` when `root` is not a directory (the CLI tells the
    /// operator to run `waiaas init`). Changes nothing on disk.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(DataDir { root }),
            Ok(_) => Err(Error::new(ErrorCode::NotFound, format!("data dir {} is not a directory", root.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
                ErrorCode::NotFound,
                format!("data dir {} does not exist; run `waiaas init` first", root.display()),
            )),
            Err(e) => Err(io_err("open data dir", &root, e)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/config.toml`
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `<root>/data`
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `<root>/data/waiaas.db`
    pub fn db_file(&self) -> PathBuf {
        self.db_dir().join("waiaas.db")
    }

    /// `<root>/keystore`
    pub fn keystore_dir(&self) -> PathBuf {
        self.root.join("keystore")
    }

    /// `<root>/keystore/<agentId>.json`
    pub fn keystore_file(&self, agent: AgentId) -> PathBuf {
        keystore_file_in(&self.keystore_dir(), agent)
    }

    /// `<root>/backups`
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// `<root>/daemon.pid`
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }

    /// `<root>/logs`
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// `<dir>/<agentId>.json` (hyphenated lowercase UUID).
pub(crate) fn keystore_file_in(dir: &Path, agent: AgentId) -> PathBuf {
    dir.join(format!("{agent}.json"))
}

/// Creates `path` (and missing parents) with mode 0700, or tightens an existing directory to 0700.
pub fn ensure_private_dir(path: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path).map_err(io_ctx("create directory", path))?;
    set_mode(path, DIR_MODE).map_err(io_ctx("set permissions of", path))
}

/// Makes sure `path` is a directory without changing one that exists: `path` and each missing parent are created
/// with mode 0700 (exactly, whatever the umask), while an existing directory keeps its owner's mode. For
/// directories an operator may name, such as `waiaas backup --output DIR`: only what the daemon creates is its to
/// make private.
pub fn ensure_dir_keeping_mode(path: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = path;
    while !current.as_os_str().is_empty() && fs::metadata(current).is_err() {
        missing.push(current);
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for dir in missing.into_iter().rev() {
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(DIR_MODE);
        }
        match builder.create(dir) {
            Ok(()) => set_mode(dir, DIR_MODE).map_err(io_ctx("set permissions of", dir))?,
            // Created meanwhile by someone else: theirs, so its mode is left alone.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", dir, e)),
        }
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io_err("use as a directory", path, std::io::Error::other("it is not a directory"))),
        Err(e) => Err(io_err("create directory", path, e)),
    }
}

/// Atomically replaces `path` with `bytes`, the new file having mode 0600 (see the module docs).
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, dir) = write_temp(path, bytes)?;
    tmp.persist(path).map_err(|e| io_err("rename into place", path, e.error))?;
    sync_dir(dir)
}

/// Like [`write_secret_file`], but never replaces an existing file (the final step is an exclusive
/// link/rename, so two concurrent writers cannot both win). Returns `Ok(true)` when the file was created and
/// `Ok(false)` when `path` already existed (nothing changed on disk).
pub fn write_new_secret_file(path: &Path, bytes: &[u8]) -> Result<bool> {
    let (tmp, dir) = write_temp(path, bytes)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err("move into place", path, e.error)),
    }
    sync_dir(dir)?;
    Ok(true)
}

/// Writes `bytes` to a fresh 0600 temporary file next to `path` and fsyncs it.
fn write_temp<'a>(path: &'a Path, bytes: &[u8]) -> Result<(tempfile::NamedTempFile, &'a Path)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(SECRET_FILE_MODE));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io_ctx("create a temporary file in", dir))?;
    // The umask may only have removed bits; make the mode exact before any byte is written.
    set_mode(tmp.path(), SECRET_FILE_MODE).map_err(io_ctx("set permissions of", tmp.path()))?;
    tmp.write_all(bytes).map_err(io_ctx("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_ctx("fsync", tmp.path()))?;
    Ok((tmp, dir))
}

/// Fsyncs a directory so a rename inside it is durable. A no-op where directories cannot be opened (Windows).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_ctx("fsync directory", dir))?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_makes_private_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path().join("home/.waiaas")).unwrap();
        for dir in [dd.root().to_path_buf(), dd.db_dir(), dd.keystore_dir(), dd.backups_dir(), dd.logs_dir()] {
            assert!(dir.is_dir(), "{}", dir.display());
            assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        }
        assert_eq!(dd.config_file(), dd.root().join("config.toml"));
        assert_eq!(dd.db_file(), dd.root().join("data/waiaas.db"));
        assert_eq!(dd.pid_file(), dd.root().join("daemon.pid"));
    }

    #[test]
    fn create_tightens_existing_dirs_and_keeps_content() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dd");
        fs::create_dir_all(root.join("keystore")).unwrap();
        fs::write(root.join("keystore/keep.json"), b"{}").unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(root.join("keystore"), fs::Permissions::from_mode(0o777)).unwrap();
        let dd = DataDir::create(&root).unwrap();
        assert_eq!(mode(dd.root()), 0o700);
        assert_eq!(mode(&dd.keystore_dir()), 0o700);
        assert_eq!(fs::read(root.join("keystore/keep.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_named_dir_keeps_its_mode_and_only_created_ones_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let existing = tmp.path().join("shared");
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir_keeping_mode(&existing).unwrap();
        assert_eq!(mode(&existing), 0o755, "an existing directory keeps its mode");
        let nested = existing.join("a/b");
        ensure_dir_keeping_mode(&nested).unwrap();
        assert_eq!((mode(&existing.join("a")), mode(&nested)), (0o700, 0o700), "created ones are private");
        assert_eq!(mode(&existing), 0o755, "the existing parent is untouched");
        fs::write(tmp.path().join("file"), b"x").unwrap();
        assert_eq!(ensure_dir_keeping_mode(&tmp.path().join("file")).unwrap_err().code, ErrorCode::InternalError);
        assert!(ensure_dir_keeping_mode(&tmp.path().join("file/below")).is_err(), "a file is no parent");
    }

    #[test]
    fn open_requires_an_existing_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DataDir::open(tmp.path().join("missing")).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        fs::write(tmp.path().join("file"), b"x").unwrap();
        assert_eq!(DataDir::open(tmp.path().join("file")).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(DataDir::open(tmp.path()).unwrap().root(), tmp.path());
    }

    #[test]
    fn secret_files_are_0600_and_replaced_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("secret.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_file(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.json")]);
    }

    #[test]
    fn new_secret_file_never_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.json");
        assert!(write_new_secret_file(&path, b"first").unwrap());
        assert_eq!(mode(&path), 0o600);
        assert!(!write_new_secret_file(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
