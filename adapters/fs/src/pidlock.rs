//! One daemon per data dir: an exclusive advisory lock on `daemon.pid`, which also records the holder's pid (line
//! 1) and, once it listens, its base URL (line 2) for `waiaas stop` and `waiaas status`.
//!
//! The lock is `File::try_lock` (`flock(LOCK_EX | LOCK_NB)` on Unix), held as long as the [`PidLock`] lives and
//! released by the OS when the process dies, so a pid file left by a killed daemon is simply taken over: the
//! *lock*, not the file's existence, says whether a daemon runs. A clean stop removes the file while still holding
//! the lock; a process that opened the old file meanwhile and then locks it holds a lock on an unlinked inode, so
//! [`PidLock::acquire`] checks after locking that the path still names the locked file and starts over if not
//! (otherwise a second daemon could lock a fresh file at the same path while a first holds the unlinked one).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use waiaas_core::{Error, ErrorCode, Result};

use crate::datadir::{DataDir, SECRET_FILE_MODE};
use crate::error::{io_ctx, io_err};

/// What the pid file says about the daemon holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningDaemon {
    /// `None` in the instant between the daemon taking the lock and writing its pid.
    pub pid: Option<u32>,
    /// `None` until the daemon listens.
    pub base_url: Option<String>,
}

impl RunningDaemon {
    /// Parses `"<pid>\n<url>\n"` (either line may be missing).
    pub fn parse(text: &str) -> RunningDaemon {
        let mut lines = text.lines().map(str::trim);
        let pid = lines.next().and_then(|l| l.parse().ok());
        let base_url = lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
        RunningDaemon { pid, base_url }
    }
}

/// Proof that this process is the data dir's daemon. Dropping it removes the pid file and releases the lock.
#[derive(Debug)]
pub struct PidLock {
    file: File,
    path: PathBuf,
    pid: u32,
}

impl PidLock {
    /// Takes the data dir's daemon lock and writes this process's pid into `daemon.pid`.
    ///
    /// Fails with `DAEMON_ALREADY_RUNNING` (details `{"pid": n}` when the pid is readable) while another
    /// process — or another `PidLock` of this process — holds it.
    pub fn acquire(datadir: &DataDir) -> Result<Self> {
        Self::acquire_at(&datadir.pid_file())
    }

    /// [`PidLock::acquire`] on an explicit pid-file path.
    pub fn acquire_at(path: &Path) -> Result<Self> {
        // A few rounds at most: each retry means a daemon stopped (and removed the file) in the last instant.
        for _ in 0..ACQUIRE_ROUNDS {
            // Never truncate before holding the lock: that would wipe a running daemon's pid.
            let mut file = open_pid_file(path, true).map_err(io_ctx("open", path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(already_running(read_file(&mut file).and_then(|d| d.pid), path));
                }
                Err(TryLockError::Error(e)) => return Err(io_err("lock", path, e)),
            }
            if !names_file(path, &file).map_err(io_ctx("stat", path))? {
                continue; // locked an unlinked file: the path now names another one (or none)
            }
            let pid = std::process::id();
            file.set_len(0).map_err(io_ctx("truncate", path))?;
            file.seek(SeekFrom::Start(0)).map_err(io_ctx("seek", path))?;
            file.write_all(format!("{pid}\n").as_bytes()).map_err(io_ctx("write", path))?;
            file.sync_all().map_err(io_ctx("fsync", path))?;
            return Ok(PidLock { file, path: path.to_path_buf(), pid });
        }
        Err(Error::new(
            ErrorCode::DaemonAlreadyRunning,
            format!("{} kept changing while the daemon lock was taken; try again", path.display()),
        ))
    }

    /// The daemon running on `datadir` (pid and URL as far as written), or `None` when no process holds the lock.
    ///
    /// Probes with a shared lock on a separate handle, so it is correct from the daemon's own process too. In the
    /// instant between a daemon taking the lock and writing its pid, the pid is unknown and `None` is returned;
    /// an unreadable pid file is also `None`. The probe holds a shared lock for a moment: a daemon starting in
    /// exactly that moment reports `DAEMON_ALREADY_RUNNING` and can simply be started again.
    pub fn read_running(datadir: &DataDir) -> Option<RunningDaemon> {
        Self::read_running_at(&datadir.pid_file())
    }

    /// [`PidLock::read_running`] on an explicit pid-file path.
    pub fn read_running_at(path: &Path) -> Option<RunningDaemon> {
        // Missing or unopenable file: no daemon can be holding it.
        let mut file = open_pid_file(path, false).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None, // nobody holds the exclusive lock; ours is released when `file` drops
            Err(TryLockError::WouldBlock) => {
                Some(read_file(&mut file).unwrap_or(RunningDaemon { pid: None, base_url: None }))
            }
            Err(TryLockError::Error(_)) => None,
        }
    }

    /// Records the URL the daemon listens on as the file's second line.
    pub fn record_url(&mut self, base_url: &str) -> Result<()> {
        let text = format!("{}\n{base_url}\n", self.pid);
        self.file.set_len(0).map_err(io_ctx("truncate", &self.path))?;
        self.file.seek(SeekFrom::Start(0)).map_err(io_ctx("seek", &self.path))?;
        self.file.write_all(text.as_bytes()).map_err(io_ctx("write", &self.path))?;
        self.file.sync_all().map_err(io_ctx("fsync", &self.path))
    }

    /// The pid written to the file (this process's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Removed while still locked: a process that opened the file meanwhile sees, once it holds the lock, that
        // the path no longer names it (see `acquire_at`). Errors cannot be reported from drop and are harmless (a
        // stale pid in an unlocked file means "not running").
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// How often [`PidLock::acquire_at`] starts over after locking a file that was removed meanwhile.
const ACQUIRE_ROUNDS: usize = 8;

/// Whether `path` still names the open `file` (same device and inode); false when the path is gone.
fn names_file(path: &Path, file: &File) -> std::io::Result<bool> {
    let at_path = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let open = file.metadata()?;
        Ok(open.dev() == at_path.dev() && open.ino() == at_path.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = (file, at_path);
        Ok(true)
    }
}

/// Opens the pid file: read-write and created with mode 0600 when `create`, else read-only.
fn open_pid_file(path: &Path, create: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    if create {
        options.write(true).create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(SECRET_FILE_MODE);
    }
    #[cfg(not(unix))]
    let _ = SECRET_FILE_MODE;
    options.open(path)
}

/// Reads the pid file's contents (a pid and a URL: a few hundred bytes at most).
fn read_file(file: &mut File) -> Option<RunningDaemon> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    Some(RunningDaemon::parse(&text))
}

fn already_running(pid: Option<u32>, path: &Path) -> Error {
    match pid {
        Some(pid) => Error::new(
            ErrorCode::DaemonAlreadyRunning,
            format!("a waiaas daemon (pid {pid}) is already running on this data dir ({})", path.display()),
        )
        .with_details(serde_json::json!({ "pid": pid })),
        None => Error::new(
            ErrorCode::DaemonAlreadyRunning,
            format!("a waiaas daemon is already running on this data dir ({})", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_while_first_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path()).unwrap();
        assert_eq!(PidLock::read_running(&dd), None);

        let mut first = PidLock::acquire(&dd).unwrap();
        let me = std::process::id();
        let running = |url: Option<&str>| Some(RunningDaemon { pid: Some(me), base_url: url.map(str::to_owned) });
        assert_eq!(first.pid(), me);
        assert_eq!(std::fs::read_to_string(dd.pid_file()).unwrap(), format!("{me}\n"));
        assert_eq!(PidLock::read_running(&dd), running(None));
        first.record_url("http://127.0.0.1:3100").unwrap();
        assert_eq!(PidLock::read_running(&dd), running(Some("http://127.0.0.1:3100")));

        let err = PidLock::acquire(&dd).unwrap_err();
        assert_eq!(err.code, ErrorCode::DaemonAlreadyRunning);
        assert!(err.message.contains(&me.to_string()), "{}", err.message);
        assert_eq!(err.details, Some(serde_json::json!({ "pid": me })));
        // The failed attempt did not disturb the holder's pid and URL.
        assert_eq!(PidLock::read_running(&dd), running(Some("http://127.0.0.1:3100")));

        drop(first);
        assert!(!dd.pid_file().exists(), "a clean stop leaves no pid file");
        assert_eq!(PidLock::read_running(&dd), None);
        let again = PidLock::acquire(&dd).unwrap();
        assert_eq!(PidLock::read_running(&dd), running(None));
        drop(again);
    }

    #[test]
    fn stale_pid_file_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path()).unwrap();
        std::fs::write(dd.pid_file(), b"4194303\n").unwrap();
        // Unlocked: a dead daemon's pid does not count as running.
        assert_eq!(PidLock::read_running(&dd), None);
        let lock = PidLock::acquire(&dd).unwrap();
        assert_eq!(std::fs::read_to_string(dd.pid_file()).unwrap(), format!("{}\n", std::process::id()));
        drop(lock);
    }

    #[test]
    fn a_lock_on_a_file_removed_meanwhile_proves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path()).unwrap();
        let first = PidLock::acquire(&dd).unwrap();
        // A starter opened the file while `first` held it; `first` stops and removes it.
        let opened_before_the_stop = open_pid_file(&dd.pid_file(), false).unwrap();
        drop(first);
        opened_before_the_stop.try_lock().unwrap();
        assert!(!names_file(&dd.pid_file(), &opened_before_the_stop).unwrap());
        // So the starter goes again and locks the file the path names; a second one is then refused.
        let second = PidLock::acquire(&dd).unwrap();
        assert!(names_file(&dd.pid_file(), &second.file).unwrap());
        assert_eq!(PidLock::acquire(&dd).unwrap_err().code, ErrorCode::DaemonAlreadyRunning);
        drop(second);
    }

    #[cfg(unix)]
    #[test]
    fn pid_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path()).unwrap();
        let _lock = PidLock::acquire(&dd).unwrap();
        let mode = std::fs::metadata(dd.pid_file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0);
    }
}
