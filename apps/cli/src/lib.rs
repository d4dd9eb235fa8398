//! The `waiaas` command line: `init`, `start` (the daemon, in-process), `stop`, `status`, `openapi`, `mcp` (the
//! MCP server for an agent, over stdio).
//!
//! It is argument parsing and terminal I/O over the daemon crate (`waiaas-daemon`: configuration, composition,
//! background tasks, backup and restore). The logic lives in this library so tests can call it; `main.rs` only parses arguments and maps the outcome to
//! an exit code; [`exit`] has the table (0 success, 1 failure, 2 usage, 3 not running, 4 a daemon runs, 5 wrong
//! password, 6 bad archive, 7 bad config).
//!
//! The data dir is `--data-dir` > `WAIAAS_DATA_DIR` > `~/.waiaas` (SPEC §2).

pub mod anomaly;
pub mod audit;
pub mod backup;
pub mod control;
pub mod exit;
pub mod init;
pub mod notifications;
pub mod password;
pub mod start;
pub mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};

/// The paging and output flags of every listing command (`audit list`, `anomaly list`).
#[derive(Debug, clap::Args)]
pub struct PageArgs {
    /// 1 to 200 (default 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// `nextCursor` of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the page as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Exit code of `status` when no daemon runs (LSB convention for "program is not running").
pub const EXIT_NOT_RUNNING: u8 = exit::NOT_RUNNING;

/// WAIaaS: a self-hosted wallet daemon for AI agents.
#[derive(Debug, Parser)]
#[command(name = "waiaas", version, about, propagate_version = true)]
pub struct Cli {
    /// Data directory (config.toml, database, keystore, pid file).
    #[arg(long, global = true, env = "WAIAAS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data dir (mode 0700) and a commented default config.toml; an existing config is kept.
    Init,
    /// Run the daemon in the foreground until SIGTERM or Ctrl-C (runs `init` first on a fresh machine).
    ///
    /// The master password comes from WAIAAS_MASTER_PASSWORD, else the file named by
    /// WAIAAS_MASTER_PASSWORD_FILE, else an interactive prompt.
    Start,
    /// Stop the daemon running on the data dir (SIGTERM, then wait up to 10 s).
    Stop,
    /// Show whether the daemon runs, its version, schema version, uptime and kill-switch state (exit 3 if not
    /// running).
    Status,
    /// Print the OpenAPI document of the REST API.
    Openapi,
    /// Create an encrypted backup archive (through the running daemon, or from the data dir when stopped), or
    /// list / inspect / verify archives.
    Backup(backup::BackupArgs),
    /// Restore the data dir from an archive (the daemon must be stopped; the current data is kept as
    /// `restore-backup-<time>/`).
    Restore {
        /// The archive to restore.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Replace a data dir that already holds data.
        #[arg(long)]
        force: bool,
    },
    /// Verify the audit log's hash chain, or list audit rows from the running daemon.
    Audit(audit::AuditArgs),
    /// Manage outbound webhooks on the running daemon: add, list, rm, logs, test.
    Webhook(webhook::WebhookArgs),
    /// List anomaly findings or clear an agent's tier floor, through the running daemon.
    Anomaly(anomaly::AnomalyArgs),
    /// The notification log, or a test message through a channel, on the running daemon.
    Notifications(notifications::NotificationsArgs),
    /// Serve the agent wallet tools over MCP on stdin/stdout (for an MCP client to launch; logs go to stderr).
    ///
    /// Talks to the daemon at WAIAAS_MCP_URL (default http://127.0.0.1:3100) with the agent's session token from
    /// WAIAAS_SESSION_TOKEN, else the file named by WAIAAS_SESSION_TOKEN_FILE.
    Mcp,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = || resolve_data_dir(cli.data_dir.clone());
    match cli.command {
        Command::Init => {
            let outcome = init::init(&data_dir()?)?;
            emit(&outcome.describe())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start => start::start(&data_dir()?),
        Command::Stop => control::stop(&data_dir()?),
        Command::Status => control::status(&data_dir()?),
        Command::Openapi => {
            emit(&waiaas_server::openapi_document())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Mcp => mcp(),
        Command::Audit(args) => audit::audit(&data_dir()?, args),
        Command::Webhook(args) => webhook::webhook(&data_dir()?, args),
        Command::Anomaly(args) => anomaly::anomaly(&data_dir()?, args),
        Command::Notifications(args) => notifications::notifications(&data_dir()?, args),
        Command::Backup(args) => backup::backup(&data_dir()?, args),
        Command::Restore { from, force } => backup::restore(&data_dir()?, &from, force),
    }
}

/// `waiaas mcp`: stdout is the MCP channel, so nothing but the protocol may be written there; logs go to stderr
/// (`RUST_LOG`, default `info`).
fn mcp() -> anyhow::Result<ExitCode> {
    waiaas_daemon::init_logging("info");
    let config = waiaas_mcp::McpConfig::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("waiaas-mcp")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(waiaas_mcp::serve_stdio(config));
    // A daemon call still running on the blocking pool (the client left mid-call) is not waited for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `--data-dir` / `WAIAAS_DATA_DIR` (already merged by clap), else `~/.waiaas`.
pub fn resolve_data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) if dir.as_os_str().is_empty() => Err(anyhow!("the data dir must not be empty")),
        Some(dir) => Ok(dir),
        None => {
            let home = std::env::home_dir()
                .context("cannot find the home directory; pass --data-dir or set WAIAAS_DATA_DIR")?;
            Ok(home.join(".waiaas"))
        }
    }
}

/// Writes `text` and a newline to stdout. A closed pipe (`waiaas openapi | head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow!("cannot write to stdout: {e}")),
        _ => Ok(()),
    }
}

pub(crate) use waiaas_daemon::core_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn data_dir_option_is_global() {
        let cli = parse(&["waiaas", "status", "--data-dir", "/tmp/a"]);
        assert_eq!(cli.data_dir.as_deref(), Some(std::path::Path::new("/tmp/a")));
        let cli = parse(&["waiaas", "--data-dir", "/tmp/b", "start"]);
        assert_eq!(cli.data_dir.as_deref(), Some(std::path::Path::new("/tmp/b")));
        assert!(matches!(cli.command, Command::Start));
    }

    #[test]
    fn mcp_takes_no_arguments() {
        assert!(matches!(parse(&["waiaas", "mcp"]).command, Command::Mcp));
        assert!(Cli::try_parse_from(["waiaas", "mcp", "--token", "x"]).is_err());
    }

    #[test]
    fn unknown_subcommands_fail() {
        assert!(Cli::try_parse_from(["waiaas", "strat"]).is_err());
        assert!(Cli::try_parse_from(["waiaas"]).is_err());
    }

    #[test]
    fn explicit_data_dir_wins_over_home() {
        assert_eq!(resolve_data_dir(Some("/x".into())).unwrap(), PathBuf::from("/x"));
        assert!(resolve_data_dir(Some(PathBuf::new())).is_err());
    }
}
