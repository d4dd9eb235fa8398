//! Foundation acceptance: the daemon's lifecycle, authentication, kill switch, validation errors, Host guard,
//! keystore secrecy and persistence across restarts — all through the real binary and HTTP.

use serde_json::{Value, json};
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, ListParams, SessionFilter};

use waiaas_daemon::config::DEFAULT_CONFIG_TOML;

use crate::support::{Anvil, Daemon, DaemonOptions, MASTER_PASSWORD, api_error, run_cli};

fn audit(daemon: &Daemon, event_type: &str) -> Vec<waiaas_client::types::AuditLog> {
    let filter = AuditLogFilter { event_types: vec![event_type.to_owned()], limit: Some(200), ..Default::default() };
    daemon.admin().audit_logs(&filter).expect("audit query").data
}

/// init → start → agent → session → wallet address → revoke → SESSION_REVOKED; restart keeps everything.
#[test]
fn lifecycle_survives_restart_and_revocation_is_immediate() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("trader", "anvil")).expect("create agent");
    assert_eq!(agent.status, "ACTIVE");
    assert!(agent.address.starts_with("0x") && agent.address.len() == 42, "{}", agent.address);
    assert_ne!(agent.address, agent.address.to_lowercase(), "EIP-55 checksummed address expected");

    let issued = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("create session");
    assert!(issued.token.starts_with("wai_sess_"));
    let agent_client = daemon.client().with_session_token(&issued.token);
    let wallet = agent_client.wallet_address().expect("wallet address");
    assert_eq!(wallet.address, agent.address);

    let policy = admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "RATE_LIMIT".into(),
            rules: json!({"max_requests": 5, "window_seconds": 60}),
            enabled: None,
        })
        .expect("create policy");

    admin.revoke_session(&issued.id).expect("revoke");
    let (status, code, _) = api_error(agent_client.wallet_address());
    assert_eq!((status, code.as_str()), (401, "SESSION_REVOKED"));

    let second = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("second session");
    daemon.restart();
    let admin = daemon.admin();
    let agents = admin.list_agents(&ListParams::default()).expect("list agents");
    assert_eq!(agents.data.iter().map(|a| (&a.id, &a.address)).collect::<Vec<_>>(), vec![(&agent.id, &agent.address)]);
    assert_eq!(admin.get_policy(&policy.id).expect("policy after restart").rules["max_requests"], 5);
    let sessions =
        admin.list_sessions(&SessionFilter { agent_id: Some(agent.id.clone()), ..Default::default() }).unwrap();
    assert_eq!(sessions.data.len(), 2);
    let after_restart =
        daemon.client().with_session_token(&second.token).wallet_address().expect("valid token survives");
    assert_eq!(after_restart.address, agent.address);
    let (status, code, _) = api_error(daemon.client().with_session_token(&issued.token).wallet_address());
    assert_eq!((status, code.as_str()), (401, "SESSION_REVOKED"));
}

#[test]
fn each_endpoint_class_refuses_the_other_credential() {
    let daemon = Daemon::start();
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let issued = daemon.admin().create_session(&CreateSession::for_agent(&agent.id)).unwrap();

    let with_token = daemon.client().with_session_token(&issued.token);
    let (status, code, _) = api_error(with_token.list_agents(&ListParams::default()));
    assert_eq!((status, code.as_str()), (401, "WRONG_AUTH"));
    let (status, code, _) = api_error(daemon.client().list_agents(&ListParams::default()));
    assert_eq!((status, code.as_str()), (401, "UNAUTHORIZED"));
    let (status, code, _) = api_error(daemon.admin().wallet_address());
    assert_eq!((status, code.as_str()), (401, "WRONG_AUTH"));
    let (status, code, _) =
        api_error(daemon.client().with_session_token("wai_sess_forged.token.value").wallet_address());
    assert_eq!((status, code.as_str()), (401, "INVALID_TOKEN"));
}

#[test]
fn wrong_master_password_is_refused_audited_and_rate_limited() {
    let mut daemon = Daemon::start();
    let intruder = daemon.client().with_master_password("not the password");
    for _ in 0..5 {
        let (status, code, _) = api_error(intruder.list_agents(&ListParams::default()));
        assert_eq!((status, code.as_str()), (401, "INVALID_MASTER_PASSWORD"));
    }
    let (status, code, _) = api_error(intruder.list_agents(&ListParams::default()));
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));
    let (status, code, _) = api_error(daemon.admin().list_agents(&ListParams::default()));
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"), "a locked-out peer is refused even with the password");

    // The lockout lives in memory for its window; a restart clears it and the rows are still there.
    daemon.restart();
    let rows = audit(&daemon, "MASTER_AUTH_FAILED");
    assert_eq!(rows.len(), 5, "one row per wrong password, none for rate-limited attempts");
    for row in &rows {
        assert_eq!(row.ip_address.as_deref(), Some("127.0.0.1"), "socket peer address recorded");
        assert!(!row.details.to_string().contains("not the password"), "password leaked into {}", row.details);
    }
}

#[test]
fn peer_address_comes_from_the_socket_not_from_headers() {
    let daemon = Daemon::start();
    let (status, _, _) = daemon
        .client()
        .request_raw("GET", "/v1/agents", &[("x-master-password", "wrong"), ("x-forwarded-for", "127.0.0.9")], None)
        .unwrap();
    assert_eq!(status, 401);
    let rows = audit(&daemon, "MASTER_AUTH_FAILED");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ip_address.as_deref(), Some("127.0.0.1"));
}

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length` body) from a kept-alive connection.
fn read_response(reader: &mut std::io::BufReader<std::net::TcpStream>) -> std::io::Result<u16> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the daemon closed the connection"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("content length");
        }
    }
    reader.read_exact(&mut vec![0; length])?;
    Ok(status)
}

/// A request the daemon can refuse before reading its body (here the kill switch refuses it in authentication)
/// must leave the connection usable: a client that sends the body a moment after the headers, as many do, then
/// reuses the kept-alive connection, gets its next answer instead of a closed socket (a POST it could not safely
/// retry).
#[test]
fn a_refused_request_leaves_the_connection_usable() {
    use std::io::Write;
    let daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap().token;
    admin.activate_kill_switch(None).unwrap();
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&address).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let body = r#"{"type":"TRANSFER","to":"0x1111111111111111111111111111111111111111","amount":"1"}"#;
    let head = format!(
        "POST /v1/transactions/send HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for round in 0..3 {
        writer.write_all(head.as_bytes()).unwrap();
        writer.flush().unwrap();
        // The body comes a moment later (a slow or chunking client): give the daemon the chance to answer before
        // it (it may), then send it; the daemon must still read it and keep the connection.
        reader.get_ref().set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        let _ = std::io::BufRead::fill_buf(&mut reader);
        reader.get_ref().set_read_timeout(None).unwrap();
        writer.write_all(body.as_bytes()).unwrap();
        let status = read_response(&mut reader).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(status, 503, "round {round}: SYSTEM_LOCKED");
    }
}

#[test]
fn kill_switch_locks_the_agent_api_and_keeps_admin_reachable() {
    let daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let issued = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    let second = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    let agent_client = daemon.client().with_session_token(&issued.token);
    agent_client.wallet_address().expect("works before");

    let switch = admin.activate_kill_switch(Some("suspicious activity")).expect("activate");
    assert_eq!(switch.state, "SUSPENDED");
    let effects = switch.effects.expect("activation reports its effects");
    assert_eq!((effects.sessions_revoked, effects.agents_suspended), (2, 1));
    // One audit row (and event) per entity the bulk change touched.
    let mut revoked: Vec<String> =
        audit(&daemon, "SESSION_REVOKED").into_iter().filter_map(|row| row.session_id).collect();
    revoked.sort();
    let mut expected = vec![issued.id.clone(), second.id.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    let suspended = audit(&daemon, "AGENT_SUSPENDED");
    assert_eq!(suspended.iter().map(|row| row.agent_id.clone()).collect::<Vec<_>>(), [Some(agent.id.clone())]);

    let (status, code, _) = api_error(agent_client.wallet_address());
    assert_eq!((status, code.as_str()), (503, "SYSTEM_LOCKED"));
    assert_eq!(daemon.client().kill_switch_status().unwrap().state, "SUSPENDED", "public status readable");
    assert_eq!(admin.list_agents(&ListParams::default()).unwrap().data[0].status, "SUSPENDED");
    assert_eq!(audit(&daemon, "KILL_SWITCH_ACTIVATED").len(), 1, "audit reachable while tripped");
    let (status, code, _) = api_error(admin.create_session(&CreateSession::for_agent(&agent.id)));
    assert_eq!((status, code.as_str()), (503, "SYSTEM_LOCKED"));

    assert_eq!(admin.activate_kill_switch(None).unwrap().state, "LOCKED");
    assert_eq!(admin.recover().unwrap().state, "ACTIVE");
    let (status, code, _) = api_error(agent_client.wallet_address());
    assert_eq!((status, code.as_str()), (401, "SESSION_REVOKED"), "sessions stay revoked after recovery");
    admin.resume_agent(&agent.id).expect("resume");
    let fresh = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    daemon.client().with_session_token(&fresh.token).wallet_address().expect("works after recovery");
    assert_eq!(audit(&daemon, "KILL_SWITCH_RECOVERED").len(), 1);
}

/// Sends a raw body to `POST /v1/agents` and returns (status, parsed body).
fn post_agents(daemon: &Daemon, body: &[u8]) -> (u16, Value) {
    let (status, _, bytes) = daemon
        .client()
        .request_raw(
            "POST",
            "/v1/agents",
            &[("x-master-password", MASTER_PASSWORD), ("content-type", "application/json")],
            Some(body),
        )
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes))))
}

#[test]
fn malformed_bodies_get_validation_errors_with_issues() {
    let daemon = Daemon::start();
    let cases: [(&str, &[u8]); 5] = [
        ("malformed JSON", b"{\"name\": "),
        ("unknown field", br#"{"name":"a","chain":"ethereum","network":"anvil","dryRun":true}"#),
        ("wrong type", br#"{"name":5,"chain":"ethereum","network":"anvil"}"#),
        ("missing field", br#"{"chain":"ethereum","network":"anvil"}"#),
        ("unsupported chain", br#"{"name":"a","chain":"dogecoin","network":"anvil"}"#),
    ];
    for (what, body) in cases {
        let (status, error) = post_agents(&daemon, body);
        assert_eq!(status, 400, "{what}: {error}");
        assert_eq!(error["code"], "VALIDATION_FAILED", "{what}: {error}");
        assert_eq!(error["retryable"], false, "{what}");
        assert!(error["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{what}: {error}");
        let issues = error["details"]["issues"].as_array().unwrap_or_else(|| panic!("{what}: no issues in {error}"));
        assert!(
            !issues.is_empty() && issues.iter().all(|i| i["path"].is_string() && i["message"].is_string()),
            "{what}: {error}"
        );
    }
    assert!(daemon.admin().list_agents(&ListParams::default()).unwrap().data.is_empty(), "nothing was created");

    let (status, _, bytes) = daemon.client().request_raw("GET", "/v1/nowhere", &[], None).unwrap();
    let error: Value = serde_json::from_slice(&bytes).expect("JSON error body for unknown routes");
    assert_eq!((status, error["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, _, bytes) = daemon
        .client()
        .request_raw("GET", "/v1/agents?limit=abc", &[("x-master-password", MASTER_PASSWORD)], None)
        .unwrap();
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, error["code"].as_str()), (400, Some("VALIDATION_FAILED")), "{error}");
}

#[test]
fn foreign_host_header_is_refused() {
    let daemon = Daemon::start();
    let (status, _, bytes) =
        daemon.client().request_raw("GET", "/health", &[("host", "attacker.example:3100")], None).unwrap();
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, error["code"].as_str()), (403, Some("HOST_NOT_ALLOWED")), "{error}");
    let (status, _, _) = daemon.client().request_raw("GET", "/health", &[("host", "localhost:3100")], None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn health_openapi_and_docs_are_served() {
    let daemon = Daemon::start();
    let health = daemon.client().health().expect("health");
    assert_eq!(health.status, "ok");
    assert!(health.schema_version >= 1);
    let (status, _, bytes) = daemon.client().request_raw("GET", "/openapi.json", &[], None).unwrap();
    assert_eq!(status, 200);
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    let committed: Value =
        serde_json::from_str(include_str!("../../openapi/waiaas.json")).expect("committed OpenAPI document");
    assert_eq!(served, committed, "the served document must be the committed one");
    let (status, _, _) = daemon.client().request_raw("GET", "/docs", &[], None).unwrap();
    assert_eq!(status, 200);
}

/// The private key decrypts only with the right password and never appears in the DB, API answers or logs.
#[test]
fn keystore_secret_stays_in_the_keystore() {
    let mut daemon = Daemon::start();
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("vault", "anvil")).unwrap();
    let agent_id: waiaas_core::AgentId = agent.id.parse().unwrap();
    let keystore_dir = daemon.data_dir().join("keystore");
    let params = waiaas_fs::KdfParams::fast_for_tests();

    let right = waiaas_fs::FsKeyStore::new(&keystore_dir, zeroize::Zeroizing::new(MASTER_PASSWORD.to_owned()), params);
    let secret_hex = right
        .with_signer(agent_id, |signer| {
            assert_eq!(signer.address().to_checksum(None), agent.address);
            signer.to_bytes().to_string()
        })
        .expect("decrypts with the master password");
    let secret_hex = secret_hex.trim_start_matches("0x").to_owned();
    let wrong = waiaas_fs::FsKeyStore::new(&keystore_dir, zeroize::Zeroizing::new("wrong".to_owned()), params);
    assert_eq!(wrong.with_signer(agent_id, |_| ()).unwrap_err().code, waiaas_core::ErrorCode::KeystoreError);

    // Exercise the API a little more so responses and logs have content to search.
    let issued = daemon.admin().create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    daemon.client().with_session_token(&issued.token).wallet_address().unwrap();
    let (_, _, listing) =
        daemon.client().request_raw("GET", "/v1/agents", &[("x-master-password", MASTER_PASSWORD)], None).unwrap();
    daemon.stop();

    let needle = secret_hex.to_lowercase();
    let mut haystacks = vec![("agents listing".to_owned(), String::from_utf8_lossy(&listing).to_lowercase())];
    haystacks.push(("daemon log".to_owned(), daemon.stderr().to_lowercase()));
    for entry in std::fs::read_dir(daemon.data_dir().join("data")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        haystacks.push((path.display().to_string(), hex_and_text(&bytes)));
    }
    for (name, text) in haystacks {
        assert!(!text.contains(&needle), "private key found in {name}");
    }
    assert!(!daemon.stderr().contains(MASTER_PASSWORD), "master password in the log");
}

/// Lowercase text plus hex of raw bytes, so a key stored as binary is found too.
fn hex_and_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}\n{hex}", String::from_utf8_lossy(bytes).to_lowercase())
}

#[test]
fn one_daemon_per_data_dir() {
    let daemon = Daemon::start();
    let second = daemon.start_another(&[]);
    assert_eq!(second.status.code(), Some(4), "exit code: a daemon runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running") || stderr.contains("DAEMON_ALREADY_RUNNING"), "{stderr}");
    daemon.client().health().expect("the first daemon is unaffected");
}

#[test]
fn wrong_password_at_start_changes_nothing() {
    let mut daemon = Daemon::start();
    daemon.admin().create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    daemon.stop();
    let db = daemon.data_dir().join("data/waiaas.db");
    let before = std::fs::read(&db).unwrap();
    let out = daemon.start_another(&[("WAIAAS_MASTER_PASSWORD", "wrong password")]);
    assert_eq!(out.status.code(), Some(5), "exit code: wrong password");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INVALID_MASTER_PASSWORD")
            || String::from_utf8_lossy(&out.stderr).contains("master password")
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database is untouched");
}

#[test]
fn unknown_config_key_is_a_startup_error_naming_it() {
    let daemon = Daemon::start();
    let out = daemon.start_another(&[("WAIAAS_DAEMON_PROT", "1")]);
    assert_eq!(out.status.code(), Some(7), "exit code: bad config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prot"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    assert!(run_cli(dir.path(), &["init"], &[]).status.success());
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[daemon]\nlisten_everywhere = true\n")).unwrap();
    let out = run_cli(dir.path(), &["start"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert_eq!(out.status.code(), Some(7), "exit code: bad config");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen_everywhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_and_stop_commands() {
    let mut daemon = Daemon::start();
    let out = run_cli(daemon.data_dir(), &["status"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pid = daemon.pid().expect("running");
    let expected = format!("waiaas is running (pid {pid}) at {}", daemon.url);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run_cli(daemon.data_dir(), &["restore", "--force", "--from", "/nonexistent"], &[]);
    assert_eq!(out.status.code(), Some(4), "restore under a running daemon: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiaas stop"), "the message names the command");
    daemon.stop();
    let out = run_cli(daemon.data_dir(), &["status"], &[]);
    assert_eq!(out.status.code(), Some(3), "not running → exit code 3");
    let out = run_cli(daemon.data_dir(), &["audit", "list"], &[]);
    assert_eq!(out.status.code(), Some(3), "a command that needs the daemon: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiaas start"), "the message names the command");
}

/// `start` on an existing, empty directory (one an operator or a volume mount made for it) is a first start: it
/// writes the default `config.toml` like `init`, so the README's tour works there too. A clean stop removes
/// `daemon.pid`; a restart on the same dir keeps the config as it is.
#[test]
fn start_on_an_empty_dir_writes_the_default_config_and_stop_removes_the_pid_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut daemon = Daemon::start_on(dir, DaemonOptions::default());
    let config = daemon.data_dir().join("config.toml");
    assert_eq!(std::fs::read_to_string(&config).expect("config.toml written"), DEFAULT_CONFIG_TOML);
    assert!(daemon.data_dir().join("daemon.pid").exists(), "the running daemon's pid file");
    daemon.stop();
    assert!(!daemon.data_dir().join("daemon.pid").exists(), "a clean stop leaves no pid file");

    std::fs::write(&config, "[daemon]\nlog_level = \"warn\"\n").expect("edit config");
    daemon.restart();
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "[daemon]\nlog_level = \"warn\"\n", "left as it was");
}

#[test]
fn balance_is_read_from_the_chain() {
    let anvil = Anvil::start();
    let daemon = Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".into(), anvil.url.clone()), ("offline".into(), "http://127.0.0.1:9".into())],
        ..Default::default()
    });
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap().token;
    let wallet = daemon.client().with_session_token(&token);
    assert_eq!(wallet.wallet_balance().unwrap().balance, "0");
    anvil.rpc("anvil_setBalance", json!([agent.address, "0xde0b6b3a7640000"]));
    assert_eq!(wallet.wallet_balance().unwrap().balance, "1000000000000000000");

    let offline = admin.create_agent(&CreateAgent::ethereum("b", "offline")).unwrap();
    let token = admin.create_session(&CreateSession::for_agent(&offline.id)).unwrap().token;
    let (status, code, _) = api_error(daemon.client().with_session_token(&token).wallet_balance());
    assert_eq!((status, code.as_str()), (502, "CHAIN_ERROR"));

    let (status, code, _) = api_error(admin.create_agent(&CreateAgent::ethereum("c", "mainnet")));
    assert_eq!((status, code.as_str()), (400, "NETWORK_NOT_CONFIGURED"));
}

#[test]
fn every_state_change_of_the_foundation_writes_its_audit_row() {
    let daemon = Daemon::start();
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    admin.set_owner(&agent.id, Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")).unwrap();
    admin.suspend_agent(&agent.id).unwrap();
    admin.resume_agent(&agent.id).unwrap();
    let issued = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    daemon.client().with_session_token(&issued.token).renew_session(&issued.id).unwrap();
    admin.revoke_session(&issued.id).unwrap();
    let policy = admin
        .create_policy(&CreatePolicy {
            agent_id: None,
            policy_type: "WHITELIST".into(),
            rules: json!({"allowed_addresses": ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"]}),
            enabled: Some(true),
        })
        .unwrap();
    admin.update_policy(&policy.id, &waiaas_client::types::UpdatePolicy { enabled: Some(false), rules: None }).unwrap();
    admin.delete_policy(&policy.id).unwrap();
    admin.activate_kill_switch(None).unwrap();
    admin.recover().unwrap();
    admin.terminate_agent(&agent.id).unwrap();
    let _ = daemon.client().with_master_password("nope").list_agents(&ListParams::default());

    // The kill switch suspends the (resumed) agent again: one AGENT_SUSPENDED of its own, per agent.
    for (event_type, count) in [
        ("AGENT_CREATED", 1),
        ("OWNER_SET", 1),
        ("AGENT_SUSPENDED", 2),
        ("AGENT_RESUMED", 1),
        ("SESSION_CREATED", 1),
        ("SESSION_RENEWED", 1),
        ("SESSION_REVOKED", 1),
        ("POLICY_CREATED", 1),
        ("POLICY_UPDATED", 1),
        ("POLICY_DELETED", 1),
        ("KILL_SWITCH_ACTIVATED", 1),
        ("KILL_SWITCH_RECOVERED", 1),
        ("AGENT_TERMINATED", 1),
        ("MASTER_AUTH_FAILED", 1),
    ] {
        let rows = audit(&daemon, event_type);
        assert_eq!(rows.len(), count, "{event_type}: {rows:?}");
        for row in &rows {
            let text = serde_json::to_string(&row.details).unwrap();
            assert!(!text.contains("wai_sess_") && !text.contains(MASTER_PASSWORD), "{event_type} leaks: {text}");
        }
    }
    assert_eq!(audit(&daemon, "AGENT_SUSPENDED")[0].details["by"], "kill_switch", "newest first");
    let terminated = audit(&daemon, "AGENT_TERMINATED");
    assert_eq!(terminated[0].agent_id.as_deref(), Some(agent.id.as_str()));
    let by_agent = daemon
        .admin()
        .audit_logs(&AuditLogFilter { agent_id: Some(agent.id.clone()), limit: Some(200), ..Default::default() })
        .unwrap();
    assert!(by_agent.data.len() >= 8, "terminating an agent keeps its audit rows");
}
