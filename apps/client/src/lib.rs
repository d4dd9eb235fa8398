//! `waiaas-client`: a blocking Rust SDK for the WAIaaS daemon's REST API (SPEC §3), used by the CLI, the MCP
//! server and the end-to-end tests.
//!
//! ```no_run
//! use waiaas_client::{Client, CreateAgent};
//! let admin = Client::new("http://127.0.0.1:3100").with_master_password("correct horse");
//! let agent = admin.create_agent(&CreateAgent::ethereum("bot", "anvil"))?;
//! let session = admin.create_session(&waiaas_client::CreateSession::for_agent(&agent.id))?;
//! let bot = Client::new("http://127.0.0.1:3100").with_session_token(&session.token);
//! println!("{}", bot.wallet_balance()?.balance);
//! # Ok::<(), waiaas_client::ClientError>(())
//! ```
//!
//! Public endpoints (`/health`, the kill-switch state, the owner nonce) are called without credentials; the
//! owner's approve/reject calls carry only the owner's signature headers given to them; every other call carries
//! the credentials this client was given (master password and/or session token) and the daemon judges them: a
//! missing one is its 401, one of the wrong kind its 401 `WRONG_AUTH`. Keep operator and agent clients apart.
//!
//! Transactions are sent as a typed [`TxRequest`] ([`Client::send_transaction`]) or as raw JSON
//! ([`Client::send_transaction_raw`]); both reach the same strict parser in the daemon.
//! Non-2xx answers are [`ClientError::Api`]; redirects are never followed. [`Client::request_raw`] is the escape hatch for tests that
//! need malformed bodies or custom headers.

// `ClientError::Api` is a flat variant (easy to match in tests) of ~136 bytes; every call is a network round
// trip, so moving it costs nothing measurable.
#![allow(clippy::result_large_err, reason = "a flat, matchable error beats boxing on a network-bound API")]

mod anomaly;
mod backup;
mod error;
mod notifications;
pub mod types;
pub mod webhooks;

use std::time::Duration;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http;

pub use anomaly::{AgentAnomalies, Anomaly, TierFloor};
pub use backup::{Backup, BackupKdf, BackupList};
pub use error::{ClientError, Result, api_error};
pub use notifications::{NotificationLog, NotificationLogFilter, NotificationTest};
pub use types::*;
pub use webhooks::{
    CreateWebhook, CreatedWebhook, DeliveryQueued, RotatedSecret, UpdateWebhook, Webhook, WebhookLog, WebhookLogFilter,
};

/// Header carrying the master password (masterAuth).
pub const MASTER_PASSWORD_HEADER: &str = "X-Master-Password";
/// ownerAuth headers: the owner's address, the signed text (base64, standard alphabet) and the signature.
pub const OWNER_ADDRESS_HEADER: &str = "X-Owner-Address";
pub const OWNER_MESSAGE_HEADER: &str = "X-Owner-Message";
pub const OWNER_SIGNATURE_HEADER: &str = "X-Owner-Signature";

/// Characters left as they are in a path segment or query value (RFC 3986 "unreserved").
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A raw exchange: status, response headers (names lowercase) and body bytes.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// The credential an endpoint takes. Public endpoints get none; for the others every configured credential is
/// sent and the daemon judges (the variant documents the endpoint's class at each call site).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    Public,
    Master,
    Session,
    /// The owner's signature headers, passed per call; the client's own credentials are not sent.
    Owner,
}

/// A connection to one daemon. Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct Client {
    base_url: String,
    agent: ureq::Agent,
    master_password: Option<String>,
    session_token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("master_password", &redacted(&self.master_password))
            .field("session_token", &redacted(&self.session_token))
            .finish()
    }
}

impl Client {
    /// A client for the daemon at `base_url`, e.g. `http://127.0.0.1:3100` (a trailing `/` is ignored).
    pub fn new(base_url: impl Into<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .allow_non_standard_methods(true)
            .build()
            .into();
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Client { base_url, agent, master_password: None, session_token: None }
    }

    /// Sends `X-Master-Password` on master-authenticated endpoints.
    pub fn with_master_password(mut self, password: impl Into<String>) -> Self {
        self.master_password = Some(password.into());
        self
    }

    /// Sends `Authorization: Bearer <token>` on session-authenticated endpoints (`token` is `wai_sess_...`).
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    // ----- raw access -------------------------------------------------------------------------------------

    /// Sends one request exactly as given and returns the status, the response headers (names lowercase) and
    /// the body bytes. No credentials are added and no status is mapped to an error; only transport failures
    /// are errors. `path` starts with `/` and may carry a query string.
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<RawResponse> {
        let mut builder = http::Request::builder().method(method).uri(format!("{}{}", self.base_url, path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = match body {
            Some(bytes) => {
                let request = builder.body(bytes).map_err(|e| ClientError::Transport(e.to_string()))?;
                self.agent.run(request)
            }
            None => {
                let request = builder.body(()).map_err(|e| ClientError::Transport(e.to_string()))?;
                self.agent.run(request)
            }
        };
        let mut response = response.map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let bytes = response.body_mut().read_to_vec().map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok((status, headers, bytes))
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        auth: Auth,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        self.call_with_headers(method, path, auth, &[], body)
    }

    fn call_with_headers<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        auth: Auth,
        extra_headers: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let (status, headers, bytes) = self.exchange(method, path, auth, extra_headers, body)?;
        if !(200..300).contains(&status) {
            return Err(api_error_from(status, &headers, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{method} {}: {e}", strip_query(path))))
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        auth: Auth,
        extra_headers: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<RawResponse> {
        let bearer;
        let mut headers: Vec<(&str, &str)> = vec![("Accept", "application/json")];
        headers.extend_from_slice(extra_headers);
        // The daemon judges credentials: public and owner endpoints get none of the client's own; the others get
        // whatever this client holds, so a credential of the wrong kind is answered 401 WRONG_AUTH and a missing
        // one 401, by the daemon.
        if matches!(auth, Auth::Master | Auth::Session) {
            if let Some(password) = &self.master_password {
                headers.push((MASTER_PASSWORD_HEADER, password));
            }
            if let Some(token) = &self.session_token {
                bearer = format!("Bearer {token}");
                headers.push(("Authorization", &bearer));
            }
        }
        let encoded = match body {
            Some(value) => {
                headers.push(("Content-Type", "application/json"));
                Some(
                    serde_json::to_vec(value)
                        .map_err(|e| ClientError::Decode(format!("cannot encode request: {e}")))?,
                )
            }
            None => None,
        };
        self.request_raw(method, path, &headers, encoded.as_deref())
    }

    // ----- health -----------------------------------------------------------------------------------------

    /// `GET /health` (public).
    pub fn health(&self) -> Result<Health> {
        self.call("GET", "/health", Auth::Public, None::<&()>)
    }

    // ----- agents (master) --------------------------------------------------------------------------------

    pub fn create_agent(&self, request: &CreateAgent) -> Result<Agent> {
        self.call("POST", "/v1/agents", Auth::Master, Some(request))
    }

    pub fn list_agents(&self, params: &ListParams) -> Result<Page<Agent>> {
        let path = with_query("/v1/agents", &page_query(params.cursor.as_deref(), params.limit));
        self.call("GET", &path, Auth::Master, None::<&()>)
    }

    pub fn get_agent(&self, id: &str) -> Result<Agent> {
        self.call("GET", &format!("/v1/agents/{}", seg(id)), Auth::Master, None::<&()>)
    }

    /// `DELETE /v1/agents/{id}`: terminates the agent (its key and audit rows stay) and returns it.
    pub fn terminate_agent(&self, id: &str) -> Result<Agent> {
        self.call("DELETE", &format!("/v1/agents/{}", seg(id)), Auth::Master, None::<&()>)
    }

    pub fn suspend_agent(&self, id: &str) -> Result<Agent> {
        self.call("POST", &format!("/v1/agents/{}/suspend", seg(id)), Auth::Master, None::<&()>)
    }

    pub fn resume_agent(&self, id: &str) -> Result<Agent> {
        self.call("POST", &format!("/v1/agents/{}/resume", seg(id)), Auth::Master, None::<&()>)
    }

    /// `PUT /v1/agents/{id}/owner`; `None` clears the owner.
    pub fn set_owner(&self, id: &str, owner_address: Option<&str>) -> Result<Agent> {
        let body = SetOwner { owner_address: owner_address.map(str::to_owned) };
        self.call("PUT", &format!("/v1/agents/{}/owner", seg(id)), Auth::Master, Some(&body))
    }

    // ----- sessions ---------------------------------------------------------------------------------------

    /// `POST /v1/sessions` (master): the token is in the answer, and only there.
    pub fn create_session(&self, request: &CreateSession) -> Result<IssuedSession> {
        self.call("POST", "/v1/sessions", Auth::Master, Some(request))
    }

    pub fn list_sessions(&self, filter: &SessionFilter) -> Result<Page<Session>> {
        let mut query = Vec::new();
        push(&mut query, "agent_id", filter.agent_id.as_deref());
        query.extend(page_query(filter.cursor.as_deref(), filter.limit));
        self.call("GET", &with_query("/v1/sessions", &query), Auth::Master, None::<&()>)
    }

    /// `DELETE /v1/sessions/{id}` (master): the token stops working at once. Returns the revoked session.
    pub fn revoke_session(&self, id: &str) -> Result<Session> {
        self.call("DELETE", &format!("/v1/sessions/{}", seg(id)), Auth::Master, None::<&()>)
    }

    /// `PUT /v1/sessions/{id}/renew` (session): returns the replacement token; the old one stops working.
    pub fn renew_session(&self, id: &str) -> Result<IssuedSession> {
        self.call("PUT", &format!("/v1/sessions/{}/renew", seg(id)), Auth::Session, None::<&()>)
    }

    // ----- policies (master) ------------------------------------------------------------------------------

    pub fn create_policy(&self, request: &CreatePolicy) -> Result<Policy> {
        self.call("POST", "/v1/policies", Auth::Master, Some(request))
    }

    pub fn list_policies(&self, filter: &PolicyFilter) -> Result<Page<Policy>> {
        let mut query = Vec::new();
        push(&mut query, "agent_id", filter.agent_id.as_deref());
        query.extend(page_query(filter.cursor.as_deref(), filter.limit));
        self.call("GET", &with_query("/v1/policies", &query), Auth::Master, None::<&()>)
    }

    pub fn get_policy(&self, id: &str) -> Result<Policy> {
        self.call("GET", &format!("/v1/policies/{}", seg(id)), Auth::Master, None::<&()>)
    }

    pub fn update_policy(&self, id: &str, request: &UpdatePolicy) -> Result<Policy> {
        self.call("PUT", &format!("/v1/policies/{}", seg(id)), Auth::Master, Some(request))
    }

    /// Deletes a policy and returns it as it was.
    pub fn delete_policy(&self, id: &str) -> Result<Policy> {
        self.call("DELETE", &format!("/v1/policies/{}", seg(id)), Auth::Master, None::<&()>)
    }

    // ----- wallet (session) -------------------------------------------------------------------------------

    pub fn wallet_address(&self) -> Result<WalletAddress> {
        self.call("GET", "/v1/wallet/address", Auth::Session, None::<&()>)
    }

    /// `GET /v1/wallet/balance`: the native coin.
    pub fn wallet_balance(&self) -> Result<WalletBalance> {
        self.call("GET", "/v1/wallet/balance", Auth::Session, None::<&()>)
    }

    /// `GET /v1/wallet/balance?token=<address>`: the balance of one ERC-20 token, in its smallest unit.
    pub fn wallet_token_balance(&self, token: &str) -> Result<TokenBalance> {
        let path = with_query("/v1/wallet/balance", &[("token", token.to_owned())]);
        self.call("GET", &path, Auth::Session, None::<&()>)
    }

    // ----- transactions (session) -------------------------------------------------------------------------

    /// `POST /v1/transactions/send`: 201 `{id, status}`; the rest of the pipeline runs asynchronously (poll
    /// [`Client::get_transaction`]). A policy denial is `ClientError::Api` with code `POLICY_DENIED` and
    /// `details: {transactionId, reasonCode, matchedPolicyIds}`.
    pub fn send_transaction(&self, request: &TxRequest) -> Result<SendResult> {
        self.call("POST", "/v1/transactions/send", Auth::Session, Some(request))
    }

    /// [`Client::send_transaction`] with a body given as JSON, sent as it is (the daemon refuses unknown fields).
    pub fn send_transaction_raw(&self, body: &serde_json::Value) -> Result<SendResult> {
        self.call("POST", "/v1/transactions/send", Auth::Session, Some(body))
    }

    /// `POST /v1/transactions/simulate`: what a send of `body` (the same JSON as for
    /// [`Client::send_transaction_raw`]) would do now, without side effects. A policy denial is `Ok` with
    /// `success: false` and the denial in `policy`; a malformed body is `ClientError::Api` (`VALIDATION_FAILED`).
    pub fn simulate(&self, body: &serde_json::Value) -> Result<SimulationResult> {
        self.call("POST", "/v1/transactions/simulate", Auth::Session, Some(body))
    }

    /// [`Client::simulate`] with a typed request.
    pub fn simulate_typed(&self, request: &TxRequest) -> Result<SimulationResult> {
        self.call("POST", "/v1/transactions/simulate", Auth::Session, Some(request))
    }

    pub fn get_transaction(&self, id: &str) -> Result<Transaction> {
        self.call("GET", &format!("/v1/transactions/{}", seg(id)), Auth::Session, None::<&()>)
    }

    /// The calling agent's transactions, newest first.
    pub fn list_transactions(&self, params: &ListParams) -> Result<Page<Transaction>> {
        let path = with_query("/v1/transactions", &page_query(params.cursor.as_deref(), params.limit));
        self.call("GET", &path, Auth::Session, None::<&()>)
    }

    /// `POST /v1/transactions/{id}/cancel`: cancels one of the agent's QUEUED (DELAY or APPROVAL) transactions.
    pub fn cancel_transaction(&self, id: &str) -> Result<Transaction> {
        self.call("POST", &format!("/v1/transactions/{}/cancel", seg(id)), Auth::Session, None::<&()>)
    }

    // ----- owner decisions --------------------------------------------------------------------------------

    /// `GET /v1/nonce` (public): a single-use nonce for [`approval_message`].
    pub fn nonce(&self) -> Result<Nonce> {
        self.call("GET", "/v1/nonce", Auth::Public, None::<&()>)
    }

    /// `POST /v1/transactions/{id}/approve` (ownerAuth). `message` is the signed text (see [`approval_message`]),
    /// sent base64-encoded; `signature` the owner's signature of it: from an EVM owner the EIP-191
    /// `personal_sign` signature, `0x` + 65 bytes hex; from a Solana owner the ed25519 signature of the text's
    /// bytes, base58 of 64 bytes. The client's own credentials are not sent.
    pub fn approve_transaction(
        &self,
        id: &str,
        owner_address: &str,
        message: &str,
        signature: &str,
    ) -> Result<Transaction> {
        self.owner_decision(id, "approve", owner_address, message, signature)
    }

    /// `POST /v1/transactions/{id}/reject` (ownerAuth); arguments as for [`Client::approve_transaction`].
    pub fn reject_transaction(
        &self,
        id: &str,
        owner_address: &str,
        message: &str,
        signature: &str,
    ) -> Result<Transaction> {
        self.owner_decision(id, "reject", owner_address, message, signature)
    }

    fn owner_decision(
        &self,
        id: &str,
        action: &str,
        owner_address: &str,
        message: &str,
        signature: &str,
    ) -> Result<Transaction> {
        let encoded = BASE64_STANDARD.encode(message.as_bytes());
        let headers = owner_headers(owner_address, &encoded, signature);
        let path = format!("/v1/transactions/{}/{action}", seg(id));
        self.call_with_headers("POST", &path, Auth::Owner, &headers, None::<&()>)
    }

    // ----- kill switch ------------------------------------------------------------------------------------

    /// `GET /v1/admin/kill-switch` (public).
    pub fn kill_switch_status(&self) -> Result<KillSwitch> {
        self.call("GET", "/v1/admin/kill-switch", Auth::Public, None::<&()>)
    }

    /// `POST /v1/admin/kill-switch` (master): ACTIVE → SUSPENDED, or SUSPENDED → LOCKED.
    pub fn activate_kill_switch(&self, reason: Option<&str>) -> Result<KillSwitch> {
        let body = ActivateKillSwitch { reason: reason.map(str::to_owned) };
        self.call("POST", "/v1/admin/kill-switch", Auth::Master, Some(&body))
    }

    /// `POST /v1/admin/recover` (master): back to ACTIVE.
    pub fn recover(&self) -> Result<KillSwitch> {
        self.call("POST", "/v1/admin/recover", Auth::Master, None::<&()>)
    }

    /// `POST /v1/admin/transactions/{id}/cancel` (master): cancels any agent's transaction not yet signed
    /// (PENDING, QUEUED or EXECUTING); a signed or final one is `INVALID_STATE_TRANSITION`.
    pub fn admin_cancel_transaction(&self, id: &str) -> Result<Transaction> {
        self.call("POST", &format!("/v1/admin/transactions/{}/cancel", seg(id)), Auth::Master, None::<&()>)
    }

    // ----- audit (master) ---------------------------------------------------------------------------------

    /// `GET /v1/audit-logs`, newest first.
    pub fn audit_logs(&self, filter: &AuditLogFilter) -> Result<Page<AuditLog>> {
        self.call("GET", &with_query("/v1/audit-logs", &audit_query(filter)), Auth::Master, None::<&()>)
    }

    /// `GET /v1/audit-logs/stats`: counts over `[from, to]` (default the last day) by event type, severity and
    /// agent, with a series per `bucket` (`hour` by default, or `day`).
    pub fn audit_stats(
        &self,
        agent_id: Option<&str>,
        from: Option<i64>,
        to: Option<i64>,
        bucket: Option<&str>,
    ) -> Result<AuditStats> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(agent_id) = agent_id {
            query.push(("agent_id", agent_id.to_owned()));
        }
        if let Some(from) = from {
            query.push(("from", from.to_string()));
        }
        if let Some(to) = to {
            query.push(("to", to.to_string()));
        }
        if let Some(bucket) = bucket {
            query.push(("bucket", bucket.to_owned()));
        }
        self.call("GET", &with_query("/v1/audit-logs/stats", &query), Auth::Master, None::<&()>)
    }
}

/// The text an owner signs to approve (`approve = true`) or reject a transaction with the nonce from
/// [`Client::nonce`]: `WAIaaS: <approve|reject> transaction <id>\nNonce: <nonce>`. It mirrors the daemon's
/// format exactly; the daemon refuses any other text.
pub fn approval_message(tx_id: &str, approve: bool, nonce: &str) -> String {
    let action = if approve { "approve" } else { "reject" };
    format!("WAIaaS: {action} transaction {tx_id}\nNonce: {nonce}")
}

/// The ownerAuth headers.
fn owner_headers<'a>(address: &'a str, encoded_message: &'a str, signature: &'a str) -> [(&'static str, &'a str); 3] {
    [(OWNER_ADDRESS_HEADER, address), (OWNER_MESSAGE_HEADER, encoded_message), (OWNER_SIGNATURE_HEADER, signature)]
}

/// Maps a non-2xx exchange to [`ClientError::Api`].
fn api_error_from(status: u16, headers: &[(String, String)], body: &[u8]) -> ClientError {
    let request_id =
        headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("x-request-id")).map(|(_, v)| v.as_str());
    api_error(status, request_id, body)
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// Percent-encodes one path segment.
fn seg(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

fn push(query: &mut Vec<(&'static str, String)>, key: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        query.push((key, value.to_owned()));
    }
}

fn page_query(cursor: Option<&str>, limit: Option<u32>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    push(&mut query, "cursor", cursor);
    if let Some(limit) = limit {
        query.push(("limit", limit.to_string()));
    }
    query
}

fn audit_query(filter: &AuditLogFilter) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    push(&mut query, "agent_id", filter.agent_id.as_deref());
    for event_type in &filter.event_types {
        query.push(("event_type", event_type.clone()));
    }
    push(&mut query, "severity", filter.severity.as_deref());
    push(&mut query, "tx_id", filter.tx_id.as_deref());
    push(&mut query, "actor", filter.actor.as_deref());
    if let Some(from) = filter.from {
        query.push(("from", from.to_string()));
    }
    if let Some(to) = filter.to {
        query.push(("to", to.to_string()));
    }
    query.extend(page_query(filter.cursor.as_deref(), filter.limit));
    query
}

/// `path?k=v&...` with every value percent-encoded; `path` alone when there are no parameters.
fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, UNRESERVED))).collect();
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_query_repeats_event_type_and_encodes_values() {
        let filter = AuditLogFilter {
            agent_id: Some("a b".into()),
            event_types: vec!["TX_CONFIRMED".into(), "POLICY_DENIED".into()],
            severity: Some("warning".into()),
            actor: Some("session:x/y".into()),
            from: Some(1),
            to: Some(2),
            cursor: Some("abc+/=".into()),
            limit: Some(10),
            ..AuditLogFilter::default()
        };
        assert_eq!(
            with_query("/v1/audit-logs", &audit_query(&filter)),
            "/v1/audit-logs?agent_id=a%20b&event_type=TX_CONFIRMED&event_type=POLICY_DENIED&severity=warning\
             &actor=session%3Ax%2Fy&from=1&to=2&cursor=abc%2B%2F%3D&limit=10"
        );
        assert_eq!(with_query("/v1/audit-logs", &audit_query(&AuditLogFilter::default())), "/v1/audit-logs");
    }

    #[test]
    fn path_segments_are_encoded_and_base_url_trimmed() {
        assert_eq!(seg("../x"), "..%2Fx");
        assert_eq!(Client::new("http://h:1/").base_url(), "http://h:1");
    }

    #[test]
    fn debug_redacts_credentials() {
        let client = Client::new("http://h").with_master_password("hunter2").with_session_token("wai_sess_t");
        let text = format!("{client:?}");
        assert!(!text.contains("hunter2") && !text.contains("wai_sess_t"), "{text}");
    }

    /// A one-shot HTTP server on loopback: answers `response_body` with `status` to the first request and hands
    /// back that request's text (head and body).
    fn one_shot(status: u16, response_body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read");
                head.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{response_body}",
                response_body.len()
            );
            reader.get_mut().write_all(response.as_bytes()).expect("write");
            head + &String::from_utf8_lossy(&body)
        });
        (base, handle)
    }

    const TX: &str = r#"{"id":"t1","agentId":"a","type":"TRANSFER","status":"QUEUED","tier":"APPROVAL","network":"anvil",
        "to":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","amount":"1","request":{},"approvedAt":5,"createdAt":1,
        "updatedAt":5}"#;

    #[test]
    fn owner_decisions_send_only_the_owner_headers_with_the_message_in_base64() {
        let (base, server) = one_shot(200, TX);
        let client = Client::new(base).with_session_token("wai_sess_secret").with_master_password("hunter2");
        let message = approval_message("t1", true, "abc");
        assert_eq!(message, "WAIaaS: approve transaction t1\nNonce: abc");
        let tx = client.approve_transaction("t1", "0xowner", &message, "0xsig").expect("approve");
        assert_eq!((tx.status.as_str(), tx.approved_at), ("QUEUED", Some(5)));
        let request = server.join().expect("server").to_ascii_lowercase();
        assert!(request.starts_with("post /v1/transactions/t1/approve http/1.1\r\n"), "{request}");
        let encoded = BASE64_STANDARD.encode(&message).to_ascii_lowercase();
        for header in ["x-owner-address: 0xowner", &format!("x-owner-message: {encoded}"), "x-owner-signature: 0xsig"] {
            assert!(request.contains(&format!("{header}\r\n")), "{header} missing in {request}");
        }
        assert!(!request.contains("authorization") && !request.contains("x-master-password"), "{request}");

        let (base, server) = one_shot(200, TX);
        Client::new(base).reject_transaction("t 1", "0xo", "m", "0xs").expect("reject");
        assert!(server.join().expect("server").starts_with("POST /v1/transactions/t%201/reject "));
    }

    #[test]
    fn send_posts_the_typed_body_and_decodes_denials() {
        let (base, server) = one_shot(201, r#"{"id":"t1","status":"PENDING"}"#);
        let client = Client::new(base).with_session_token("wai_sess_x");
        let sent = client.send_transaction(&TxRequest::transfer("0xabc", 5u8)).expect("send");
        assert_eq!(sent, SendResult { id: "t1".into(), status: "PENDING".into() });
        let request = server.join().expect("server");
        assert!(request.starts_with("POST /v1/transactions/send "), "{request}");
        assert!(request.to_ascii_lowercase().contains("authorization: bearer wai_sess_x\r\n"), "{request}");
        let body = request.split("\r\n\r\n").nth(1).expect("body");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).expect("json"),
            serde_json::json!({"type": "TRANSFER", "to": "0xabc", "amount": "5"})
        );

        let (base, server) = one_shot(
            403,
            r#"{"code":"POLICY_DENIED","message":"not whitelisted","retryable":false,"requestId":"r",
                "details":{"transactionId":"t2","reasonCode":"ADDRESS_NOT_WHITELISTED","matchedPolicyIds":["p"]}}"#,
        );
        let err = Client::new(base)
            .send_transaction_raw(&serde_json::json!({"type": "TRANSFER", "to": "0xabc", "amount": "5"}))
            .unwrap_err();
        server.join().expect("server");
        match err {
            ClientError::Api { status: 403, code, details: Some(details), .. } => {
                assert_eq!(code, "POLICY_DENIED");
                assert_eq!(details["reasonCode"], "ADDRESS_NOT_WHITELISTED");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simulate_posts_the_body_to_the_simulate_endpoint() {
        const ANSWER: &str = r#"{"success":false,
            "policy":{"allowed":false,"tier":"INSTANT","reasonCode":"RATE_LIMIT_EXCEEDED","matchedPolicyIds":["p"]},
            "fee":{"estimatedFee":"0","feeSymbol":"ETH","feeDecimals":18,"gasLimit":0},
            "balanceChanges":[],"warnings":[],"simulation":{"success":false},
            "meta":{"chain":"ethereum","network":"anvil","transactionType":"TRANSFER","blockNumber":3,"durationMs":0.4}}"#;
        let body = serde_json::json!({"type": "TRANSFER", "to": "0xabc", "amount": "5", "extra": 1});
        for typed in [false, true] {
            let (base, server) = one_shot(200, ANSWER);
            let client = Client::new(base).with_session_token("wai_sess_x");
            let result =
                if typed { client.simulate_typed(&TxRequest::transfer("0xabc", 5u8)) } else { client.simulate(&body) }
                    .expect("simulate");
            assert_eq!(result.policy.reason_code.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
            let request = server.join().expect("server");
            assert!(request.starts_with("POST /v1/transactions/simulate "), "{request}");
            assert!(request.to_ascii_lowercase().contains("authorization: bearer wai_sess_x\r\n"), "{request}");
            let sent: serde_json::Value =
                serde_json::from_str(request.split("\r\n\r\n").nth(1).expect("body")).expect("json");
            let expected = if typed {
                serde_json::json!({"type": "TRANSFER", "to": "0xabc", "amount": "5"})
            } else {
                body.clone()
            };
            assert_eq!(sent, expected, "the body goes through unchanged");
        }
    }

    #[test]
    fn token_balance_passes_the_token_as_a_query_parameter() {
        let (base, server) =
            one_shot(200, r#"{"agentId":"a","network":"anvil","address":"0x1","token":"0x2","balance":"42"}"#);
        let balance = Client::new(base).with_session_token("wai_sess_x").wallet_token_balance("0x2").expect("balance");
        assert_eq!(balance.balance, "42");
        assert!(server.join().expect("server").starts_with("GET /v1/wallet/balance?token=0x2 "));
    }

    #[test]
    fn unreachable_daemon_is_a_transport_error() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let err = Client::new("http://127.0.0.1:1").health().unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    }
}
