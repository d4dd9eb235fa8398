//! Tests of [`crate::app`] through the front door (poem's test client), over a core whose ports are `mockall`
//! mocks and small in-memory maps. They pin the HTTP contract: auth refusals, the error shape of every kind of
//! failure, the Host guard, and the kill switch leaving admin and audit reachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poem::Endpoint;
use poem::http::StatusCode;
use poem::test::{TestClient, TestRequestBuilder};
use serde_json::{Value, json};
use waiaas_core::domain::{Agent, AgentStatus, Chain, EvmAddress, KillSwitch, KillSwitchState, Session};
use waiaas_core::event::{EventType, Severity};
use waiaas_core::ports::testing::{CountingEntropy, FixedClock, RecordingSink};
use waiaas_core::ports::{
    AuditRecord, MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore, MockKillSwitchRepo, MockPolicyRepo,
    MockSessionRepo, MockSettingsRepo,
};
use waiaas_core::services::{CoreConfig, Ports, Waiaas};
use waiaas_core::{AgentId, SessionId, UnixSeconds};

use crate::{ServerState, app};

const PASSWORD: &str = "correct horse battery staple";
const NOW: i64 = 1_700_000_000;

/// The mocks a test may program before the core is unlocked.
struct Mocks {
    agents: MockAgentRepo,
    sessions: MockSessionRepo,
    audit: MockAuditRepo,
    kill_switch: KillSwitch,
}

impl Default for Mocks {
    fn default() -> Self {
        Mocks {
            agents: MockAgentRepo::new(),
            sessions: MockSessionRepo::new(),
            audit: MockAuditRepo::new(),
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
        address: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<EvmAddress>().expect("address"),
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
    let ports = Ports {
        clock: Arc::new(FixedClock::at(NOW)),
        entropy: Arc::new(CountingEntropy::default()),
        agents: Arc::new(mocks.agents),
        sessions: Arc::new(mocks.sessions),
        policies: Arc::new(MockPolicyRepo::new()),
        settings: Arc::new(settings()),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(mocks.audit),
        keystore: Arc::new(MockKeyStore::new()),
        chain: Arc::new(MockChainAdapter::new()),
        events: Arc::new(RecordingSink::default()),
    };
    let core = Waiaas::unlock(ports, CoreConfig::default(), PASSWORD).await.expect("unlock");
    let state = ServerState {
        core: Arc::new(core),
        schema_version: 3,
        started_at: Instant::now(),
        allowed_hosts: vec!["wallet.internal".into()],
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

#[tokio::test]
async fn unknown_routes_and_methods_are_not_found() {
    let cli = client(Mocks::default()).await;
    assert_error(&send(cli.get("/v1/nope")).await, 404, "NOT_FOUND");
    assert_error(&send(cli.post("/health")).await, 404, "NOT_FOUND");
    assert_error(&send(cli.post("/openapi.json")).await, 404, "NOT_FOUND");
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
    assert_error(&send(cli.get("/v1/agents").header("authorization", "Bearer wai_sess_x")).await, 403, "WRONG_AUTH");
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
    assert_error(&send(cli.get("/v1/wallet/address").header("x-master-password", PASSWORD)).await, 403, "WRONG_AUTH");
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

    let got = send(master(cli.post("/v1/agents")).content_type("text/plain").body(r#"{"name":"a"}"#)).await;
    assert_eq!(issue_paths(&got.2), ["body"]);

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

/// Sessions through the API: issue (201, token once), list (no token), renew only itself.
#[tokio::test]
async fn sessions_issue_list_and_renew_only_themselves() {
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(9));
    let stored: Arc<Mutex<Vec<Session>>> = Arc::default();
    let mut mocks = Mocks::default();
    mocks.agents.expect_get().returning(move |id| Ok((id == agent_id).then(|| agent(id))));
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
        403,
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
