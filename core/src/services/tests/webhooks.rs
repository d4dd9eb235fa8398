//! One delivery attempt over port mocks: the signed request the sender gets (headers, both signatures during a
//! rotation, the payload), the attempt settled as the retry table says, a 410 disabling the webhook with its
//! published event, and the delivery metrics.

use std::sync::{Arc, Mutex};

use super::*;
use crate::WebhookId;
use crate::metrics as m;
use crate::ports::{
    DeliverySource, DueDelivery, MockWebhookRepo, MockWebhookSender, OutboxNext, SealedSecrets, WebhookRequest,
    WebhookResponse,
};
use crate::webhooks::secret::{SecretKey, WebhookSecret};

type Settled = Arc<Mutex<Vec<(crate::ports::WebhookAttempt, OutboxNext, Option<EventType>)>>>;

fn attach(h: &Harness, answer: WebhookResponse) -> (Arc<Mutex<Vec<WebhookRequest>>>, Settled) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let settled: Settled = Arc::default();
    let mut sender = MockWebhookSender::new();
    let log = Arc::clone(&sent);
    sender.expect_send().returning(move |request| {
        log.lock().unwrap().push(request.clone());
        answer.clone()
    });
    let mut repo = MockWebhookRepo::new();
    let record = Arc::clone(&settled);
    repo.expect_settle().returning(move |settlements| {
        let mut record = record.lock().unwrap();
        for s in settlements {
            assert_eq!(s.source, DeliverySource::Stream);
            record.push((s.attempt.clone(), s.next.clone(), s.event.as_ref().map(|e| e.event_type)));
        }
        Ok(vec![true; settlements.len()])
    });
    let hub = WebhookHub {
        repo: Arc::new(repo),
        sender: Arc::new(sender),
        key: SecretKey::from_bytes([3; 32]),
        settings: WebhookSettings::default(),
    };
    assert!(h.core.attach_webhooks(hub));
    (sent, settled)
}

fn due(h: &Harness, current: &WebhookSecret, previous: Option<&WebhookSecret>) -> DueDelivery {
    let key = SecretKey::from_bytes([3; 32]);
    let id = WebhookId::from_uuid(uuid::Uuid::from_u128(7));
    let entropy = CountingEntropy::default();
    DueDelivery {
        webhook_id: id,
        url: "https://hooks.example/in?token=abc".into(),
        audit_id: 42,
        event: crate::event::Event::new(EventType::TxConfirmed, &RequestContext::system(), UnixSeconds(T0))
            .agent(h.agent_id),
        attempts: 0,
        secrets: SealedSecrets {
            current: key.seal(current, id, &entropy),
            previous: previous.map(|p| (key.seal(p, id, &entropy), UnixSeconds(T0 + 60))),
        },
        source: DeliverySource::Stream,
    }
}

#[test]
fn a_delivery_is_signed_with_every_secret_in_force_and_retried_on_500() {
    let h = harness("pw", Arc::default()).unwrap();
    let (sent, settled) = attach(&h, WebhookResponse::Status { code: 500, elapsed_ms: 12, retry_after_seconds: None });
    let entropy = CountingEntropy::default();
    let (new, old) = (WebhookSecret::generate(&entropy), WebhookSecret::generate(&entropy));
    let verdict = block_on(h.core.deliver_webhook(&due(&h, &new, Some(&old)))).unwrap();
    assert!(
        matches!(verdict, crate::webhooks::retry::Verdict::Retry { delay_ms } if (1_000..=1_100).contains(&delay_ms))
    );
    let request = sent.lock().unwrap().remove(0);
    let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(header("webhook-id"), "evt_42");
    assert_eq!(header("webhook-timestamp"), T0.to_string());
    assert_eq!(header("x-waiaas-event"), "TX_CONFIRMED");
    let expected = format!("{} {}", new.sign("evt_42", T0, &request.body), old.sign("evt_42", T0, &request.body));
    assert_eq!((header("webhook-signature"), header("x-waiaas-signature")), (expected.clone(), expected));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!((body["id"].as_str(), body["type"].as_str()), (Some("evt_42"), Some("TX_CONFIRMED")));
    let (attempt, next, event) = settled.lock().unwrap().remove(0);
    assert_eq!(
        (attempt.attempt, attempt.status, attempt.status_code),
        (1, crate::ports::DeliveryStatus::Pending, Some(500))
    );
    assert!(matches!(next, OutboxNext::RetryAt(at) if at >= h.clock.now_millis() + 1_000));
    assert_eq!(event, None);
    assert_eq!(h.metrics.counter(m::WEBHOOK_DELIVERIES_TOTAL, &[("result", "retry")]), 1);
    assert_eq!(h.metrics.observations(m::WEBHOOK_DELIVERY_DURATION_SECONDS, &[]), [0.012]);
}

#[test]
fn a_410_disables_the_webhook_and_publishes_the_event() {
    let h = harness("pw", Arc::default()).unwrap();
    let (_, settled) = attach(&h, WebhookResponse::Status { code: 410, elapsed_ms: 1, retry_after_seconds: None });
    let secret = WebhookSecret::generate(&CountingEntropy::default());
    block_on(h.core.deliver_webhook(&due(&h, &secret, None))).unwrap();
    let (attempt, next, event) = settled.lock().unwrap().remove(0);
    assert_eq!(
        (attempt.status, next, event),
        (crate::ports::DeliveryStatus::Failed, OutboxNext::Disable, Some(EventType::WebhookDisabled))
    );
    let published = h.sink.0.lock().unwrap();
    let disabled = published.iter().find(|e| e.event_type == EventType::WebhookDisabled).expect("published");
    assert_eq!(disabled.details["target"], "https://hooks.example", "no path or token in events");
    assert_eq!(h.metrics.counter(m::WEBHOOK_DELIVERIES_TOTAL, &[("result", "disabled")]), 1);
}

#[test]
fn without_an_attached_hub_webhooks_are_not_found() {
    let h = harness("pw", Arc::default()).unwrap();
    assert_code(block_on(h.core.list_webhooks(None, None)), ErrorCode::NotFound);
}
