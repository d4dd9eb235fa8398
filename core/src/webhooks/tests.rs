//! Table tests of the pure webhook rules: event filters, URL syntax, address classes, secrets and signatures,
//! the retry table.

use std::net::IpAddr;

use super::retry::{RetryPolicy, Verdict, decide};
use super::secret::{SecretKey, WebhookSecret};
use super::target::{AddressClass, check_address, classify, parse_url};
use super::*;
use crate::ports::WebhookResponse;
use crate::ports::testing::CountingEntropy;

#[test]
fn event_filters_parse_all_known_or_refuse_naming_the_unknown() {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(EventFilter::parse(&names(&["*"])).unwrap(), EventFilter::All);
    let only = EventFilter::parse(&names(&["TX_CONFIRMED", "TX_FAILED", "TX_CONFIRMED"])).unwrap();
    assert_eq!(only, EventFilter::Only(vec![EventType::TxConfirmed, EventType::TxFailed]));
    assert!(only.matches(EventType::TxConfirmed) && !only.matches(EventType::TxQueued));
    assert!(EventFilter::All.matches(EventType::AgentCreated));
    assert!(!EventFilter::All.matches(EventType::WebhookTest), "a test ping goes to the tested webhook only");
    let error = EventFilter::parse(&names(&["TX_CONFIRMED", "NOPE", "ALSO_NOPE"])).unwrap_err();
    assert_eq!(error.code, ErrorCode::ValidationFailed);
    assert!(error.message.contains("NOPE") && error.message.contains("ALSO_NOPE"), "{}", error.message);
    assert_eq!(EventFilter::parse(&[]).unwrap_err().code, ErrorCode::ValidationFailed);
    assert_eq!(only.to_wire(), ["TX_CONFIRMED", "TX_FAILED"]);
}

#[track_caller]
fn url_check(url: &str, expected: std::result::Result<(&str, u16), &str>) {
    match (parse_url(url), expected) {
        (Ok(t), Ok((host, port))) => assert_eq!((t.host.as_str(), t.port), (host, port), "{url}"),
        (Err(e), Err(part)) => {
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{url}");
            assert!(e.message.contains(part), "{url}: {}", e.message);
        }
        (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn urls_are_http_or_https_with_a_host_and_no_credentials() {
    url_check("https://hooks.example.com/a?b=c", Ok(("hooks.example.com", 443)));
    url_check("http://127.0.0.1:8080/x", Ok(("127.0.0.1", 8080)));
    url_check("http://[::1]:9/", Ok(("::1", 9)));
    url_check("ftp://example.com/", Err("http or https"));
    url_check("file:///etc/passwd", Err("http or https"));
    url_check("https://user:pw@example.com/", Err("credentials"));
    url_check("https://user@example.com/", Err("credentials"));
    url_check("/relative", Err("absolute"));
    url_check(&format!("https://example.com/{}", "a".repeat(2100)), Err("2048"));
}

#[track_caller]
fn class(ip: &str, expected: AddressClass) {
    let addr: IpAddr = ip.parse().unwrap();
    assert_eq!(classify(addr), expected, "{ip}");
}

#[test]
fn addresses_are_classified_with_ipv6_forms_of_ipv4_judged_as_ipv4() {
    use AddressClass::*;
    class("93.184.216.34", Public);
    class("2606:2800:220:1::1", Public);
    class("169.254.169.254", Forbidden("link-local (cloud metadata)"));
    class("169.254.0.1", Forbidden("link-local (cloud metadata)"));
    class("::ffff:169.254.169.254", Forbidden("link-local (cloud metadata)"));
    class("::169.254.169.254", Forbidden("link-local (cloud metadata)"));
    class("64:ff9b::a9fe:a9fe", Forbidden("link-local (cloud metadata)"));
    class("fe80::1", Forbidden("link-local"));
    class("fd00:ec2::254", Forbidden("cloud metadata"));
    class("0.0.0.0", Forbidden("unspecified"));
    class("::", Forbidden("unspecified"));
    class("::ffff:0.0.0.0", Forbidden("unspecified"));
    class("224.0.0.1", Forbidden("multicast"));
    class("ff02::1", Forbidden("multicast"));
    class("255.255.255.255", Forbidden("broadcast"));
    class("127.0.0.1", Private("loopback"));
    class("::1", Private("loopback"));
    class("::ffff:127.0.0.1", Private("loopback"));
    class("10.1.2.3", Private("private"));
    class("172.31.255.255", Private("private"));
    class("172.32.0.1", Public);
    class("192.168.1.1", Private("private"));
    class("100.100.100.200", Private("shared (CGNAT)"));
    class("fd12::1", Private("unique local"));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(check_address(ip("10.0.0.1"), false).is_ok());
    assert_eq!(check_address(ip("10.0.0.1"), true).unwrap_err().code, ErrorCode::WebhookUrlForbidden);
    assert_eq!(check_address(ip("169.254.169.254"), false).unwrap_err().code, ErrorCode::WebhookUrlForbidden);
    assert!(check_address(ip("8.8.8.8"), true).is_ok());
}

#[test]
fn a_signature_matches_the_standard_webhooks_reference_vector() {
    // From the Standard Webhooks specification's examples.
    let secret = WebhookSecret::generate(&CountingEntropy::default());
    assert!(secret.expose().starts_with("whsec_"));
    let key = SecretKey::from_bytes([7; 32]);
    let id = crate::WebhookId::from_uuid(uuid::Uuid::from_u128(1));
    let sealed = key.seal(&secret, id, &CountingEntropy::default());
    assert!(!sealed.windows(6).any(|w| w == b"whsec_"), "sealed, not plaintext");
    assert_eq!(key.open(&sealed, id).unwrap(), secret);
    assert!(key.open(&sealed, crate::WebhookId::from_uuid(uuid::Uuid::from_u128(2))).is_err(), "bound to the id");
    assert!(SecretKey::from_bytes([8; 32]).open(&sealed, id).is_err(), "another key");
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(key.open(&flipped, id).is_err(), "altered bytes");
    assert_eq!(secret.hash().len(), 64);

    let reference = key.open(&key.seal_text_for_test("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id), id).unwrap();
    assert_eq!(
        reference.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn payloads_carry_the_event_and_its_ids_but_no_ip() {
    use crate::event::RequestContext;
    let ctx = RequestContext::master(Some("127.0.0.1".parse().unwrap()));
    let tx = crate::TxId::from_uuid(uuid::Uuid::from_u128(9));
    let event = Event::new(EventType::TxConfirmed, &ctx, crate::UnixSeconds(77))
        .tx(tx)
        .details(serde_json::json!({"txHash": "0xab"}));
    let body: serde_json::Value = serde_json::from_slice(&payload(&delivery_id(5), &event)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id": "evt_5", "type": "TX_CONFIRMED", "timestamp": 77,
            "data": {"txHash": "0xab", "txId": tx.to_string(), "actor": "master"}})
    );
    assert_eq!(parse_delivery_id("evt_5").unwrap(), 5);
    for bad in ["5", "evt_", "evt_-1", "evt_0", "msg_5"] {
        assert_eq!(parse_delivery_id(bad).unwrap_err().code, ErrorCode::DeliveryNotFound, "{bad}");
    }
}

#[track_caller]
fn verdict(response: WebhookResponse, attempt: u32) -> Verdict {
    let policy = RetryPolicy { schedule_ms: vec![1_000, 2_000, 4_000], retry_after_cap_ms: 60_000 };
    decide(&response, attempt, &policy, &CountingEntropy::default())
}

fn status(code: u16) -> WebhookResponse {
    WebhookResponse::Status { code, elapsed_ms: 3, retry_after_seconds: None }
}

#[test]
fn the_retry_table() {
    let retry_within = |v: Verdict, base: u64| match v {
        Verdict::Retry { delay_ms } => {
            assert!((base..=base + base / 10).contains(&delay_ms), "{delay_ms} not within {base} + 10%")
        }
        other => panic!("expected a retry after {base}, got {other:?}"),
    };
    for code in [200, 201, 204, 299] {
        assert_eq!(verdict(status(code), 1), Verdict::Delivered, "{code}");
    }
    assert_eq!(verdict(status(410), 1), Verdict::Disable);
    for code in [408, 429, 500, 502, 503, 599] {
        retry_within(verdict(status(code), 1), 1_000);
        retry_within(verdict(status(code), 2), 2_000);
        retry_within(verdict(status(code), 3), 4_000);
        assert_eq!(verdict(status(code), 4), Verdict::Failed, "{code}: the schedule is used up");
    }
    for code in [100, 301, 302, 400, 401, 403, 404, 422] {
        assert_eq!(verdict(status(code), 1), Verdict::Failed, "{code}");
    }
    let transport = || WebhookResponse::TransportError { message: "timed out".into(), elapsed_ms: 10 };
    retry_within(verdict(transport(), 1), 1_000);
    assert_eq!(verdict(transport(), 4), Verdict::Failed);
    assert_eq!(verdict(WebhookResponse::Refused { message: "169.254.169.254".into() }, 1), Verdict::Failed);
    let after = |s| WebhookResponse::Status { code: 429, elapsed_ms: 1, retry_after_seconds: Some(s) };
    assert_eq!(verdict(after(7), 1), Verdict::Retry { delay_ms: 7_000 }, "Retry-After honoured");
    assert_eq!(verdict(after(3_600), 2), Verdict::Retry { delay_ms: 60_000 }, "capped");
    assert_eq!(verdict(after(1), 4), Verdict::Failed, "the schedule bounds 429s too");
    let none = RetryPolicy { schedule_ms: vec![], retry_after_cap_ms: 1 };
    assert_eq!(decide(&status(500), 1, &none, &CountingEntropy::default()), Verdict::Failed);
}
