//! Tests of [`crate::app`] through the front door (poem's test client), over a core whose ports are `mockall`
//! mocks and small in-memory maps. They pin the HTTP contract: auth refusals, the error shape of every kind of
//! failure, the Host guard, the kill switch leaving admin and audit reachable, and the transaction and owner
//! endpoints (strict send bodies, policy denials passed through, owner signatures).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::Endpoint;
use poem::http::StatusCode;
use poem::test::{TestClient, TestRequestBuilder};
use serde_json::{Value, json};
use waiaas_core::domain::{
    Address, Agent, AgentStatus, Chain, ChainFamily, KillSwitch, KillSwitchState, Policy, PolicyRules, Session, TxKind,
    TxStatus,
};
use waiaas_core::event::{EventType, Severity};
use waiaas_core::policy_engine::Tier;
use waiaas_core::ports::testing::{CountingEntropy, FixedClock, RecordingSink};
use waiaas_core::ports::{
    AdmissionSnapshot, AuditRecord, MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore, MockKillSwitchRepo,
    MockPolicyRepo, MockSessionRepo, MockSettingsRepo, MockTxBroadcaster, MockTxRepo, TxRecord,
};
use waiaas_core::prices::StaticPriceTable;
use waiaas_core::services::owner::approval_message;
use waiaas_core::services::{CoreConfig, Ports, Waiaas};
use waiaas_core::{AgentId, Amount, PolicyId, SessionId, TxId, UnixSeconds};

use crate::{ServerState, app};

const PASSWORD: &str = "correct horse battery staple";
const NOW: i64 = 1_700_000_000;

/// The mocks a test may program before the core is unlocked.
struct Mocks {
    agents: MockAgentRepo,
    sessions: MockSessionRepo,
    audit: MockAuditRepo,
    transactions: MockTxRepo,
    chain: MockChainAdapter,
    kill_switch: KillSwitch,
}

impl Default for Mocks {
    fn default() -> Self {
        Mocks {
            agents: MockAgentRepo::new(),
            sessions: MockSessionRepo::new(),
            audit: MockAuditRepo::new(),
            transactions: MockTxRepo::new(),
            chain: MockChainAdapter::new(),
            kill_switch: KillSwitch::default(),
        }
    }
}

fn agent(id: AgentId) -> Agent {
    Agent {
        id,
        name: "bot".into(),
        chain: Chain::Ethereum,
        network: "anvil".into(),
        address: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<Address>().expect("address"),
        status: AgentStatus::Active,
        owner_address: None,
        created_at: UnixSeconds(NOW),
        updated_at: UnixSeconds(NOW),
    }
}

/// Settings kept in a map, so unlock stores and finds the password hash and the token key.
fn settings() -> MockSettingsRepo {
    let map: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut settings = MockSettingsRepo::new();
    let read = map.clone();
    settings.expect_get().returning(move |key| Ok(read.lock().expect("settings").get(key).cloned()));
    settings.expect_put().returning(move |key, value| {
        map.lock().expect("settings").insert(key.to_owned(), value.to_owned());
        Ok(())
    });
    settings
}

async fn client(mocks: Mocks) -> TestClient<impl Endpoint> {
    let mut kill_switch = MockKillSwitchRepo::new();
    let state = mocks.kill_switch.clone();
    kill_switch.expect_get().returning(move || Ok(state.clone()));
    let (mut agents, mut sessions) = (mocks.agents, mocks.sessions);
    agents.expect_count_by_status().returning(|_| Ok(0));
    sessions.expect_count_active().returning(|_| Ok(0));
    let ports = Ports {
        clock: Arc::new(FixedClock::at(NOW)),
        entropy: Arc::new(CountingEntropy::default()),
        agents: Arc::new(agents),
        sessions: Arc::new(sessions),
        policies: Arc::new({
            // The admission's history window; the decisions themselves read the snapshot's policies.
            let mut policies = MockPolicyRepo::new();
            policies.expect_in_force().returning(|_| Ok(Vec::new()));
            policies
        }),
        settings: Arc::new(settings()),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(mocks.audit),
        keystore: Arc::new(MockKeyStore::new()),
        chain: Arc::new(mocks.chain),
        broadcaster: Arc::new(MockTxBroadcaster::new()),
        transactions: Arc::new({
            let mut transactions = mocks.transactions;
            transactions.expect_count_non_final().returning(|| Ok(Vec::new()));
            transactions
        }),
        prices: Arc::new(StaticPriceTable::default()),
        events: Arc::new(RecordingSink::default()),
        metrics: Arc::new(waiaas_core::ports::NoMetrics),
    };
    let core = Waiaas::unlock(ports, CoreConfig::default(), PASSWORD).await.expect("unlock");
    let state = ServerState {
        core: Arc::new(core),
        schema_version: 3,
        started_at: Instant::now(),
        allowed_hosts: vec!["wallet.internal".into()],
        metrics: crate::metrics::MetricsExport::disabled(),
        acl: crate::acl::AclHandle::default(),
    };
    TestClient::new(app(state)).default_header("host", "localhost:3100")
}

/// Sends a request and returns the status, the `X-Request-Id` header and the JSON body.
async fn send<E: Endpoint>(req: TestRequestBuilder<'_, E>) -> (StatusCode, String, Value) {
    let resp = req.send().await.0;
    let status = resp.status();
    let request_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = resp.into_body().into_vec().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    (status, request_id, body)
}

/// Asserts the error shape: status, code, a UUID v4 request id equal to the header.
#[track_caller]
fn assert_error(got: &(StatusCode, String, Value), status: u16, code: &str) {
    let (got_status, header, body) = got;
    assert_eq!((got_status.as_u16(), body["code"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(body["requestId"].as_str(), Some(header.as_str()));
    assert_eq!(uuid::Uuid::parse_str(header).expect("request id").get_version_num(), 4);
    assert!(body["message"].is_string() && body["retryable"].is_boolean(), "{body}");
}

/// Adds the master password.
fn master<E>(req: TestRequestBuilder<'_, E>) -> TestRequestBuilder<'_, E> {
    req.header("x-master-password", PASSWORD)
}

#[track_caller]
fn issue_paths(body: &Value) -> Vec<String> {
    body["details"]["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["path"].as_str().expect("path").to_owned())
        .collect()
}

#[tokio::test]
async fn health_is_public_and_carries_a_request_id() {
    let cli = client(Mocks::default()).await;
    let (status, request_id, body) = send(cli.get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["schemaVersion"], 3);
    assert!(body["uptimeSeconds"].is_u64());
    assert!(uuid::Uuid::parse_str(&request_id).is_ok());
}

#[tokio::test]
async fn host_guard_refuses_foreign_and_missing_hosts() {
    let cli = client(Mocks::default()).await;
    assert_error(&send(cli.get("/health").header("host", "evil.example")).await, 403, "HOST_NOT_ALLOWED");
    assert_error(&send(cli.get("/health").header("host", "evil.example:3100")).await, 403, "HOST_NOT_ALLOWED");
    assert_eq!(send(cli.get("/health").header("host", "127.0.0.1:3100")).await.0, StatusCode::OK);
    assert_eq!(send(cli.get("/health").header("host", "[::1]:3100")).await.0, StatusCode::OK);
    assert_eq!(send(cli.get("/health").header("host", "wallet.internal")).await.0, StatusCode::OK);
    // Refused before authentication or routing.
    assert_error(&send(cli.get("/nope").header("host", "evil.example")).await, 403, "HOST_NOT_ALLOWED");

    let mut bare = client(Mocks::default()).await;
    bare.upsert_default_header("host", "");
    assert_error(&send(bare.get("/health")).await, 403, "HOST_NOT_ALLOWED");
}

/// Sends a request and returns the status, one response header and the JSON body.
async fn send_for_header<E: Endpoint>(req: TestRequestBuilder<'_, E>, header: &str) -> (StatusCode, String, Value) {
    let resp = req.send().await.0;
    let status = resp.status();
    let value = resp.headers().get(header).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = resp.into_body().into_vec().await.expect("body");
    (status, value, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn unknown_routes_are_not_found_and_other_methods_not_allowed() {
    let cli = client(Mocks::default()).await;
    assert_error(&send(cli.get("/v1/nope")).await, 404, "NOT_FOUND");
    assert_error(&send(cli.post("/v1/agents/x/y/z")).await, 404, "NOT_FOUND");
    let agent = "/v1/agents/0190a000-0000-7000-8000-000000000000";
    for (req, allow) in [
        (cli.post("/health"), "GET"),
        (cli.post("/openapi.json"), "GET"),
        (cli.put("/metrics"), "GET"),
        (master(cli.delete("/v1/agents")), "GET, POST"),
        (master(cli.post(agent)), "GET, DELETE"),
        // A literal segment wins over a parameter, as in the router: `/v1/transactions/{id}` (GET) does not
        // make GET one of `/v1/transactions/send`'s methods.
        (cli.get("/v1/transactions/send"), "POST"),
        (cli.options("/v1/transactions/simulate"), "POST"),
    ] {
        let (status, header, body) = send_for_header(req, "allow").await;
        assert_eq!((status.as_u16(), body["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")), "{body}");
        let mut listed: Vec<&str> = header.split(", ").collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = allow.split(", ").collect();
        expected.sort_unstable();
        assert_eq!(listed, expected, "Allow for {body}");
        assert_eq!(body["details"]["allowed"].as_array().map(Vec::len), Some(expected.len()));
    }
}

/// Every 401 carries a `WWW-Authenticate` challenge naming the scheme the route takes; a credential of the wrong
/// kind is a missing credential of the right kind (401 `WRONG_AUTH`), not a 403.
#[tokio::test]
async fn unauthorized_answers_name_the_scheme_the_route_takes() {
    let cli = client(Mocks::default()).await;
    let master_challenge = r#"X-Master-Password realm="waiaas""#;
    let bearer_challenge = r#"Bearer realm="waiaas""#;
    for (req, status, code, challenge) in [
        (cli.get("/v1/agents"), 401, "UNAUTHORIZED", master_challenge),
        (cli.get("/v1/agents").header("authorization", "Bearer wai_sess_x"), 401, "WRONG_AUTH", master_challenge),
        (cli.get("/v1/wallet/address"), 401, "UNAUTHORIZED", bearer_challenge),
        (cli.get("/v1/wallet/address").header("x-master-password", PASSWORD), 401, "WRONG_AUTH", bearer_challenge),
        (cli.get("/v1/wallet/balance").header("authorization", "Bearer nope"), 401, "INVALID_TOKEN", bearer_challenge),
        (
            cli.post("/v1/transactions/0190a000-0000-7000-8000-000000000000/approve"),
            401,
            "UNAUTHORIZED",
            r#"X-Owner-Signature realm="waiaas""#,
        ),
        (cli.get("/health"), 200, "", ""),
    ] {
        let (got, header, body) = send_for_header(req, "www-authenticate").await;
        assert_eq!(got.as_u16(), status, "{body}");
        if status == 401 {
            assert_eq!(body["code"], code);
        }
        assert_eq!(header, challenge, "{body}");
    }
}

/// A body over 1 MiB is 413 and a body not declared JSON is 415, each with its code; nothing reaches a handler.
#[tokio::test]
async fn oversized_and_mistyped_bodies_get_413_and_415() {
    let cli = client(Mocks::default()).await;
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(crate::body::MAX_BODY_BYTES));
    let got = send(master(cli.post("/v1/agents")).content_type("application/json").body(big)).await;
    assert_error(&got, 413, "PAYLOAD_TOO_LARGE");
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = master(cli.post("/v1/agents")).body(r#"{"name":"a","chain":"ethereum","network":"anvil"}"#);
        if let Some(content_type) = content_type {
            req = req.content_type(content_type);
        }
        assert_error(&send(req).await, 415, "UNSUPPORTED_MEDIA_TYPE");
    }
}

#[tokio::test]
async fn master_endpoints_refuse_missing_wrong_and_other_credentials() {
    let mut mocks = Mocks::default();
    mocks
        .audit
        .expect_append()
        .withf(|event| event.event_type == EventType::MasterAuthFailed && event.details["reason"] == "wrong_password")
        .times(1)
        .returning(|_| Ok(()));
    let cli = client(mocks).await;
    assert_error(&send(cli.get("/v1/agents")).await, 401, "UNAUTHORIZED");
    assert_error(&send(cli.get("/v1/agents").header("authorization", "Bearer wai_sess_x")).await, 401, "WRONG_AUTH");
    assert_error(
        &send(cli.get("/v1/agents").header("x-master-password", "wrong")).await,
        401,
        "INVALID_MASTER_PASSWORD",
    );
    // Authentication is decided before the body is looked at.
    assert_error(&send(cli.post("/v1/agents").body("{not json")).await, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn session_endpoints_refuse_missing_wrong_and_other_credentials() {
    let cli = client(Mocks::default()).await;
    assert_error(&send(cli.get("/v1/wallet/address")).await, 401, "UNAUTHORIZED");
    assert_error(&send(cli.get("/v1/wallet/address").header("x-master-password", PASSWORD)).await, 401, "WRONG_AUTH");
    assert_error(&send(cli.get("/v1/wallet/address").header("authorization", "Basic abc")).await, 401, "UNAUTHORIZED");
    assert_error(
        &send(cli.get("/v1/wallet/balance").header("authorization", "Bearer nope")).await,
        401,
        "INVALID_TOKEN",
    );
    assert_error(
        &send(cli.get("/v1/wallet/balance").header("authorization", "Bearer wai_sess_a.b.c")).await,
        401,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn bodies_and_parameters_fail_as_validation_errors() {
    let cli = client(Mocks::default()).await;

    let got =
        send(master(cli.post("/v1/agents")).content_type("application/json").body(r#"{"name":1,"extra":true}"#)).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["name", "chain", "network", "extra"]);

    let got = send(master(cli.post("/v1/agents")).content_type("application/json").body("{oops")).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["body"]);

    // A required body must be sent, even where `{}` would be valid (found by schemathesis: a PUT of a policy without
    // a body was accepted as "change nothing"); an optional one may be left out.
    for path in
        ["/v1/policies/0190a000-0000-7000-8000-000000000000", "/v1/agents/0190a000-0000-7000-8000-000000000000/owner"]
    {
        let got = send(master(cli.put(path))).await;
        assert_error(&got, 400, "VALIDATION_FAILED");
        assert_eq!(issue_paths(&got.2), ["body"], "{path}");
    }
    let got = send(master(cli.post("/v1/admin/backup"))).await;
    assert_ne!(got.2["code"], "VALIDATION_FAILED", "{}", got.2);

    for query in ["limit=abc", "limit=1.5", "limit=-1", "limit=", "limit=%2B5"] {
        let got = send(master(cli.get(format!("/v1/agents?{query}")))).await;
        assert_error(&got, 400, "VALIDATION_FAILED");
        assert_eq!(issue_paths(&got.2), ["limit"], "{query}");
    }
    // In range of the type but outside the page rules: the core's refusal, same shape.
    let got = send(master(cli.get("/v1/agents?limit=0"))).await;
    assert_eq!(issue_paths(&got.2), ["limit"]);

    let got = send(master(cli.get("/v1/agents/not-a-uuid"))).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["id"]);

    let got = send(master(cli.get("/v1/audit-logs?event_type=AGENT_CREATED&event_type=NOPE"))).await;
    assert_eq!(issue_paths(&got.2), ["event_type"]);
    let got = send(master(cli.get("/v1/audit-logs?from=yesterday"))).await;
    assert_eq!(issue_paths(&got.2), ["from"]);

    let got =
        send(master(cli.put("/v1/agents/0190a000-0000-7000-8000-000000000000/owner")).body_json(&json!({}))).await;
    assert_eq!(issue_paths(&got.2), ["ownerAddress"]);
    let got = send(
        master(cli.put("/v1/agents/0190a000-0000-7000-8000-000000000000/owner"))
            .body_json(&json!({"ownerAddress": "0x12"})),
    )
    .await;
    assert_eq!(issue_paths(&got.2), ["ownerAddress"]);

    let got = send(master(cli.post("/v1/policies")).body_json(&json!({"type": "NOPE", "rules": []}))).await;
    assert_eq!(issue_paths(&got.2), ["type", "rules"]);

    // The document's patterns are enforced on their field (found by schemathesis: `""` was refused by the core
    // while the document allowed it).
    let got = send(master(cli.post("/v1/admin/backup")).body_json(&json!({"outputDir": ""}))).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["outputDir"]);
    let got = send(
        master(cli.put("/v1/agents/0190a000-0000-7000-8000-000000000000/owner"))
            .body_json(&json!({"ownerAddress": ""})),
    )
    .await;
    assert_eq!(issue_paths(&got.2), ["ownerAddress"]);
    // A required nullable field takes null (found by schemathesis: null was refused as missing).
    let got = send(
        master(cli.put("/v1/agents/0190a000-0000-7000-8000-000000000000/owner"))
            .body_json(&json!({"ownerAddress": null})),
    )
    .await;
    assert_ne!(got.2["code"], "VALIDATION_FAILED", "{}", got.2);
    // A webhook URL's scheme, host part and absent credentials are the document's pattern: what it refuses, the
    // daemon refuses (the URL parser alone would strip the space and take the credentials apart).
    for url in [" http://127.0.0.1:9/hook", "ftp://127.0.0.1/", "http://user:pw@127.0.0.1/", "http:///path"] {
        let body = json!({"url": url, "eventTypes": ["*"]});
        let got = send(master(cli.post("/v1/webhooks")).body_json(&body)).await;
        assert_error(&got, 400, "VALIDATION_FAILED");
        assert_eq!(issue_paths(&got.2), ["url"], "{url}");
    }
    // So is the form of a session's allowed CIDR (the config parser would trim the space).
    let body = json!({"agentId": "0190a000-0000-7000-8000-000000000000",
                      "constraints": {"allowedCidrs": [" 10.0.0.0/8"]}});
    let got = send(master(cli.post("/v1/sessions")).body_json(&body)).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["constraints.allowedCidrs[0]"]);
    // And an address's form (`wire::AnyAddress`), in a list as on its own.
    let body = json!({"agentId": "0190a000-0000-7000-8000-000000000000",
                      "constraints": {"allowedRecipients": ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0x12"]}});
    let got = send(master(cli.post("/v1/sessions")).body_json(&body)).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["constraints.allowedRecipients[1]"]);
    // Webhook event filters are the document's enum, at least one (found by schemathesis).
    for (events, path) in [(json!([""]), "eventTypes[0]"), (json!([]), "eventTypes")] {
        let body = json!({"url": "http://127.0.0.1:9/hook", "eventTypes": events});
        let got = send(master(cli.post("/v1/webhooks")).body_json(&body)).await;
        assert_error(&got, 400, "VALIDATION_FAILED");
        assert_eq!(issue_paths(&got.2), [path], "{events}");
    }
}

#[tokio::test]
async fn audit_logs_pass_every_filter_to_the_core() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(7));
    let mut mocks = Mocks::default();
    mocks
        .audit
        .expect_query()
        .withf(move |q| {
            q.agent_id == Some(agent_id)
                && q.event_types == [EventType::AgentCreated, EventType::SessionCreated]
                && q.severity == Some(Severity::Info)
                && q.from == Some(UnixSeconds(10))
                && q.to == Some(UnixSeconds(20))
                && q.actor.as_deref() == Some("master")
                && q.limit == 3
        })
        .times(1)
        .returning(move |_| {
            let ctx = waiaas_core::event::RequestContext::master(None);
            let event = waiaas_core::event::Event::new(EventType::AgentCreated, &ctx, UnixSeconds(15)).agent(agent_id);
            Ok(vec![AuditRecord { id: 42, event, prev_hash: String::new(), hash: String::new() }])
        });
    let cli = client(mocks).await;
    let uri = format!(
        "/v1/audit-logs?agent_id={}&event_type=AGENT_CREATED&event_type=SESSION_CREATED&severity=info&from=10&to=20&actor=master&limit=2",
        agent_id
    );
    let (status, _, body) = send(cli.get(uri).header("x-master-password", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "data": [{
                "id": 42, "createdAt": 15, "eventType": "AGENT_CREATED", "agentId": agent_id.to_string(),
                "sessionId": null, "txId": null, "actor": "master", "severity": "info", "details": {},
                "ipAddress": null,
            }],
            "nextCursor": null,
            "hasMore": false,
        })
    );
}

#[tokio::test]
async fn tripped_kill_switch_locks_agents_out_but_not_the_operator() {
    let mut mocks = Mocks {
        kill_switch: KillSwitch {
            state: KillSwitchState::Suspended,
            reason: Some("drill".into()),
            changed_at: Some(UnixSeconds(NOW)),
        },
        ..Mocks::default()
    };
    mocks.audit.expect_query().returning(|_| Ok(vec![]));
    let cli = client(mocks).await;
    assert_error(
        &send(cli.get("/v1/wallet/address").header("authorization", "Bearer wai_sess_x")).await,
        503,
        "SYSTEM_LOCKED",
    );
    let (status, _, body) = send(cli.get("/v1/admin/kill-switch")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"state": "SUSPENDED", "reason": "drill", "changedAt": NOW})));
    let (status, _, body) = send(cli.get("/v1/audit-logs").header("x-master-password", PASSWORD)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"data": [], "nextCursor": null, "hasMore": false})));
}

/// Sessions kept in a vector, so tokens issued through the API authenticate.
fn in_memory_sessions(mocks: &mut Mocks) -> Arc<Mutex<Vec<Session>>> {
    let stored: Arc<Mutex<Vec<Session>>> = Arc::default();
    let insert = stored.clone();
    mocks.sessions.expect_insert().returning(move |session, _| {
        insert.lock().expect("sessions").push(session.clone());
        Ok(())
    });
    let get = stored.clone();
    mocks
        .sessions
        .expect_get()
        .returning(move |id| Ok(get.lock().expect("sessions").iter().find(|s| s.id == id).cloned()));
    let list = stored.clone();
    mocks.sessions.expect_list().returning(move |_, _, _| Ok(list.lock().expect("sessions").clone()));
    let renew = stored.clone();
    mocks.sessions.expect_renew().returning(move |id, hash, expires_at, _| {
        let mut sessions = renew.lock().expect("sessions");
        if let Some(s) = sessions.iter_mut().find(|s| s.id == id) {
            s.token_hash = hash.to_owned();
            s.expires_at = expires_at;
            s.renewal_count += 1;
        }
        Ok(())
    });
    stored
}

/// Sessions through the API: issue (201, token once), list (no token), renew only itself.
#[tokio::test]
async fn sessions_issue_list_and_renew_only_themselves() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(9));
    let mut mocks = Mocks::default();
    mocks.agents.expect_get().returning(move |id| Ok((id == agent_id).then(|| agent(id))));
    in_memory_sessions(&mut mocks);
    let cli = client(mocks).await;

    let (status, _, issued) =
        send(master(cli.post("/v1/sessions")).body_json(&json!({"agentId": agent_id.to_string(), "ttlSeconds": 3600})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["expiresAt"], NOW + 3600);
    let token = issued["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("wai_sess_"));
    let id = issued["id"].as_str().expect("id").to_owned();

    let (status, _, listed) = send(master(cli.get("/v1/sessions"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!({"data": [{"id": id, "agentId": agent_id.to_string(), "createdAt": NOW, "expiresAt": NOW + 3600,
                         "renewalCount": 0, "active": true}], "nextCursor": null, "hasMore": false})
    );

    let bearer = format!("Bearer {token}");
    let (status, _, address) = send(cli.get("/v1/wallet/address").header("authorization", bearer.as_str())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(address["address"], "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");

    let other = SessionId::from_uuid(uuid::Uuid::from_u128(1));
    assert_error(
        &send(cli.put(format!("/v1/sessions/{other}/renew")).header("authorization", bearer.as_str())).await,
        403,
        "FORBIDDEN",
    );
    assert_error(
        &send(cli.put(format!("/v1/sessions/{id}/renew")).header("x-master-password", PASSWORD)).await,
        401,
        "WRONG_AUTH",
    );
    let (status, _, renewed) =
        send(cli.put(format!("/v1/sessions/{id}/renew")).header("authorization", bearer.as_str())).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["id"], id.as_str());
    assert_ne!(renewed["token"], token.as_str());
    // The old token stopped working.
    assert_error(
        &send(cli.get("/v1/wallet/address").header("authorization", bearer.as_str())).await,
        401,
        "INVALID_TOKEN",
    );
}

#[tokio::test]
async fn unknown_agents_are_not_found_by_their_specific_code() {
    let mut mocks = Mocks::default();
    mocks.agents.expect_get().returning(|_| Ok(None));
    let cli = client(mocks).await;
    let got =
        send(cli.get("/v1/agents/0190a000-0000-7000-8000-000000000000").header("x-master-password", PASSWORD)).await;
    assert_error(&got, 404, "AGENT_NOT_FOUND");
}

#[tokio::test]
async fn repository_failures_are_internal_errors_without_details() {
    let mut mocks = Mocks::default();
    mocks.agents.expect_list().returning(|_, _| Err(waiaas_core::Error::internal_msg("disk I/O error at /var/secret")));
    let cli = client(mocks).await;
    let got = send(cli.get("/v1/agents").header("x-master-password", PASSWORD)).await;
    assert_error(&got, 500, "INTERNAL_ERROR");
    assert_eq!(got.2["message"], "internal error");
    assert!(!got.2.to_string().contains("secret"));
}

#[tokio::test]
async fn document_and_docs_are_served() {
    let cli = client(Mocks::default()).await;
    let resp = cli.get("/openapi.json").send().await;
    resp.assert_status_is_ok();
    resp.assert_content_type("application/json");
    let text = resp.0.into_body().into_string().await.expect("body");
    assert_eq!(text, crate::openapi_document());
    let resp = cli.get("/docs").send().await;
    resp.assert_status_is_ok();
}

#[tokio::test]
async fn repeated_wrong_master_passwords_are_rate_limited() {
    let mut mocks = Mocks::default();
    mocks.audit.expect_append().times(5).returning(|_| Ok(()));
    let cli = client(mocks).await;
    for _ in 0..5 {
        assert_error(
            &send(cli.get("/v1/agents").header("x-master-password", "guess")).await,
            401,
            "INVALID_MASTER_PASSWORD",
        );
    }
    let resp = cli.get("/v1/agents").header("x-master-password", PASSWORD).send().await;
    resp.assert_status(StatusCode::TOO_MANY_REQUESTS);
    resp.assert_header("retry-after", "60");
    let (status, _, body) = send(cli.get("/v1/agents").header("x-master-password", "guess")).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (429, Some("RATE_LIMITED")));
}

// ----- transactions and owner decisions -----------------------------------------------------------------------

const RECIPIENT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
const OTHER: &str = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

/// Stored transaction rows, shared by the TxRepo mock's methods.
type TxRows = Arc<Mutex<Vec<TxRecord>>>;

/// An agent the AgentRepo mock knows, a session store, and a TxRepo whose `get`/`list` read `rows`.
fn agent_with_transactions(mocks: &mut Mocks, known: Agent) -> TxRows {
    let id = known.id;
    mocks.agents.expect_get().returning(move |asked| Ok((asked == id).then(|| known.clone())));
    in_memory_sessions(mocks);
    mocks.chain.expect_networks().returning(|| vec![waiaas_core::ports::Network::evm("anvil")]);
    mocks
        .chain
        .expect_native_asset()
        .returning(|_| Ok(waiaas_core::ports::NativeAsset { symbol: "ETH".into(), decimals: 18 }));
    let rows = TxRows::default();
    let get = rows.clone();
    mocks
        .transactions
        .expect_get()
        .returning(move |id| Ok(get.lock().expect("rows").iter().find(|r| r.id == id).cloned()));
    let list = rows.clone();
    mocks.transactions.expect_list().returning(move |_, _, _| Ok(list.lock().expect("rows").clone()));
    rows
}

/// Issues a session token for `agent_id` through the API.
async fn token_for<E: Endpoint>(cli: &TestClient<E>, agent_id: AgentId) -> String {
    let (status, _, issued) =
        send(master(cli.post("/v1/sessions")).body_json(&json!({"agentId": agent_id.to_string()}))).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    format!("Bearer {}", issued["token"].as_str().expect("token"))
}

fn tx_record(agent_id: AgentId, kind: TxKind, status: TxStatus, tier: Option<Tier>) -> TxRecord {
    TxRecord {
        status,
        tier,
        ..TxRecord::pending(
            TxId::from_uuid(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042)),
            agent_id,
            None,
            "anvil".into(),
            kind,
            UnixSeconds(NOW),
        )
    }
}

fn transfer_body() -> Value {
    json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"})
}

/// An unknown flag fails closed: 400 naming it, and the pipeline is never entered (no row, no reservation).
#[tokio::test]
async fn send_refuses_unknown_fields_before_admission() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(11));
    let mut mocks = Mocks::default();
    agent_with_transactions(&mut mocks, agent(agent_id));
    mocks.transactions.expect_admit().times(0);
    let cli = client(mocks).await;
    let bearer = token_for(&cli, agent_id).await;

    let mut body = transfer_body();
    body["dryRun"] = json!(true);
    let got = send(cli.post("/v1/transactions/send").header("authorization", bearer.as_str()).body_json(&body)).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["dryRun"]);

    let nested = json!({"type": "BATCH", "instructions": [transfer_body(), {"type": "TRANSFER", "to": RECIPIENT,
                        "amount": "1", "network": "anvil"}]});
    let got = send(cli.post("/v1/transactions/send").header("authorization", bearer.as_str()).body_json(&nested)).await;
    assert_eq!(issue_paths(&got.2), ["instructions[1].network"]);

    let got = send(
        cli.post("/v1/transactions/send")
            .header("authorization", bearer.as_str())
            .body_json(&json!({"type": "TRANSFER", "to": "0x12", "amount": 5})),
    )
    .await;
    assert_eq!(issue_paths(&got.2), ["to", "amount"]);

    // The body module's reading rules hold here too.
    let got = send(
        cli.post("/v1/transactions/send")
            .header("authorization", bearer.as_str())
            .content_type("text/plain")
            .body(transfer_body().to_string()),
    )
    .await;
    assert_error(&got, 415, "UNSUPPORTED_MEDIA_TYPE");
    let got = send(
        cli.post("/v1/transactions/send")
            .header("authorization", bearer.as_str())
            .content_type("application/json")
            .body("{\"type\":"),
    )
    .await;
    assert_eq!(issue_paths(&got.2), ["body"]);
    // No body at all: the request body is required.
    let got = send(cli.post("/v1/transactions/send").header("authorization", bearer.as_str())).await;
    assert_eq!(issue_paths(&got.2), ["body"]);

    // Authentication comes first.
    assert_error(&send(cli.post("/v1/transactions/send").body_json(&body)).await, 401, "UNAUTHORIZED");
    assert_error(&send(master(cli.post("/v1/transactions/send")).body_json(&transfer_body())).await, 401, "WRONG_AUTH");
}

/// Send → 201 `{id, status}`; the stored row reads back as a TransactionDto, alone and in the list.
#[tokio::test]
async fn send_admits_and_the_row_reads_back() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(12));
    let mut mocks = Mocks::default();
    let rows = agent_with_transactions(&mut mocks, agent(agent_id));
    let admitted = rows.clone();
    mocks
        .transactions
        .expect_admit()
        .withf(move |agent, since, _| *agent == agent_id && *since == UnixSeconds(NOW)) // no rate or daily limit: no history
        .times(1)
        .returning(move |_, _, decide| {
            let admission = decide(&AdmissionSnapshot::default());
            assert_eq!(admission.events[0].event_type, EventType::TxRequested);
            admitted.lock().expect("rows").push(admission.record.clone());
            Ok(admission)
        });
    let cli = client(mocks).await;
    let bearer = token_for(&cli, agent_id).await;

    let (status, _, sent) =
        send(cli.post("/v1/transactions/send").header("authorization", bearer.as_str()).body_json(&transfer_body()))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let id = rows.lock().expect("rows")[0].id.to_string();
    assert_eq!(sent, json!({"id": id, "status": "PENDING"}));

    let expected = json!({
        "id": id, "agentId": agent_id.to_string(), "type": "TRANSFER", "status": "PENDING", "tier": "INSTANT",
        "network": "anvil", "to": RECIPIENT, "amount": "1000",
        "request": {"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"}, "attempts": 0,
        "createdAt": NOW, "updatedAt": NOW,
    });
    let (status, _, got) =
        send(cli.get(format!("/v1/transactions/{id}")).header("authorization", bearer.as_str())).await;
    assert_eq!((status, &got), (StatusCode::OK, &expected));
    let (status, _, listed) = send(cli.get("/v1/transactions?limit=10").header("authorization", bearer.as_str())).await;
    assert_eq!((status, listed), (StatusCode::OK, json!({"data": [expected], "nextCursor": null, "hasMore": false})));

    // Unknown ids and malformed parameters.
    let unknown = uuid::Uuid::from_u128(1);
    assert_error(
        &send(cli.get(format!("/v1/transactions/{unknown}")).header("authorization", bearer.as_str())).await,
        404,
        "TX_NOT_FOUND",
    );
    let got = send(cli.get("/v1/transactions/nope").header("authorization", bearer.as_str())).await;
    assert_eq!(issue_paths(&got.2), ["id"]);
    let got = send(cli.get("/v1/transactions?limit=0").header("authorization", bearer.as_str())).await;
    assert_eq!(issue_paths(&got.2), ["limit"]);
    // An INSTANT row cannot be cancelled.
    assert_error(
        &send(cli.post(format!("/v1/transactions/{id}/cancel")).header("authorization", bearer.as_str())).await,
        409,
        "INVALID_STATE_TRANSITION",
    );
}

/// A policy denial is the core's POLICY_DENIED with its structured details, unchanged; the stored row has no
/// tier and carries the reason code.
#[tokio::test]
async fn policy_denials_pass_through_with_their_details() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(13));
    let policy_id = PolicyId::from_uuid(uuid::Uuid::from_u128(77));
    let mut mocks = Mocks::default();
    let rows = agent_with_transactions(&mut mocks, agent(agent_id));
    let admitted = rows.clone();
    mocks.transactions.expect_admit().times(1).returning(move |_, _, decide| {
        let whitelist = Policy {
            id: policy_id,
            agent_id: None,
            rules: PolicyRules::Whitelist { allowed_addresses: vec![OTHER.parse().expect("address")] },
            enabled: true,
            created_at: UnixSeconds(NOW),
            updated_at: UnixSeconds(NOW),
        };
        let admission = decide(&AdmissionSnapshot { policies: vec![whitelist], ..AdmissionSnapshot::default() });
        admitted.lock().expect("rows").push(admission.record.clone());
        Ok(admission)
    });
    let cli = client(mocks).await;
    let bearer = token_for(&cli, agent_id).await;

    let got =
        send(cli.post("/v1/transactions/send").header("authorization", bearer.as_str()).body_json(&transfer_body()))
            .await;
    assert_error(&got, 403, "POLICY_DENIED");
    let id = rows.lock().expect("rows")[0].id.to_string();
    assert_eq!(
        got.2["details"],
        json!({"transactionId": id, "reasonCode": "ADDRESS_NOT_WHITELISTED", "matchedPolicyIds": [policy_id.to_string()]})
    );
    let (status, _, row) =
        send(cli.get(format!("/v1/transactions/{id}")).header("authorization", bearer.as_str())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&row["status"], &row["tier"], &row["reasonCode"]),
        (&json!("CANCELLED"), &Value::Null, &json!("ADDRESS_NOT_WHITELISTED"))
    );
}

#[tokio::test]
async fn nonce_is_public_and_single_use_shaped() {
    let cli = client(Mocks::default()).await;
    let (status, _, first) = send(cli.get("/v1/nonce")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let nonce = first["nonce"].as_str().expect("nonce");
    assert!(nonce.len() == 80 && nonce.bytes().all(|b| b.is_ascii_hexdigit()), "{nonce}");
    assert_eq!(first["expiresAt"], NOW + 300);
    assert_eq!(first.as_object().map(|o| o.len()), Some(2), "{first}");
    let (_, _, second) = send(cli.get("/v1/nonce")).await;
    assert_ne!(first["nonce"], second["nonce"]);
}

#[tokio::test]
async fn owner_endpoints_refuse_missing_and_other_credentials() {
    let cli = client(Mocks::default()).await;
    let path = "/v1/transactions/0190a000-0000-7000-8000-000000000000/approve";
    for path in [path.to_owned(), path.replace("approve", "reject")] {
        assert_error(&send(cli.post(path.as_str())).await, 401, "UNAUTHORIZED");
        assert_error(
            &send(cli.post(path.as_str()).header("authorization", "Bearer wai_sess_x")).await,
            401,
            "WRONG_AUTH",
        );
        assert_error(&send(master(cli.post(path.as_str()))).await, 401, "WRONG_AUTH");
        let got =
            send(cli.post(path.as_str()).header("x-owner-address", OTHER).header("x-owner-signature", "0x00")).await;
        assert_error(&got, 401, "UNAUTHORIZED");
        assert!(got.2["message"].as_str().expect("message").contains("X-Owner-Message"), "{}", got.2);
        let got = send(
            cli.post(path.as_str())
                .header("x-owner-address", OTHER)
                .header("x-owner-message", "not base64!")
                .header("x-owner-signature", "0x00"),
        )
        .await;
        assert_error(&got, 401, "UNAUTHORIZED");
    }
    // Credentials come before the path is looked at.
    assert_error(&send(cli.post("/v1/transactions/nope/approve")).await, 401, "UNAUTHORIZED");
}

/// The owner signs the core's approval message over a fresh nonce: approve works once; the nonce cannot be
/// replayed; a signature for "approve" is not one for "reject".
#[tokio::test]
async fn owner_approves_with_a_signed_nonce_once() {
    use alloy_signer::SignerSync;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    let signer = alloy_signer_local::PrivateKeySigner::from_slice(&[7u8; 32]).expect("key");
    let owner: Address = signer.address().to_string().parse().expect("owner address");
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(14));
    let mut mocks = Mocks::default();
    let rows = agent_with_transactions(&mut mocks, Agent { owner_address: Some(owner), ..agent(agent_id) });
    let kind = TxKind::parse(&transfer_body(), ChainFamily::Evm).expect("body").0;
    let mut waiting = tx_record(agent_id, kind, TxStatus::Queued, Some(Tier::Approval));
    waiting.approval_deadline = Some(UnixSeconds(NOW + 3600));
    let tx_id = waiting.id;
    rows.lock().expect("rows").push(waiting);
    let moved = rows.clone();
    mocks
        .transactions
        .expect_transition()
        .withf(move |id, from, to, update, event| {
            *id == tx_id
                && (*from, *to) == (TxStatus::Queued, TxStatus::Queued)
                && update.approved_at == Some(UnixSeconds(NOW))
                && event.as_ref().is_some_and(|e| e.event_type == EventType::TxApproved)
        })
        .times(1)
        .returning(move |_, _, _, update, _| {
            moved.lock().expect("rows")[0].approved_at = update.approved_at;
            Ok(true)
        });
    let cli = client(mocks).await;

    let (_, _, nonce) = send(cli.get("/v1/nonce")).await;
    let message = approval_message(tx_id, true, nonce["nonce"].as_str().expect("nonce"));
    let signature =
        format!("0x{}", hex_encode(&signer.sign_message_sync(message.as_bytes()).expect("sign").as_bytes()));
    let encoded = STANDARD.encode(&message);
    let owner_text = owner.to_string();
    let signed = |path: String| {
        cli.post(path)
            .header("x-owner-address", owner_text.as_str())
            .header("x-owner-message", encoded.as_str())
            .header("x-owner-signature", signature.as_str())
    };

    // Signed for "approve": refused as a rejection (and the nonce survives that refusal).
    assert_error(&send(signed(format!("/v1/transactions/{tx_id}/reject"))).await, 401, "UNAUTHORIZED");
    // A valid signature by someone else over the same message is forbidden and does not use the nonce up.
    let stranger = alloy_signer_local::PrivateKeySigner::from_slice(&[8u8; 32]).expect("key");
    let stranger_signature =
        format!("0x{}", hex_encode(&stranger.sign_message_sync(message.as_bytes()).expect("sign").as_bytes()));
    let got = send(
        cli.post(format!("/v1/transactions/{tx_id}/approve"))
            .header("x-owner-address", stranger.address().to_string())
            .header("x-owner-message", encoded.as_str())
            .header("x-owner-signature", stranger_signature.as_str()),
    )
    .await;
    assert_error(&got, 403, "FORBIDDEN");
    let (status, _, approved) = send(signed(format!("/v1/transactions/{tx_id}/approve"))).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (&approved["id"], &approved["status"], &approved["tier"], &approved["approvedAt"]),
        (&json!(tx_id.to_string()), &json!("QUEUED"), &json!("APPROVAL"), &json!(NOW))
    );
    assert_eq!(approved["approvalDeadline"], NOW + 3600);
    // Replay: the nonce was consumed.
    let got = send(signed(format!("/v1/transactions/{tx_id}/approve"))).await;
    assert_error(&got, 401, "UNAUTHORIZED");
    assert!(got.2["message"].as_str().expect("message").contains("nonce"), "{}", got.2);
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `?token=` answers the ERC-20 balance from the chain port; without it the native shape is unchanged.
#[tokio::test]
async fn wallet_balance_answers_native_or_token() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(15));
    let mut mocks = Mocks::default();
    agent_with_transactions(&mut mocks, agent(agent_id));
    let holder: Address = RECIPIENT.parse().expect("address");
    let token: Address = OTHER.parse().expect("token");
    mocks
        .chain
        .expect_token_balance()
        .withf(move |network, t, owner| network == "anvil" && *t == token && *owner == holder)
        .times(1)
        .returning(|_, _, _| Ok(Amount::from_u128(123_456)));
    mocks.chain.expect_native_balance().times(1).returning(|_, _| Ok(Amount::from_u128(5)));
    let cli = client(mocks).await;
    let bearer = token_for(&cli, agent_id).await;

    let (status, _, native) = send(cli.get("/v1/wallet/balance").header("authorization", bearer.as_str())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        native,
        json!({"agentId": agent_id.to_string(), "network": "anvil", "address": RECIPIENT, "balance": "5",
               "symbol": "ETH", "decimals": 18})
    );
    let uri = format!("/v1/wallet/balance?token={}", OTHER.to_lowercase());
    let (status, _, balance) = send(cli.get(uri).header("authorization", bearer.as_str())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        balance,
        json!({"agentId": agent_id.to_string(), "network": "anvil", "address": RECIPIENT, "token": OTHER,
               "balance": "123456"})
    );
    let got = send(cli.get("/v1/wallet/balance?token=0x12").header("authorization", bearer.as_str())).await;
    assert_error(&got, 400, "VALIDATION_FAILED");
    assert_eq!(issue_paths(&got.2), ["token"]);
    assert_eq!(got.2["details"]["issues"][0]["message"], format!("must match {}", crate::wire::ANY_ADDRESS_PATTERN));
}

mod duplicate_keys;
