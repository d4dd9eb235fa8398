//! `waiaas stop` and `waiaas status`: find the daemon of a data dir through `daemon.pid`, signal it, ask it; and
//! [`operator_client`], the master-password client of the commands that work through the running daemon.
//!
//! The pid file holds the daemon's pid on its first line and, once it listens, its base URL on the second. The
//! daemon holds an exclusive advisory lock on the file for its whole life ([`waiaas_fs::PidLock`]); the *lock*,
//! not the file's content, says whether it runs, so a file left by a killed daemon never counts.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use waiaas_client::Client;
use waiaas_fs::{DataDir, PidLock, RunningDaemon};

use crate::exit::DaemonState;
use crate::password::{self, Terminal};
use crate::{EXIT_NOT_RUNNING, emit};

/// How long `stop` waits for the daemon to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_POLL: Duration = Duration::from_millis(50);

/// The daemon running on the data dir at `root`, or `None` when no process holds the pid-file lock.
pub fn running_daemon(root: &Path) -> Option<RunningDaemon> {
    DataDir::open(root).ok().and_then(|dir| PidLock::read_running(&dir))
}

/// A client of the daemon running on `root` with the operator's master password (environment, file or prompt), for
/// the commands that work through the daemon's API (`webhook`, `anomaly`, `audit list`). No daemon listening:
/// [`DaemonState::NotRunning`] (exit 3), before any password is asked for.
pub fn operator_client(root: &Path) -> anyhow::Result<Client> {
    let Some(url) = running_daemon(root).and_then(|d| d.base_url) else {
        return Err(DaemonState::NotRunning { root: root.to_owned() }.into());
    };
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    Ok(Client::new(&url).with_master_password(password.as_str()))
}

/// `waiaas status`: exit 0 when a daemon runs, [`EXIT_NOT_RUNNING`] when none does.
pub fn status(root: &Path) -> anyhow::Result<ExitCode> {
    let Some(info) = running_daemon(root) else {
        emit(&format!("waiaas is not running (data dir {})", root.display()))?;
        return Ok(ExitCode::from(EXIT_NOT_RUNNING));
    };
    let pid = info.pid.map_or_else(|| "unknown pid".to_owned(), |p| format!("pid {p}"));
    let Some(url) = info.base_url else {
        emit(&format!("waiaas is starting ({pid}, data dir {}); not listening yet", root.display()))?;
        return Ok(ExitCode::SUCCESS);
    };
    let client = Client::new(&url);
    let mut report = vec![format!("waiaas is running ({pid}) at {url}")];
    match client.health() {
        Ok(health) => {
            report.push(format!("  status:         {}", health.status));
            report.push(format!("  version:        {}", health.version));
            report.push(format!("  schema version: {}", health.schema_version));
            report.push(format!("  uptime:         {}", format_uptime(health.uptime_seconds)));
        }
        Err(err) => report.push(format!("  health:         unavailable ({err})")),
    }
    match client.kill_switch_status() {
        Ok(switch) => {
            let reason = switch.reason.map(|r| format!(" ({r})")).unwrap_or_default();
            report.push(format!("  kill switch:    {}{reason}", switch.state));
        }
        Err(err) => report.push(format!("  kill switch:    unavailable ({err})")),
    }
    emit(&report.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `waiaas stop`: SIGTERM to the daemon, then wait until it released the pid-file lock.
pub fn stop(root: &Path) -> anyhow::Result<ExitCode> {
    let Some(info) = running_daemon(root) else {
        emit(&format!("waiaas is not running (data dir {}); nothing to stop", root.display()))?;
        return Ok(ExitCode::SUCCESS);
    };
    let Some(pid) = info.pid else {
        bail!("a daemon holds {} but its pid is not written yet; retry in a moment", root.join("daemon.pid").display());
    };
    terminate(pid)?;
    if wait_until_stopped(root, STOP_TIMEOUT)? {
        emit(&format!("waiaas stopped (pid {pid})"))?;
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("the daemon (pid {pid}) did not stop within {} s; it may still be shutting down", STOP_TIMEOUT.as_secs())
    }
}

/// Sends SIGTERM. A process that is already gone counts as stopped.
fn terminate(pid: u32) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).with_context(|| format!("pid {pid} is out of range"))?;
    match kill(Pid::from_raw(raw), Signal::SIGTERM) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(Errno::EPERM) => {
            bail!("not permitted to signal the daemon (pid {pid}); run as the user that started it")
        }
        Err(e) => bail!("cannot signal the daemon (pid {pid}): {e}"),
    }
}

/// Polls the pid-file lock until it is free or `timeout` passes. Returns whether the daemon stopped.
fn wait_until_stopped(root: &Path, timeout: Duration) -> anyhow::Result<bool> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().build().context("cannot start a timer")?;
    Ok(runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if running_daemon(root).is_none() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }))
}

/// `3723` → `1h 2m 3s`.
pub fn format_uptime(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_follows_the_lock_not_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::create(tmp.path()).unwrap();
        assert_eq!(running_daemon(dd.root()), None);
        // A stale file from a killed daemon: not running.
        std::fs::write(dd.pid_file(), "4194303\nhttp://127.0.0.1:1\n").unwrap();
        assert_eq!(running_daemon(dd.root()), None);
        let mut lock = PidLock::acquire(&dd).unwrap();
        let me = std::process::id();
        assert_eq!(running_daemon(dd.root()), Some(RunningDaemon { pid: Some(me), base_url: None }));
        lock.record_url("http://127.0.0.1:3100").unwrap();
        assert_eq!(
            running_daemon(dd.root()),
            Some(RunningDaemon { pid: Some(me), base_url: Some("http://127.0.0.1:3100".into()) })
        );
        drop(lock);
        assert_eq!(running_daemon(dd.root()), None);
        assert!(wait_until_stopped(dd.root(), Duration::from_millis(10)).unwrap());
    }

    #[test]
    fn status_and_stop_without_a_daemon() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(status(tmp.path()).unwrap(), ExitCode::from(EXIT_NOT_RUNNING));
        assert_eq!(stop(tmp.path()).unwrap(), ExitCode::SUCCESS);
    }

    #[test]
    fn uptime_formatting() {
        assert_eq!(format_uptime(0), "0s");
        assert_eq!(format_uptime(61), "1m 1s");
        assert_eq!(format_uptime(3723), "1h 2m 3s");
        assert_eq!(format_uptime(90_061), "1d 1h 1m 1s");
    }
}
