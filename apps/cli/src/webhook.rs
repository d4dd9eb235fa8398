//! `waiaas webhook add|list|rm|logs|test`: OPS-04 webhooks through the running daemon's API (master password from
//! WAIAAS_MASTER_PASSWORD, WAIAAS_MASTER_PASSWORD_FILE or a prompt). `add` prints the secret once.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use waiaas_client::{CreateWebhook, WebhookLogFilter};

use crate::{control, emit};

#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register a webhook; prints its id and its secret (shown only now).
    Add {
        /// The receiver's URL (http or https).
        url: String,
        /// An event type to deliver (repeat for several); `*` (the default) for every event.
        #[arg(long = "event", default_value = "*")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List webhooks (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a webhook (its pending deliveries are dropped, its log kept).
    Rm { id: String },
    /// A webhook's delivery attempts, newest first.
    Logs {
        id: String,
        /// success, failed or pending.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send a WEBHOOK_TEST event to the webhook through the real delivery path.
    Test { id: String },
}

pub fn webhook(root: &Path, args: WebhookArgs) -> anyhow::Result<ExitCode> {
    let client = control::operator_client(root)?;
    match args.command {
        WebhookCommand::Add { url, events, description } => {
            let created = client.create_webhook(&CreateWebhook { url, event_types: events, description })?;
            emit(&format!(
                "webhook {} created for {} ({})\nsecret: {}\nStore the secret now: it is not shown again.",
                created.id,
                created.url,
                created.event_types.join(", "),
                created.secret
            ))?;
        }
        WebhookCommand::List { json } => {
            let page = client.list_webhooks(None, Some(200))?;
            if json {
                emit(&serde_json::to_string_pretty(&page.data)?)?;
            } else {
                let mut lines = vec![format!("{:<36}  {:<6}  {:<30}  {}", "ID", "ACTIVE", "EVENTS", "URL")];
                for w in &page.data {
                    lines.push(format!("{:<36}  {:<6}  {:<30}  {}", w.id, w.active, w.event_types.join(","), w.url));
                }
                emit(&lines.join("\n"))?;
            }
        }
        WebhookCommand::Rm { id } => {
            let gone = client.delete_webhook(&id)?;
            emit(&format!("webhook {} deleted", gone.id))?;
        }
        WebhookCommand::Logs { id, status, limit, cursor, json } => {
            let page = client.webhook_logs(&id, &WebhookLogFilter { status, cursor, limit })?;
            if json {
                emit(&serde_json::to_string_pretty(&page)?)?;
            } else {
                let mut lines = vec![format!(
                    "{:<14}  {:<24}  {:>7}  {:<8}  {:>6}  {:>8}  {}",
                    "DELIVERY", "EVENT", "ATTEMPT", "STATUS", "HTTP", "MS", "ERROR"
                )];
                for l in &page.data {
                    lines.push(format!(
                        "{:<14}  {:<24}  {:>7}  {:<8}  {:>6}  {:>8}  {}",
                        l.delivery_id,
                        l.event_type,
                        l.attempt,
                        l.status,
                        l.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                        l.response_time_ms,
                        l.error.as_deref().unwrap_or("")
                    ));
                }
                if let Some(cursor) = &page.next_cursor {
                    lines.push(format!("more: --cursor {cursor}"));
                }
                emit(&lines.join("\n"))?;
            }
        }
        WebhookCommand::Test { id } => {
            let queued = client.test_webhook(&id)?;
            emit(&format!("test ping queued as {}", queued.delivery_id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
