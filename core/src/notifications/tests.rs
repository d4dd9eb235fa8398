//! Routing and the rate limit.

use super::rate::{RateLimit, TokenBucket};
use super::routing::{ChannelRoute, DEFAULT_EVENTS, Routing, is_critical};
use super::*;
use crate::event::EventType;

fn routing(channels: &[(ChannelKind, Option<Vec<EventType>>)]) -> Routing {
    Routing {
        channels: channels.iter().map(|(kind, events)| ChannelRoute { kind: *kind, events: events.clone() }).collect(),
    }
}

#[test]
fn critical_events_go_to_every_accepting_channel_others_to_the_first_with_fallback() {
    use ChannelKind::*;
    let r = routing(&[
        (Telegram, None),
        (Slack, None),
        (Email, Some(vec![EventType::TxConfirmed, EventType::AnomalyDetected])),
    ]);
    assert_eq!(r.route(EventType::AnomalyDetected), vec![vec![Telegram], vec![Slack], vec![Email]]);
    assert_eq!(r.route(EventType::KillSwitchActivated), vec![vec![Telegram], vec![Slack]]);
    assert_eq!(r.route(EventType::TxApprovalRequired), vec![vec![Telegram, Slack]]);
    assert_eq!(r.route(EventType::TxConfirmed), vec![vec![Email]]);
    assert_eq!(r.route(EventType::SessionCreated), Vec::<Vec<ChannelKind>>::new());
    assert!(!r.accepts(Ntfy, EventType::TxFailed), "not configured");
}

#[test]
fn notification_failures_are_never_routed_even_when_listed() {
    let r = routing(&[(ChannelKind::Ntfy, Some(vec![EventType::NotificationFailed, EventType::TxFailed]))]);
    assert!(r.route(EventType::NotificationFailed).is_empty());
    assert_eq!(r.route(EventType::TxFailed), vec![vec![ChannelKind::Ntfy]]);
}

#[test]
fn the_default_set_is_the_documented_one() {
    let names: Vec<&str> = DEFAULT_EVENTS.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "TX_APPROVAL_REQUIRED",
            "TX_QUEUED",
            "TX_FAILED",
            "POLICY_DENIED",
            "KILL_SWITCH_ACTIVATED",
            "KILL_SWITCH_RECOVERED",
            "ANOMALY_DETECTED",
            "AGENT_SUSPENDED",
            "BACKUP_FAILED",
            "WEBHOOK_DISABLED"
        ]
    );
    let critical: Vec<&str> = EventType::ALL.iter().filter(|t| is_critical(**t)).map(|t| t.as_str()).collect();
    assert_eq!(critical, ["KILL_SWITCH_ACTIVATED", "KILL_SWITCH_RECOVERED", "ANOMALY_DETECTED"]);
}

#[test]
fn the_bucket_holds_after_max_and_refills_one_token_per_window_over_max() {
    let mut bucket = TokenBucket::new(RateLimit { max: 2, window_ms: 10_000 }, 1_000);
    assert!(bucket.try_take(1_000) && bucket.try_take(1_000));
    assert!(!bucket.try_take(1_000), "the third within the window is held");
    assert_eq!(bucket.next_token_ms(1_000), 6_000);
    assert!(!bucket.try_take(5_999));
    assert!(bucket.try_take(6_000), "one token every 5 s");
    assert!(!bucket.has_token(6_000));
    assert!(bucket.has_token(100_000) && bucket.try_take(100_000) && bucket.try_take(100_000));
    assert!(!bucket.try_take(100_000), "never more than max");
    bucket.take_anyway(100_000);
    assert!(!bucket.has_token(100_000));
    let mut unlimited = TokenBucket::new(RateLimit { max: 0, window_ms: 1 }, 0);
    assert!((0..1_000).all(|_| unlimited.try_take(0)));
}

#[test]
fn names_round_trip() {
    for kind in ChannelKind::ALL {
        assert_eq!(ChannelKind::parse(kind.as_str()), Some(*kind));
    }
    assert_eq!(CHANNELS, ChannelKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().as_slice());
    for locale in Locale::ALL {
        assert_eq!(Locale::parse(locale.as_str()), Some(*locale));
    }
    for status in [LogStatus::Sent, LogStatus::Failed, LogStatus::Held] {
        assert_eq!(LogStatus::parse(status.as_str()), Some(status));
        assert!(RESULTS.contains(&status.result_label()));
    }
    assert_eq!(ChannelKind::parse("pager"), None);
}
