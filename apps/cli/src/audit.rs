//! `waiaas audit verify` (walks the SHA-256 chain of the audit log in the database and names the first altered
//! or missing row, then checks the end of the log against its sealed head, so deleted trailing rows are found
//! too), `waiaas audit reseal` (accepts the log as it stands after a finding, recording it) and `waiaas audit list`
//! (queries the running daemon with the same filters as `GET /v1/audit-logs`, as a table or JSON).
//!
//! The head is sealed under a key derived from the master password (`waiaas_daemon::audit_head::head_key`): the daemon installs it at
//! unlock, and `verify`/`reseal` derive it the same way, so both need the password.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use waiaas_client::types::AuditLogFilter;
use waiaas_core::audit::ChainBreak;
use waiaas_daemon::audit_head::{Verdict, reseal as reseal_log, verify_log};
use waiaas_fs::{DataDir, PidLock};

use crate::exit::DaemonState;
use crate::password::{self, Terminal};
use crate::{control, core_error, emit};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of every audit row and the log's sealed head; exit 1 and name the first row that was
    /// edited or follows a deleted or inserted one, deleted trailing rows, or an edited head (master password from
    /// WAIAAS_MASTER_PASSWORD, WAIAAS_MASTER_PASSWORD_FILE or a prompt).
    Verify,
    /// Accept the audit log as it stands after `verify` reported its end: record what was found as an
    /// AUDIT_HEAD_SEALED row and seal the head after it (the daemon must be stopped; master password as for
    /// `verify`).
    Reseal,
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
    #[command(flatten)]
    pub page: crate::PageArgs,
}

pub fn audit(root: &Path, args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify => verify(root),
        AuditCommand::Reseal => reseal(root),
        AuditCommand::List(list) => list_rows(root, list),
    }
}

fn verify(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(root).map_err(core_error)?;
    if !dir.db_file().exists() {
        bail!("no database at {}", dir.db_file().display());
    }
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    let verdict = runtime.block_on(verify_log(&dir, &password))?;
    let Verdict { verified, chain, head, seals } = verdict;
    let mut lines = Vec::new();
    match (&chain, &head) {
        (Ok(()), Ok(last_id)) => lines.push(format!(
            "audit log intact: {verified} rows verified; the log ends at row {last_id}, as its sealed head records"
        )),
        (Ok(()), Err(_)) => lines.push(format!("audit chain intact: {verified} rows verified")),
        (Err(ChainBreak::ContentAltered { id }), _) => {
            lines.push(format!("audit log TAMPERED: row {id} was altered ({verified} rows before it verified)"))
        }
        (Err(ChainBreak::LinkBroken { id }), _) => lines.push(format!(
            "audit log TAMPERED: the chain breaks at row {id}: a row before it was deleted or inserted \
             ({verified} rows before it verified)"
        )),
    }
    if let Err(finding) = &head {
        lines.push(format!("audit log TAMPERED: {finding}"));
    }
    if !seals.is_empty() {
        let ids: Vec<String> = seals.iter().map(i64::to_string).collect();
        lines.push(format!(
            "note: a head was sealed over existing rows at row {} (AUDIT_HEAD_SEALED): rows deleted before that \
             cannot be detected",
            ids.join(", ")
        ));
    }
    emit(&lines.join("\n"))?;
    Ok(if chain.is_ok() && head.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn reseal(root: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(root).map_err(core_error)?;
    if !dir.db_file().exists() {
        bail!("no database at {}", dir.db_file().display());
    }
    if let Some(running) = PidLock::read_running(&dir) {
        return Err(DaemonState::Running { root: root.to_owned(), pid: running.pid }.into());
    }
    let _lock = PidLock::acquire(&dir).map_err(core_error).context("cannot take the daemon lock")?;
    let (password, _) = password::master_password(|n| std::env::var(n).ok(), &Terminal, false)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    let resealed = runtime.block_on(reseal_log(&dir, &password))?;
    match resealed {
        None => emit("the audit log already ends where its sealed head records; nothing to reseal")?,
        Some(finding) => emit(&format!(
            "resealed the audit log as it stands; recorded what was found ({finding}) as an AUDIT_HEAD_SEALED row"
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn list_rows(root: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = control::operator_client(root)?;
    let filter = AuditLogFilter {
        agent_id: args.agent_id,
        event_types: args.event_types,
        severity: args.severity,
        tx_id: args.tx_id,
        actor: args.actor,
        from: args.from,
        to: args.to,
        cursor: args.page.cursor,
        limit: args.page.limit,
    };
    let page = client.audit_logs(&filter)?;
    if args.page.json {
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
