//! Secrets hygiene (issue 17, item 6), end to end against the real daemon binary on anvil: a full scenario
//! (agents, sessions, transfers to CONFIRMED, a policy denial, wrong master passwords, a webhook created, rotated
//! and delivered to a receiver, every notification channel configured with its credential — the Telegram token
//! from a `_FILE` — and used, one failing, an online backup, error responses, a `/metrics` scrape), then every place a secret
//! could leak to — the daemon's log, every file of the data dir (DB, WAL, keystore, config, the backup archive),
//! every API response body and the `/metrics` text — is scanned for every secret the scenario handled: the master
//! password (and the wrong ones tried), each session token (whole, its JWT, its signature), each webhook secret
//! (`whsec_…`, its base64 body, its 32 raw bytes), each agent's private key (raw bytes, hex, base64) and every
//! notification credential (ntfy topic and token, Slack and Discord webhook URLs, the Telegram bot token, the SMTP
//! password).
//!
//! The keystore files hold the keys encrypted (AES-GCM under an Argon2id key of the master password): a scan finds
//! neither the key nor the password there, so no file is exempted. The token-signing key and the audit head salt
//! are stored in the database by design (they are not credentials a client ever holds) and are not scanned for.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use waiaas_client::Client;

use crate::support::{
    Answer, Anvil, Channels, Daemon, DaemonOptions, MASTER_PASSWORD, ONE_ETH, Receiver, channels, eventually,
};

const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";
const WRONG_PASSWORDS: [&str; 3] = ["correct horse battery stapler", "Correct Horse Battery Staple", "hunter2-wrong"];

/// One secret in every form it could be written in.
struct Secret {
    kind: String,
    forms: Vec<(&'static str, Vec<u8>)>,
    /// The one response that shows it (a token or webhook secret is shown once, when issued): it must be found
    /// there — proof the scan looks for the right bytes — and nowhere else.
    shown_in: Option<String>,
}

impl Secret {
    fn text(kind: impl Into<String>, value: &str) -> Secret {
        Secret { kind: kind.into(), forms: vec![("text", value.as_bytes().to_vec())], shown_in: None }
    }

    /// A session token: whole, its JWT (no `wai_sess_` prefix) and its signature segment (the part no one can
    /// recompute without the signing key).
    fn session_token(label: &str, token: &str) -> Secret {
        let jwt = token.strip_prefix("wai_sess_").expect("a wai_sess_ token");
        let signature = jwt.rsplit('.').next().expect("a JWT signature");
        assert!(signature.len() >= 40, "an HS256 signature segment: {signature}");
        Secret {
            kind: format!("session token of {label}"),
            forms: vec![
                ("token", token.as_bytes().to_vec()),
                ("JWT", jwt.as_bytes().to_vec()),
                ("JWT signature", signature.as_bytes().to_vec()),
            ],
            shown_in: None,
        }
    }

    /// A webhook secret: `whsec_…`, its base64 body, its raw 32 bytes and their hex.
    fn webhook(label: &str, secret: &str) -> Secret {
        let body = secret.strip_prefix("whsec_").expect("a whsec_ secret");
        let raw = STANDARD.decode(body).expect("base64 secret body");
        assert_eq!(raw.len(), 32);
        Secret {
            kind: format!("webhook secret ({label})"),
            forms: vec![
                ("whsec_ string", secret.as_bytes().to_vec()),
                ("base64 body", body.as_bytes().to_vec()),
                ("hex", hex::encode(&raw).into_bytes()),
                ("raw bytes", raw),
            ],
            shown_in: None,
        }
    }

    /// A private key: raw 32 bytes, lowercase hex, base64.
    fn private_key(label: &str, raw: Vec<u8>) -> Secret {
        Secret {
            kind: format!("private key of agent {label}"),
            forms: vec![
                ("hex", hex::encode(&raw).into_bytes()),
                ("base64", STANDARD.encode(&raw).into_bytes()),
                ("raw bytes", raw),
            ],
            shown_in: None,
        }
    }

    /// Marks `place` as the response that shows this secret once.
    fn shown_in(mut self, place: &str) -> Secret {
        self.shown_in = Some(place.to_owned());
        self
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics naming every place, secret and form found (hex forms are also looked for in uppercase), and every
/// secret missing from the response that shows it.
#[track_caller]
fn scan(places: &[(String, Vec<u8>)], secrets: &[Secret]) {
    let mut found = Vec::new();
    for (place, bytes) in places {
        let lower = bytes.to_ascii_lowercase();
        for secret in secrets {
            let shown_here = secret.shown_in.as_deref() == Some(place.as_str());
            for (form, needle) in &secret.forms {
                let hit = contains(bytes, needle) || (*form == "hex" && contains(&lower, needle));
                if hit && !shown_here {
                    found.push(format!("{} ({form}) found in {place}", secret.kind));
                }
            }
            if shown_here && !contains(bytes, &secret.forms[0].1) {
                found.push(format!("{} is not in {place}, the response that shows it", secret.kind));
            }
        }
    }
    for secret in secrets {
        if let Some(shown_in) = &secret.shown_in
            && !places.iter().any(|(place, _)| place == shown_in)
        {
            found.push(format!("{}: {shown_in} was not scanned", secret.kind));
        }
    }
    assert!(found.is_empty(), "secrets leaked:\n  {}", found.join("\n  "));
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files
}

/// The data dir's files as scan places (a file may vanish between listing and reading: the WAL at checkpoint).
fn data_dir_places(dir: &Path, when: &str) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter_map(|path| std::fs::read(&path).ok().map(|bytes| (format!("{} ({when})", path.display()), bytes)))
        .collect()
}

/// Raw HTTP against the daemon, keeping every response body as a scan place.
struct Api {
    client: Client,
    responses: Vec<(String, Vec<u8>)>,
}

impl Api {
    /// The name of the last response kept.
    fn last_place(&self) -> String {
        self.responses.last().expect("a response").0.clone()
    }

    /// `method path` with `headers` and an optional JSON body; returns (status, parsed body or Null).
    fn call(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, Value) {
        let text = body.map(Value::to_string);
        let mut all = headers.to_vec();
        if text.is_some() {
            all.push(("content-type", "application/json"));
        }
        let (status, _, bytes) =
            self.client.request_raw(method, path, &all, text.as_deref().map(str::as_bytes)).expect("HTTP request");
        let parsed = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let n = self.responses.len();
        self.responses.push((format!("response #{n} to {method} {path} ({status})"), bytes));
        (status, parsed)
    }

    fn master(&mut self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, value) = self.call(method, path, &[("x-master-password", MASTER_PASSWORD)], body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    }

    fn session(&mut self, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let bearer = format!("Bearer {token}");
        self.call(method, path, &[("authorization", &bearer)], body)
    }
}

/// The agent's private key, read back from its keystore file with the master password (as the keystore test
/// does): the key the scan must not find anywhere.
fn private_key(daemon: &Daemon, agent_id: &str, address: &str) -> Vec<u8> {
    let keystore = waiaas_fs::FsKeyStore::new(
        daemon.data_dir().join("keystore"),
        zeroize::Zeroizing::new(MASTER_PASSWORD.to_owned()),
        waiaas_fs::KdfParams::fast_for_tests(),
    );
    keystore
        .with_signer(agent_id.parse().expect("agent id"), |signer| {
            assert_eq!(signer.address().to_checksum(None), address);
            signer.to_bytes().to_vec()
        })
        .expect("the keystore opens with the master password")
}

#[test]
fn no_secret_leaks_to_logs_files_backups_responses_or_metrics() {
    let anvil = Anvil::start();
    // Every notification channel, each with its credential; the Telegram token read from a file.
    let notify = Channels::start();
    let secret_files = tempfile::tempdir().expect("a dir for secret files");
    let token_file = secret_files.path().join("telegram-token");
    std::fs::write(&token_file, format!("{}\n", channels::TELEGRAM_TOKEN)).expect("token file");
    let mut extra_env: Vec<(String, String)> =
        notify.env().into_iter().filter(|(k, _)| k != "WAIAAS_NOTIFICATIONS_TELEGRAM_BOT_TOKEN").collect();
    extra_env.push(("WAIAAS_NOTIFICATIONS_TELEGRAM_BOT_TOKEN_FILE".to_owned(), token_file.display().to_string()));
    let mut daemon = Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".to_owned(), anvil.url.clone())],
        extra_env,
        ..DaemonOptions::default()
    });
    let mut api = Api { client: daemon.client(), responses: Vec::new() };
    let mut secrets = vec![Secret::text("master password", MASTER_PASSWORD)];
    secrets.extend(channels::SECRETS.iter().map(|s| Secret::text(format!("notification credential {s:?}"), s)));
    secrets.extend(WRONG_PASSWORDS.iter().map(|p| Secret::text(format!("wrong master password {p:?}"), p)));

    // Two agents, each with sessions; the first funded.
    let mut agents = Vec::new();
    for name in ["payer", "idle"] {
        let agent =
            api.master("POST", "/v1/agents", Some(&json!({"name": name, "chain": "ethereum", "network": "anvil"})));
        let (id, address) = (agent["id"].as_str().unwrap().to_owned(), agent["address"].as_str().unwrap().to_owned());
        secrets.push(Secret::private_key(name, private_key(&daemon, &id, &address)));
        agents.push((id, address));
    }
    anvil.fund(&agents[0].1, 10 * ONE_ETH);
    let mut tokens = Vec::new();
    for (n, (id, _)) in agents.iter().chain(agents.iter()).enumerate() {
        let issued = api.master("POST", "/v1/sessions", Some(&json!({"agentId": id})));
        let token = issued["token"].as_str().expect("a token").to_owned();
        secrets.push(Secret::session_token(&format!("session {n}"), &token).shown_in(&api.last_place()));
        tokens.push((issued["id"].as_str().unwrap().to_owned(), token));
    }
    let payer = tokens[0].1.clone();

    // A webhook: created, delivered, rotated, delivered again (both secrets verify a delivery).
    let receiver = Receiver::status(200);
    let hook = api.master(
        "POST",
        "/v1/webhooks",
        Some(&json!({"url": receiver.url("/hook"), "eventTypes": ["WEBHOOK_TEST", "TX_CONFIRMED"]})),
    );
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let first_secret = hook["secret"].as_str().expect("the secret, shown once").to_owned();
    secrets.push(Secret::webhook("as created", &first_secret).shown_in(&api.last_place()));
    api.master("POST", &format!("/v1/webhooks/{hook_id}/test"), None);
    let got = receiver.wait_for(1, 30);
    assert!(crate::webhooks::verify(&first_secret, &got[0]), "the first delivery verifies with the first secret");
    let rotated = api.master("POST", &format!("/v1/webhooks/{hook_id}/rotate-secret"), None);
    let second_secret = rotated["secret"].as_str().expect("the new secret").to_owned();
    assert_ne!(first_secret, second_secret);
    secrets.push(Secret::webhook("rotated", &second_secret).shown_in(&api.last_place()));

    // Transfers to CONFIRMED (each also delivered to the receiver), then a policy denial.
    for amount in ["1000", "2000"] {
        let (status, sent) = api.session(
            &payer,
            "POST",
            "/v1/transactions/send",
            Some(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": amount})),
        );
        assert_eq!(status, 201, "{sent}");
        let id = sent["id"].as_str().unwrap().to_owned();
        let tx = eventually(30, "a final status", || {
            let (_, tx) = api.session(&payer, "GET", &format!("/v1/transactions/{id}"), None);
            matches!(tx["status"].as_str(), Some("CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED")).then_some(tx)
        });
        assert_eq!(tx["status"], "CONFIRMED", "{tx}");
    }
    assert_eq!(anvil.native_balance(RECIPIENT), alloy_primitives::U256::from(3000u64));
    let deliveries = receiver.wait_for(3, 30);
    assert_eq!(deliveries.len(), 3, "one test delivery, two confirmations");
    assert!(
        deliveries[1..].iter().all(|d| crate::webhooks::verify(&second_secret, d)),
        "later deliveries use the new secret"
    );
    let (status, denied) = api.session(
        &payer,
        "POST",
        "/v1/transactions/send",
        Some(&json!({"type": "CONTRACT_CALL", "to": RECIPIENT, "calldata": "0xdeadbeef"})),
    );
    assert_eq!((status, denied["code"].as_str()), (403, Some("POLICY_DENIED")), "{denied}");
    // The denial reaches ntfy (the first channel); each channel sends a test message; a failing one is logged.
    eventually(30, "the denial at ntfy", || (!notify.delivered("denied by policy").is_empty()).then_some(()));
    for channel in ["ntfy", "slack", "discord", "telegram", "email"] {
        let tested = api.master("POST", "/v1/admin/notifications/test", Some(&json!({"channel": channel})));
        assert_eq!(tested["sent"], true, "{channel}: {tested}");
    }
    notify.telegram.answer_with(|_| Answer::Status(401, vec![]));
    let failed = api.master("POST", "/v1/admin/notifications/test", Some(&json!({"channel": "telegram"})));
    assert_eq!((failed["sent"].as_bool(), failed["error"].as_str()), (Some(false), Some("HTTP 401")), "{failed}");

    // Wrong master passwords (fewer than the limiter's 5 per window, so the operator is not locked out).
    for wrong in WRONG_PASSWORDS {
        let (status, body) = api.call("GET", "/v1/agents", &[("x-master-password", wrong)], None);
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_MASTER_PASSWORD")), "{body}");
    }

    // Error responses: a tampered token, a revoked session, a session token on a master endpoint, a master
    // password on a session endpoint, a bad body, an unknown route.
    let tampered = format!("{}x", tokens[1].1);
    let (status, _) = api.session(&tampered, "GET", "/v1/wallet/address", None);
    assert_eq!(status, 401);
    let (revoked_id, revoked_token) = tokens[3].clone();
    api.master("DELETE", &format!("/v1/sessions/{revoked_id}"), None);
    let (status, body) = api.session(&revoked_token, "GET", "/v1/wallet/address", None);
    assert_eq!((status, body["code"].as_str()), (401, Some("SESSION_REVOKED")), "{body}");
    let (_, body) = api.session(&tokens[2].1, "GET", "/v1/agents", None);
    assert_eq!(body["code"], "WRONG_AUTH", "{body}");
    let (_, body) = api.call("GET", "/v1/wallet/address", &[("x-master-password", MASTER_PASSWORD)], None);
    assert_eq!(body["code"], "WRONG_AUTH", "{body}");
    let (status, _) = api.session(&payer, "POST", "/v1/transactions/send", Some(&json!({"type": "TRANSFER"})));
    assert_eq!(status, 400);
    let (status, _) = api.call("GET", "/v1/no-such-route", &[], None);
    assert_eq!(status, 404);
    let (status, _) = api.session(&payer, "GET", "/v1/wallet/balance", None);
    assert_eq!(status, 200);

    // An online backup (into `<data dir>/backups`, scanned with the rest of the data dir).
    let backup = api.master("POST", "/v1/admin/backup", Some(&json!({"kdf": "pbkdf2"})));
    assert!(backup.to_string().contains(".waiaas-backup"), "{backup}");

    // Every listing an operator reads, and the metrics text.
    for path in [
        "/v1/agents",
        "/v1/sessions",
        "/v1/webhooks",
        &format!("/v1/webhooks/{hook_id}/logs"),
        "/v1/audit-logs?limit=200",
        "/v1/admin/notifications/log?limit=200",
    ] {
        api.master("GET", path, None);
    }
    let (status, _, metrics) = daemon
        .client()
        .request_raw("GET", "/metrics", &[("x-master-password", MASTER_PASSWORD)], None)
        .expect("GET /metrics");
    assert_eq!(status, 200);
    let metrics_text = String::from_utf8(metrics.clone()).expect("metrics text");
    assert!(metrics_text.contains("waiaas_transactions_total"), "a real scrape");

    // What the receiver got is the webhook payloads: scanned too (a delivery signs with the secret, never carries it).
    let mut places = data_dir_places(daemon.data_dir(), "daemon running");
    places.push(("/metrics".to_owned(), metrics));
    places.extend(receiver.received().into_iter().enumerate().map(|(n, d)| (format!("webhook delivery {n}"), d.body)));
    daemon.stop();
    places.push(("the daemon's stderr log".to_owned(), daemon.stderr().into_bytes()));
    places.extend(data_dir_places(daemon.data_dir(), "daemon stopped"));
    places.append(&mut api.responses);

    let names: Vec<&str> = places.iter().map(|(name, _)| name.as_str()).collect();
    for expected in ["waiaas.db", "keystore", ".waiaas-backup", "config.toml", "test-daemon.stderr"] {
        assert!(names.iter().any(|n| n.contains(expected)), "no {expected} among the scanned places: {names:#?}");
    }
    assert!(daemon.stderr().contains("INFO"), "the log has content to scan");
    assert!(secrets.len() >= 4 + 2 + 4 + 2 + channels::SECRETS.len(), "every secret is scanned for");
    scan(&places, &secrets);
}

/// The scan helper fails loudly: a planted secret is reported with its place and kind.
#[test]
fn the_scan_names_the_place_and_the_secret() {
    let secret = Secret::webhook("planted", "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    let raw = (0u8..32).collect::<Vec<_>>();
    let places =
        vec![("clean".to_owned(), b"nothing here".to_vec()), ("dirty".to_owned(), [b"xx".to_vec(), raw].concat())];
    let failure = std::panic::catch_unwind(|| scan(&places, std::slice::from_ref(&secret))).expect_err("found");
    let message = failure.downcast_ref::<String>().expect("a message");
    assert!(message.contains("webhook secret (planted) (raw bytes) found in dirty"), "{message}");
    assert!(!message.contains("in clean"), "{message}");
}

/// `waiaas_master_password_argon2_verifications_total` in a scrape of `daemon`.
fn argon2_verifications(daemon: &Daemon) -> f64 {
    let (status, _, body) = daemon
        .client()
        .request_raw("GET", "/metrics", &[("x-master-password", MASTER_PASSWORD)], None)
        .expect("GET /metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("waiaas_master_password_argon2_verifications_total ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("the Argon2 counter is not in the scrape:\n{text}"))
}

/// Brute force on the master password is no Argon2 denial-of-service lever: a request compares an HMAC, so a
/// concurrent flood of wrong passwords from many loopback addresses (each below, then at, its failure limit) runs
/// no Argon2 verification at all — the bound on concurrent verifications is zero — and the operator still gets in.
#[test]
fn a_flood_of_wrong_master_passwords_runs_no_argon2_and_the_operator_still_gets_in() {
    const SOURCES: usize = 40;
    const PER_SOURCE: usize = 6; // the default limit is 5 failures per window: the 6th is RATE_LIMITED
    let mut daemon = Daemon::start();
    // The first start hashes the password; a restart verifies it: the counter counts real Argon2 runs.
    daemon.restart();
    assert_eq!(argon2_verifications(&daemon), 1.0, "the unlock ran one Argon2 verification");

    let port: u16 = daemon.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("daemon port");
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                scope.spawn(move || {
                    let mut answers = Vec::new();
                    for source in (worker..SOURCES).step_by(8) {
                        let ip = format!("127.0.3.{}", source + 1);
                        for attempt in 0..PER_SOURCE {
                            let wrong = format!("wrong password {source}/{attempt}");
                            let headers = [("X-Master-Password", wrong.as_str())];
                            answers.push(crate::acl::http_from(&ip, port, "GET", "/v1/agents", &headers));
                        }
                    }
                    answers
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a flooding thread")).collect()
    });
    let count = |code: &str| answers.iter().filter(|(_, body)| body["code"] == code).count();
    assert_eq!(answers.len(), SOURCES * PER_SOURCE);
    assert_eq!(count("INVALID_MASTER_PASSWORD"), SOURCES * 5, "each source's first 5 were compared and refused");
    assert_eq!(count("RATE_LIMITED"), SOURCES, "each source's 6th was limited");
    assert!(answers.iter().all(|(status, _)| *status == 401 || *status == 429));
    assert!(
        answers
            .iter()
            .filter(|(_, b)| b["code"] == "RATE_LIMITED")
            .all(|(_, b)| b["details"]["retryAfterSeconds"].as_i64().is_some_and(|s| s > 0)),
        "a limited answer says when to retry"
    );

    assert_eq!(argon2_verifications(&daemon), 1.0, "no Argon2 verification ran for the flood");
    daemon.admin().list_agents(&waiaas_client::types::ListParams::default()).expect("the operator still gets in");
}
