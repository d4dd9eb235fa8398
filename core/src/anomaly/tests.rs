//! Table tests of the five rules (firing, just under the threshold, cold start, shadow), the registry driving a
//! host's own rule, the floor's merge, and a steady synthetic agent over 7 days that triggers nothing.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::domain::{Address, Asset, EvmAddress, TxKind, TxStatus};
use crate::{Amount, UnixSeconds};

/// Midnight UTC: hour offsets are hours of the day.
const T0: i64 = 1_699_920_000;
const HOUR: i64 = 3_600;
const MINUTE: i64 = 60;

fn address(n: u64) -> Address {
    format!("0x{n:040x}").parse::<EvmAddress>().expect("address").into()
}

/// A confirmed native transfer of `wei` to `to`, final at `at` (seconds after [`T0`]).
fn paid(at: i64, wei: u128, to: u64) -> Observation {
    let kind = TxKind::Transfer { to: address(to), amount: Amount::from_u128(wei) };
    Observation::of_final(TxStatus::Confirmed, UnixSeconds(T0 + at), None, "anvil", &kind).expect("final")
}

/// One payment of 1e15 wei to recipient 1 every hour at :30 for `hours` hours.
fn hourly(hours: i64) -> Vec<Observation> {
    (0..hours).map(|h| paid(h * HOUR + 30 * MINUTE, 1_000_000_000_000_000, 1)).collect()
}

fn settings(shadow: Option<&str>) -> AnomalySettings {
    let mut settings = AnomalySettings::default();
    if let Some(rule) = shadow {
        settings.rules.insert(rule.to_owned(), RuleConfig { shadow: true, ..RuleConfig::default() });
    }
    settings
}

/// One scenario: the history, the balance readings, when it is judged, what fires.
struct Case {
    name: &'static str,
    history: Vec<Observation>,
    balances: Vec<(i64, u128)>,
    now: i64,
    settings: AnomalySettings,
    /// Rule ids expected, with their shadow flag.
    expected: Vec<(&'static str, bool)>,
}

#[track_caller]
fn check(case: Case) {
    let mut activity = AgentActivity::new();
    for observation in &case.history {
        activity.record(observation);
    }
    for (at, wei) in &case.balances {
        activity.record_balance(BalanceReading {
            at: UnixSeconds(T0 + at),
            network: "anvil".into(),
            amount: Amount::from_u128(*wei),
        });
    }
    let registry = AnomalyRegistry::standard(case.settings);
    let found: Vec<(String, bool)> = registry
        .evaluate(&activity, UnixSeconds(T0 + case.now))
        .into_iter()
        .map(|d| (d.finding.rule, d.shadow))
        .collect();
    let expected: Vec<(String, bool)> = case.expected.iter().map(|(r, s)| ((*r).to_owned(), *s)).collect();
    assert_eq!(found, expected, "{}", case.name);
}

const MILLI: u128 = 1_000_000_000_000_000;

/// 48 h of one 1e15-wei payment an hour (hourly mean 1e15), so the threshold is the floor 1e16 wei; the
/// last hour holds the 1e15 of its regular payment plus the spike.
fn spend_case(name: &'static str, hours: i64, spike: u128, shadow: bool, fires: bool) -> Case {
    let mut history = hourly(hours);
    history.push(paid(hours * HOUR - 25 * MINUTE, spike, 1));
    Case {
        name,
        history,
        balances: vec![],
        now: hours * HOUR - 20 * MINUTE,
        settings: settings(shadow.then_some("A-01")),
        expected: if fires { vec![("A-01", shadow)] } else { vec![] },
    }
}

#[test]
fn a01_spend_spike() {
    check(spend_case("fires above the floor", 48, 9 * MILLI + 1_000_000, false, true));
    check(spend_case("just under the floor", 48, 9 * MILLI - 1_000_000, false, false));
    check(spend_case("cold start: 10 h of history", 10, 100 * MILLI, false, false));
    check(spend_case("shadow", 48, 100 * MILLI, true, true));
    // Above the floor, the multiplier rules: 5 × an hourly mean of 1e16 = 5e16.
    let mut history: Vec<Observation> = (0..48).map(|h| paid(h * HOUR + 30 * MINUTE, 10 * MILLI, 1)).collect();
    history.push(paid(48 * HOUR - 25 * MINUTE, 40 * MILLI + 1_000_000, 1));
    let case = |name, history, expected| Case {
        name,
        history,
        balances: vec![],
        now: 48 * HOUR - 20 * MINUTE,
        settings: settings(None),
        expected,
    };
    check(case("5x the mean plus 1e6 wei", history.clone(), vec![("A-01", false)]));
    history.pop();
    history.push(paid(48 * HOUR - 25 * MINUTE, 40 * MILLI - 1_000_000, 1));
    check(case("just under 5x the mean", history, vec![]));
}

#[test]
fn a01_one_earlier_spike_does_not_raise_the_baseline() {
    let mut history: Vec<Observation> = (0..48).map(|h| paid(h * HOUR + 30 * MINUTE, 10 * MILLI, 1)).collect();
    // Yesterday's spike (10× the hour) is the largest hourly value: the trimmed mean drops it.
    history.push(paid(40 * HOUR + 31 * MINUTE, 100 * MILLI, 1));
    history.push(paid(48 * HOUR - 25 * MINUTE, 45 * MILLI, 1));
    let settings = AnomalySettings {
        rules: [("A-03".to_owned(), RuleConfig { enabled: false, ..RuleConfig::default() })].into(),
        ..AnomalySettings::default()
    };
    check(Case {
        name: "spike after a spike",
        history,
        balances: vec![],
        now: 48 * HOUR - 20 * MINUTE,
        settings,
        expected: vec![("A-01", false)],
    });
}

/// 48 h of two transactions per 10 minutes (threshold max(3 × 2, 5) = 6), then `burst` in the current
/// bucket.
fn frequency_case(name: &'static str, hours: i64, burst: i64, shadow: bool, fires: bool) -> Case {
    let mut history = Vec::new();
    for bucket in 0..(hours * 6 - 1) {
        history.push(paid(bucket * 600 + MINUTE, 1, 1));
        history.push(paid(bucket * 600 + 6 * MINUTE, 1, 1));
    }
    let current = (hours * 6 - 1) * 600;
    history.extend((0..burst).map(|i| paid(current + i * 10, 1, 1)));
    Case {
        name,
        history,
        balances: vec![],
        now: current + 9 * MINUTE,
        settings: settings(shadow.then_some("A-02")),
        expected: if fires { vec![("A-02", shadow)] } else { vec![] },
    }
}

#[test]
fn a02_frequency_spike() {
    check(frequency_case("7 > 6 fires", 48, 7, false, true));
    check(frequency_case("6 is not above 6", 48, 6, false, false));
    check(frequency_case("cold start: 3 h of history", 3, 30, false, false));
    check(frequency_case("shadow", 48, 7, true, true));
}

/// 4 days of one payment an hour, except at 03:00 UTC on the days not in `days_at_three`; then a payment
/// at 03:10 on day 4.
fn hour_case(name: &'static str, days: i64, days_at_three: i64, shadow: bool, fires: bool) -> Case {
    let mut history = Vec::new();
    for h in 0..(days * 24) {
        if h % 24 == 3 && h / 24 >= days_at_three {
            continue;
        }
        history.push(paid(h * HOUR + 30 * MINUTE, MILLI, 1));
    }
    let at = days * 24 * HOUR + 3 * HOUR + 10 * MINUTE;
    history.push(paid(at, MILLI, 1));
    Case {
        name,
        history,
        balances: vec![],
        now: at,
        settings: settings(shadow.then_some("A-03")),
        expected: if fires { vec![("A-03", shadow)] } else { vec![] },
    }
}

#[test]
fn a03_unusual_hour() {
    // One earlier 03:00 payment of 93: 1.1 % < 2 %.
    check(hour_case("a rare hour fires", 4, 1, false, true));
    // Two of 94: 2.1 %, not below 2 %.
    check(hour_case("just above the share", 4, 2, false, false));
    check(hour_case("learning: 2 days of history", 2, 0, false, false));
    check(hour_case("shadow", 4, 1, true, true));
}

/// 48 h of hourly payments to recipient 1; in the last hour its regular payment, `new` payments to
/// recipients never paid and `known` more to recipient 1.
fn recipient_case(name: &'static str, hours: i64, new: u64, known: u64, shadow: bool, fires: bool) -> Case {
    let mut history = hourly(hours);
    let start = hours * HOUR - 20 * MINUTE;
    history.extend((0..new).map(|i| paid(start + i as i64 * MINUTE, MILLI, 100 + i)));
    history.extend((0..known).map(|i| paid(start + 30 + i as i64 * MINUTE, MILLI, 1)));
    Case {
        name,
        history,
        balances: vec![],
        now: hours * HOUR - 5 * MINUTE,
        settings: settings(shadow.then_some("A-04")),
        expected: if fires { vec![("A-04", shadow)] } else { vec![] },
    }
}

#[test]
fn a04_new_recipient_concentration() {
    check(recipient_case("4 new of 5: 80 %", 48, 4, 0, false, true));
    check(recipient_case("4 new of 6: 67 %", 48, 4, 1, false, false));
    check(recipient_case("3 new of 4: too few payments", 48, 3, 0, false, false));
    check(recipient_case("cold start: 6 h of history", 6, 9, 0, false, false));
    check(recipient_case("shadow", 48, 4, 0, true, true));
}

/// 48 h of hourly payments, then a balance of 10 ETH 30 minutes ago and `now_wei` now.
fn balance_case(name: &'static str, hours: i64, now_wei: u128, shadow: bool, fires: bool) -> Case {
    let now = hours * HOUR;
    Case {
        name,
        history: hourly(hours),
        balances: vec![(now - 50 * MINUTE, 10_000 * MILLI), (now - 30 * MINUTE, 9_000 * MILLI), (now, now_wei)],
        now,
        settings: settings(shadow.then_some("A-05")),
        expected: if fires { vec![("A-05", shadow)] } else { vec![] },
    }
}

#[test]
fn a05_balance_drop() {
    check(balance_case("down 50 % from the hour's highest", 48, 5_000 * MILLI, false, true));
    check(balance_case("down 49.9 %", 48, 5_010 * MILLI, false, false));
    check(balance_case("cold start: 12 h of history", 12, 1_000 * MILLI, false, false));
    check(balance_case("shadow", 48, 1_000 * MILLI, true, true));
    // A reading older than an hour is no baseline.
    let mut old = balance_case("the high reading is 61 minutes old", 48, 1_000 * MILLI, false, false);
    old.balances = vec![(48 * HOUR - 61 * MINUTE, 10_000 * MILLI), (48 * HOUR, 1_000 * MILLI)];
    check(old);
}

#[test]
fn a_disabled_rule_is_not_evaluated_and_detection_can_be_turned_off() {
    let mut off = spend_case("A-01 disabled", 48, 100 * MILLI, false, false);
    off.settings.rules.insert("A-01".into(), RuleConfig { enabled: false, ..RuleConfig::default() });
    check(off);
    let mut all_off = spend_case("detection off", 48, 100 * MILLI, false, false);
    all_off.settings.enabled = false;
    check(all_off);
    // Parameters override the defaults: a multiplier of 100 and a floor of 1 ETH let the spike pass.
    let mut tuned = spend_case("tuned", 48, 100 * MILLI, false, false);
    tuned.settings.rules.insert(
        "A-01".into(),
        RuleConfig { params: RuleParams::from_pairs(&[("min_base_units", 1e18)]), ..RuleConfig::default() },
    );
    check(tuned);
}

/// A host's own rule is evaluated like the standard ones, honours shadow mode, and a second rule with its id is
/// refused.
#[test]
fn a_registered_rule_is_evaluated() {
    struct Busy;
    impl AnomalyRule for Busy {
        fn id(&self) -> &str {
            "HOST-01"
        }
        fn default_params(&self) -> RuleParams {
            RuleParams::from_pairs(&[("max", 30.0)])
        }
        fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
            let seen = activity.transactions_7d(now) as f64;
            let max = params.get("max")?;
            (seen > max).then(|| Finding::new(self.id(), seen, max, LEARNING_SECONDS, "transactions"))
        }
    }
    let mut activity = AgentActivity::new();
    for observation in hourly(48) {
        activity.record(&observation);
    }
    let now = UnixSeconds(T0 + 48 * HOUR);
    let mut registry = AnomalyRegistry::empty(AnomalySettings::default());
    assert!(registry.evaluate(&activity, now).is_empty(), "no rule, no finding");
    assert!(registry.register(Arc::new(Busy)));
    assert!(!registry.register(Arc::new(Busy)), "one rule per id");
    assert_eq!(registry.rule_ids(), ["HOST-01"]);
    let found = registry.evaluate(&activity, now);
    assert_eq!(
        found,
        [Detection { finding: Finding::new("HOST-01", 48.0, 30.0, LEARNING_SECONDS, "transactions"), shadow: false }]
    );
    let mut settings = AnomalySettings::default();
    settings.rules.insert(
        "HOST-01".into(),
        RuleConfig { shadow: true, params: RuleParams::from_pairs(&[("max", 50.0)]), ..RuleConfig::default() },
    );
    registry.configure(settings.clone());
    assert!(registry.evaluate(&activity, now).is_empty(), "its parameter is configurable");
    settings.rules.get_mut("HOST-01").expect("configured").params = RuleParams::default();
    registry.configure(settings);
    assert!(registry.evaluate(&activity, now)[0].shadow);
}

#[test]
fn a_floor_is_never_lowered_and_an_expired_one_is_replaced() {
    let agent = crate::AgentId::from_uuid(uuid::Uuid::nil());
    let floor = |tier, expires| TierFloor {
        agent_id: agent,
        tier,
        expires_at: UnixSeconds(expires),
        rule: "A-01".into(),
        updated_at: UnixSeconds(0),
    };
    let now = UnixSeconds(100);
    let approval = floor(Tier::Approval, 500);
    let merged = TierFloor::merge(Some(&approval), floor(Tier::Delay, 900), now);
    assert_eq!((merged.tier, merged.expires_at), (Tier::Approval, UnixSeconds(900)), "extended, not lowered");
    let merged = TierFloor::merge(Some(&floor(Tier::Delay, 900)), floor(Tier::Delay, 300), now);
    assert_eq!(merged.expires_at, UnixSeconds(900), "a shorter TTL never shortens it");
    let merged = TierFloor::merge(Some(&floor(Tier::Approval, 50)), floor(Tier::Delay, 300), now);
    assert_eq!((merged.tier, merged.expires_at), (Tier::Delay, UnixSeconds(300)), "an expired floor is gone");
    assert_eq!(TierFloor::tier_at(Some(&approval), now), Some(Tier::Approval));
    assert_eq!(TierFloor::tier_at(Some(&approval), UnixSeconds(500)), None, "expired at expires_at");
}

/// A 24/7 agent paying one of eight regular recipients every 5 to 15 minutes, amounts ±30 %, a new recipient
/// now and then, its balance read after each payment and topped up daily: 7 simulated days, judged after every
/// observation, trigger nothing.
#[test]
fn a_steady_agent_over_seven_days_triggers_nothing() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let registry = AnomalyRegistry::standard(AnomalySettings::default());
    let mut activity = AgentActivity::new();
    let (mut at, mut balance, mut judged, mut fresh) = (0i64, 50_000 * MILLI, 0, 1_000u64);
    while at < 7 * 86_400 {
        at += rng.gen_range(5 * MINUTE..=15 * MINUTE);
        let wei = MILLI * rng.gen_range(700..=1_300) / 1_000;
        let to = if rng.gen_bool(0.01) {
            fresh += 1;
            fresh
        } else {
            rng.gen_range(1..=8)
        };
        activity.record(&paid(at, wei, to));
        let now = UnixSeconds(T0 + at);
        let found = registry.evaluate(&activity, now);
        assert!(found.is_empty(), "day {} {:02}:{:02}: {found:?}", at / 86_400, at % 86_400 / HOUR, at % HOUR / MINUTE);
        balance -= wei;
        if at % 86_400 < 15 * MINUTE {
            balance += 200 * MILLI;
        }
        activity.record_balance(BalanceReading {
            at: now,
            network: "anvil".into(),
            amount: Amount::from_u128(balance),
        });
        assert!(registry.evaluate(&activity, now).is_empty(), "after the balance at {at}");
        judged += usize::from(registry.warmed_up(&activity, now));
    }
    assert!(judged > 700, "the agent was judged past its cold start ({judged} times)");
    assert_eq!(registry.rule_ids(), ["A-01", "A-02", "A-03", "A-04", "A-05"], "every standard rule took part");
}

#[test]
fn memory_stays_bounded() {
    let mut activity = AgentActivity::new();
    for i in 0..(MAX_KNOWN_RECIPIENTS as i64 + 100) {
        activity.record(&paid(i, 1, 10_000 + i as u64));
    }
    assert!(activity.known_recipients() <= MAX_KNOWN_RECIPIENTS);
    for i in 0..(2 * MAX_BALANCES as i64) {
        activity.record_balance(BalanceReading {
            at: UnixSeconds(T0 + i),
            network: "anvil".into(),
            amount: Amount::from_u128(1),
        });
    }
    assert_eq!(activity.balances(UnixSeconds(T0 + 200)).count(), MAX_BALANCES);
    // A failed transaction counts, but spends nothing; a cancelled one is not activity.
    let kind = TxKind::Transfer { to: address(1), amount: Amount::from_u128(5) };
    let failed = Observation::of_final(TxStatus::Failed, UnixSeconds(T0), None, "anvil", &kind).expect("counts");
    assert!(failed.spend.is_empty());
    assert_eq!(Observation::of_final(TxStatus::Cancelled, UnixSeconds(T0), None, "anvil", &kind), None);
    let priced = Observation::of_final(TxStatus::Confirmed, UnixSeconds(T0), Some(3.5), "anvil", &kind).expect("final");
    assert_eq!(priced.spend, [(SpendKey::Usd, 3.5)]);
    let _ = Asset::Native;
}
