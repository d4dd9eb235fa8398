//! The MCP tools: one per agent-side REST call, each a thin relay through `waiaas-client`.
//!
//! | tool | input | REST call |
//! |---|---|---|
//! | `waiaas_get_address` | none | `GET /v1/wallet/address` |
//! | `waiaas_get_balance` | `token?` | `GET /v1/wallet/balance[?token=]` |
//! | `waiaas_send_transaction` | the send body | `POST /v1/transactions/send` |
//! | `waiaas_simulate_transaction` | the send body | `POST /v1/transactions/simulate` |
//! | `waiaas_get_transaction` | `id` | `GET /v1/transactions/{id}` |
//! | `waiaas_list_transactions` | `cursor?`, `limit?` | `GET /v1/transactions` |
//!
//! The transaction tools take the REST body itself as their arguments (`{"type": "TRANSFER", "to", "amount",
//! ...}`) and pass it on **unchanged**: the daemon's one strict parser judges it (unknown fields refused), so the
//! MCP path can never accept what the REST path refuses, nor the other way round.
//!
//! A result is the daemon's answer as JSON (text content, and the same object as structured content). A daemon
//! error is a tool error (`isError: true`) whose JSON carries `code`, `message`, `retryable` and, when the daemon
//! sent them, `hint`, `details` and `requestId`, so the agent can read why and react. Arguments that do not fit
//! a tool's input type are a tool error too (`INVALID_ARGUMENTS`, nothing sent; the typed inputs refuse unknown
//! fields, so a typo never silently changes the call); an unreachable daemon is `DAEMON_UNREACHABLE`. JSON-RPC
//! protocol errors are left for unknown tools and failures of this server itself.
//!
//! The input schemas are the daemon's own constraints, taken from its OpenAPI document (see [`crate::schema`]):
//! the transaction tools state the request union (each variant refusing unknown fields), `limit` its 1–200
//! bounds, `id` its UUID format. A value the schema refuses but that still fits the input type (a `limit` of 0,
//! a malformed id or address) is relayed, so the agent reads the daemon's `VALIDATION_FAILED` naming the field.
//!
//! The SDK is blocking (ureq); every call runs on tokio's blocking pool.

// The SDK's `ClientError` is a flat ~136-byte enum (easy to match); every call here is a network round trip.
#![allow(clippy::result_large_err, reason = "the SDK's flat, matchable error on a network-bound relay")]

use std::borrow::Cow;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waiaas_client::{Client, ClientError, ListParams};

use crate::{McpConfig, schema};

/// Code of the tool error for a daemon that cannot be reached (connection refused, timeout).
pub const DAEMON_UNREACHABLE: &str = "DAEMON_UNREACHABLE";
/// Code of the tool error for arguments that do not match the tool's input schema (nothing was sent).
pub const INVALID_ARGUMENTS: &str = "INVALID_ARGUMENTS";
/// Code of the tool error for a 2xx answer this server could not decode (daemon and server of different versions).
pub const INVALID_RESPONSE: &str = "INVALID_RESPONSE";

/// `waiaas_get_balance` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceInput {
    /// An ERC-20 token contract address (`0x` + 40 hex digits); omit it for the native coin (ETH).
    #[serde(default)]
    pub token: Option<String>,
}

impl JsonSchema for BalanceInput {
    fn schema_name() -> Cow<'static, str> {
        "BalanceInput".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let token = schema::parameter("/v1/wallet/balance", "get", "token");
        from_value(schema::object(None, vec![("token", token, false)]))
    }
}

/// `waiaas_get_transaction` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionIdInput {
    /// The transaction id returned by `waiaas_send_transaction`.
    pub id: String,
}

impl JsonSchema for TransactionIdInput {
    fn schema_name() -> Cow<'static, str> {
        "TransactionIdInput".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let (path, method) = ("/v1/transactions/{id}", "get");
        let mut id = schema::parameter(path, method, "id");
        id["description"] = json!("The transaction id returned by waiaas_send_transaction (a UUID).");
        from_value(schema::object(None, vec![("id", id, schema::parameter_required(path, method, "id"))]))
    }
}

/// `waiaas_list_transactions` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// `nextCursor` of the previous page; omit it for the newest transactions.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (the daemon's bounds; its default when absent).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl JsonSchema for ListInput {
    fn schema_name() -> Cow<'static, str> {
        "ListInput".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let (path, method) = ("/v1/transactions", "get");
        let properties = ["cursor", "limit"]
            .into_iter()
            .map(|name| (name, schema::parameter(path, method, name), schema::parameter_required(path, method, name)))
            .collect();
        from_value(schema::object(None, properties))
    }
}

/// A schema built as JSON (always an object here).
fn from_value(value: Value) -> schemars::Schema {
    schemars::Schema::try_from(value).expect("a tool input schema is a JSON object")
}

/// The body of `POST /v1/transactions/send` and `/simulate`, kept as the JSON object the agent wrote. Its schema
/// documents the fields; deserializing never drops, renames or checks anything (the daemon does).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct TxBody(pub JsonObject);

impl JsonSchema for TxBody {
    fn schema_name() -> Cow<'static, str> {
        "TransactionRequest".into()
    }

    /// The request union of `POST /v1/transactions/send` from the daemon's document (each variant refuses unknown
    /// fields), with `type` and its values also stated at the top for clients that do not read `oneOf`.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut body = schema::request_body("/v1/transactions/send", "post");
        let types: Vec<Value> = body["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|variant| variant["properties"]["type"]["enum"].get(0).cloned())
            .collect();
        body["properties"] =
            json!({"type": {"type": "string", "enum": types, "description": "The kind of transaction."}});
        body["required"] = json!(["type"]);
        from_value(body)
    }
}

/// The MCP server: the tool router over one authenticated SDK client.
#[derive(Clone)]
pub struct WaiaasTools {
    client: Client,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for WaiaasTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaiaasTools").field("client", &self.client).finish_non_exhaustive()
    }
}

#[tool_router]
impl WaiaasTools {
    pub fn new(config: &McpConfig) -> Self {
        WaiaasTools { client: config.client(), tool_router: Self::tool_router() }
    }

    #[tool(
        name = "waiaas_get_address",
        description = "The agent wallet's address, chain and network.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_address(&self) -> Result<CallToolResult, ErrorData> {
        self.relay(|client| client.wallet_address()).await
    }

    #[tool(
        name = "waiaas_get_balance",
        description = "The agent wallet's balance as a decimal string in the smallest unit: the native coin \
            (with symbol and decimals), or one ERC-20 token when `token` is given.",
        annotations(read_only_hint = true)
    )]
    async fn get_balance(&self, Parameters(input): Parameters<BalanceInput>) -> Result<CallToolResult, ErrorData> {
        match input.token {
            Some(token) => self.relay(move |client| client.wallet_token_balance(&token)).await,
            None => self.relay(|client| client.wallet_balance()).await,
        }
    }

    #[tool(
        name = "waiaas_send_transaction",
        description = "Ask the daemon to sign and send a transaction from the agent wallet. The policy engine \
            decides: run now (INSTANT, NOTIFY), queue (DELAY, cancellable), wait for the owner (APPROVAL), or \
            deny (error POLICY_DENIED with a reasonCode). Returns {id, status}; the rest runs asynchronously: \
            poll waiaas_get_transaction. Simulate first with waiaas_simulate_transaction.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false)
    )]
    async fn send_transaction(&self, Parameters(body): Parameters<TxBody>) -> Result<CallToolResult, ErrorData> {
        let body = Value::Object(body.0);
        self.relay(move |client| client.send_transaction_raw(&body)).await
    }

    #[tool(
        name = "waiaas_simulate_transaction",
        description = "Dry-run a transaction request (same input as waiaas_send_transaction) without side \
            effects: the policy verdict and tier, the fee estimate, balance changes, warnings and the on-chain \
            simulation. `success` is true only if a real send would be accepted and succeed.",
        annotations(read_only_hint = true)
    )]
    async fn simulate_transaction(&self, Parameters(body): Parameters<TxBody>) -> Result<CallToolResult, ErrorData> {
        let body = Value::Object(body.0);
        self.relay(move |client| client.simulate(&body)).await
    }

    #[tool(
        name = "waiaas_get_transaction",
        description = "One of the agent's transactions: status (PENDING, QUEUED, EXECUTING, SUBMITTED, \
            CONFIRMED, FAILED, CANCELLED, EXPIRED), tier, txHash, error.",
        annotations(read_only_hint = true)
    )]
    async fn get_transaction(
        &self,
        Parameters(input): Parameters<TransactionIdInput>,
    ) -> Result<CallToolResult, ErrorData> {
        self.relay(move |client| client.get_transaction(&input.id)).await
    }

    #[tool(
        name = "waiaas_list_transactions",
        description = "The agent's transactions, newest first: {data, nextCursor, hasMore}.",
        annotations(read_only_hint = true)
    )]
    async fn list_transactions(&self, Parameters(input): Parameters<ListInput>) -> Result<CallToolResult, ErrorData> {
        let params = ListParams { cursor: input.cursor, limit: input.limit };
        self.relay(move |client| client.list_transactions(&params)).await
    }
}

impl WaiaasTools {
    /// Runs one blocking SDK call on the blocking pool and turns its outcome into a tool result.
    async fn relay<T, F>(&self, call: F) -> Result<CallToolResult, ErrorData>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Client) -> waiaas_client::Result<T> + Send + 'static,
    {
        let client = self.client.clone();
        let outcome = tokio::task::spawn_blocking(move || call(&client)).await.map_err(|e| {
            tracing::error!(error = %e, "a daemon call panicked or was cancelled");
            ErrorData::internal_error("the daemon call did not complete", None)
        })?;
        match outcome {
            Ok(answer) => {
                let value = serde_json::to_value(answer)
                    .map_err(|e| ErrorData::internal_error(format!("cannot encode the daemon's answer: {e}"), None))?;
                Ok(CallToolResult::structured(value))
            }
            Err(error) => {
                tracing::info!(error = %error, "daemon call failed");
                Ok(CallToolResult::structured_error(error_json(&error, self.client.base_url())))
            }
        }
    }
}

/// The JSON of a tool error: the daemon's error body for an API error, a local code otherwise.
pub fn error_json(error: &ClientError, base_url: &str) -> Value {
    match error {
        ClientError::Api { status, code, message, retryable, details, request_id, hint } => {
            let mut body = json!({"code": code, "message": message, "status": status, "retryable": retryable});
            for (key, value) in [("hint", hint.clone().map(Value::String)), ("details", details.clone())] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            if let Some(id) = request_id {
                body["requestId"] = Value::String(id.clone());
            }
            body
        }
        ClientError::Transport(cause) => json!({
            "code": DAEMON_UNREACHABLE,
            "message": format!("cannot reach the WAIaaS daemon at {base_url}: {cause}"),
            "retryable": true,
            "hint": "start the daemon (`waiaas start`), or point WAIAAS_MCP_URL at it",
        }),
        ClientError::Decode(cause) => json!({
            "code": INVALID_RESPONSE,
            "message": format!("unexpected answer from the daemon: {cause}"),
            "retryable": false,
            "hint": "the daemon and this MCP server may be different versions",
        }),
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "waiaas",
    instructions = "WAIaaS wallet tools for one AI agent. The daemon holds the private key; you hold a session. \
        Amounts are decimal strings in the smallest unit (wei). Simulate a transaction before sending it; a send \
        returns {id, status} and completes asynchronously (poll waiaas_get_transaction). Errors carry a `code`, a \
        `message` and often a `hint`."
)]
impl ServerHandler for WaiaasTools {
    /// Routes the call. rmcp answers arguments that do not match a tool's input type with a plain-text tool
    /// error; it is rewritten into this server's error JSON (`INVALID_ARGUMENTS`) so every tool error has one
    /// shape. The tools' own results always carry structured content, so only rmcp's errors lack it.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let response = self.tool_router.call(ToolCallContext::new(self, request, context)).await?;
        Ok(match response {
            CallToolResponse::Complete(result)
                if result.is_error == Some(true) && result.structured_content.is_none() =>
            {
                let message: Vec<&str> =
                    result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.as_str()).collect();
                CallToolResult::structured_error(json!({
                    "code": INVALID_ARGUMENTS,
                    "message": message.join("\n"),
                    "retryable": false,
                    "hint": "the arguments must match the tool's input schema",
                }))
                .into()
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_daemons_fields() {
        let error = ClientError::Api {
            status: 400,
            code: "VALIDATION_FAILED".into(),
            message: "unknown field `extra`".into(),
            retryable: false,
            details: Some(json!({"issues": [{"path": "extra", "message": "unknown field"}]})),
            request_id: Some("r-1".into()),
            hint: Some("check the request body".into()),
        };
        assert_eq!(
            error_json(&error, "http://h"),
            json!({"code": "VALIDATION_FAILED", "message": "unknown field `extra`", "status": 400,
                   "retryable": false, "hint": "check the request body", "requestId": "r-1",
                   "details": {"issues": [{"path": "extra", "message": "unknown field"}]}})
        );
        let bare = ClientError::Api {
            status: 502,
            code: "CHAIN_ERROR".into(),
            message: "node down".into(),
            retryable: true,
            details: None,
            request_id: None,
            hint: None,
        };
        assert_eq!(
            error_json(&bare, "http://h"),
            json!({"code": "CHAIN_ERROR", "message": "node down", "status": 502, "retryable": true})
        );
    }

    #[test]
    fn local_failures_get_their_own_codes() {
        let unreachable = error_json(&ClientError::Transport("connection refused".into()), "http://127.0.0.1:1");
        assert_eq!(unreachable["code"], DAEMON_UNREACHABLE);
        assert_eq!(unreachable["retryable"], true);
        assert!(unreachable["message"].as_str().unwrap().contains("http://127.0.0.1:1"), "{unreachable}");
        assert!(unreachable["hint"].as_str().unwrap().contains("WAIAAS_MCP_URL"), "{unreachable}");
        let decode = error_json(&ClientError::Decode("missing field `id`".into()), "http://h");
        assert_eq!((decode["code"].as_str(), decode["retryable"].as_bool()), (Some(INVALID_RESPONSE), Some(false)));
    }

    #[test]
    fn transaction_bodies_pass_through_unchanged() {
        let raw = json!({"type": "TRANSFER", "to": "0xabc", "amount": 5, "token": null, "surprise": [1]});
        let body: TxBody = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(Value::Object(body.0), raw);
    }

    #[test]
    fn every_tool_has_an_object_input_schema() {
        let tools = WaiaasTools::tool_router().list_all();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "waiaas_get_address",
                "waiaas_get_balance",
                "waiaas_get_transaction",
                "waiaas_list_transactions",
                "waiaas_send_transaction",
                "waiaas_simulate_transaction",
            ]
        );
        for tool in &tools {
            assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
            assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()), "{}", tool.name);
        }
        let send = tools.iter().find(|t| t.name == "waiaas_send_transaction").unwrap();
        assert_eq!(send.input_schema.get("required"), Some(&json!(["type"])));
        assert!(send.input_schema.get("additionalProperties").is_none(), "the daemon judges unknown fields");
        let balance = tools.iter().find(|t| t.name == "waiaas_get_balance").unwrap();
        assert!(balance.input_schema["properties"].get("token").is_some(), "{:?}", balance.input_schema);
        assert_eq!(balance.input_schema.get("additionalProperties"), Some(&json!(false)));
        let list = tools.iter().find(|t| t.name == "waiaas_list_transactions").unwrap();
        let limit = &list.input_schema["properties"]["limit"];
        assert_eq!((limit["minimum"].as_i64(), limit["maximum"].as_i64()), (Some(1), Some(200)), "{limit}");
        assert!(limit.get("format").is_none(), "no OpenAPI-only format: {limit}");
        assert_eq!(list.input_schema.get("additionalProperties"), Some(&json!(false)));
        let get = tools.iter().find(|t| t.name == "waiaas_get_transaction").unwrap();
        assert_eq!(get.input_schema["properties"]["id"]["format"], "uuid");
        assert_eq!(get.input_schema.get("required"), Some(&json!(["id"])));
        let variants = send.input_schema["oneOf"].as_array().expect("the request union");
        assert!(variants.iter().all(|v| v["additionalProperties"] == json!(false)), "{variants:?}");
    }
}
