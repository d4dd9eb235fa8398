//! OPS-05 acceptance: `GET /metrics` from the real daemon, checked by the real `promtool` and a Prometheus text
//! parser (T-12), and every exported metric moved by the entry point that should move it, read back from the
//! scraped text (T-13 and the rest): the pipeline on anvil, policy denials, HTTP routes, RPC calls, session and
//! agent gauges across a restart, the kill switch, and the three access modes.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use waiaas_client::Client;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession};

use crate::support::{Anvil, Daemon, DaemonOptions, EmbeddedDaemon, MASTER_PASSWORD, api_error, eventually};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
const OTHER: &str = "0x2222222222222222222222222222222222222222";
const ONE_ETH: u128 = 1_000_000_000_000_000_000;
const BEARER: &str = "metrics-scrape-token-0123456789";

/// One scrape: the text and its samples by (name, sorted labels).
pub(crate) struct Scrape {
    text: String,
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

fn parse_labels(inner: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = inner;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((name.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    labels.sort();
    labels
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            samples.insert((name.to_owned(), labels), value);
        }
        Scrape { text, samples }
    }

    /// The sample with exactly these labels (0 when absent: a counter not yet incremented).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.sort();
        self.samples.get(&(name.to_owned(), labels)).copied().unwrap_or(0.0)
    }

    pub(crate) fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut labels: Vec<(String, String)> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        labels.sort();
        self.samples.contains_key(&(name.to_owned(), labels))
    }

    fn label_values(&self) -> impl Iterator<Item = &(String, String)> {
        self.samples.keys().flat_map(|(_, labels)| labels.iter())
    }
}

/// `GET /metrics` with `headers`: (status, content type, body).
fn get_metrics(client: &Client, headers: &[(&str, &str)]) -> (u16, String, String) {
    let (status, headers, body) = client.request_raw("GET", "/metrics", headers, None).expect("GET /metrics");
    let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
    (status, content_type, String::from_utf8(body).expect("utf-8 body"))
}

#[track_caller]
pub(crate) fn scrape(client: &Client) -> Scrape {
    let (status, content_type, body) = get_metrics(client, &[]);
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    Scrape::parse(body)
}

/// The error code of a JSON error body.
fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).expect("JSON error body")["code"].as_str().unwrap_or_default().to_owned()
}

/// Runs the real `promtool check metrics` on `text` (`scripts/install-promtool` puts it in `target/tools`, which
/// `scripts/test` and `.ci/run` run; otherwise it must be on PATH). A missing promtool fails the test.
fn promtool_check(text: &str) {
    let installed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/usr/bin/promtool");
    let program = if installed.exists() { installed } else { std::path::PathBuf::from("promtool") };
    let mut child = Command::new(program)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run scripts/test (it installs Debian's prometheus promtool)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics failed:\n{said}\n---\n{text}");
}

fn anvil_daemon(anvil: &Anvil, extra_env: &[(&str, &str)]) -> Daemon {
    Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".into(), anvil.url.clone())],
        extra_env: extra_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    })
}

/// An agent with a session token: (agent id, agent client).
fn agent_with_session(admin: &Client, base: &Client, name: &str) -> (String, Client) {
    let agent = admin.create_agent(&CreateAgent::ethereum(name, "anvil")).expect("create agent");
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    (agent.id, base.clone().with_session_token(&token))
}

fn transfer(to: &str, amount: u128) -> Value {
    json!({"type": "TRANSFER", "to": to, "amount": amount.to_string()})
}

fn confirmed_labels() -> [(&'static str, &'static str); 4] {
    [("chain", "ethereum"), ("type", "transfer"), ("tier", "instant"), ("status", "confirmed")]
}

#[test]
fn t12_metrics_is_valid_prometheus_text_exposition() {
    let anvil = Anvil::start();
    let daemon = anvil_daemon(&anvil, &[("WAIAAS_ORACLE_USD_ETH", "3000")]);
    let admin = daemon.admin();
    let (agent_id, agent) = agent_with_session(&admin, &daemon.client(), "t12");
    let address = admin.get_agent(&agent_id).unwrap().address;
    anvil.fund(&address, ONE_ETH);
    agent.wallet_balance().expect("balance");
    let sent = agent.send_transaction_raw(&transfer(RECIPIENT, 5)).expect("send");
    eventually(30, "CONFIRMED", || (agent.get_transaction(&sent.id).unwrap().status == "CONFIRMED").then_some(()));
    daemon.client().request_raw("GET", "/no/such/route", &[], None).unwrap();

    let (status, content_type, text) = get_metrics(&daemon.client(), &[]);
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    promtool_check(&text);
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus parser");
    assert!(parsed.samples.len() > 20, "{} samples", parsed.samples.len());

    // Every catalog metric is exported with HELP and TYPE; histograms have buckets, not quantiles.
    for def in waiaas_core::metrics::CATALOG {
        assert!(text.contains(&format!("# HELP {} ", def.name)), "no HELP for {}", def.name);
        let kind = format!("{:?}", def.kind).to_lowercase();
        assert!(text.contains(&format!("# TYPE {} {kind}\n", def.name)), "no TYPE {kind} for {}", def.name);
    }
    assert!(text.contains("waiaas_transaction_duration_seconds_bucket{le=\"+Inf\"}"), "{text}");
    assert!(!text.contains("quantile="), "summaries instead of histograms");

    // No label carries an id, an address, a token or a raw path.
    let scraped = Scrape::parse(text);
    for (name, value) in scraped.label_values() {
        assert!(!value.contains(&agent_id) && !value.contains(&sent.id), "{name}={value} holds an id");
        assert!(!value.to_lowercase().contains(&address.to_lowercase()[2..]), "{name}={value} holds an address");
        assert!(!value.contains("/no/such"), "{name}={value} holds a raw path");
        assert!(!value.starts_with("wai_sess_") && !value.contains(BEARER), "{name}={value} holds a token");
    }
    assert_eq!(scraped.value("waiaas_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(scraped.has("waiaas_oracle_price_age_seconds", &[("symbol", "ETH")]), "oracle age per configured symbol");
    assert_eq!(scraped.value("waiaas_backup_last_success_timestamp_seconds", &[]), 0.0);
}

/// Prometheus' instrumentation guide, "avoid missing metrics": the very first scrape of a fresh daemon (no request
/// before it) has every family of the catalog, every counter at 0 for each combination of its known label values
/// (so `rate()` and `increase()` work before the first event), histograms with empty buckets and gauges set, and
/// promtool accepts it. A family added to the catalog without being exported fails here.
#[test]
fn the_first_scrape_of_a_fresh_daemon_has_every_family_of_the_catalog() {
    use waiaas_core::metrics::{CATALOG, MetricKind};
    let daemon = Daemon::start_with(DaemonOptions {
        extra_env: vec![("WAIAAS_ORACLE_USD_ETH".into(), "3000".into())],
        ..Default::default()
    });
    let first = scrape(&daemon.client());
    promtool_check(&first.text);
    for def in CATALOG {
        let sample = match def.kind {
            MetricKind::Histogram => format!("{}_count", def.name),
            MetricKind::Counter | MetricKind::Gauge => def.name.to_owned(),
        };
        assert!(first.samples.keys().any(|(name, _)| *name == sample), "{} is missing:\n{}", def.name, first.text);
        let kind = format!("{:?}", def.kind).to_lowercase();
        assert!(first.text.contains(&format!("# TYPE {} {kind}\n", def.name)), "no TYPE for {}", def.name);
        for labels in def.known_label_sets().unwrap_or_default() {
            assert!(first.has(&sample, &labels), "{} {labels:?} is missing:\n{}", def.name, first.text);
            if def.kind == MetricKind::Counter {
                assert_eq!(first.value(def.name, &labels), 0.0, "{} {labels:?}", def.name);
            }
        }
    }
    let denied = [("tier", "none"), ("result", "denied")];
    assert!(first.has("waiaas_policy_evaluations_total", &denied));
    let rpc_error = [("chain", "ethereum"), ("method", "eth_getBalance"), ("status", "error")];
    assert!(first.has("waiaas_rpc_requests_total", &rpc_error), "the RPC client's methods at zero");
    let send = [("route", "/v1/transactions/send"), ("method", "POST"), ("status", "201")];
    assert!(first.has("waiaas_http_requests_total", &send), "documented operations at zero");
    assert!(first.has("waiaas_rpc_duration_seconds_count", &[("method", "eth_sendRawTransaction")]));
    assert_eq!(first.value("waiaas_transactions_non_final", &[("status", "queued")]), 0.0);
    assert!(first.has("waiaas_transactions_non_final", &[("status", "submitted")]));
    assert_eq!(first.value("waiaas_transaction_duration_seconds_count", &[]), 0.0);
    assert!(first.has("waiaas_transaction_duration_seconds_count", &[]));
}

#[test]
fn t13_a_confirmed_transfer_and_a_denial_move_the_transaction_counters_once() {
    let anvil = Anvil::start();
    let daemon = anvil_daemon(&anvil, &[]);
    let admin = daemon.admin();
    let (agent_id, agent) = agent_with_session(&admin, &daemon.client(), "t13");
    anvil.fund(&admin.get_agent(&agent_id).unwrap().address, ONE_ETH);
    let before = scrape(&daemon.client());

    let sent = agent.send_transaction_raw(&transfer(RECIPIENT, 7)).expect("send");
    eventually(30, "CONFIRMED", || (agent.get_transaction(&sent.id).unwrap().status == "CONFIRMED").then_some(()));
    let after = scrape(&daemon.client());
    let delta = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    assert_eq!(delta("waiaas_transactions_total", &confirmed_labels()), 1.0, "{}", after.text);
    assert_eq!(delta("waiaas_transaction_duration_seconds_count", &[]), 1.0);
    assert_eq!(delta("waiaas_policy_evaluations_total", &[("tier", "instant"), ("result", "allowed")]), 1.0);

    // A denial: counted as a denied evaluation and as a transaction cancelled at tier none.
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent_id.clone()),
            policy_type: "WHITELIST".into(),
            rules: json!({"allowed_addresses": [OTHER]}),
            enabled: None,
        })
        .expect("policy");
    let (status, code, _) = api_error(agent.send_transaction_raw(&transfer(RECIPIENT, 7)));
    assert_eq!((status, code.as_str()), (403, "POLICY_DENIED"));
    let denied = scrape(&daemon.client());
    let denied_tx = [("chain", "ethereum"), ("type", "transfer"), ("tier", "none"), ("status", "cancelled")];
    assert_eq!(denied.value("waiaas_transactions_total", &denied_tx), 1.0, "{}", denied.text);
    assert_eq!(denied.value("waiaas_policy_evaluations_total", &[("tier", "none"), ("result", "denied")]), 1.0);
    assert_eq!(
        denied.value("waiaas_transactions_total", &confirmed_labels()),
        after.value("waiaas_transactions_total", &confirmed_labels())
    );

    // A dry run changes no pipeline metric (only the HTTP request is counted).
    agent.simulate(&transfer(OTHER, 7)).expect("simulate");
    agent.simulate(&transfer(RECIPIENT, 7)).expect("simulate a denied request");
    let simulated = scrape(&daemon.client());
    for prefix in ["waiaas_transactions_total", "waiaas_transaction_duration", "waiaas_policy_evaluations_total"] {
        let pick = |s: &Scrape| {
            s.samples
                .iter()
                .filter(|((n, _), _)| n.starts_with(prefix))
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&simulated), pick(&denied), "simulate moved {prefix}");
    }
}

#[test]
fn http_requests_are_counted_by_route_template_and_rpc_calls_by_method() {
    let anvil = Anvil::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())]);
    let admin = daemon.admin();
    let (agent_id, agent) = agent_with_session(&admin, &daemon.client(), "http");
    let before = scrape(&daemon.client());
    admin.get_agent(&agent_id).expect("get agent");
    admin.get_agent(&agent_id).expect("get agent again");
    let (status, _, _) = daemon.client().request_raw("GET", "/v1/agents/not-an-id/xyz", &[], None).unwrap();
    assert_eq!(status, 404);
    agent.wallet_balance().expect("balance");
    let after = scrape(&daemon.client());
    let delta = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    let route = [("route", "/v1/agents/{id}"), ("method", "GET"), ("status", "200")];
    assert_eq!(delta("waiaas_http_requests_total", &route), 2.0, "{}", after.text);
    assert_eq!(delta("waiaas_http_request_duration_seconds_count", &[("route", "/v1/agents/{id}")]), 2.0);
    assert_eq!(
        delta("waiaas_http_requests_total", &[("route", "unmatched"), ("method", "GET"), ("status", "404")]),
        1.0
    );
    // The previous scrape itself was counted under its own route.
    assert!(
        after.value("waiaas_http_requests_total", &[("route", "/metrics"), ("method", "GET"), ("status", "200")])
            >= 1.0
    );
    for (name, value) in after.label_values() {
        assert!(!value.contains(&agent_id) && !value.contains("not-an-id"), "{name}={value}");
    }

    let rpc = [("chain", "ethereum"), ("method", "eth_getBalance"), ("status", "ok")];
    assert_eq!(delta("waiaas_rpc_requests_total", &rpc), 1.0, "{}", after.text);
    assert_eq!(delta("waiaas_rpc_duration_seconds_count", &[("method", "eth_getBalance")]), 1.0);

    // A node that does not answer: counted as an error.
    drop(anvil);
    api_error(agent.wallet_balance());
    let failed = scrape(&daemon.client());
    let rpc_error = [("chain", "ethereum"), ("method", "eth_getBalance"), ("status", "error")];
    assert_eq!(failed.value("waiaas_rpc_requests_total", &rpc_error), 1.0, "{}", failed.text);
}

#[test]
fn session_agent_and_kill_switch_gauges_follow_changes_and_survive_a_restart() {
    let mut daemon = Daemon::start();
    let gauges = |d: &Daemon| {
        let s = scrape(&d.client());
        (
            s.value("waiaas_sessions_active", &[]),
            s.value("waiaas_agents_active", &[]),
            s.value("waiaas_killswitch_state", &[]),
        )
    };
    assert_eq!(gauges(&daemon), (0.0, 0.0, 0.0));
    let admin = daemon.admin();
    let a = admin.create_agent(&CreateAgent::ethereum("a", "anvil")).unwrap();
    let b = admin.create_agent(&CreateAgent::ethereum("b", "anvil")).unwrap();
    let s1 = admin.create_session(&CreateSession::for_agent(&a.id)).unwrap();
    admin.create_session(&CreateSession::for_agent(&a.id)).unwrap();
    admin.create_session(&CreateSession::for_agent(&b.id)).unwrap();
    assert_eq!(gauges(&daemon), (3.0, 2.0, 0.0));
    admin.revoke_session(&s1.id).unwrap();
    admin.suspend_agent(&b.id).unwrap();
    assert_eq!(gauges(&daemon), (2.0, 1.0, 0.0), "agent b's suspension keeps its session row active");

    daemon.restart();
    assert_eq!(gauges(&daemon), (2.0, 1.0, 0.0), "read from the database at startup");

    let admin = daemon.admin();
    admin.activate_kill_switch(Some("metrics test")).unwrap();
    assert_eq!(gauges(&daemon), (0.0, 0.0, 1.0), "activation revokes sessions and suspends agents");
    let (status, _, _) = daemon.client().request_raw("GET", "/health", &[], None).unwrap();
    assert_eq!(status, 200, "health stays reachable while tripped");
    admin.activate_kill_switch(None).unwrap();
    assert_eq!(gauges(&daemon).2, 2.0);
    daemon.restart();
    assert_eq!(gauges(&daemon), (0.0, 0.0, 2.0));
    daemon.admin().recover().unwrap();
    assert_eq!(gauges(&daemon).2, 0.0);
}

/// `waiaas_transactions_non_final{status}` is read from the database with the other state gauges: at start, and
/// (not shown here) every 15 s by the worker.
#[test]
fn the_non_final_transaction_gauge_is_read_from_the_database() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let (agent_id, agent) = agent_with_session(&admin, &daemon.client(), "queued");
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent_id),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "0", "notify_max": "0", "delay_max": "1000", "delay_seconds": 3600}),
            enabled: None,
        })
        .expect("policy");
    let sent = agent.send_transaction_raw(&transfer(RECIPIENT, 5)).expect("send");
    assert_eq!(sent.status, "QUEUED");
    daemon.restart();
    let queued = |d: &Daemon| scrape(&d.client()).value("waiaas_transactions_non_final", &[("status", "queued")]);
    assert_eq!(queued(&daemon), 1.0);
    daemon.admin().admin_cancel_transaction(&sent.id).expect("cancel");
    daemon.restart();
    assert_eq!(queued(&daemon), 0.0);
}

#[test]
fn metrics_access_modes_none_master_bearer_and_disabled() {
    let dead_node = ("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9");

    let open = EmbeddedDaemon::start(&[dead_node]);
    assert_eq!(get_metrics(&open.client(), &[]).0, 200, "auth = none by default");

    let master = EmbeddedDaemon::start(&[dead_node, ("WAIAAS_METRICS_AUTH", "master")]);
    let agent = master.admin().create_agent(&CreateAgent::ethereum("m", "anvil")).unwrap();
    let session_token = master.admin().create_session(&CreateSession::for_agent(&agent.id)).unwrap().token;
    let (status, _, body) = get_metrics(&master.client(), &[]);
    assert_eq!((status, code(&body).as_str()), (401, "UNAUTHORIZED"), "{body}");
    let (status, _, body) = get_metrics(&master.client(), &[("x-master-password", "wrong password")]);
    assert_eq!((status, code(&body).as_str()), (401, "INVALID_MASTER_PASSWORD"), "{body}");
    let failures = master
        .admin()
        .audit_logs(&AuditLogFilter { event_types: vec!["MASTER_AUTH_FAILED".into()], ..Default::default() })
        .expect("audit");
    assert_eq!(failures.data.len(), 1, "a wrong password on /metrics is audited");
    let (status, _, body) = get_metrics(&master.client(), &[("authorization", &format!("Bearer {session_token}"))]);
    assert_eq!((status, code(&body).as_str()), (401, "WRONG_AUTH"), "{body}");
    let (status, _, body) = get_metrics(&master.client(), &[("x-master-password", MASTER_PASSWORD)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("waiaas_audit_write_failures_total 0"), "{body}");

    let bearer =
        EmbeddedDaemon::start(&[dead_node, ("WAIAAS_METRICS_AUTH", "bearer"), ("WAIAAS_METRICS_BEARER_TOKEN", BEARER)]);
    let (status, _, body) = get_metrics(&bearer.client(), &[]);
    assert_eq!((status, code(&body).as_str()), (401, "UNAUTHORIZED"), "{body}");
    let (status, _, _) = get_metrics(&bearer.client(), &[("authorization", "Bearer metrics-scrape-token-wrong")]);
    assert_eq!(status, 401);
    let (status, _, _) = get_metrics(&bearer.client(), &[("x-master-password", MASTER_PASSWORD)]);
    assert_eq!(status, 401, "the master password is not the scrape token");
    let (status, content_type, body) = get_metrics(&bearer.client(), &[("authorization", &format!("Bearer {BEARER}"))]);
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"));

    let disabled = EmbeddedDaemon::start(&[dead_node, ("WAIAAS_METRICS_ENABLED", "false")]);
    let (status, _, body) = get_metrics(&disabled.client(), &[]);
    assert_eq!((status, code(&body).as_str()), (404, "NOT_FOUND"), "{body}");
}

#[test]
fn a_backup_sets_the_last_success_timestamp_and_a_restart_keeps_it() {
    let mut daemon = Daemon::start();
    assert_eq!(scrape(&daemon.client()).value("waiaas_backup_last_success_timestamp_seconds", &[]), 0.0);
    daemon.admin().create_backup(waiaas_client::BackupKdf::Pbkdf2).expect("backup");
    let last = daemon.admin().list_backups().expect("list").last_success_at.expect("a last success");
    let at = scrape(&daemon.client()).value("waiaas_backup_last_success_timestamp_seconds", &[]);
    assert_eq!(at, last as f64);
    daemon.restart();
    assert_eq!(scrape(&daemon.client()).value("waiaas_backup_last_success_timestamp_seconds", &[]), at);
}

/// The series the "no recent backup" alert needs: the start time (the daemon's clock at unlock) and the scheduler's
/// interval, 0 when scheduled backups are off (the default) so the alert stays quiet.
#[test]
fn the_start_time_and_the_backup_interval_are_exported() {
    let off = Daemon::start();
    let scraped = scrape(&off.client());
    assert_eq!(scraped.value("waiaas_backup_interval_seconds", &[]), 0.0);
    assert!(scraped.has("waiaas_backup_interval_seconds", &[]));
    let started = scraped.value("waiaas_start_time_seconds", &[]);
    let listed = off.admin().list_backups().expect("list");
    assert!(started > 1.7e9, "{started}");
    assert_eq!(listed.last_success_at, None);

    let scheduled = Daemon::start_with(DaemonOptions {
        extra_env: vec![("WAIAAS_BACKUP_INTERVAL".into(), "86400".into())],
        ..Default::default()
    });
    eventually(10, "the scheduler's interval", || {
        (scrape(&scheduled.client()).value("waiaas_backup_interval_seconds", &[]) == 86400.0).then_some(())
    });
}

/// A failed audit append is counted: a trigger (added with the sqlite3 command line to the running daemon's
/// database) makes audit inserts fail; a wrong master password then cannot be recorded, the request fails
/// closed with INTERNAL_ERROR, and `waiaas_audit_write_failures_total` moves by exactly one.
#[test]
fn a_failed_audit_write_is_counted_and_fails_closed() {
    let daemon = Daemon::start();
    let before = scrape(&daemon.client()).value("waiaas_audit_write_failures_total", &[]);
    let db = daemon.data_dir().join("data/waiaas.db");
    let trigger =
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_logs BEGIN SELECT RAISE(ABORT, 'audit refused'); END;";
    let added = Command::new("sqlite3").arg(&db).arg(trigger).status().expect("the sqlite3 command line");
    assert!(added.success());

    let (status, code, _) =
        api_error(daemon.client().with_master_password("guess-7Qx9").list_agents(&Default::default()));
    assert_eq!((status, code.as_str()), (500, "INTERNAL_ERROR"), "an unrecordable failure is not a plain 401");
    assert_eq!(scrape(&daemon.client()).value("waiaas_audit_write_failures_total", &[]) - before, 1.0);
    assert!(!daemon.stderr().contains("guess-7Qx9"), "the password is not logged");
}
