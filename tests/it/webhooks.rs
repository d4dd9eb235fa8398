//! OPS-04 end to end: the real daemon delivers to receivers this test starts on loopback, which check what they
//! get (the signature by an independent HMAC, the payload, the headers). T-09 (a confirmed transfer on anvil),
//! T-10 (retries on the configured schedule, final answers, 410, Retry-After), S-04 (no secret in the database
//! file or the backup archive), SSRF (registration and delivery), durability across SIGKILL, isolation from a
//! hanging receiver.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use waiaas_client::{CreateWebhook, UpdateWebhook, WebhookLogFilter};

use crate::support::{
    Answer, Anvil, Daemon, DaemonOptions, EmbeddedDaemon, FundedAgent, MASTER_PASSWORD, ONE_ETH, Received, Receiver,
    api_error, eventually,
};

const RECIPIENT: &str = "0x2222222222222222222222222222222222222222";

/// Verifies a delivery's Standard Webhooks signature with `secret`, independently of the daemon's code.
#[track_caller]
pub(crate) fn verify(secret: &str, delivery: &Received) -> bool {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").expect("whsec_ prefix")).expect("base64 secret");
    let id = delivery.header("webhook-id").expect("webhook-id");
    let timestamp = delivery.header("webhook-timestamp").expect("webhook-timestamp");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&delivery.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let listed = delivery.header("webhook-signature").expect("webhook-signature");
    listed.split(' ').any(|s| s == expected) && delivery.header("x-waiaas-signature") == Some(listed)
}

fn subscribe(admin: &waiaas_client::Client, url: String, events: &[&str]) -> waiaas_client::CreatedWebhook {
    let request =
        CreateWebhook { url, event_types: events.iter().map(|s| (*s).to_owned()).collect(), description: None };
    admin.create_webhook(&request).expect("create webhook")
}

fn daemon_with(env: &[(&str, &str)]) -> Daemon {
    let extra_env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Daemon::start_with(DaemonOptions { extra_env, ..DaemonOptions::default() })
}

/// T-09: a transfer reaches CONFIRMED on anvil; the receiver gets TX_CONFIRMED, signed, with the transaction.
#[test]
fn t09_a_confirmed_transfer_is_delivered_signed() {
    let funded = FundedAgent::start(Anvil::start(), &[], "paid");
    let receiver = Receiver::status(200);
    let admin = funded.daemon.admin();
    let hook = subscribe(&admin, receiver.url("/tx"), &["TX_CONFIRMED"]);
    assert!(hook.secret.starts_with("whsec_") && STANDARD.decode(&hook.secret[6..]).unwrap().len() == 32);
    let sent =
        funded.agent.send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"})).unwrap();
    assert_eq!(funded.settled(&sent.id).status, "CONFIRMED");
    let got = receiver.wait_for(1, 30);
    let delivery = &got[0];
    assert_eq!(delivery.path, "/tx");
    assert!(verify(&hook.secret, delivery), "the signature verifies: {delivery:?}");
    assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", delivery), "and not with another secret");
    let body = delivery.json();
    assert_eq!(body["type"], "TX_CONFIRMED");
    assert_eq!(body["data"]["txId"], sent.id.as_str());
    assert_eq!(body["id"], delivery.header("webhook-id").unwrap());
    assert_eq!(delivery.header("x-waiaas-event"), Some("TX_CONFIRMED"));
    assert!(delivery.header("user-agent").unwrap().starts_with("waiaas/"));
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    // Only the subscribed type was delivered (the request's earlier events were not), and the log says so once
    // the delivery task has settled the run it was part of (attempts are logged in batches, after they end).
    assert_eq!(receiver.received().len(), 1);
    let logs = eventually(30, "the attempt logged", || Some(logs(&admin, &hook.id)).filter(|r| !r.is_empty()));
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].status.as_str(), logs[0].status_code, logs[0].attempt), ("success", Some(200), 1));
}

/// The webhook's log, oldest first.
fn logs(admin: &waiaas_client::Client, id: &str) -> Vec<waiaas_client::WebhookLog> {
    let mut rows = admin.webhook_logs(id, &WebhookLogFilter { limit: Some(200), ..Default::default() }).unwrap().data;
    rows.reverse();
    rows
}

/// T-10: 500 → exactly 1 + 3 attempts, spaced by the configured schedule, each logged, the last one failed;
/// 400 → one attempt; 410 → the webhook is disabled (audited); 429 with Retry-After waits that long.
#[test]
fn t10_retries_follow_the_schedule_and_final_answers_stop_them() {
    let daemon = daemon_with(&[("WAIAAS_WEBHOOKS_RETRY_SCHEDULE", "300,600,900")]);
    let admin = daemon.admin();
    let failing = Receiver::status(500);
    let hook = subscribe(&admin, failing.url("/500"), &["WEBHOOK_TEST"]);
    let queued = admin.test_webhook(&hook.id).unwrap();
    let got = failing.wait_for(4, 30);
    let rows = eventually(30, "the final attempt logged", || {
        let rows = logs(&admin, &hook.id);
        (rows.last().is_some_and(|r| r.status == "failed")).then_some(rows)
    });
    assert_eq!(
        rows.iter().map(|r| (r.attempt, r.status.as_str(), r.status_code)).collect::<Vec<_>>(),
        [(1, "pending", Some(500)), (2, "pending", Some(500)), (3, "pending", Some(500)), (4, "failed", Some(500))]
    );
    assert!(rows.iter().all(|r| r.delivery_id == queued.delivery_id));
    let ids: Vec<_> = got.iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    assert!(ids.iter().all(|id| *id == queued.delivery_id), "the same webhook-id on every attempt: {ids:?}");
    for (gap, (a, b)) in [300, 600, 900].into_iter().zip(got.iter().zip(got.iter().skip(1))) {
        let waited = b.at.duration_since(a.at).as_millis();
        assert!(waited >= gap, "waited {waited} ms, the schedule says {gap}");
    }
    std::thread::park_timeout(std::time::Duration::from_millis(1_500));
    assert_eq!(failing.received().len(), 4, "no fifth attempt");
    let failed =
        admin.webhook_logs(&hook.id, &WebhookLogFilter { status: Some("failed".into()), ..Default::default() });
    assert_eq!(failed.unwrap().data.len(), 1);

    let refusing = Receiver::status(400);
    let hook = subscribe(&admin, refusing.url("/400"), &["WEBHOOK_TEST"]);
    admin.test_webhook(&hook.id).unwrap();
    refusing.wait_for(1, 30);
    let rows = eventually(30, "the attempt logged", || Some(logs(&admin, &hook.id)).filter(|r| !r.is_empty()));
    std::thread::park_timeout(std::time::Duration::from_millis(1_000));
    assert_eq!((refusing.received().len(), rows.len(), rows[0].status.as_str()), (1, 1, "failed"));

    let gone = Receiver::status(410);
    let hook = subscribe(&admin, gone.url("/410"), &["*"]);
    admin.test_webhook(&hook.id).unwrap();
    gone.wait_for(1, 30);
    eventually(30, "the webhook disabled", || (!admin.get_webhook(&hook.id).unwrap().active).then_some(()));
    let audit = admin
        .audit_logs(&waiaas_client::types::AuditLogFilter {
            event_types: vec!["WEBHOOK_DISABLED".into()],
            ..Default::default()
        })
        .unwrap()
        .data;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].details["webhookId"], hook.id.as_str());

    let limited = Receiver::scripted(|n| match n {
        0 => Answer::Status(429, vec![("retry-after", "2".to_owned())]),
        _ => Answer::Status(200, vec![]),
    });
    let hook = subscribe(&admin, limited.url("/429"), &["WEBHOOK_TEST"]);
    admin.test_webhook(&hook.id).unwrap();
    let got = limited.wait_for(2, 30);
    let waited = got[1].at.duration_since(got[0].at).as_millis();
    assert!(waited >= 2_000, "Retry-After: 2 honoured over the 300 ms schedule (waited {waited} ms)");
}

/// S-04: neither the secret nor its base64 body is in the database file or in a backup archive; after a
/// restore with the same password the webhook still delivers, signed with the same secret.
#[test]
fn s04_the_secret_is_not_stored_in_plaintext_and_survives_a_restore() {
    let mut daemon = Daemon::start();
    let admin = daemon.admin();
    let receiver = Receiver::status(200);
    let hook = subscribe(&admin, receiver.url("/s04"), &["WEBHOOK_TEST"]);
    let body = hook.secret.strip_prefix("whsec_").unwrap().to_owned();
    let raw = STANDARD.decode(&body).unwrap();
    admin.test_webhook(&hook.id).unwrap();
    assert!(verify(&hook.secret, &receiver.wait_for(1, 30)[0]));
    let backup_dir = tempfile::tempdir().unwrap();
    let (status, _, text) = admin
        .request_raw(
            "POST",
            "/v1/admin/backup",
            &[("x-master-password", MASTER_PASSWORD), ("content-type", "application/json")],
            Some(json!({"kdf": "pbkdf2", "outputDir": backup_dir.path()}).to_string().as_bytes()),
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    daemon.stop();
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    let mut files = vec![daemon.data_dir().join("data/waiaas.db")];
    files.extend(std::fs::read_dir(daemon.data_dir().join("data")).unwrap().map(|e| e.unwrap().path()));
    files.extend(std::fs::read_dir(backup_dir.path()).unwrap().map(|e| e.unwrap().path()));
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "waiaas-backup")), "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for needle in [hook.secret.as_bytes(), body.as_bytes(), &raw[..]] {
            assert!(!contains(&bytes, needle), "{} holds the secret", file.display());
        }
    }
    let archive = files.iter().find(|f| f.extension().is_some_and(|e| e == "waiaas-backup")).unwrap();
    let restored = tempfile::tempdir().unwrap();
    let out = crate::support::run_cli(
        restored.path(),
        &["restore", "--from", archive.to_str().unwrap(), "--force"],
        &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let daemon = Daemon::start_on(restored, DaemonOptions::default());
    daemon.admin().test_webhook(&hook.id).unwrap();
    let got = receiver.wait_for(2, 30);
    assert!(verify(&hook.secret, &got[1]), "the restored webhook signs with the same secret");
}

/// SSRF: a metadata address is refused at registration, as a literal or through a name; a name that starts
/// resolving there after registration is refused at delivery (logged, not sent).
#[test]
fn ssrf_targets_are_refused_at_registration_and_at_delivery() {
    let daemon = EmbeddedDaemon::start(&[]);
    let admin = daemon.admin();
    for url in ["http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/", "http://[fe80::1]/"] {
        let request = CreateWebhook { url: url.into(), event_types: vec!["*".into()], description: None };
        let (status, code, _) = api_error(admin.create_webhook(&request));
        assert_eq!((status, code.as_str()), (400, "WEBHOOK_URL_FORBIDDEN"), "{url}");
    }
    daemon.resolver.set("metadata.test", vec!["169.254.169.254".parse().unwrap()]);
    let request =
        CreateWebhook { url: "http://metadata.test/".into(), event_types: vec!["*".into()], description: None };
    assert_eq!(api_error(admin.create_webhook(&request)).1, "WEBHOOK_URL_FORBIDDEN");
    for (url, field) in [("ftp://x.test/", "url"), ("http://u:p@x.test/", "url")] {
        let request = CreateWebhook { url: url.into(), event_types: vec!["*".into()], description: None };
        let (status, code, details) = api_error(admin.create_webhook(&request));
        assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"), "{url}");
        assert!(details.unwrap().to_string().contains(field));
    }
    let request = CreateWebhook { url: "http://x.test/".into(), event_types: vec!["NOPE".into()], description: None };
    let (_, code, details) = api_error(admin.create_webhook(&request));
    assert_eq!(code, "VALIDATION_FAILED");
    assert!(details.unwrap().to_string().contains("NOPE"));

    let receiver = Receiver::status(200);
    daemon.resolver.set("rebind.test", vec!["127.0.0.1".parse().unwrap()]);
    let hook = subscribe(&admin, format!("http://rebind.test:{}/in", receiver.port), &["WEBHOOK_TEST"]);
    admin.test_webhook(&hook.id).unwrap();
    receiver.wait_for(1, 30);
    daemon.resolver.set("rebind.test", vec!["169.254.169.254".parse().unwrap()]);
    admin.test_webhook(&hook.id).unwrap();
    let refused = eventually(30, "the refused attempt logged", || {
        logs(&admin, &hook.id).into_iter().find(|r| r.status == "failed")
    });
    assert!(refused.error.as_deref().unwrap_or("").contains("169.254.169.254"), "{refused:?}");
    assert_eq!(receiver.received().len(), 1, "nothing sent to the rebound name");
}

/// Durability: deliveries pending (a receiver that is down) and in flight (one that hangs) when the daemon is
/// SIGKILLed are delivered after the restart, with the same webhook-id.
#[test]
fn deliveries_survive_a_sigkill_with_the_same_webhook_id() {
    let mut daemon = daemon_with(&[("WAIAAS_WEBHOOKS_RETRY_SCHEDULE", "200,200,200,200,200,200,200,200,200,200")]);
    let admin = daemon.admin();
    let hanging = Receiver::scripted(|n| if n == 0 { Answer::Hang } else { Answer::Status(200, vec![]) });
    let in_flight = subscribe(&admin, hanging.url("/hang"), &["WEBHOOK_TEST"]);
    let down = Receiver::status(503);
    let pending = subscribe(&admin, down.url("/down"), &["WEBHOOK_TEST"]);
    let first = admin.test_webhook(&in_flight.id).unwrap().delivery_id;
    let second = admin.test_webhook(&pending.id).unwrap().delivery_id;
    hanging.wait_for(1, 30);
    down.wait_for(1, 30);
    daemon.kill_and_restart();
    down.answer_with(|_| Answer::Status(200, vec![]));
    let again = hanging.wait_for(2, 30);
    assert_eq!(again[1].header("webhook-id"), Some(first.as_str()));
    let got = eventually(30, "the pending delivery", || {
        let got = down.received();
        got.iter().any(|r| r.header("webhook-id") == Some(second.as_str()) && got.len() >= 2).then_some(got)
    });
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(second.as_str())));
    let admin = daemon.admin();
    eventually(30, "the success logged", || {
        logs(&admin, &pending.id).iter().any(|r| r.status == "success").then_some(())
    });
}

/// Isolation: a receiver that hangs does not delay another receiver's deliveries.
#[test]
fn a_hanging_receiver_does_not_delay_another() {
    let daemon = daemon_with(&[("WAIAAS_WEBHOOKS_TIMEOUT_MS", "60000")]);
    let admin = daemon.admin();
    let hanging = Receiver::scripted(|_| Answer::Hang);
    let quick = Receiver::status(200);
    let slow = subscribe(&admin, hanging.url("/hang"), &["*"]);
    let fast = subscribe(&admin, quick.url("/quick"), &["*"]);
    admin.test_webhook(&slow.id).unwrap();
    hanging.wait_for(1, 30);
    for _ in 0..5 {
        admin.test_webhook(&fast.id).unwrap();
    }
    // WEBHOOK_CREATED of the second webhook and five pings arrive while the first receiver still hangs.
    quick.wait_for(6, 10);
    assert_eq!(hanging.received().len(), 1, "one at a time per webhook, in order");
    let update = UpdateWebhook { active: Some(false), ..Default::default() };
    assert!(!admin.update_webhook(&slow.id, &update).unwrap().active);
    let _ = ONE_ETH;
}

/// Checks a delivery with the Python `standardwebhooks` library (pip, installed by scripts/test): each case is
/// `(name, body, headers)` and the answer is `ok` or the library's error, per case.
fn standard_webhooks_verdicts(secret: &str, cases: &[(&str, Vec<u8>, serde_json::Value)]) -> Vec<(String, String)> {
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/python");
    assert!(tools.join("standardwebhooks").is_dir(), "standardwebhooks is not installed: run scripts/test");
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
job = json.load(sys.stdin)
for name, body, headers in job["cases"]:
    try:
        Webhook(job["secret"]).verify(bytes(body), headers)
        print(name, "ok")
    except Exception as e:
        print(name, type(e).__name__)
"#;
    let cases: Vec<serde_json::Value> = cases.iter().map(|(n, b, h)| json!([n, b, h])).collect();
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("PYTHONPATH", tools)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    let input = json!({"secret": secret, "cases": cases}).to_string();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, verdict) = l.split_once(' ').unwrap();
            (name.to_owned(), verdict.to_owned())
        })
        .collect()
}

/// T-11: a receiver verifies deliveries with the Python Standard Webhooks library: a real delivery verifies (also
/// during a rotation, with the new secret and with the old one); a tampered body, timestamp or signature fails,
/// and so does a delivery signed an hour ago.
#[test]
fn t11_receivers_verify_with_the_standard_webhooks_library() {
    let daemon = EmbeddedDaemon::start(&[]);
    let admin = daemon.admin();
    let receiver = Receiver::status(200);
    let hook = subscribe(&admin, receiver.url("/std"), &["WEBHOOK_TEST"]);
    admin.test_webhook(&hook.id).unwrap();
    let fresh = receiver.wait_for(1, 30).remove(0);
    let headers = |d: &Received| {
        json!({
            "webhook-id": d.header("webhook-id").unwrap(),
            "webhook-timestamp": d.header("webhook-timestamp").unwrap(),
            "webhook-signature": d.header("webhook-signature").unwrap(),
        })
    };
    let mut tampered_body = fresh.body.clone();
    tampered_body.push(b' ');
    let mut later = headers(&fresh);
    later["webhook-timestamp"] =
        json!((fresh.header("webhook-timestamp").unwrap().parse::<i64>().unwrap() + 1).to_string());
    let mut forged = headers(&fresh);
    forged["webhook-signature"] = json!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");

    // A delivery signed an hour ago (the daemon's clock set back): genuine, but too old.
    daemon.advance(-3_600);
    admin.test_webhook(&hook.id).unwrap();
    let old = receiver.wait_for(2, 30).remove(1);
    daemon.advance(3_600);

    let rotated = admin.rotate_webhook_secret(&hook.id).unwrap();
    admin.test_webhook(&hook.id).unwrap();
    let during = receiver.wait_for(3, 30).remove(2);
    assert_eq!(during.header("webhook-signature").unwrap().split(' ').count(), 2, "both secrets sign");

    let verdicts = standard_webhooks_verdicts(
        &hook.secret,
        &[
            ("genuine", fresh.body.clone(), headers(&fresh)),
            ("body", tampered_body, headers(&fresh)),
            ("timestamp", fresh.body.clone(), later),
            ("signature", fresh.body.clone(), forged),
            ("old", old.body.clone(), headers(&old)),
            ("rotating_old_secret", during.body.clone(), headers(&during)),
        ],
    );
    let expect = |name: &str| verdicts.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(expect("genuine"), "ok", "{verdicts:?}");
    assert_eq!(expect("rotating_old_secret"), "ok", "{verdicts:?}");
    for name in ["body", "timestamp", "signature", "old"] {
        assert_ne!(expect(name), "ok", "{name} must fail: {verdicts:?}");
    }
    let verdicts =
        standard_webhooks_verdicts(&rotated.secret, &[("rotating_new_secret", during.body.clone(), headers(&during))]);
    assert_eq!(verdicts[0].1, "ok", "{verdicts:?}");
}
