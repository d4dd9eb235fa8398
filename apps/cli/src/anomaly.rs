//! `waiaas anomaly list` (findings from the running daemon: one agent's with its tier floor, or every agent's
//! since a time, as a table or JSON) and `waiaas anomaly clear <agent>` (ends the agent's tier floor, audited
//! `ANOMALY_CLEARED`). Both go through the running daemon with the master password (WAIAAS_MASTER_PASSWORD,
//! WAIAAS_MASTER_PASSWORD_FILE or a prompt).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use waiaas_client::{Anomaly, Client};

use crate::{control, emit};

#[derive(Debug, Args)]
pub struct AnomalyArgs {
    #[command(subcommand)]
    pub command: AnomalyCommand,
}

#[derive(Debug, Subcommand)]
pub enum AnomalyCommand {
    /// List anomaly findings, newest first: one agent's (with its tier floor) or every agent's.
    List(ListArgs),
    /// Clear an agent's tier floor (audited ANOMALY_CLEARED).
    Clear {
        /// The agent's id.
        agent_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this agent's findings (and its tier floor in force).
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Only findings made at or after this time, Unix seconds (every agent's list only).
    #[arg(long, conflicts_with = "agent_id")]
    pub since: Option<i64>,
    #[command(flatten)]
    pub page: crate::PageArgs,
}

pub fn anomaly(root: &Path, args: AnomalyArgs) -> anyhow::Result<ExitCode> {
    let client = control::operator_client(root)?;
    match args.command {
        AnomalyCommand::List(list) => list_findings(&client, list),
        AnomalyCommand::Clear { agent_id } => {
            let floor = client.clear_tier_floor(&agent_id)?;
            emit(&format!("cleared the {} floor of agent {} (set by {})", floor.tier, floor.agent_id, floor.rule))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn table(rows: &[Anomaly]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:>6}  {:>10}  {:<6} {:<36}  {:>14}  {:>14}  {:<22} {}",
        "ID", "TIME", "RULE", "AGENT", "OBSERVED", "THRESHOLD", "UNIT", "SHADOW"
    )];
    for row in rows {
        lines.push(format!(
            "{:>6}  {:>10}  {:<6} {:<36}  {:>14.4}  {:>14.4}  {:<22} {}",
            row.id,
            row.created_at,
            row.rule,
            row.agent_id,
            row.observed,
            row.threshold,
            row.unit,
            if row.shadow { "yes" } else { "no" }
        ));
    }
    lines
}

fn list_findings(client: &Client, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (mut lines, next) = match &args.agent_id {
        Some(agent) => {
            let page = client.agent_anomalies(agent, args.page.cursor.as_deref(), args.page.limit)?;
            if args.page.json {
                emit(&serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut lines = vec![match &page.tier_floor {
                Some(floor) => format!("tier floor: {} until {} (set by {})", floor.tier, floor.expires_at, floor.rule),
                None => "tier floor: none".to_owned(),
            }];
            lines.extend(table(&page.data));
            (lines, page.next_cursor)
        }
        None => {
            let page = client.anomalies(args.since, args.page.cursor.as_deref(), args.page.limit)?;
            if args.page.json {
                emit(&serde_json::to_string_pretty(&page)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            (table(&page.data), page.next_cursor)
        }
    };
    if let Some(cursor) = next {
        lines.push(format!("more: --cursor {cursor}"));
    }
    emit(&lines.join("\n"))?;
    Ok(ExitCode::SUCCESS)
}
