//! The one error-code table: every failure the daemon reports has a code here, and an exhaustive `match` gives
//! its HTTP status, whether retrying can help, and a hint for the operator. A new code does not compile until it
//! is classified. Messages never carry secrets; internal causes are logged by the edge, never sent.

use std::fmt;

/// Stable, machine-readable error codes (the `code` field of every error response).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The master password is wrong.
    InvalidMasterPassword,
    /// A session token is malformed or its signature does not verify.
    InvalidToken,
    /// A session token has expired.
    TokenExpired,
    /// A session token's session was revoked (or renewed past it).
    SessionRevoked,
    /// No credentials were presented.
    Unauthorized,
    /// The credentials are valid but do not allow this action.
    Forbidden,
    /// The other kind of credentials was presented (a session token on an admin route, or the reverse).
    WrongAuth,
    /// The Host header names no allowed host.
    HostNotAllowed,
    /// The request is invalid; the issues name the fields.
    ValidationFailed,
    /// Nothing is at this path or id.
    NotFound,
    /// The path exists but not with this method (the `Allow` header lists the methods it takes).
    MethodNotAllowed,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body's `Content-Type` is not one the route accepts.
    UnsupportedMediaType,
    /// No such agent.
    AgentNotFound,
    /// No such session.
    SessionNotFound,
    /// No such policy.
    PolicyNotFound,
    /// No such transaction.
    TxNotFound,
    /// No such webhook.
    WebhookNotFound,
    /// No such delivery of this webhook (redelivery of an event never sent to it).
    DeliveryNotFound,
    /// The notification channel is not configured on this daemon (`[notifications]`).
    ChannelNotConfigured,
    /// The webhook URL's target is not allowed (link-local, cloud metadata, unspecified, multicast; private
    /// ranges when blocked).
    WebhookUrlForbidden,
    /// The agent is suspended.
    AgentSuspended,
    /// The agent is terminated.
    AgentTerminated,
    /// The status change is not allowed from the current status.
    InvalidStateTransition,
    /// A policy denied the transaction (the details name the reason and the policies).
    PolicyDenied,
    /// The agent's balance does not cover the amount and fee.
    InsufficientBalance,
    /// The chain refused the transaction in simulation (a revert).
    SimulationFailed,
    /// The address names no ERC-20 token on the network: no contract code there, or `balanceOf` reverts or answers
    /// something that is not a balance. An input mistake: asking again gives the same answer.
    NotAToken,
    /// A transaction was included with status 1, but its receipt shows no log of a token transfer or approval it
    /// was to make (a contract that answers like a token and moves nothing). The row's failure code.
    EffectNotObserved,
    /// The chain node failed or answered unexpectedly.
    ChainError,
    /// The network is not configured on this daemon.
    NetworkNotConfigured,
    /// Too many requests; retry later.
    RateLimited,
    /// The kill switch is tripped.
    SystemLocked,
    /// The pagination cursor is not one this listing issued.
    InvalidCursor,
    /// The peer's IP address is not allowed for this session.
    AccessDeniedIp,
    /// The file is not a backup archive this build can read.
    InvalidBackupFormat,
    /// A backup archive failed authentication (wrong password or altered bytes).
    BackupCorrupted,
    /// A file could not be written because its device is full (e.g. a backup into a full directory); nothing
    /// partial is left behind. Retryable once space is freed.
    StorageFull,
    /// The keystore could not create, read or use a key.
    KeystoreError,
    /// A daemon already runs on this data dir.
    DaemonAlreadyRunning,
    /// An internal failure; the cause is logged, not sent.
    InternalError,
}

/// How a code is presented: HTTP status, retryability, and an operator hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The HTTP status the code is answered with.
    pub http_status: u16,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// What the client can do about it, when there is something.
    pub hint: Option<&'static str>,
}

impl ErrorCode {
    /// Every code, in table order (used by the snapshot test and the docs).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidMasterPassword,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::SessionRevoked,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::WrongAuth,
        ErrorCode::HostNotAllowed,
        ErrorCode::ValidationFailed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::AgentNotFound,
        ErrorCode::SessionNotFound,
        ErrorCode::PolicyNotFound,
        ErrorCode::TxNotFound,
        ErrorCode::WebhookNotFound,
        ErrorCode::DeliveryNotFound,
        ErrorCode::WebhookUrlForbidden,
        ErrorCode::ChannelNotConfigured,
        ErrorCode::AgentSuspended,
        ErrorCode::AgentTerminated,
        ErrorCode::InvalidStateTransition,
        ErrorCode::PolicyDenied,
        ErrorCode::InsufficientBalance,
        ErrorCode::SimulationFailed,
        ErrorCode::NotAToken,
        ErrorCode::EffectNotObserved,
        ErrorCode::ChainError,
        ErrorCode::NetworkNotConfigured,
        ErrorCode::RateLimited,
        ErrorCode::SystemLocked,
        ErrorCode::InvalidCursor,
        ErrorCode::AccessDeniedIp,
        ErrorCode::InvalidBackupFormat,
        ErrorCode::BackupCorrupted,
        ErrorCode::StorageFull,
        ErrorCode::KeystoreError,
        ErrorCode::DaemonAlreadyRunning,
        ErrorCode::InternalError,
    ];

    /// The table. No wildcard arm: adding a code forces a decision here.
    pub fn info(self) -> CodeInfo {
        use ErrorCode::*;
        let (http_status, retryable, hint) = match self {
            InvalidMasterPassword => (401, false, Some("check the X-Master-Password header")),
            InvalidToken => {
                (401, false, Some("send `Authorization: Bearer wai_sess_...` with a token issued by POST /v1/sessions"))
            }
            TokenExpired => {
                (401, false, Some("renew the session before it expires, or ask the operator for a new one"))
            }
            SessionRevoked => (401, false, Some("the operator revoked this session; ask for a new one")),
            Unauthorized => (401, false, Some("this endpoint needs credentials")),
            Forbidden => (403, false, None),
            WrongAuth => (
                401,
                false,
                Some(
                    "this endpoint takes a different kind of credential (master password, session token or owner signature)",
                ),
            ),
            HostNotAllowed => (
                403,
                false,
                Some("the Host header must name the loopback interface, or be listed in [daemon] allowed_hosts"),
            ),
            ValidationFailed => (400, false, Some("see details.issues for each offending field")),
            NotFound => (404, false, None),
            MethodNotAllowed => (405, false, Some("the Allow header lists the methods this path takes")),
            PayloadTooLarge => (413, false, Some("request bodies are limited to 1 MiB")),
            UnsupportedMediaType => (415, false, Some("send the body as application/json")),
            AgentNotFound => (404, false, None),
            SessionNotFound => (404, false, None),
            PolicyNotFound => (404, false, None),
            TxNotFound => (404, false, None),
            WebhookNotFound => (404, false, None),
            DeliveryNotFound => (404, false, Some("pass a deliveryId from the webhook's logs")),
            WebhookUrlForbidden => (
                400,
                false,
                Some("webhook targets may not be link-local, cloud-metadata, unspecified or multicast addresses"),
            ),
            ChannelNotConfigured => (
                400,
                false,
                Some("configure the channel in [notifications] (see `waiaas notifications test --help`) and restart"),
            ),
            AgentSuspended => (409, false, Some("resume the agent with POST /v1/agents/{id}/resume")),
            AgentTerminated => (409, false, None),
            InvalidStateTransition => (409, false, None),
            PolicyDenied => (403, false, Some("details name the policy and the reason code")),
            InsufficientBalance => (400, false, None),
            SimulationFailed => {
                (422, false, Some("the chain rejected the transaction in simulation; see the revert reason"))
            }
            NotAToken => (
                400,
                false,
                Some("check the token's contract address and the network: nothing there answers as an ERC-20"),
            ),
            EffectNotObserved => {
                (422, false, Some("the token contract logged no transfer or approval: it does not behave as an ERC-20"))
            }
            ChainError => (502, true, Some("the chain node failed or is unreachable; retry later")),
            NetworkNotConfigured => (400, false, Some("add `[rpc] evm_<network> = \"<url>\"` to config.toml")),
            RateLimited => (429, true, Some("wait before retrying")),
            SystemLocked => {
                (503, false, Some("the kill switch is active; the operator must recover with POST /v1/admin/recover"))
            }
            InvalidCursor => (400, false, Some("pass back the nextCursor value from the previous page unchanged")),
            AccessDeniedIp => {
                (403, false, Some("the client address is outside the allowed CIDRs for this endpoint class"))
            }
            InvalidBackupFormat => (400, false, Some("the file is not a WAIaaS backup archive of a supported version")),
            BackupCorrupted => {
                (400, false, Some("the archive failed authentication: wrong password, or the file was altered"))
            }
            StorageFull => {
                (507, true, Some("the device is full: free space there, or back up into another directory (--output)"))
            }
            KeystoreError => (500, false, None),
            DaemonAlreadyRunning => (409, false, Some("stop the running daemon first (`waiaas stop`)")),
            InternalError => (500, true, None),
        };
        CodeInfo { http_status, retryable, hint }
    }

    /// The wire spelling, e.g. `INVALID_MASTER_PASSWORD`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidMasterPassword => "INVALID_MASTER_PASSWORD",
            InvalidToken => "INVALID_TOKEN",
            TokenExpired => "TOKEN_EXPIRED",
            SessionRevoked => "SESSION_REVOKED",
            Unauthorized => "UNAUTHORIZED",
            Forbidden => "FORBIDDEN",
            WrongAuth => "WRONG_AUTH",
            HostNotAllowed => "HOST_NOT_ALLOWED",
            ValidationFailed => "VALIDATION_FAILED",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            AgentNotFound => "AGENT_NOT_FOUND",
            SessionNotFound => "SESSION_NOT_FOUND",
            PolicyNotFound => "POLICY_NOT_FOUND",
            TxNotFound => "TX_NOT_FOUND",
            WebhookNotFound => "WEBHOOK_NOT_FOUND",
            DeliveryNotFound => "DELIVERY_NOT_FOUND",
            WebhookUrlForbidden => "WEBHOOK_URL_FORBIDDEN",
            ChannelNotConfigured => "CHANNEL_NOT_CONFIGURED",
            AgentSuspended => "AGENT_SUSPENDED",
            AgentTerminated => "AGENT_TERMINATED",
            InvalidStateTransition => "INVALID_STATE_TRANSITION",
            PolicyDenied => "POLICY_DENIED",
            InsufficientBalance => "INSUFFICIENT_BALANCE",
            SimulationFailed => "SIMULATION_FAILED",
            NotAToken => "NOT_A_TOKEN",
            EffectNotObserved => "EFFECT_NOT_OBSERVED",
            ChainError => "CHAIN_ERROR",
            NetworkNotConfigured => "NETWORK_NOT_CONFIGURED",
            RateLimited => "RATE_LIMITED",
            SystemLocked => "SYSTEM_LOCKED",
            InvalidCursor => "INVALID_CURSOR",
            AccessDeniedIp => "ACCESS_DENIED_IP",
            InvalidBackupFormat => "INVALID_BACKUP_FORMAT",
            BackupCorrupted => "BACKUP_CORRUPTED",
            StorageFull => "STORAGE_FULL",
            KeystoreError => "KEYSTORE_ERROR",
            DaemonAlreadyRunning => "DAEMON_ALREADY_RUNNING",
            InternalError => "INTERNAL_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One offending input field (for `VALIDATION_FAILED`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    /// The field's path in the request (`rules.allowed_addresses[0]`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// A domain error: a code, a message safe to show to the caller, and optional structured details.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The client-visible code.
    pub code: ErrorCode,
    /// A message for the client (never an internal cause).
    pub message: String,
    /// Structured details for the client (validation issues, a denial's reason).
    pub details: Option<serde_json::Value>,
    /// The internal cause, for the log only; never serialized to a client.
    #[source]
    pub internal: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with `code` and a client-visible message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), details: None, internal: None }
    }

    /// Adds client-visible details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// A validation failure listing each offending field.
    pub fn validation(issues: Vec<Issue>) -> Self {
        let message = match issues.as_slice() {
            [one] => format!("{}: {}", one.path, one.message),
            _ => format!("{} invalid fields", issues.len()),
        };
        Error::new(ErrorCode::ValidationFailed, message).with_details(serde_json::json!({ "issues": issues }))
    }

    /// A single-field validation failure.
    pub fn invalid_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::validation(vec![Issue { path: path.into(), message: message.into() }])
    }

    /// An internal failure: the caller sees `INTERNAL_ERROR`; the cause is kept for the log.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error {
            code: ErrorCode::InternalError,
            message: "internal error".to_owned(),
            details: None,
            internal: Some(Box::new(cause)),
        }
    }

    /// A failed write or read: `STORAGE_FULL` when the device is full (or a quota is exhausted), else an internal
    /// failure (logged, not sent).
    pub fn from_io(cause: std::io::Error) -> Self {
        match cause.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Error {
                code: ErrorCode::StorageFull,
                message: "no space left on the device".to_owned(),
                details: None,
                internal: Some(Box::new(cause)),
            },
            _ => Error::internal(cause),
        }
    }

    /// An internal failure described by text (no secrets in `what`).
    pub fn internal_msg(what: impl Into<String>) -> Self {
        Error::internal(InternalMessage(what.into()))
    }

    /// The code's HTTP status, retryability and hint.
    pub fn info(&self) -> CodeInfo {
        self.code.info()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InternalMessage(String);

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshot of the whole table: a change to any row shows up in review.
    #[test]
    fn error_table_snapshot() {
        let rows: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|code| {
                let info = code.info();
                format!("{} {} {}", code, info.http_status, if info.retryable { "retryable" } else { "final" })
            })
            .collect();
        let expected = include_str!("../tests/error_table.snap").lines().collect::<Vec<_>>();
        assert_eq!(rows, expected);
    }

    #[test]
    fn serde_spelling_matches_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }
}
