//! `waiaas notifications log|test`: the notification log and test messages through the running daemon's API
//! (master password from WAIAAS_MASTER_PASSWORD, WAIAAS_MASTER_PASSWORD_FILE or a prompt). Channels are configured
//! in `[notifications]` of config.toml, not here.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use waiaas_client::NotificationLogFilter;

use crate::{control, emit};

#[derive(Debug, Args)]
pub struct NotificationsArgs {
    #[command(subcommand)]
    pub command: NotificationsCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// The notification log, newest first: attempts, messages held back by a rate limit, digests, tests.
    Log {
        /// Only this channel: ntfy, slack, discord, telegram or email.
        #[arg(long)]
        channel: Option<String>,
        /// Only rows with this status: sent, failed or held.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: crate::PageArgs,
    },
    /// Send a test message through a configured channel now and say whether it went through (exit 1 if not).
    Test {
        /// ntfy, slack, discord, telegram or email.
        channel: String,
    },
}

pub fn notifications(root: &Path, args: NotificationsArgs) -> anyhow::Result<ExitCode> {
    let client = control::operator_client(root)?;
    match args.command {
        NotificationsCommand::Log { channel, status, page } => {
            let filter = NotificationLogFilter { channel, status, cursor: page.cursor, limit: page.limit };
            let listed = client.notification_log(&filter)?;
            if page.json {
                emit(&serde_json::to_string_pretty(&listed)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut lines = vec![format!(
                "{:>6}  {:>10}  {:<8}  {:<6}  {:<24}  {:>7}  {:<6}  {:>6}  {}",
                "ID", "TIME", "CHANNEL", "KIND", "EVENT", "ATTEMPT", "STATUS", "MS", "ERROR"
            )];
            for l in &listed.data {
                lines.push(format!(
                    "{:>6}  {:>10}  {:<8}  {:<6}  {:<24}  {:>7}  {:<6}  {:>6}  {}",
                    l.id,
                    l.created_at,
                    l.channel,
                    l.kind,
                    l.event_type.as_deref().unwrap_or("-"),
                    l.attempt,
                    l.status,
                    l.response_time_ms,
                    l.error.as_deref().unwrap_or("")
                ));
            }
            if let Some(cursor) = &listed.next_cursor {
                lines.push(format!("more: --cursor {cursor}"));
            }
            emit(&lines.join("\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        NotificationsCommand::Test { channel } => {
            let tested = client.test_notification(&channel)?;
            if tested.sent {
                emit(&format!("test message sent through {} ({} ms)", tested.channel, tested.response_time_ms))?;
                Ok(ExitCode::SUCCESS)
            } else {
                let why = tested.error.as_deref().unwrap_or("no reason given");
                eprintln!("the test message through {} failed: {why}", tested.channel);
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
