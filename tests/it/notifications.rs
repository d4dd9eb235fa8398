//! Notifications for people, end to end: the real `waiaas` binary (on a real anvil) sends through a receiver per
//! channel that reads the request as the service documents it (ntfy, Slack, Discord, Telegram) and an SMTP server
//! (aiosmtpd). Critical events reach every channel; others the first healthy one, falling back when it fails; the
//! rate limit holds and its digest says what was held back; entries pending at a SIGKILL, and events written while
//! the daemon was down, are sent after the start; the log, the test message and the CLI work. (ANOMALY_DETECTED
//! reaching every channel is in `anomaly.rs`, T-14; no credential anywhere is in `hygiene.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession};
use waiaas_client::{Client, NotificationLogFilter};

use crate::metrics::scrape;
use crate::support::{
    Answer, Anvil, Channels, Daemon, DaemonOptions, MASTER_PASSWORD, Receiver, api_error, channels, eventually, run_cli,
};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
const OWNER: &str = "0x2222222222222222222222222222222222222222";
const EXPLORER: &str = "https://explorer.example";

fn daemon(anvil: &Anvil, env: Vec<(String, String)>) -> Daemon {
    Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".to_owned(), anvil.url.clone())],
        extra_env: env,
        ..DaemonOptions::default()
    })
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// An agent with an owner, a spending limit (above 300 wei: APPROVAL) and a session; returns (agent id, wallet).
fn agent(daemon: &Daemon, name: &str) -> (String, Client) {
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum(name, "anvil")).expect("agent");
    admin.set_owner(&agent.id, Some(OWNER)).expect("owner");
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "100", "notify_max": "200", "delay_max": "300", "delay_seconds": 600}),
            enabled: None,
        })
        .expect("policy");
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    (agent.id, daemon.client().with_session_token(&token))
}

fn log(admin: &Client, channel: Option<&str>) -> Vec<waiaas_client::NotificationLog> {
    let filter = NotificationLogFilter { channel: channel.map(str::to_owned), limit: Some(200), ..Default::default() };
    admin.notification_log(&filter).expect("notification log").data
}

/// The audit row id of the last `event_type` row.
fn audit_id(admin: &Client, event_type: &str) -> i64 {
    let filter =
        waiaas_client::types::AuditLogFilter { event_types: vec![event_type.to_owned()], ..Default::default() };
    admin.audit_logs(&filter).expect("audit").data[0].id
}

/// The acceptance in one scenario (Korean messages): an approval reaches the first channel only, with exactly what
/// the owner signs; with the first channel dead the next one gets it; the kill switch reaches all five, the dead one
/// once it recovers; the test message, the log, the CLI and the metric.
#[test]
fn critical_events_reach_every_channel_others_the_first_healthy_one() {
    let anvil = Anvil::start();
    let channels = Channels::start();
    let mut env = channels.env();
    env.extend(vars(&[
        ("WAIAAS_NOTIFICATIONS_LOCALE", "ko"),
        ("WAIAAS_NOTIFICATIONS_RETRY_SCHEDULE", "300,300,300,300,300,300,300,300,300,300"),
        ("WAIAAS_RPC_EXPLORER_ANVIL", EXPLORER),
    ]));
    let daemon = daemon(&anvil, env);
    let admin = daemon.admin();
    let (_, wallet) = agent(&daemon, "approver");

    // An APPROVAL-tier transfer: the first channel (ntfy) gets it, and only it.
    let first = wallet.send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"})).unwrap();
    let message = eventually(30, "the approval at ntfy", || {
        channels.seen().into_iter().find(|(c, s)| *c == "ntfy" && s.title.contains("승인 필요")).map(|(_, s)| s)
    });
    assert!(message.title.contains("approver"), "{message:?}");
    let text = &message.text;
    assert!(text.contains(&format!("WAIaaS: approve transaction {}\nNonce: <nonce>", first.id)), "{text}");
    assert!(text.contains(&format!("POST /v1/transactions/{}/approve", first.id)), "{text}");
    assert!(text.contains("금액: 0.000000000000001 ETH (TRANSFER)") && text.contains("등급: APPROVAL"), "{text}");
    assert!(text.contains(&format!("{EXPLORER}/address/{RECIPIENT}")), "{text}");
    let approval = audit_id(&admin, "TX_APPROVAL_REQUIRED");
    // Logged once the service answered (the receiver sees the message first).
    let logged = |audit: i64| {
        eventually(30, "the round logged", || {
            let rows: Vec<(String, String)> = log(&admin, None)
                .into_iter()
                .filter(|e| e.audit_id == Some(audit))
                .map(|e| (e.channel, e.status))
                .rev()
                .collect();
            rows.iter().any(|(_, status)| status == "sent").then_some(rows)
        })
    };
    assert_eq!(logged(approval), [("ntfy".to_owned(), "sent".to_owned())]);
    assert_eq!(channels.delivered("승인 필요"), ["ntfy"], "the first healthy channel only");

    // The first channel dies: the next approval falls back to Slack at once.
    channels.ntfy.answer_with(|_| Answer::Status(503, vec![]));
    let second = wallet.send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "2000"})).unwrap();
    eventually(30, "the second approval at slack", || {
        channels.seen().into_iter().any(|(c, s)| c == "slack" && s.text.contains(&second.id)).then_some(())
    });
    let approval = audit_id(&admin, "TX_APPROVAL_REQUIRED");
    let rows = logged(approval);
    assert_eq!(rows, [("ntfy".to_owned(), "failed".to_owned()), ("slack".to_owned(), "sent".to_owned())]);

    // The kill switch goes to every channel; ntfy takes it once it answers again (a later round).
    admin.activate_kill_switch(Some("drill")).expect("kill switch");
    let kill = audit_id(&admin, "KILL_SWITCH_ACTIVATED");
    let sent_to = |audit: i64| -> Vec<String> {
        let mut sent: Vec<String> = log(&admin, None)
            .into_iter()
            .filter(|e| e.audit_id == Some(audit) && e.status == "sent")
            .map(|e| e.channel)
            .collect();
        sent.sort();
        sent
    };
    eventually(30, "the kill switch at the four live channels", || {
        (sent_to(kill) == ["discord", "email", "slack", "telegram"]).then_some(())
    });
    for channel in ["slack", "discord", "telegram", "email"] {
        assert!(channels.delivered("킬 스위치 작동").contains(&channel), "{channel}");
    }
    assert!(log(&admin, Some("ntfy")).iter().any(|e| e.audit_id == Some(kill) && e.status == "failed"));
    channels.ntfy.answer_with(|_| Answer::Status(200, vec![]));
    eventually(30, "the kill switch at ntfy after its recovery", || {
        (sent_to(kill) == ["discord", "email", "ntfy", "slack", "telegram"]).then_some(())
    });
    let mail = channels.smtp.seen().into_iter().find(|m| m.title.contains("킬 스위치 작동")).expect("the mail");
    assert!(mail.text.contains("사유: drill"), "{}", mail.text);

    // A test message through one channel, sent now.
    let tested = admin.test_notification("telegram").expect("test");
    assert!(tested.sent && tested.error.is_none(), "{tested:?}");
    assert!(channels.delivered("테스트 알림").contains(&"telegram"));
    assert_eq!(api_error(admin.test_notification("pager")).0, 400);

    // The log: filters, keyset pages, a malformed cursor.
    let failed = admin
        .notification_log(&NotificationLogFilter {
            channel: Some("ntfy".into()),
            status: Some("failed".into()),
            ..Default::default()
        })
        .expect("filtered");
    assert!(!failed.data.is_empty() && failed.data.iter().all(|e| e.channel == "ntfy" && e.status == "failed"));
    assert!(failed.data.iter().all(|e| e.error.as_deref() == Some("HTTP 503")), "{:?}", failed.data);
    let page = admin.notification_log(&NotificationLogFilter { limit: Some(2), ..Default::default() }).unwrap();
    let next = admin
        .notification_log(&NotificationLogFilter {
            limit: Some(2),
            cursor: page.next_cursor.clone(),
            ..Default::default()
        })
        .unwrap();
    assert!(page.has_more && next.data[0].id < page.data[1].id);
    let bad = admin.notification_log(&NotificationLogFilter { cursor: Some("nope".into()), ..Default::default() });
    assert_eq!(api_error(bad).1, "INVALID_CURSOR");
    let zero = admin.notification_log(&NotificationLogFilter { limit: Some(0), ..Default::default() });
    assert_eq!(api_error(zero).0, 400);
    assert_eq!(api_error(daemon.client().notification_log(&NotificationLogFilter::default())).0, 401);

    // The CLI, through the running daemon.
    let env = [("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)];
    let listed = run_cli(daemon.data_dir(), &["notifications", "log", "--channel", "slack", "--json"], &env);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let page: Value = serde_json::from_slice(&listed.stdout).expect("JSON page");
    assert!(page["data"].as_array().is_some_and(|rows| rows.iter().all(|r| r["channel"] == "slack")), "{page}");
    let table = run_cli(daemon.data_dir(), &["notifications", "log", "--limit", "3"], &env);
    assert!(String::from_utf8_lossy(&table.stdout).starts_with("    ID  "), "{table:?}");
    let test = run_cli(daemon.data_dir(), &["notifications", "test", "email"], &env);
    assert!(test.status.success() && String::from_utf8_lossy(&test.stdout).contains("sent through email"), "{test:?}");

    let metrics = scrape(&daemon.client());
    assert!(metrics.value("waiaas_notifications_total", &[("channel", "slack"), ("result", "sent")]) >= 2.0);
    assert!(metrics.value("waiaas_notifications_total", &[("channel", "ntfy"), ("result", "failed")]) >= 1.0);
    assert!(metrics.has("waiaas_notifications_total", &[("channel", "email"), ("result", "held")]));
}

/// Two messages per 20 s on the channel: of five denials in a burst two go out and three are held back; the
/// digest that follows says so. A channel that is not configured cannot be tested.
#[test]
fn the_rate_limit_holds_and_the_digest_reports_what_was_held_back() {
    let anvil = Anvil::start();
    let ntfy = Receiver::status(200);
    let daemon = daemon(
        &anvil,
        vars(&[
            ("WAIAAS_NOTIFICATIONS_NTFY_URL", &ntfy.url(channels::NTFY_TOPIC)),
            ("WAIAAS_NOTIFICATIONS_NTFY_TOKEN", channels::NTFY_TOKEN),
            ("WAIAAS_NOTIFICATIONS_RATE_LIMIT", "2"),
            ("WAIAAS_NOTIFICATIONS_RATE_LIMIT_WINDOW_SECONDS", "20"),
        ]),
    );
    let admin = daemon.admin();
    let (_, wallet) = agent(&daemon, "noisy");
    for _ in 0..5 {
        let denied =
            wallet.send_transaction_raw(&json!({"type": "CONTRACT_CALL", "to": RECIPIENT, "calldata": "0xdeadbeef"}));
        assert_eq!(api_error(denied).1, "POLICY_DENIED");
    }
    let digest = eventually(40, "the digest", || {
        ntfy.received().iter().map(channels::ntfy).find(|s| s.title.contains("held back"))
    });
    assert_eq!(digest.title, "[WAIaaS] 3 notifications held back");
    assert!(digest.text.contains("- 3× POLICY_DENIED"), "{}", digest.text);
    let denials: Vec<_> =
        ntfy.received().iter().map(channels::ntfy).filter(|s| s.title.contains("denied by policy")).collect();
    assert_eq!(denials.len(), 2, "the limit holds: {denials:?}");
    assert!(denials[0].text.contains("Reason: CONTRACT_NOT_WHITELISTED"), "{}", denials[0].text);
    // The digest's log row is written once the service answered: wait for it.
    let counts = eventually(30, "the digest logged", || {
        let rows = log(&admin, Some("ntfy"));
        let count = |kind: &str, status: &str| rows.iter().filter(|e| e.kind == kind && e.status == status).count();
        let counts = (count("event", "sent"), count("event", "held"), count("digest", "sent"));
        (counts.2 > 0).then_some(counts)
    });
    assert_eq!(counts, (2, 3, 1));
    let (status, code, _) = api_error(admin.test_notification("slack"));
    assert_eq!((status, code.as_str()), (400, "CHANNEL_NOT_CONFIGURED"));
    let metrics = scrape(&daemon.client());
    assert_eq!(metrics.value("waiaas_notifications_total", &[("channel", "ntfy"), ("result", "held")]), 3.0);
}

/// At least once: an entry whose channel was failing when the daemon was SIGKILLed is sent after the restart, and
/// an event written while the daemon was stopped (an offline backup) is found by the cursor at the next start.
#[test]
fn pending_notifications_are_sent_after_a_sigkill_and_events_written_offline_after_the_start() {
    let anvil = Anvil::start();
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let ntfy = Receiver::scripted(move |_| Answer::Status(if flag.load(Ordering::SeqCst) { 200 } else { 503 }, vec![]));
    let mut daemon = daemon(
        &anvil,
        vars(&[
            ("WAIAAS_NOTIFICATIONS_NTFY_URL", &ntfy.url(channels::NTFY_TOPIC)),
            ("WAIAAS_NOTIFICATIONS_NTFY_TOKEN", channels::NTFY_TOKEN),
            ("WAIAAS_NOTIFICATIONS_NTFY_EVENTS", "POLICY_DENIED,BACKUP_CREATED"),
            ("WAIAAS_NOTIFICATIONS_RETRY_SCHEDULE", "1500,1500,1500,1500,1500,1500,1500,1500"),
        ]),
    );
    let (_, wallet) = agent(&daemon, "crashy");
    let denied =
        wallet.send_transaction_raw(&json!({"type": "CONTRACT_CALL", "to": RECIPIENT, "calldata": "0xdeadbeef"}));
    assert_eq!(api_error(denied).1, "POLICY_DENIED");
    ntfy.wait_for(1, 30);
    daemon.kill_and_restart();
    healthy.store(true, Ordering::SeqCst);
    let admin = daemon.admin();
    let denial = audit_id(&admin, "POLICY_DENIED");
    eventually(30, "the denial sent after the restart", || {
        log(&admin, Some("ntfy")).iter().any(|e| e.audit_id == Some(denial) && e.status == "sent").then_some(())
    });
    assert!(ntfy.received().iter().map(channels::ntfy).any(|s| s.title.contains("denied by policy")));

    // Written while no daemon runs: the cursor finds it at the next start.
    daemon.stop();
    let backup = run_cli(daemon.data_dir(), &["backup"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(!ntfy.received().iter().map(channels::ntfy).any(|s| s.title.contains("Backup created")));
    daemon.start_again();
    let message = eventually(30, "the offline backup's message", || {
        ntfy.received().iter().map(channels::ntfy).find(|s| s.title.contains("Backup created"))
    });
    assert!(message.text.contains("BACKUP_CREATED"), "{}", message.text);
    // Each event once (logged after the answer): nothing from before the cursor was sent again.
    let admin = daemon.admin();
    let sent = || log(&admin, Some("ntfy")).into_iter().filter(|e| e.status == "sent").count();
    eventually(30, "both sends logged", || (sent() >= 2).then_some(()));
    assert_eq!(sent(), 2);
}
