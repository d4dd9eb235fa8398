//! Audit and webhook coverage: one scenario drives the daemon through its real entry points (HTTP, the pipeline's
//! worker on a real anvil, the owner endpoints), then every event type is checked against the log, and every row
//! written after a `*` webhook was registered must have reached its receiver (OPS-04: delivered from the real
//! entry point, not a synthetic event). The expectation per type is an exhaustive `match`, so a new event type
//! does not compile until this test says how it is covered.

use alloy_signer_local::PrivateKeySigner;
use serde_json::json;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, ListParams, UpdatePolicy};
use waiaas_core::event::EventType;

use crate::pipeline::owner_decision;
use crate::support::{Anvil, EmbeddedDaemon, MASTER_PASSWORD, Receiver, eventually, fail_calldata};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";

/// How the scenario covers an event type.
enum Coverage {
    /// The scenario emits it through a real entry point; at least one row must exist.
    Driven,
    /// Nothing emits it yet (the feature is still to come); no row may exist.
    NotYetEmitted(&'static str),
}

fn coverage(event_type: EventType) -> Coverage {
    use Coverage::*;
    use EventType::*;
    match event_type {
        TxRequested | TxQueued | TxSubmitted | TxConfirmed | TxFailed | TxCancelled | TxApprovalRequired
        | TxApproved | TxRejected | TxExpired | PolicyDenied => Driven,
        SessionCreated | SessionRenewed | SessionRevoked => Driven,
        AgentCreated | AgentSuspended | AgentResumed | AgentTerminated | OwnerSet => Driven,
        KillSwitchActivated | KillSwitchRecovered | MasterAuthFailed => Driven,
        PolicyCreated | PolicyUpdated | PolicyDeleted => Driven,
        BackupCreated => Driven,
        BackupFailed => NotYetEmitted("needs a backup directory that cannot be written; covered by the backup tests"),
        AnomalyDetected | AnomalyCleared => {
            NotYetEmitted("only after an agent's history warms up and a rule fires; covered by the anomaly tests")
        }
        WebhookCreated | WebhookDeleted | WebhookUpdated | WebhookDisabled | WebhookSecretRotated | WebhookTest => {
            Driven
        }
        AuditHeadSealed => NotYetEmitted("only when a head is sealed over existing rows; covered by the audit tests"),
        AccessDeniedIp => NotYetEmitted("only for a source address the [acl] refuses; covered by the acl tests"),
        NotificationFailed => Driven,
    }
}

fn wait_final(agent: &waiaas_client::Client, id: &str) -> String {
    eventually(30, "a final status", || {
        let t = agent.get_transaction(id).unwrap();
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t.status)
    })
}

#[test]
fn every_event_type_is_written_by_its_real_entry_point() {
    let anvil = Anvil::start();
    // A notification channel nobody listens on, without retries: its first routed event writes NOTIFICATION_FAILED.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead_channel = format!("http://127.0.0.1:{closed}/topic");
    let daemon = EmbeddedDaemon::start(&[
        ("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()),
        ("WAIAAS_NOTIFICATIONS_NTFY_URL", dead_channel.as_str()),
        ("WAIAAS_NOTIFICATIONS_RETRY_SCHEDULE", ""),
    ]);
    let admin = daemon.admin();
    let public = daemon.client();
    let receiver = Receiver::status(200);
    let everything = admin
        .create_webhook(&waiaas_client::CreateWebhook {
            url: receiver.url("/all"),
            event_types: vec!["*".into()],
            description: None,
        })
        .unwrap();
    admin
        .update_webhook(
            &everything.id,
            &waiaas_client::UpdateWebhook { description: Some("every event".into()), ..Default::default() },
        )
        .unwrap();
    admin.rotate_webhook_secret(&everything.id).unwrap();
    admin.test_webhook(&everything.id).unwrap();
    let gone = Receiver::status(410);
    let leaving = admin
        .create_webhook(&waiaas_client::CreateWebhook {
            url: gone.url("/gone"),
            event_types: vec!["WEBHOOK_TEST".into()],
            description: None,
        })
        .unwrap();
    admin.test_webhook(&leaving.id).unwrap();
    eventually(30, "the 410 webhook disabled", || (!admin.get_webhook(&leaving.id).unwrap().active).then_some(()));
    admin.delete_webhook(&leaving.id).unwrap();

    let agent = admin.create_agent(&CreateAgent::ethereum("covered", "anvil")).unwrap();
    anvil.fund(&agent.address, 1_000_000_000_000_000_000);
    let owner = PrivateKeySigner::random();
    let owner_address = owner.address().to_checksum(None);
    admin.set_owner(&agent.id, Some(&owner_address)).unwrap();
    let issued = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap();
    let renewed = public.clone().with_session_token(&issued.token).renew_session(&issued.id).unwrap();
    let wallet = public.clone().with_session_token(&renewed.token);

    let limit = admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "100", "notify_max": "200", "delay_max": "300", "delay_seconds": 60}),
            enabled: None,
        })
        .unwrap();
    let rules = json!({"instant_max": "100", "notify_max": "200", "delay_max": "300", "delay_seconds": 60});
    admin.update_policy(&limit.id, &UpdatePolicy { rules: Some(rules), enabled: None }).unwrap();
    let whitelist = admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "WHITELIST".into(),
            rules: json!({"allowed_addresses": [RECIPIENT]}),
            enabled: None,
        })
        .unwrap();

    let send = |amount: &str| {
        wallet.send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": amount})).unwrap().id
    };
    assert_eq!(wait_final(&wallet, &send("50")), "CONFIRMED");
    let delayed = send("250");
    wallet.cancel_transaction(&delayed).unwrap();
    let approved = send("1000");
    let (message, signature) = owner_decision(&public, &owner, &approved, true);
    public.approve_transaction(&approved, &owner_address, &message, &signature).unwrap();
    assert_eq!(wait_final(&wallet, &approved), "CONFIRMED");
    let rejected = send("1000");
    let (message, signature) = owner_decision(&public, &owner, &rejected, false);
    public.reject_transaction(&rejected, &owner_address, &message, &signature).unwrap();
    let expired = send("1000");
    daemon.advance(3_601);
    assert_eq!(wait_final(&wallet, &expired), "EXPIRED");
    admin.delete_policy(&whitelist.id).unwrap();
    let reverter = anvil.deploy_reverter();
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "CONTRACT_WHITELIST".into(),
            rules: json!({"contracts": [reverter]}),
            enabled: None,
        })
        .unwrap();
    let failed = wallet
        .send_transaction_raw(&json!({"type": "CONTRACT_CALL", "to": reverter, "calldata": fail_calldata()}))
        .unwrap()
        .id;
    assert_eq!(wait_final(&wallet, &failed), "FAILED");
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "WHITELIST".into(),
            rules: json!({"allowed_addresses": [RECIPIENT]}),
            enabled: None,
        })
        .unwrap();
    assert!(
        wallet.send_transaction_raw(&json!({"type": "TRANSFER", "to": reverter, "amount": "1"})).is_err(),
        "denied"
    );

    let (status, _, body) = admin
        .request_raw(
            "POST",
            "/v1/admin/backup",
            &[("x-master-password", MASTER_PASSWORD), ("content-type", "application/json")],
            Some(br#"{"kdf":"pbkdf2"}"#),
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let _ = public.clone().with_master_password("wrong").list_agents(&ListParams::default());
    admin.suspend_agent(&agent.id).unwrap();
    admin.resume_agent(&agent.id).unwrap();
    admin.revoke_session(&renewed.id).unwrap();
    admin.activate_kill_switch(Some("drill")).unwrap();
    admin.recover().unwrap();
    admin.terminate_agent(&agent.id).unwrap();

    eventually(30, "a NOTIFICATION_FAILED row", || {
        let filter = AuditLogFilter { event_types: vec!["NOTIFICATION_FAILED".into()], ..Default::default() };
        (!admin.audit_logs(&filter).unwrap().data.is_empty()).then_some(())
    });
    let mut problems = Vec::new();
    let mut to_deliver = Vec::new();
    for event_type in EventType::ALL {
        let name = event_type.as_str();
        let rows = admin
            .audit_logs(&AuditLogFilter { event_types: vec![name.to_owned()], limit: Some(200), ..Default::default() })
            .unwrap()
            .data;
        match coverage(*event_type) {
            Coverage::Driven if rows.is_empty() => problems.push(format!("{name}: no row written")),
            Coverage::NotYetEmitted(why) if !rows.is_empty() => {
                problems.push(format!("{name}: now emitted — cover it in this scenario (was: {why})"))
            }
            _ => {}
        }
        for row in &rows {
            // A test ping goes to the webhook tested only.
            if *event_type != EventType::WebhookTest || row.details["webhookId"] == everything.id.as_str() {
                to_deliver.push(format!("evt_{}", row.id));
            }
            let text = row.details.to_string();
            if text.contains("wai_sess_") || text.contains(MASTER_PASSWORD) {
                problems.push(format!("{name}: a secret in details: {text}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // Every row (the `*` webhook was registered first, so every one is its) reached the receiver.
    let missing = || {
        let got: std::collections::HashSet<String> =
            receiver.received().iter().filter_map(|r| r.header("webhook-id").map(str::to_owned)).collect();
        to_deliver.iter().filter(|id| !got.contains(*id)).cloned().collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !missing().is_empty() && std::time::Instant::now() < deadline {
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    assert!(!to_deliver.is_empty());
    assert_eq!(missing(), Vec::<String>::new(), "rows not delivered to the `*` webhook");
    for delivery in receiver.received() {
        let body = delivery.json();
        let text = body.to_string();
        assert!(!text.contains("wai_sess_") && !text.contains("whsec_"), "a secret delivered: {text}");
        assert_eq!(body["id"], delivery.header("webhook-id").unwrap());
    }
}
