//! OPS-06 acceptance through the real pipeline: an embedded daemon on a real anvil with a clock the test advances.
//!
//! T-14: 24 h of hourly transfers, then 6× the hourly average within an hour → `ANOMALY_DETECTED` in the
//! audit log, in `GET /v1/agents/{id}/anomalies`, in the metric, at a subscribed webhook receiver, signed, and told
//! to people through every configured notification channel (ntfy, Slack, Discord, Telegram, email). T-15: the same INSTANT-sized transfer is then
//! DELAY, and simulate predicts it with `ANOMALY_TIER_RAISED`; after the operator clears the floor, or after its
//! TTL, INSTANT again. A restart keeps the floor and rebuilds the same rolling state. The CLI lists and clears
//! through a running `waiaas start`.

use serde_json::{Value, json};
use waiaas_client::Client;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreateSession};
use waiaas_core::AgentId;
use waiaas_core::anomaly::{AnomalyRule, SpendSpike};

use crate::metrics::scrape;
use crate::support::{
    Anvil, Channels, Daemon, EmbeddedDaemon, MASTER_PASSWORD, Receiver, api_error, eventually, run_cli,
};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
/// The regular transfer: 0.01 ETH (the A-01 floor for unpriced native value is 1e16 wei).
const REGULAR: u128 = 10_000_000_000_000_000;
const HOUR: i64 = 3_600;

fn transfer(amount: u128) -> Value {
    json!({"type": "TRANSFER", "to": RECIPIENT, "amount": amount.to_string()})
}

struct Setup {
    _anvil: Anvil,
    channels: Channels,
    daemon: EmbeddedDaemon,
    agent_id: String,
    token: String,
}

impl Setup {
    fn start() -> Setup {
        let anvil = Anvil::start();
        let channels = Channels::start();
        let env = channels.env();
        let mut settings: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        settings.push(("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()));
        let daemon = EmbeddedDaemon::start(&settings);
        let admin = daemon.admin();
        let agent = admin.create_agent(&CreateAgent::ethereum("anomalous", "anvil")).expect("agent");
        anvil.fund(&agent.address, 100 * REGULAR * 100);
        // The test moves the clock by days: a session of a week.
        let session = CreateSession { ttl_seconds: Some(7 * 86_400), ..CreateSession::for_agent(&agent.id) };
        let token = admin.create_session(&session).expect("session").token;
        Setup { _anvil: anvil, channels, daemon, agent_id: agent.id, token }
    }

    fn agent(&self) -> Client {
        self.daemon.client().with_session_token(&self.token)
    }

    /// Sends `amount` and waits for the final status; returns (tier, status).
    fn send(&self, amount: u128) -> (String, String) {
        let sent = self.agent().send_transaction_raw(&transfer(amount)).expect("send");
        let settled = eventually(30, "a final status", || {
            let t = self.agent().get_transaction(&sent.id).expect("get");
            t.is_final().then_some(t)
        });
        (settled.tier.unwrap_or_default(), settled.status)
    }

    /// What simulate predicts for `amount`: (tier, warned ANOMALY_TIER_RAISED).
    fn predict(&self, amount: u128) -> (String, bool) {
        let simulation = self.agent().simulate(&transfer(amount)).expect("simulate");
        (simulation.policy.tier.clone(), simulation.has_warning("ANOMALY_TIER_RAISED"))
    }

    fn findings(&self) -> Vec<waiaas_client::Anomaly> {
        self.daemon.admin().agent_anomalies(&self.agent_id, None, None).expect("anomalies").data
    }

    /// Waits for the `n`-th finding of the agent (the anomaly task runs after commit).
    fn nth_finding(&self, n: usize) -> waiaas_client::Anomaly {
        eventually(30, "an anomaly finding", || {
            let found = self.findings();
            (found.len() >= n).then(|| found[0].clone())
        })
    }
}

#[test]
fn t14_t15_a_spend_spike_raises_the_tier_until_cleared_or_expired_and_survives_a_restart() {
    let mut s = Setup::start();
    let receiver = Receiver::status(200);
    let request = waiaas_client::CreateWebhook {
        url: receiver.url("/anomaly"),
        event_types: vec!["ANOMALY_DETECTED".into()],
        description: None,
    };
    let hook = s.daemon.admin().create_webhook(&request).expect("subscribe");
    // 24 h of normal history: one regular transfer an hour, all INSTANT.
    for _ in 0..25 {
        assert_eq!(s.send(REGULAR), ("INSTANT".into(), "CONFIRMED".into()));
        s.daemon.advance(HOUR);
    }
    s.daemon.advance(-HOUR + 600);
    assert!(s.findings().is_empty(), "a steady agent triggers nothing");

    // T-14: 6× the hourly average within the hour.
    assert_eq!(s.send(6 * REGULAR), ("INSTANT".into(), "CONFIRMED".into()));
    let finding = s.nth_finding(1);
    assert_eq!((finding.rule.as_str(), finding.shadow, finding.unit.as_str()), ("A-01", false, "native@anvil"));
    assert!(finding.observed >= 6.0 * REGULAR as f64 && finding.threshold <= 5.5 * REGULAR as f64, "{finding:?}");
    let rows = s
        .daemon
        .admin()
        .audit_logs(&AuditLogFilter {
            agent_id: Some(s.agent_id.clone()),
            event_types: vec!["ANOMALY_DETECTED".into()],
            ..AuditLogFilter::default()
        })
        .expect("audit")
        .data;
    let [row] = rows.as_slice() else { panic!("one ANOMALY_DETECTED row: {rows:?}") };
    assert_eq!(row.details["rule"], "A-01");
    assert_eq!(row.details["windowSeconds"], 3_600);
    assert_eq!(row.details["observed"].as_f64(), Some(finding.observed));
    assert_eq!(row.details["threshold"].as_f64(), Some(finding.threshold));
    assert_eq!(row.details["tierFloor"]["tier"], "DELAY");
    // Delivered to the subscribed receiver, signed, carrying the same finding.
    let delivered = receiver.wait_for(1, 30);
    let [delivery] = delivered.as_slice() else { panic!("one delivery: {delivered:?}") };
    assert!(crate::webhooks::verify(&hook.secret, delivery), "the signature verifies");
    let body = delivery.json();
    assert_eq!(
        (body["type"].as_str(), delivery.header("x-waiaas-event")),
        (Some("ANOMALY_DETECTED"), Some("ANOMALY_DETECTED"))
    );
    assert_eq!(body["data"]["rule"], "A-01");
    assert_eq!(body["data"]["agentId"], s.agent_id.as_str());
    assert_eq!(body["data"]["observed"].as_f64(), Some(finding.observed));
    // Told to people through every configured channel (a critical event is not only the first channel's).
    eventually(30, "the finding at every channel", || {
        (s.channels.delivered("Anomaly detected") == ["ntfy", "slack", "discord", "telegram", "email"]).then_some(())
    });
    for (channel, seen) in s.channels.seen().into_iter().filter(|(_, m)| m.title.contains("Anomaly detected")) {
        assert!(seen.title.contains("anomalous"), "{channel}: the agent's name: {seen:?}");
        assert!(seen.text.contains("Rule A-01") && seen.text.contains("at least DELAY"), "{channel}: {}", seen.text);
    }
    let metrics = scrape(&s.daemon.client());
    assert_eq!(metrics.value("waiaas_anomaly_detections_total", &[("rule", "A-01")]), 1.0);
    assert!(metrics.has("waiaas_anomaly_detections_total", &[("rule", "A-05")]), "every rule from the start");

    // T-15: the INSTANT-sized transfer is DELAY now, and simulate says so and why.
    assert_eq!(s.predict(REGULAR), ("DELAY".into(), true));
    let queued = s.agent().send_transaction_raw(&transfer(REGULAR)).expect("send");
    assert_eq!(s.agent().get_transaction(&queued.id).expect("get").tier.as_deref(), Some("DELAY"));
    let floor = s.daemon.admin().agent_anomalies(&s.agent_id, None, None).expect("anomalies").tier_floor;
    assert_eq!(floor.as_ref().map(|f| f.tier.as_str()), Some("DELAY"));

    // Restart: the floor and the rolling state survive (the same verdicts before and after).
    let agent = AgentId::from_uuid(s.agent_id.parse().expect("uuid"));
    let now = s.daemon.core.now();
    let before = s.daemon.anomaly.activity(agent).expect("activity");
    s.daemon.restart();
    let after = eventually(30, "the rebuilt anomaly state", || s.daemon.anomaly.activity(agent));
    let rule = SpendSpike;
    let verdict = |a: &waiaas_core::anomaly::AgentActivity| {
        (rule.evaluate(a, &rule.default_params(), now), a.transactions_7d(now), a.spend_last_hour(now), a.first_seen())
    };
    assert_eq!(verdict(&after), verdict(&before));
    assert!(verdict(&after).0.is_some(), "the spike is still in the last hour");
    assert_eq!(s.predict(REGULAR), ("DELAY".into(), true), "the floor survived the restart");

    // The operator clears it: INSTANT again, audited.
    let cleared = s.daemon.admin().clear_tier_floor(&s.agent_id).expect("clear");
    assert_eq!((cleared.tier.as_str(), cleared.rule.as_str()), ("DELAY", "A-01"));
    // Nothing left to clear is a state conflict (409), not a missing agent (found by schemathesis).
    let (status, code, _) = api_error(s.daemon.admin().clear_tier_floor(&s.agent_id));
    assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"));
    assert_eq!(s.predict(REGULAR), ("INSTANT".into(), false));
    assert_eq!(s.send(REGULAR), ("INSTANT".into(), "CONFIRMED".into()));
    let clears = s
        .daemon
        .admin()
        .audit_logs(&AuditLogFilter { event_types: vec!["ANOMALY_CLEARED".into()], ..AuditLogFilter::default() })
        .expect("audit")
        .data;
    assert_eq!(clears.len(), 1);
    assert_eq!(clears[0].actor, "master");

    // A second spike two hours later raises it again; after its TTL (24 h) it no longer applies.
    s.daemon.advance(2 * HOUR);
    s.send(REGULAR);
    s.send(6 * REGULAR);
    s.nth_finding(2);
    assert_eq!(s.predict(REGULAR), ("DELAY".into(), true));
    s.daemon.advance(24 * HOUR + 1);
    assert_eq!(s.predict(REGULAR), ("INSTANT".into(), false));
    assert_eq!(s.send(REGULAR), ("INSTANT".into(), "CONFIRMED".into()));
    let all = s.daemon.admin().anomalies(Some(now.0), None, None).expect("all agents").data;
    assert!(all.iter().all(|f| f.agent_id == s.agent_id && f.rule == "A-01") && all.len() == 2, "{all:?}");
}

/// `waiaas anomaly list|clear` go through the running daemon with the master password.
#[test]
fn the_cli_lists_findings_and_clears_through_the_running_daemon() {
    let daemon = Daemon::start();
    let agent = daemon.admin().create_agent(&CreateAgent::ethereum("quiet", "anvil")).expect("agent");
    let env = [("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)];
    let list = run_cli(daemon.data_dir(), &["anomaly", "list", "--agent-id", &agent.id], &env);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(out.starts_with("tier floor: none\n") && out.contains("RULE"), "{out}");
    let json = run_cli(daemon.data_dir(), &["anomaly", "list", "--since", "0", "--json"], &env);
    let page: Value = serde_json::from_slice(&json.stdout).expect("JSON page");
    assert_eq!(page["data"], json!([]));
    let clear = run_cli(daemon.data_dir(), &["anomaly", "clear", &agent.id], &env);
    assert!(!clear.status.success());
    assert!(String::from_utf8_lossy(&clear.stderr).contains("no tier floor in force"), "{clear:?}");
    let wrong = run_cli(daemon.data_dir(), &["anomaly", "list"], &[("WAIAAS_MASTER_PASSWORD", "wrong")]);
    assert!(!wrong.status.success());
}
