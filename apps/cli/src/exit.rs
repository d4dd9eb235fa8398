//! The exit codes of `waiaas`, one per kind of outcome an operator's script may act on differently. The table is
//! also in the README; [`exit_code`] finds the kind in an error's chain.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`status`: the daemon runs) |
//! | 1 | any other failure (an I/O error, a refused request, an internal error) |
//! | 2 | wrong usage: an unknown command or flag (clap) |
//! | 3 | no daemon runs on the data dir (`status`, and commands that need one) |
//! | 4 | a daemon runs on the data dir (`start` a second time, `restore`, `audit verify`/`reseal`) |
//! | 5 | the master password is wrong |
//! | 6 | the archive is not a WAIaaS backup, is corrupted or tampered with, or its password does not open it |
//! | 7 | the configuration is invalid (`config.toml` or a `WAIAAS_*` variable) |

use std::path::PathBuf;

use waiaas_client::ClientError;
use waiaas_core::ErrorCode;
use waiaas_daemon::backup::RestoreRefused;
use waiaas_daemon::{ConfigError, CoreFailure};

/// Any other failure.
pub const FAILURE: u8 = 1;
/// No daemon runs on the data dir (LSB convention for "program is not running").
pub const NOT_RUNNING: u8 = 3;
/// A daemon runs on the data dir.
pub const DAEMON_RUNNING: u8 = 4;
/// The master password is wrong.
pub const WRONG_PASSWORD: u8 = 5;
/// The archive is not a backup, is corrupted, or its password does not open it.
pub const BAD_ARCHIVE: u8 = 6;
/// The configuration is invalid.
pub const BAD_CONFIG: u8 = 7;

/// Whether a daemon runs, when a command needs the other answer.
#[derive(Debug, thiserror::Error)]
pub enum DaemonState {
    /// The command needs the data dir to itself.
    #[error("a daemon runs on {} (pid {pid:?}); stop it first (`waiaas stop`)", root.display())]
    Running {
        /// The data dir.
        root: PathBuf,
        /// Its pid, when the pid file says.
        pid: Option<u32>,
    },
    /// The command talks to the daemon.
    #[error("no daemon is running on {}; start it with `waiaas start`", root.display())]
    NotRunning {
        /// The data dir.
        root: PathBuf,
    },
}

/// The exit code for a failed command: the first cause in the chain that names a kind, else [`FAILURE`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain().find_map(kind_of).unwrap_or(FAILURE)
}

fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(CoreFailure(error)) = cause.downcast_ref::<CoreFailure>() {
        return by_code(error.code.as_str());
    }
    if let Some(error) = cause.downcast_ref::<waiaas_core::Error>() {
        return by_code(error.code.as_str());
    }
    if let Some(ClientError::Api { code, .. }) = cause.downcast_ref::<ClientError>() {
        return by_code(code);
    }
    if cause.is::<ConfigError>() {
        return Some(BAD_CONFIG);
    }
    match cause.downcast_ref::<RestoreRefused>() {
        Some(RestoreRefused::DaemonRunning { .. }) => return Some(DAEMON_RUNNING),
        Some(RestoreRefused::HoldsData { .. }) => return Some(FAILURE),
        None => {}
    }
    match cause.downcast_ref::<DaemonState>()? {
        DaemonState::Running { .. } => Some(DAEMON_RUNNING),
        DaemonState::NotRunning { .. } => Some(NOT_RUNNING),
    }
}

fn by_code(code: &str) -> Option<u8> {
    let code = ErrorCode::ALL.iter().find(|c| c.as_str() == code)?;
    match code {
        ErrorCode::InvalidMasterPassword => Some(WRONG_PASSWORD),
        ErrorCode::BackupCorrupted | ErrorCode::InvalidBackupFormat => Some(BAD_ARCHIVE),
        ErrorCode::DaemonAlreadyRunning => Some(DAEMON_RUNNING),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn each_kind_is_found_through_context_layers() {
        let core = |code| anyhow::Error::new(CoreFailure(waiaas_core::Error::new(code, "m"))).context("outer");
        assert_eq!(exit_code(&core(ErrorCode::InvalidMasterPassword)), WRONG_PASSWORD);
        assert_eq!(exit_code(&core(ErrorCode::BackupCorrupted)), BAD_ARCHIVE);
        assert_eq!(exit_code(&core(ErrorCode::InvalidBackupFormat)), BAD_ARCHIVE);
        assert_eq!(exit_code(&core(ErrorCode::DaemonAlreadyRunning)), DAEMON_RUNNING);
        assert_eq!(exit_code(&core(ErrorCode::InternalError)), FAILURE);
        let plain: anyhow::Result<()> = Err(waiaas_core::Error::new(ErrorCode::InvalidMasterPassword, "m").into());
        assert_eq!(exit_code(&plain.context("reading").unwrap_err()), WRONG_PASSWORD);
        let config = ConfigError { origin: "config.toml".into(), message: "unknown key".into() };
        assert_eq!(exit_code(&anyhow::Error::new(config)), BAD_CONFIG);
        let running = DaemonState::Running { root: "/d".into(), pid: Some(7) };
        assert_eq!(exit_code(&anyhow::Error::new(running)), DAEMON_RUNNING);
        assert_eq!(exit_code(&anyhow::Error::new(DaemonState::NotRunning { root: "/d".into() })), NOT_RUNNING);
        let api = ClientError::Api {
            status: 401,
            code: "INVALID_MASTER_PASSWORD".into(),
            message: "m".into(),
            retryable: false,
            details: None,
            request_id: None,
            hint: None,
        };
        assert_eq!(exit_code(&anyhow::Error::new(api)), WRONG_PASSWORD);
        assert_eq!(exit_code(&anyhow::anyhow!("anything else")), FAILURE);
    }
}
