//! `waiaas-mcp`: a Model Context Protocol server over stdio (`waiaas mcp`) that gives an AI agent its wallet
//! as MCP tools (SPEC §1 apps/mcp, OPS-01 `waiaas_simulate_transaction`).
//!
//! The server is a front end like any other: it holds one agent's session token, never a key or the master
//! password, and relays each tool call to the daemon's REST API through `waiaas-client`, so every rule (auth,
//! kill switch, policy, validation) is the daemon's. See [`tools`] for the tool list and the error mapping.
//!
//! ```no_run
//! # async fn run() -> Result<(), waiaas_mcp::McpError> {
//! // WAIAAS_MCP_URL (default http://127.0.0.1:3100), WAIAAS_SESSION_TOKEN or WAIAAS_SESSION_TOKEN_FILE
//! let config = waiaas_mcp::McpConfig::from_env()?;
//! waiaas_mcp::serve_stdio(config).await
//! # }
//! ```
//!
//! stdout carries the MCP messages and nothing else: this crate logs through `tracing` only, and its host must
//! send logs to stderr.

mod config;
pub mod schema;
pub mod tools;

use std::path::PathBuf;

use rmcp::ServiceExt;
use rmcp::service::QuitReason;

pub use config::{DEFAULT_URL, McpConfig, TOKEN_ENV, TOKEN_FILE_ENV, URL_ENV};
pub use tools::WaiaasTools;

/// Why the MCP server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("no session token: set {TOKEN_ENV} or {TOKEN_FILE_ENV} (a token from `POST /v1/sessions`)")]
    MissingToken,
    #[error("{0} is set but empty")]
    EmptyToken(&'static str),
    #[error("the session token file {} ({TOKEN_FILE_ENV}) is empty", .0.display())]
    EmptyTokenFile(PathBuf),
    #[error("cannot read the session token file {} ({TOKEN_FILE_ENV})", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{URL_ENV} must be an http:// or https:// URL, got {0:?}")]
    InvalidUrl(String),
    /// The MCP handshake on stdio failed (the client closed the stream or sent something else first).
    #[error("the MCP session did not start")]
    Initialize(#[source] Box<rmcp::service::ServerInitializeError>),
    /// The session's task failed.
    #[error("the MCP session failed")]
    Session(#[source] tokio::task::JoinError),
}

/// Serves the tools on stdin/stdout until the client closes the stream. Must run inside a tokio runtime with the
/// blocking pool available (tool calls run there).
pub async fn serve_stdio(config: McpConfig) -> Result<(), McpError> {
    tracing::info!(url = config.url(), "MCP server on stdio");
    let running = WaiaasTools::new(&config)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Initialize(Box::new(e)))?;
    match running.waiting().await.map_err(McpError::Session)? {
        QuitReason::JoinError(e) => Err(McpError::Session(e)),
        reason => {
            tracing::info!(?reason, "MCP session ended");
            Ok(())
        }
    }
}
