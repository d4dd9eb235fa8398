//! Simulate over the harness: it reads the admission snapshot and the chain, and nothing else — no admission, no
//! transition, no key, no broadcast, no event — and predicts the verdict send reaches on the same snapshot.

use serde_json::{Value, json};

use super::send::{spending_limit, transfer};
use super::{CONTRACT, Call, OTHER, RECIPIENT, TOKEN, World, agent_id, pipeline, policy};
use crate::domain::{Asset, PolicyType, SessionConstraints};
use crate::policy_engine::{DenyReason, Tier};
use crate::ports::TokenMetadata;
use crate::services::tests::T0;
use crate::{Amount, UnixSeconds};

#[test]
fn simulate_reads_the_snapshot_only_and_writes_signs_sends_and_publishes_nothing() {
    let h = pipeline(World { policies: vec![spending_limit()], ..World::default() });
    let simulation = h.simulate(transfer(RECIPIENT, 500)).expect("simulated");

    assert_eq!((simulation.decision.allowed, simulation.decision.tier), (true, Tier::Delay));
    assert!(simulation.success, "{simulation:?}");
    let calls = h.calls();
    assert_eq!(h.call_names(), ["snapshot", "prepare"], "{calls:?}");
    assert_eq!(calls[0], Call::Snapshot { agent: agent_id(), now: UnixSeconds(T0) });
    assert!(h.admitted().is_empty() && h.transitions().is_empty(), "no row is written");
    assert!(h.signs().is_empty() && h.broadcasts().is_empty(), "no key is used, nothing is sent");
    assert!(h.published().is_empty(), "no event");
    let evaluations =
        h.metrics.counter(crate::metrics::POLICY_EVALUATIONS_TOTAL, &[("tier", "delay"), ("result", "allowed")]);
    assert_eq!(evaluations, 0, "a dry run counts toward nothing");
}

/// Simulates then sends `body` in `world` (simulate leaves the snapshot as it was) and checks that both reach
/// `expected`: the tier of an admission, or the reason code of a denial.
#[track_caller]
fn same_verdict(case: &str, world: World, body: Value, expected: Result<Tier, DenyReason>) {
    let h = pipeline(world);
    let predicted = h.simulate(body.clone()).unwrap_or_else(|e| panic!("{case}: simulate: {e}")).decision;
    let sent = h.send(body);
    let [(row, _)] = h.admitted().try_into().unwrap_or_else(|_| panic!("{case}: one admission"));

    let outcome = |allowed: bool, tier: Option<Tier>, reason: Option<DenyReason>| match (allowed, tier, reason) {
        (true, Some(tier), None) => Ok(tier),
        (false, _, Some(reason)) => Err(reason),
        other => panic!("{case}: incoherent verdict {other:?}"),
    };
    let reason = row.reason_code.as_deref().map(|r| DenyReason::parse(r).expect("a known reason code"));
    assert_eq!(outcome(predicted.allowed, Some(predicted.tier), predicted.reason_code), expected, "{case}: simulate");
    assert_eq!(outcome(sent.is_ok(), row.tier, reason), expected, "{case}: send");
    if expected == Ok(Tier::Delay) {
        let delay = i64::try_from(predicted.delay_seconds.expect("a delay")).expect("small");
        assert_eq!(row.execute_after, Some(UnixSeconds(T0 + delay)), "{case}: the predicted delay");
    }
    let snapshots = h.calls().iter().filter(|c| matches!(c, Call::Snapshot { .. })).count();
    assert_eq!(snapshots, 1, "{case}: simulate read the snapshot once, send decided inside admit");
}

/// ERC-20 `transfer(to, amount)` calldata.
fn erc20_transfer(to: &str, amount: u64) -> String {
    format!("0xa9059cbb{:0>64}{amount:064x}", to.trim_start_matches("0x"))
}

#[test]
fn simulate_predicts_the_verdict_send_reaches_on_the_same_snapshot() {
    let limit = || World { policies: vec![spending_limit()], ..World::default() };
    let mut owned = limit();
    owned.agent.owner_address = Some(OTHER.parse().expect("owner"));
    let reserved = World { reserved: vec![(Asset::Native, Amount::from_u128(600))], ..limit() };
    let whitelist = policy(PolicyType::Whitelist, json!({"allowed_addresses": [OTHER]}));
    let capped = World {
        constraints: Some(SessionConstraints::parse(&json!({"maxAmountPerTx": {"native": "100"}})).expect("valid")),
        ..World::default()
    };
    let token_calls = World {
        policies: vec![
            whitelist.clone(),
            policy(PolicyType::ContractWhitelist, json!({"contracts": [TOKEN]})),
            policy(PolicyType::AllowedTokens, json!({"tokens": [TOKEN]})),
        ],
        token: Some(TokenMetadata { decimals: 6, symbol: Some("USDC".into()) }),
        ..World::default()
    };
    let call =
        |to: &str, calldata: &str| json!({"type": "CONTRACT_CALL", "to": to, "calldata": calldata, "value": "0"});

    same_verdict("no policy", World::default(), transfer(RECIPIENT, 1_000), Ok(Tier::Instant));
    same_verdict("notify band", limit(), transfer(RECIPIENT, 50), Ok(Tier::Notify));
    same_verdict("delay band", limit(), transfer(RECIPIENT, 500), Ok(Tier::Delay));
    same_verdict("above delay_max, owner", owned, transfer(RECIPIENT, 5_000), Ok(Tier::Approval));
    same_verdict("above delay_max, no owner", limit(), transfer(RECIPIENT, 5_000), Ok(Tier::Delay));
    same_verdict("in-flight reservations", reserved, transfer(RECIPIENT, 5), Ok(Tier::Delay));
    let whitelisted = World { policies: vec![whitelist], ..World::default() };
    same_verdict("whitelist", whitelisted, transfer(RECIPIENT, 1), Err(DenyReason::AddressNotWhitelisted));
    let unknown_call = call(CONTRACT, "0x12345678");
    same_verdict("default deny", World::default(), unknown_call, Err(DenyReason::ContractNotWhitelisted));
    same_verdict("session cap", capped, transfer(RECIPIENT, 500), Err(DenyReason::SessionAmountExceeded));
    let disguised = call(TOKEN, &erc20_transfer(RECIPIENT, 1));
    same_verdict("ERC-20 calldata", token_calls, disguised, Err(DenyReason::AddressNotWhitelisted));
}

/// An anomaly tier floor in the snapshot raises send and simulate alike, and simulate says why
/// (`ANOMALY_TIER_RAISED`); once expired (by the core's clock) it is ignored by both.
#[test]
fn an_anomaly_floor_raises_send_and_simulate_alike_until_it_expires() {
    let floor = |expires_at: i64| crate::anomaly::TierFloor {
        agent_id: agent_id(),
        tier: Tier::Delay,
        expires_at: UnixSeconds(expires_at),
        rule: "A-01".into(),
        updated_at: UnixSeconds(T0 - 60),
    };
    let raised = World { tier_floor: Some(floor(T0 + 1)), ..World::default() };
    same_verdict("floor in force", raised, transfer(RECIPIENT, 5), Ok(Tier::Delay));
    let h = pipeline(World { tier_floor: Some(floor(T0 + 1)), ..World::default() });
    let simulation = h.simulate(transfer(RECIPIENT, 10u128.pow(18))).expect("simulated");
    let codes: Vec<&str> = simulation.warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, ["DELAY_REQUIRED", "ANOMALY_TIER_RAISED"]);
    let expired = World { tier_floor: Some(floor(T0)), ..World::default() };
    same_verdict("floor expired", expired, transfer(RECIPIENT, 5), Ok(Tier::Instant));
}
