//! Table-driven tests of the policy engine: (policies × request × state) → decision, through one helper.

use serde_json::json;

use super::*;
use crate::domain::{PolicyRules, PolicyType, TokenRef};
use crate::ports::PriceQuote;
use crate::{AgentId, PolicyId};

const ALICE: &str = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
const BOB: &str = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359";
const TOKEN: &str = "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb";
/// 2023-11-14 22:13:20 UTC, a Tuesday.
const NOW: i64 = 1_700_000_000;

struct Prices(Vec<(&'static str, f64)>);

impl PriceOracle for Prices {
    fn usd_price(&self, symbol: &str) -> Option<PriceQuote> {
        self.0
            .iter()
            .find(|(s, _)| *s == symbol)
            .map(|(_, usd)| PriceQuote { usd: *usd, observed_at: UnixSeconds(NOW) })
    }
}

fn policy(n: u128, agent: bool, policy_type: PolicyType, rules: serde_json::Value) -> Policy {
    Policy {
        id: PolicyId::from_uuid(uuid::Uuid::from_u128(n)),
        agent_id: agent.then(|| AgentId::from_uuid(uuid::Uuid::from_u128(99))),
        rules: PolicyRules::parse(policy_type, &rules).expect("valid rules"),
        enabled: true,
        created_at: UnixSeconds(0),
        updated_at: UnixSeconds(0),
    }
}

fn limit(n: u128, instant: &str, notify: &str, delay: &str) -> Policy {
    policy(
        n,
        false,
        PolicyType::SpendingLimit,
        json!({"instant_max": instant, "notify_max": notify, "delay_max": delay, "delay_seconds": 60}),
    )
}

fn transfer(to: &str, amount: u128) -> TxKind {
    TxKind::Transfer { to: to.parse().unwrap(), amount: Amount::from_u128(amount) }
}

fn token_transfer(to: &str, amount: u128) -> TxKind {
    TxKind::TokenTransfer {
        to: to.parse().unwrap(),
        amount: Amount::from_u128(amount),
        token: TokenRef { address: TOKEN.parse().unwrap(), decimals: 6, symbol: "USDC".into() },
    }
}

#[derive(Default)]
struct State {
    owner: bool,
    reserved_native: u128,
    request_times: Vec<i64>,
    spent_usd: f64,
    prices: Vec<(&'static str, f64)>,
    floor: Option<Tier>,
    now: Option<i64>,
}

/// Renders a decision compactly: `INSTANT`, `DELAY 60s`, `DELAY 60s downgraded`, `DENY RATE_LIMIT_EXCEEDED`,
/// plus ` +WARNING` markers.
fn render(d: &Decision) -> String {
    if !d.allowed {
        return format!("DENY {}", d.reason_code.map(|r| r.as_str()).unwrap_or("?"));
    }
    let mut out = d.tier.as_str().to_owned();
    if let Some(s) = d.delay_seconds {
        out += &format!(" {s}s");
    }
    if d.downgraded {
        out += " downgraded";
    }
    for w in &d.warnings {
        out += match w {
            PolicyWarning::OraclePriceUnavailable { .. } => " +PRICE_UNAVAILABLE",
            PolicyWarning::CumulativeLimit { .. } => " +CUMULATIVE",
            PolicyWarning::AnomalyTierRaised { .. } => " +ANOMALY",
        };
    }
    out
}

#[track_caller]
fn check(policies: &[Policy], request: TxKind, state: State, expected: &str) {
    let history = AgentHistory {
        request_times: state.request_times.iter().map(|t| UnixSeconds(*t)).collect(),
        spent_usd_24h: state.spent_usd,
    };
    let reserved = [(Asset::Native, Amount::from_u128(state.reserved_native))];
    let prices = Prices(state.prices);
    let decision = evaluate(&Evaluation {
        policies,
        request: &request,
        owner_set: state.owner,
        now: UnixSeconds(state.now.unwrap_or(NOW)),
        reserved: &reserved,
        history: &history,
        prices: &prices,
        tier_floor: state.floor,
    });
    assert_eq!(render(&decision), expected, "request {request:?}");
}

fn owner() -> State {
    State { owner: true, ..State::default() }
}

#[test]
fn no_policy_is_instant() {
    check(&[], transfer(ALICE, 10u128.pow(30)), State::default(), "INSTANT");
}

#[test]
fn spending_limit_boundaries() {
    let p = [limit(1, "100", "200", "300")];
    check(&p, transfer(ALICE, 0), owner(), "INSTANT");
    check(&p, transfer(ALICE, 100), owner(), "INSTANT");
    check(&p, transfer(ALICE, 101), owner(), "NOTIFY");
    check(&p, transfer(ALICE, 200), owner(), "NOTIFY");
    check(&p, transfer(ALICE, 201), owner(), "DELAY 60s");
    check(&p, transfer(ALICE, 300), owner(), "DELAY 60s");
    check(&p, transfer(ALICE, 301), owner(), "APPROVAL");
    check(&p, transfer(ALICE, 301), State::default(), "DELAY 60s downgraded");
}

#[test]
fn reservations_count_toward_the_tier() {
    let p = [limit(1, "100", "200", "300")];
    check(&p, transfer(ALICE, 60), State { reserved_native: 50, ..owner() }, "NOTIFY");
    check(&p, transfer(ALICE, 50), State { reserved_native: 50, ..owner() }, "INSTANT");
}

#[test]
fn agent_policy_overrides_global_of_same_type() {
    let global = limit(1, "100", "200", "300");
    let own = policy(
        2,
        true,
        PolicyType::SpendingLimit,
        json!({"instant_max":"1000","notify_max":"2000","delay_max":"3000"}),
    );
    check(&[global.clone(), own], transfer(ALICE, 500), owner(), "INSTANT");
    check(&[global], transfer(ALICE, 500), owner(), "APPROVAL");
}

#[test]
fn disabled_policy_is_ignored() {
    let mut p = limit(1, "100", "200", "300");
    p.enabled = false;
    check(&[p], transfer(ALICE, 500), owner(), "INSTANT");
}

#[test]
fn usd_thresholds_and_unknown_prices() {
    let p = [policy(
        1,
        false,
        PolicyType::SpendingLimit,
        json!({
        "instant_max":"1000000000000000000000","notify_max":"1000000000000000000000","delay_max":"1000000000000000000000",
        "instant_max_usd": 100.0, "notify_max_usd": 1000.0, "delay_max_usd": 5000.0, "delay_seconds": 30}),
    )];
    let eth = |usd| State { prices: vec![("ETH", usd)], ..owner() };
    let one_eth = 10u128.pow(18);
    check(&p, transfer(ALICE, one_eth), eth(50.0), "INSTANT");
    check(&p, transfer(ALICE, one_eth), eth(500.0), "NOTIFY");
    check(&p, transfer(ALICE, one_eth), eth(2000.0), "DELAY 30s");
    check(&p, transfer(ALICE, one_eth), eth(9000.0), "APPROVAL");
    // Unknown price never counts as zero.
    check(&p, transfer(ALICE, one_eth), owner(), "NOTIFY +PRICE_UNAVAILABLE");
    // Tokens are valued with their own decimals and symbol.
    check(&p, token_transfer(ALICE, 2_000_000_000), State { prices: vec![("USDC", 1.0)], ..owner() }, "DELAY 30s");
}

#[test]
fn wei_thresholds_never_depend_on_price() {
    let p = [limit(1, "100", "200", "300")];
    check(&p, transfer(ALICE, 50), State::default(), "INSTANT");
    check(&p, token_transfer(ALICE, 10u128.pow(24)), State::default(), "INSTANT");
}

#[test]
fn daily_usd_limit_raises_to_approval() {
    let p = [policy(
        1,
        false,
        PolicyType::SpendingLimit,
        json!({
        "instant_max":"1000000000000000000000","notify_max":"1000000000000000000000","delay_max":"1000000000000000000000",
        "daily_limit_usd": 1000.0}),
    )];
    let state = |spent| State { prices: vec![("ETH", 100.0)], spent_usd: spent, ..owner() };
    check(&p, transfer(ALICE, 10u128.pow(18)), state(850.0), "INSTANT");
    check(&p, transfer(ALICE, 10u128.pow(18)), state(950.0), "APPROVAL +CUMULATIVE");
}

#[test]
fn deny_policies() {
    let whitelist = policy(1, false, PolicyType::Whitelist, json!({"allowed_addresses":[ALICE]}));
    check(std::slice::from_ref(&whitelist), transfer(ALICE, 1), State::default(), "INSTANT");
    check(std::slice::from_ref(&whitelist), transfer(BOB, 1), State::default(), "DENY ADDRESS_NOT_WHITELISTED");
    check(std::slice::from_ref(&whitelist), token_transfer(BOB, 1), State::default(), "DENY ADDRESS_NOT_WHITELISTED");

    let tokens = policy(2, false, PolicyType::AllowedTokens, json!({"tokens":[ALICE]}));
    check(&[tokens], token_transfer(ALICE, 1), State::default(), "DENY TOKEN_NOT_ALLOWED");

    let contracts = policy(3, false, PolicyType::ContractWhitelist, json!({"contracts":[ALICE]}));
    let call = |to: &str| TxKind::ContractCall { to: to.parse().unwrap(), calldata: vec![], value: Amount::ZERO };
    check(std::slice::from_ref(&contracts), call(ALICE), State::default(), "INSTANT");
    check(std::slice::from_ref(&contracts), call(BOB), State::default(), "DENY CONTRACT_NOT_WHITELISTED");

    let spenders = policy(4, false, PolicyType::ApprovedSpenders, json!({"spenders":[ALICE]}));
    let approve = TxKind::Approve {
        spender: BOB.parse().unwrap(),
        amount: Amount::from_u128(1),
        token: TokenRef { address: TOKEN.parse().unwrap(), decimals: 6, symbol: "USDC".into() },
    };
    check(&[spenders], approve, State::default(), "DENY SPENDER_NOT_APPROVED");
}

#[test]
fn batch_is_judged_as_a_whole() {
    let p = [
        limit(1, "100", "200", "300"),
        policy(2, false, PolicyType::Whitelist, json!({"allowed_addresses":[ALICE, BOB]})),
    ];
    let batch = TxKind::Batch { instructions: vec![transfer(ALICE, 80), transfer(BOB, 80)] };
    check(&p, batch, owner(), "NOTIFY");
    let p = [policy(2, false, PolicyType::Whitelist, json!({"allowed_addresses":[ALICE]}))];
    let batch = TxKind::Batch { instructions: vec![transfer(ALICE, 1), transfer(BOB, 1)] };
    check(&p, batch, owner(), "DENY ADDRESS_NOT_WHITELISTED");
}

#[test]
fn rate_limit_counts_requests_in_the_window() {
    let p = [policy(1, false, PolicyType::RateLimit, json!({"max_requests": 2, "window_seconds": 60}))];
    check(&p, transfer(ALICE, 1), State { request_times: vec![NOW - 10], ..State::default() }, "INSTANT");
    check(
        &p,
        transfer(ALICE, 1),
        State { request_times: vec![NOW - 10, NOW - 5], ..State::default() },
        "DENY RATE_LIMIT_EXCEEDED",
    );
    check(&p, transfer(ALICE, 1), State { request_times: vec![NOW - 70, NOW - 5], ..State::default() }, "INSTANT");
}

#[test]
fn time_restriction_uses_utc_hour_and_weekday() {
    // NOW is Tuesday (2) 22:13 UTC.
    let evening = [policy(1, false, PolicyType::TimeRestriction, json!({"allowed_hours":[22], "allowed_days":[2]}))];
    check(&evening, transfer(ALICE, 1), State::default(), "INSTANT");
    let mornings = [policy(1, false, PolicyType::TimeRestriction, json!({"allowed_hours":[9,10,11]}))];
    check(&mornings, transfer(ALICE, 1), State::default(), "DENY OUTSIDE_ALLOWED_TIME");
    let weekend = [policy(1, false, PolicyType::TimeRestriction, json!({"allowed_hours":[22], "allowed_days":[0,6]}))];
    check(&weekend, transfer(ALICE, 1), State::default(), "DENY OUTSIDE_ALLOWED_TIME");
}

#[test]
fn anomaly_floor_raises_and_never_lowers() {
    let p = [limit(1, "100", "200", "300")];
    check(&p, transfer(ALICE, 1), State { floor: Some(Tier::Delay), ..owner() }, "DELAY 60s +ANOMALY");
    check(&[], transfer(ALICE, 1), State { floor: Some(Tier::Delay), ..owner() }, "DELAY 300s +ANOMALY");
    check(&p, transfer(ALICE, 301), State { floor: Some(Tier::Notify), ..owner() }, "APPROVAL");
    check(
        &[],
        transfer(ALICE, 1),
        State { floor: Some(Tier::Approval), ..State::default() },
        "DELAY 300s downgraded +ANOMALY",
    );
}

#[test]
fn weekday_arithmetic() {
    assert_eq!(hour_and_weekday(UnixSeconds(0)), (0, 4));
    assert_eq!(hour_and_weekday(UnixSeconds(NOW)), (22, 2));
}

#[test]
fn history_is_read_only_as_far_back_as_policies_need() {
    let now = UnixSeconds(NOW);
    assert_eq!(history_since(&[], now), None, "no history without a rate or daily limit");
    assert_eq!(history_since(&[limit(1, "1", "2", "3")], now), None);
    let hourly = policy(2, false, PolicyType::RateLimit, json!({"max_requests": 5, "window_seconds": 3600}));
    let minute = policy(3, true, PolicyType::RateLimit, json!({"max_requests": 5, "window_seconds": 60}));
    assert_eq!(history_since(&[hourly.clone(), minute], now), Some(UnixSeconds(NOW - 3600)), "the longest window");
    let daily = policy(
        4,
        false,
        PolicyType::SpendingLimit,
        json!({"instant_max":"1","notify_max":"2","delay_max":"3","daily_limit_usd": 10.0}),
    );
    assert_eq!(history_since(&[hourly, daily], now), Some(UnixSeconds(NOW - 86_400)));
}
