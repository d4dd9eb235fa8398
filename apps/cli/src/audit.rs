//! `waiaas audit verify` (walks the SHA-256 chain of the audit log in the database and names the first altered
//! or missing row) and `waiaas audit list` (queries the running daemon with the same filters as
//! `GET /v1/audit-logs`, as a table or JSON).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use waiaas_client::Client;
use waiaas_client::types::AuditLogFilter;
use waiaas_core::audit::ChainBreak;
use waiaas_fs::DataDir;
use waiaas_sqlite::Database;

use crate::password::{self, Terminal};
use crate::{control, core_error, emit};

/// Rows verified per batch (memory stays bounded on large logs).
const VERIFY_BATCH: u32 = 10_000;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of every audit row; exit 1 and name the first row that was edited, or that follows a
    /// deleted or inserted one.
    Verify,
    /// List audit rows from the running daemon, newest first (master password from WAIAAS_MASTER_PASSWORD,
    /// WAIAAS_MASTER_PASSWORD_FILE or a prompt).
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Repeat for several types.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// info, warning or critical.
    #[arg(long)]
    pub severity: Option<String>,
    #[arg(long)]
    pub tx_id: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    #[arg(long)]
    pub from: Option<i64>,
    /// Inclusive upper bound, Unix seconds.
    #[arg(long)]
    pub to: Option<i64>,
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

pub fn audit(root: &Path, args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify => verify(root),
        AuditCommand::List(list) => list_rows(root, list),
    }
}

fn verify(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(root).map_err(core_error)?;
    if !dir.db_file().exists() {
        bail!("no database at {}", dir.db_file().display());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    let (verified, verdict) = runtime.block_on(async {
        let db = Database::open(&dir.db_file()).await.map_err(core_error)?;
        let outcome = db.verify_audit_chain(VERIFY_BATCH).await.map_err(core_error);
        db.close().await;
        outcome
    })?;
    match verdict {
        Ok(()) => {
            emit(&format!("audit log intact: {verified} rows verified"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(ChainBreak::ContentAltered { id }) => {
            emit(&format!("audit log TAMPERED: row {id} was altered ({verified} rows before it verified)"))?;
            Ok(ExitCode::FAILURE)
        }
        Err(ChainBreak::LinkBroken { id }) => {
            emit(&format!(
                "audit log TAMPERED: the chain breaks at row {id}: a row before it was deleted or inserted \
                 ({verified} rows before it verified)"
            ))?;
            Ok(ExitCode::FAILURE)
        }
    }
}

fn list_rows(root: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let Some(url) = control::running_daemon(root).and_then(|d| d.base_url) else {
        bail!("no daemon is running on {}; start it with `waiaas start`", root.display());
    };
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    let client = Client::new(&url).with_master_password(password.as_str());
    let filter = AuditLogFilter {
        agent_id: args.agent_id,
        event_types: args.event_types,
        severity: args.severity,
        tx_id: args.tx_id,
        actor: args.actor,
        from: args.from,
        to: args.to,
        cursor: args.cursor,
        limit: args.limit,
    };
    let page = client.audit_logs(&filter)?;
    if args.json {
        emit(&serde_json::to_string_pretty(&page)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines =
        vec![format!("{:>8}  {:>10}  {:<24} {:<8} {:<44} {}", "ID", "TIME", "EVENT", "SEVERITY", "ACTOR", "AGENT")];
    for row in &page.data {
        lines.push(format!(
            "{:>8}  {:>10}  {:<24} {:<8} {:<44} {}",
            row.id,
            row.created_at,
            row.event_type,
            row.severity,
            row.actor,
            row.agent_id.as_deref().unwrap_or("-")
        ));
    }
    if let Some(cursor) = &page.next_cursor {
        lines.push(format!("more: --cursor {cursor}"));
    }
    emit(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}
