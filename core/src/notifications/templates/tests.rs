//! Every event type renders in every locale (generated from `EventType::ALL`, so a new type is covered the day it
//! is added), approval messages say exactly what to sign, amounts and links are as documented.

use super::*;
use crate::event::{Event, RequestContext};
use crate::notifications::routing::DEFAULT_EVENTS;
use crate::{AgentId, TxId};

fn hangul(s: &str) -> bool {
    s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

fn tx_id() -> TxId {
    "0193a0c2-0000-7000-8000-000000000001".parse().unwrap()
}

fn facts_for(event: &Event) -> Facts<'_> {
    Facts {
        event,
        audit_id: 42,
        agent_name: Some("trader-1".to_owned()),
        tx: Some(TxFacts {
            tx_type: "TRANSFER".to_owned(),
            amount: Some("1.5 ETH".to_owned()),
            counterparty: Some("0x1111111111111111111111111111111111111111".to_owned()),
            network: "sepolia".to_owned(),
            tier: Some(Tier::Approval),
            tx_hash: None,
            approval_deadline: Some(UnixSeconds(1_700_003_600)),
            execute_after: Some(UnixSeconds(1_700_000_600)),
        }),
        explorer: Some("https://sepolia.etherscan.io/".to_owned()),
    }
}

fn event(event_type: EventType) -> Event {
    Event::new(event_type, &RequestContext::system(), UnixSeconds(1_700_000_000))
        .agent(AgentId::from_uuid("0193a0c2-0000-7000-8000-0000000000aa".parse().unwrap()))
        .tx(tx_id())
        .details(serde_json::json!({
            "tier": "APPROVAL", "reasonCode": "SPENDING_LIMIT", "rule": "A-01", "observed": 6.0, "threshold": 5.0,
            "unit": "USD", "windowSeconds": 3600, "tierFloor": {"tier": "DELAY", "expiresAt": 1_700_086_400},
        }))
}

#[test]
fn every_event_type_renders_in_every_locale() {
    for event_type in EventType::ALL {
        let event = event(*event_type);
        let facts = facts_for(&event);
        let en = render(Locale::En, &facts);
        let ko = render(Locale::Ko, &facts);
        for (locale, message) in [("en", &en), ("ko", &ko)] {
            let what = format!("{} in {locale}", event_type.as_str());
            assert!(message.title.starts_with("[WAIaaS] ") && message.title.len() > 12, "{what}: {message:?}");
            assert!(message.title.contains("trader-1"), "{what}: the agent's name in the title");
            assert!(message.body.contains("1.5 ETH") && message.body.contains("sepolia"), "{what}: {}", message.body);
            assert!(message.body.contains("#42"), "{what}: the audit row");
            assert!(message.tags.iter().all(|t| t.is_ascii()), "{what}: tags are ASCII");
        }
        assert!(hangul(&ko.title) && hangul(&ko.body), "{}: Korean text", event_type.as_str());
        assert!(!hangul(&en.title) && !hangul(&en.body), "{}: no Korean in English", event_type.as_str());
        assert_ne!(en.body, ko.body);
    }
}

#[test]
fn every_routed_type_has_its_own_template_and_others_the_generic_one() {
    for event_type in DEFAULT_EVENTS {
        assert!(has_own_template(*event_type), "{} is routed by default", event_type.as_str());
        let event = event(*event_type);
        let message = render(Locale::En, &facts_for(&event));
        assert!(!message.body.starts_with("The daemon recorded"), "{}: {}", event_type.as_str(), message.body);
    }
    let generic = event(EventType::SessionCreated);
    let message = render(Locale::En, &facts_for(&generic));
    assert!(message.body.starts_with("The daemon recorded a SESSION_CREATED event."), "{}", message.body);
    assert_eq!(message.title, "[WAIaaS] Event SESSION_CREATED: trader-1");
}

#[test]
fn an_approval_message_says_exactly_what_to_sign_and_where() {
    let event = event(EventType::TxApprovalRequired);
    for locale in Locale::ALL {
        let message = render(*locale, &facts_for(&event));
        let id = tx_id();
        assert!(
            message.body.contains(&format!("WAIaaS: approve transaction {id}\nNonce: <nonce>")),
            "{}",
            message.body
        );
        assert!(message.body.contains(&format!("WAIaaS: reject transaction {id}\nNonce: <nonce>")));
        assert!(message.body.contains(&format!("POST /v1/transactions/{id}/approve")));
        assert!(message.body.contains("GET /v1/nonce") && message.body.contains("X-Owner-Signature"));
        assert!(message.body.contains("Tue, 14 Nov 2023 23:13:20 GMT"), "the deadline: {}", message.body);
        assert!(message.body.contains("SPENDING_LIMIT") && message.body.contains("APPROVAL"));
        assert_eq!(message.priority, Priority::High);
    }
}

#[test]
fn the_explorer_link_is_the_hash_or_else_the_counterparty() {
    let event = event(EventType::TxFailed);
    let mut facts = facts_for(&event);
    let message = render(Locale::En, &facts);
    assert_eq!(
        message.link.as_deref(),
        Some("https://sepolia.etherscan.io/address/0x1111111111111111111111111111111111111111")
    );
    facts.tx.as_mut().unwrap().tx_hash = Some("0xabc".to_owned());
    let message = render(Locale::En, &facts);
    assert_eq!(message.link.as_deref(), Some("https://sepolia.etherscan.io/tx/0xabc"));
    assert!(message.body.contains("Explorer: https://sepolia.etherscan.io/tx/0xabc"));
    facts.explorer = None;
    assert_eq!(render(Locale::En, &facts).link, None);
}

#[test]
fn critical_events_are_urgent_and_facts_without_a_transaction_still_render() {
    let event = Event::new(EventType::KillSwitchActivated, &RequestContext::master(None), UnixSeconds(0))
        .details(serde_json::json!({"reason": "drill", "effects": {"sessionsRevoked": 2, "agentsSuspended": 3, "transactionsCancelled": 4}}));
    let facts = Facts { event: &event, audit_id: 7, agent_name: None, tx: None, explorer: None };
    let en = render(Locale::En, &facts);
    assert_eq!(en.priority, Priority::Urgent);
    assert_eq!(en.title, "[WAIaaS] Kill switch activated");
    assert!(en.body.contains("Reason given: drill") && en.body.contains("3 agents suspended"), "{}", en.body);
    let ko = render(Locale::Ko, &facts);
    assert!(ko.body.contains("에이전트 3개 정지"), "{}", ko.body);
}

#[test]
fn the_digest_counts_what_was_held_back_per_type() {
    let held = [(EventType::PolicyDenied, 4), (EventType::TxFailed, 1)];
    let en = render_digest(Locale::En, &held);
    assert_eq!(en.title, "[WAIaaS] 5 notifications held back");
    assert!(en.body.contains("- 4× POLICY_DENIED\n- 1× TX_FAILED"), "{}", en.body);
    let ko = render_digest(Locale::Ko, &held);
    assert!(ko.title.contains("5건") && ko.body.contains("- 4× POLICY_DENIED"), "{ko:?}");
    for locale in Locale::ALL {
        let test = render_test(*locale, ChannelKind::Telegram);
        assert!(test.body.contains("telegram"));
    }
}
