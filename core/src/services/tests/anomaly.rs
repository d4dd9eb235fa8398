//! The anomaly monitor over the in-memory harness: a host's own rule is evaluated and its finding raises the
//! agent's tier floor (unless in shadow mode), with `ANOMALY_DETECTED` and the metric; the operator's clear.

use std::sync::{Arc, Mutex};

use super::{T0, block_on, harness};
use crate::anomaly::{
    AgentActivity, AnomalyRegistry, AnomalyRule, AnomalySettings, Finding, FindingRecord, Observation, RuleConfig,
    RuleParams, TierFloor,
};
use crate::domain::{Tier, TxKind, TxStatus};
use crate::event::{EventType, RequestContext};
use crate::metrics::ANOMALY_DETECTIONS_TOTAL;
use crate::ports::MockAnomalyRepo;
use crate::services::anomaly::AnomalyMonitor;
use crate::{Amount, ErrorCode, UnixSeconds};

/// Fires on the third transaction it sees.
struct Third;

impl AnomalyRule for Third {
    fn id(&self) -> &str {
        "HOST-3"
    }
    fn default_params(&self) -> RuleParams {
        RuleParams::default()
    }
    fn evaluate(&self, activity: &AgentActivity, _: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let seen = activity.transactions_7d(now);
        (seen >= 3).then(|| Finding::new(self.id(), seen as f64, 2.0, 3_600, "transactions"))
    }
}

/// A store that keeps what `record` was given and builds the event as the SQLite adapter does.
fn store(floors: Arc<Mutex<Vec<Option<TierFloor>>>>) -> MockAnomalyRepo {
    let mut store = MockAnomalyRepo::new();
    store.expect_record().returning(move |record, floor, event| {
        floors.lock().unwrap().push(floor.clone());
        let stored = FindingRecord { id: 7, ..record.clone() };
        let event = event(&stored, floor.as_ref());
        Ok((stored, floor, event))
    });
    store
}

fn observation(at: i64) -> Observation {
    let kind = TxKind::Transfer { to: super::ADDRESS.parse().unwrap(), amount: Amount::from_u128(1) };
    Observation::of_final(TxStatus::Confirmed, UnixSeconds(at), None, "anvil", &kind).unwrap()
}

#[test]
fn a_registered_rule_is_evaluated_and_its_finding_raises_the_floor() {
    let h = harness("pw", Arc::default()).unwrap();
    let floors = Arc::new(Mutex::new(Vec::new()));
    assert!(h.core.attach_anomaly_store(Arc::new(store(floors.clone()))));
    let settings = AnomalySettings {
        cold_start: crate::anomaly::ColdStart { min_transactions: 0, min_history_seconds: 0 },
        floor_ttl_seconds: 600,
        ..AnomalySettings::default()
    };
    let mut registry = AnomalyRegistry::empty(settings.clone());
    assert!(registry.register(Arc::new(Third)));
    let monitor = AnomalyMonitor::new(registry, h.metrics.as_ref());
    assert!(h.metrics.has(ANOMALY_DETECTIONS_TOTAL, &[("rule", "HOST-3")]), "exported at zero");

    let now = UnixSeconds(T0);
    assert!(monitor.observe(h.agent_id, &observation(T0 - 2), now).is_empty());
    assert!(monitor.observe(h.agent_id, &observation(T0 - 1), now).is_empty());
    let found = monitor.observe(h.agent_id, &observation(T0), now);
    assert_eq!(found.len(), 1, "the host's rule fired");
    assert!(monitor.observe(h.agent_id, &observation(T0), now).is_empty(), "quiet for its window");

    let stored = block_on(h.core.record_detection(h.agent_id, None, &found[0], &monitor.settings())).unwrap();
    assert_eq!((stored.id, stored.finding.rule.as_str(), stored.shadow), (7, "HOST-3", false));
    let floor = floors.lock().unwrap()[0].clone().expect("a floor");
    assert_eq!((floor.tier, floor.expires_at, floor.rule.as_str()), (Tier::Delay, UnixSeconds(T0 + 600), "HOST-3"));
    let published = h.sink.0.lock().unwrap().clone();
    let [event] = published.as_slice() else { panic!("{published:?}") };
    assert_eq!(event.event_type, EventType::AnomalyDetected);
    assert_eq!(event.agent_id, Some(h.agent_id));
    assert_eq!(
        event.details,
        serde_json::json!({
            "findingId": 7, "rule": "HOST-3", "observed": 3.0, "threshold": 2.0, "windowSeconds": 3600,
            "unit": "transactions", "shadow": false,
            "tierFloor": {"tier": "DELAY", "expiresAt": T0 + 600, "rule": "HOST-3"},
        })
    );
    assert_eq!(h.metrics.counter(ANOMALY_DETECTIONS_TOTAL, &[("rule", "HOST-3")]), 1);

    // In shadow mode the finding is recorded and counted, and no floor is asked for.
    let mut shadow = settings;
    shadow.rules.insert("HOST-3".into(), RuleConfig { shadow: true, ..RuleConfig::default() });
    monitor.configure(shadow);
    let found = monitor.observe(h.agent_id, &observation(T0 + 3_600), UnixSeconds(T0 + 3_600));
    assert!(found[0].shadow);
    block_on(h.core.record_detection(h.agent_id, None, &found[0], &monitor.settings())).unwrap();
    assert_eq!(floors.lock().unwrap()[1], None);
    assert_eq!(h.metrics.counter(ANOMALY_DETECTIONS_TOTAL, &[("rule", "HOST-3")]), 2);
}

#[test]
fn the_operator_clears_a_floor_in_force_only() {
    let h = harness("pw", Arc::default()).unwrap();
    let floor = TierFloor {
        agent_id: h.agent_id,
        tier: Tier::Delay,
        expires_at: UnixSeconds(T0 + 10),
        rule: "A-01".into(),
        updated_at: UnixSeconds(T0),
    };
    let mut store = MockAnomalyRepo::new();
    let stored = floor.clone();
    store.expect_floor().returning(move |_| Ok(Some(stored.clone())));
    let cleared = floor.clone();
    store.expect_clear_floor().times(1).returning(move |_, _, event| {
        assert_eq!(event.event_type, EventType::AnomalyCleared);
        Ok(Some(cleared.clone()))
    });
    h.core.attach_anomaly_store(Arc::new(store));
    let ctx = RequestContext::master(None);
    assert_eq!(block_on(h.core.tier_floor(h.agent_id)).unwrap(), Some(floor.clone()));
    assert_eq!(block_on(h.core.clear_tier_floor(&ctx, h.agent_id)).unwrap(), floor);
    assert_eq!(h.sink.0.lock().unwrap().last().map(|e| e.event_type), Some(EventType::AnomalyCleared));
    h.clock.advance(10);
    assert_eq!(block_on(h.core.tier_floor(h.agent_id)).unwrap(), None, "expired by the clock");
    let expired = block_on(h.core.clear_tier_floor(&ctx, h.agent_id)).unwrap_err();
    assert_eq!(expired.code, ErrorCode::InvalidStateTransition);
}
