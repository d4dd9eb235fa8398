//! Table-driven tests of the policy engine: (policies × request × state) → decision, through one helper.

use alloy_sol_types::SolCall;
use serde_json::json;

use super::*;
use crate::domain::effect::{approveCall, transferCall};
use crate::domain::{PolicyRules, PolicyType, TokenRef};
use crate::ports::PriceQuote;
use crate::{AgentId, PolicyId};

const ALICE: &str = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
const BOB: &str = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359";
const TOKEN: &str = "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb";
const CONTRACT: &str = "0xd1220a0cf47c7b9be7a2e6ba89f429762e7b9adb";
const NETWORK: &str = "testnet";
/// 2023-11-14 22:13:20 UTC, a Tuesday.
const NOW: i64 = 1_700_000_000;

/// Prices by "ETH" (the native coin) or a token address on [`NETWORK`].
struct Prices(Vec<(&'static str, f64)>);

impl PriceOracle for Prices {
    fn usd_price<'a>(&self, asset: PriceKey<'a>) -> Option<PriceQuote> {
        let wanted = match asset {
            PriceKey::Native { symbol } => symbol.to_owned(),
            PriceKey::Token { network, address } if network == NETWORK => address.to_string().to_lowercase(),
            PriceKey::Token { .. } => return None,
        };
        self.0
            .iter()
            .find(|(s, _)| s.to_lowercase() == wanted.to_lowercase())
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

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

fn evm(s: &str) -> crate::domain::EvmAddress {
    s.parse().unwrap()
}

fn transfer(to: &str, amount: u128) -> TxKind {
    TxKind::Transfer { to: addr(to), amount: Amount::from_u128(amount) }
}

fn token_ref() -> TokenRef {
    TokenRef { address: addr(TOKEN), decimals: 6, symbol: "USDC".into() }
}

fn token_transfer(to: &str, amount: u128) -> TxKind {
    TxKind::TokenTransfer { to: addr(to), amount: Amount::from_u128(amount), token: token_ref() }
}

fn approve(spender: &str, amount: Amount) -> TxKind {
    TxKind::Approve { spender: addr(spender), amount, token: token_ref() }
}

fn call(to: &str, calldata: Vec<u8>, value: u128) -> TxKind {
    TxKind::ContractCall { to: addr(to), calldata, value: Amount::from_u128(value), accounts: Vec::new() }
}

fn transfer_calldata(to: &str, amount: u128) -> Vec<u8> {
    transferCall { to: evm(to).0, value: alloy_primitives::U256::from(amount) }.abi_encode()
}

fn approve_calldata(spender: &str, amount: u128) -> Vec<u8> {
    approveCall { spender: evm(spender).0, value: alloy_primitives::U256::from(amount) }.abi_encode()
}

fn eth() -> NativeAsset {
    NativeAsset { symbol: "ETH".into(), decimals: 18 }
}

/// Default deny switched off: only the policies given judge.
const OPEN: PolicyDefaults = PolicyDefaults { deny_contracts: false, deny_tokens: false, deny_spenders: false };

struct State {
    owner: bool,
    reserved_native: u128,
    request_times: Vec<i64>,
    spent_usd: f64,
    prices: Vec<(&'static str, f64)>,
    floor: Option<Tier>,
    now: Option<i64>,
    defaults: PolicyDefaults,
    /// The decimals the chain reports for TOKEN; `None`: the chain did not answer as an ERC-20.
    token_decimals: Option<u8>,
    constraints: Option<serde_json::Value>,
    native: NativeAsset,
}

impl Default for State {
    fn default() -> Self {
        State {
            owner: false,
            reserved_native: 0,
            request_times: Vec::new(),
            spent_usd: 0.0,
            prices: Vec::new(),
            floor: None,
            now: None,
            defaults: OPEN,
            token_decimals: Some(6),
            constraints: None,
            native: eth(),
        }
    }
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

fn decide(policies: &[Policy], request: &TxKind, state: &State) -> Decision {
    let history = AgentHistory {
        request_times: state.request_times.iter().map(|t| UnixSeconds(*t)).collect(),
        spent_usd_24h: state.spent_usd,
    };
    let reserved = [(Asset::Native, Amount::from_u128(state.reserved_native))];
    let prices = Prices(state.prices.clone());
    let tokens: Vec<(Address, TokenMetadata)> = state
        .token_decimals
        .map(|decimals| (addr(TOKEN), TokenMetadata { decimals, symbol: Some("USDC".into()) }))
        .into_iter()
        .collect();
    let constraints = state.constraints.as_ref().map(|c| SessionConstraints::parse(c).expect("valid constraints"));
    evaluate(&Evaluation {
        policies,
        request,
        network: NETWORK,
        constraints: constraints.as_ref(),
        defaults: &state.defaults,
        owner_set: state.owner,
        now: UnixSeconds(state.now.unwrap_or(NOW)),
        reserved: &reserved,
        history: &history,
        prices: &prices,
        tokens: &tokens,
        native: Some(&state.native),
        tier_floor: state.floor,
    })
}

#[track_caller]
fn check(policies: &[Policy], request: TxKind, state: State, expected: &str) {
    let decision = decide(policies, &request, &state);
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
    // Tokens are valued by network + address with the decimals the chain reports.
    let usdc = |decimals| State { prices: vec![(TOKEN, 1.0)], token_decimals: decimals, ..owner() };
    check(&p, token_transfer(ALICE, 2_000_000_000), usdc(Some(6)), "DELAY 30s");
    // A price keyed by the symbol the request names is never used.
    let by_symbol = State { prices: vec![("USDC", 1.0)], ..owner() };
    check(&p, token_transfer(ALICE, 2_000_000_000), by_symbol, "NOTIFY +PRICE_UNAVAILABLE");
    // A token whose metadata the chain did not give has no price.
    check(&p, token_transfer(ALICE, 2_000_000_000), usdc(None), "NOTIFY +PRICE_UNAVAILABLE");
    // The same transfer moved as ERC-20 calldata is valued the same way.
    let as_call = call(TOKEN, transfer_calldata(ALICE, 2_000_000_000), 0);
    check(&p, as_call, usdc(Some(6)), "DELAY 30s");
}

#[test]
fn the_native_coin_is_priced_as_the_network_names_it() {
    let p = [policy(
        1,
        false,
        PolicyType::SpendingLimit,
        json!({"instant_max":"1000000000000000000000","notify_max":"1000000000000000000000",
               "delay_max":"1000000000000000000000","instant_max_usd": 100.0, "delay_seconds": 30}),
    )];
    let pol = || NativeAsset { symbol: "POL".into(), decimals: 18 };
    let one = 10u128.pow(18);
    // One POL at $0.5 is INSTANT; had it been valued as ETH ($3000) it would be NOTIFY.
    let prices = vec![("POL", 0.5), ("ETH", 3000.0)];
    check(&p, transfer(ALICE, one), State { native: pol(), prices: prices.clone(), ..owner() }, "INSTANT");
    check(&p, transfer(ALICE, one), State { prices, ..owner() }, "NOTIFY");
    check(
        &p,
        transfer(ALICE, one),
        State { native: pol(), prices: vec![("ETH", 3000.0)], ..owner() },
        "NOTIFY +PRICE_UNAVAILABLE",
    );
}

#[test]
fn per_token_thresholds_in_the_smallest_unit() {
    let p = [policy(
        1,
        false,
        PolicyType::SpendingLimit,
        json!({"instant_max":"0","notify_max":"0","delay_max":"0","delay_seconds":60,
               "token_limits": {TOKEN: {"instant_max":"100","notify_max":"200","delay_max":"300"}}}),
    )];
    check(&p, token_transfer(ALICE, 100), owner(), "INSTANT");
    check(&p, token_transfer(ALICE, 201), owner(), "DELAY 60s");
    check(&p, token_transfer(ALICE, 301), owner(), "APPROVAL");
    check(&p, call(TOKEN, transfer_calldata(ALICE, 301), 0), owner(), "APPROVAL");
    check(&p, approve(ALICE, Amount::from_u128(301)), owner(), "APPROVAL");
    // Independent of any price or of the decimals the chain reports.
    check(&p, token_transfer(ALICE, 201), State { token_decimals: None, ..owner() }, "DELAY 60s");
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
    // The 24 h spend already holds the in-flight rows: their reservations are not added a second time.
    let in_flight = State { reserved_native: 10u128.pow(18), ..state(900.0) };
    check(&p, transfer(ALICE, 10u128.pow(18)), in_flight, "INSTANT");
    let d = decide(&p, &transfer(ALICE, 10u128.pow(18)), &State { reserved_native: 10u128.pow(18), ..state(0.0) });
    assert_eq!(d.request_usd, Some(100.0), "the stored value is the request's own");
}

/// The request shapes of the (policy type × request type) table: every type, and a CONTRACT_CALL for each thing
/// one can do (native value, ERC-20 transfer, ERC-20 approval, arbitrary code).
fn request_shapes() -> Vec<(&'static str, TxKind)> {
    vec![
        ("TRANSFER", transfer(BOB, 5)),
        ("TOKEN_TRANSFER", token_transfer(BOB, 5)),
        ("APPROVE", approve(BOB, Amount::from_u128(5))),
        ("CONTRACT_CALL empty calldata + value", call(BOB, vec![], 5)),
        ("CONTRACT_CALL transfer calldata", call(TOKEN, transfer_calldata(BOB, 5), 0)),
        ("CONTRACT_CALL approve calldata", call(TOKEN, approve_calldata(BOB, 5), 0)),
        ("CONTRACT_CALL other calldata", call(CONTRACT, vec![0xde, 0xad, 0xbe, 0xef], 0)),
        ("CONTRACT_CALL other calldata + value", call(CONTRACT, vec![0xde, 0xad, 0xbe, 0xef], 5)),
    ]
}

/// One row of the table: policy type, allowing rules, denying rules, per shape (allowed, denied) outcomes.
type Row = (PolicyType, serde_json::Value, serde_json::Value, Vec<(&'static str, &'static str)>);

/// For each policy type: a policy that allows everything the shapes do, one that denies what it concerns, and
/// per shape the expected (allowed, denied) outcome.
#[test]
fn every_policy_judges_every_request_type_by_what_it_does() {
    use PolicyType::*;
    const I: &str = "INSTANT";
    const ANW: &str = "DENY ADDRESS_NOT_WHITELISTED";
    const TNA: &str = "DENY TOKEN_NOT_ALLOWED";
    const CNW: &str = "DENY CONTRACT_NOT_WHITELISTED";
    const SNA: &str = "DENY SPENDER_NOT_APPROVED";
    const RLE: &str = "DENY RATE_LIMIT_EXCEEDED";
    const OAT: &str = "DENY OUTSIDE_ALLOWED_TIME";
    const APP: &str = "APPROVAL";
    let high = json!({"instant_max":"1000","notify_max":"1000","delay_max":"1000",
                      "token_limits":{TOKEN:{"instant_max":"1000","notify_max":"1000","delay_max":"1000"}}});
    let low = json!({"instant_max":"0","notify_max":"0","delay_max":"0",
                     "token_limits":{TOKEN:{"instant_max":"0","notify_max":"0","delay_max":"0"}}});
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // shapes: TRANSFER, TOKEN_TRANSFER, APPROVE, call+value, call transfer, call approve, call other, other+value
        (Whitelist, json!({"allowed_addresses":[BOB, CONTRACT]}), json!({"allowed_addresses":[ALICE]}),
            vec![(I, ANW), (I, ANW), (I, I), (I, ANW), (I, ANW), (I, I), (I, I), (I, ANW)]),
        (AllowedTokens, json!({"tokens":[TOKEN]}), json!({"tokens":[ALICE]}),
            vec![(I, I), (I, TNA), (I, TNA), (I, I), (I, TNA), (I, TNA), (I, I), (I, I)]),
        (ContractWhitelist, json!({"contracts":[TOKEN, CONTRACT]}), json!({"contracts":[ALICE]}),
            vec![(I, I), (I, I), (I, I), (I, I), (I, CNW), (I, CNW), (I, CNW), (I, CNW)]),
        (ApprovedSpenders, json!({"spenders":[BOB]}), json!({"spenders":[ALICE]}),
            vec![(I, I), (I, I), (I, SNA), (I, I), (I, I), (I, SNA), (I, I), (I, I)]),
        (SpendingLimit, high, low,
            vec![(I, APP), (I, APP), (I, APP), (I, APP), (I, APP), (I, APP), (I, I), (I, APP)]),
        (RateLimit, json!({"max_requests":2,"window_seconds":60}), json!({"max_requests":1,"window_seconds":60}),
            vec![(I, RLE); 8]),
        (TimeRestriction, json!({"allowed_hours":[22]}), json!({"allowed_hours":[9]}),
            vec![(I, OAT); 8]),
    ];
    assert_eq!(table.len(), PolicyType::ALL.len(), "every policy type has a row");
    let shapes = request_shapes();
    for (policy_type, allowing, denying, expected) in table {
        assert_eq!(expected.len(), shapes.len());
        for ((shape, request), (allowed, denied)) in shapes.iter().zip(expected) {
            let state = || State { owner: true, request_times: vec![NOW - 1], ..State::default() };
            let allow = decide(&[policy(1, true, policy_type, allowing.clone())], request, &state());
            assert_eq!(render(&allow), allowed, "{} allowing × {shape}", policy_type.as_str());
            let deny = decide(&[policy(1, true, policy_type, denying.clone())], request, &state());
            assert_eq!(render(&deny), denied, "{} denying × {shape}", policy_type.as_str());
            if !deny.allowed {
                assert_eq!(deny.matched_policy_ids, vec![PolicyId::from_uuid(uuid::Uuid::from_u128(1))]);
            }
        }
    }
}

#[test]
fn default_deny_needs_a_policy_for_contracts_tokens_and_spenders() {
    let on = PolicyDefaults::default();
    let expected = [
        "INSTANT",
        "DENY TOKEN_NOT_ALLOWED",
        "DENY SPENDER_NOT_APPROVED",
        "INSTANT",
        "DENY CONTRACT_NOT_WHITELISTED",
        "DENY CONTRACT_NOT_WHITELISTED",
        "DENY CONTRACT_NOT_WHITELISTED",
        "DENY CONTRACT_NOT_WHITELISTED",
    ];
    for ((shape, request), expected) in request_shapes().into_iter().zip(expected) {
        let d = decide(&[], &request, &State { defaults: on, ..State::default() });
        assert_eq!(render(&d), expected, "{shape} with no policy");
        assert!(d.matched_policy_ids.is_empty(), "a default deny names no policy");
    }
    // Each switch turns off its own default only.
    let no_contracts = State { defaults: PolicyDefaults { deny_contracts: false, ..on }, ..State::default() };
    check(&[], call(CONTRACT, vec![1, 2, 3, 4], 0), no_contracts, "INSTANT");
    let no_contracts = State { defaults: PolicyDefaults { deny_contracts: false, ..on }, ..State::default() };
    check(&[], call(TOKEN, transfer_calldata(BOB, 5), 0), no_contracts, "DENY TOKEN_NOT_ALLOWED");
    let no_tokens = State { defaults: PolicyDefaults { deny_tokens: false, ..on }, ..State::default() };
    check(&[], token_transfer(BOB, 5), no_tokens, "INSTANT");
    let no_spenders = State { defaults: PolicyDefaults { deny_spenders: false, ..on }, ..State::default() };
    check(&[], approve(BOB, Amount::from_u128(5)), no_spenders, "INSTANT");
    // A policy of the type lifts the default for what it lists.
    let tokens = policy(1, false, PolicyType::AllowedTokens, json!({"tokens":[TOKEN]}));
    check(&[tokens], token_transfer(BOB, 5), State { defaults: on, ..State::default() }, "INSTANT");
}

#[test]
fn unlimited_approvals_need_explicit_permission() {
    let max = Amount(alloy_primitives::U256::MAX);
    let spenders = policy(1, false, PolicyType::ApprovedSpenders, json!({"spenders":[BOB]}));
    check(std::slice::from_ref(&spenders), approve(BOB, max), State::default(), "DENY UNLIMITED_APPROVAL");
    check(&[spenders], approve(BOB, Amount::from_u128(5)), State::default(), "INSTANT");
    let unlimited = policy(1, false, PolicyType::ApprovedSpenders, json!({"spenders":[BOB],"allow_unlimited":true}));
    check(&[unlimited], approve(BOB, max), State::default(), "INSTANT");
    // With no APPROVED_SPENDERS at all (default deny off), nothing allows it explicitly.
    check(&[], approve(BOB, max), State::default(), "DENY UNLIMITED_APPROVAL");
    let as_call = call(TOKEN, approveCall { spender: evm(BOB).0, value: max.0 }.abi_encode(), 0);
    check(&[], as_call, State::default(), "DENY UNLIMITED_APPROVAL");
}

#[test]
fn session_constraints_are_enforced_by_the_same_decision() {
    let with = |c: serde_json::Value| State { constraints: Some(c), ..State::default() };
    check(&[], transfer(BOB, 5), with(json!({"allowedTypes":["TRANSFER"]})), "INSTANT");
    check(&[], token_transfer(BOB, 5), with(json!({"allowedTypes":["TRANSFER"]})), "DENY SESSION_TYPE_NOT_ALLOWED");
    // Judged by what the call does: empty calldata is a TRANSFER, ERC-20 calldata also a TOKEN_TRANSFER.
    check(&[], call(BOB, vec![], 5), with(json!({"allowedTypes":["TRANSFER"]})), "INSTANT");
    let token_call = || call(TOKEN, transfer_calldata(BOB, 5), 0);
    check(&[], token_call(), with(json!({"allowedTypes":["CONTRACT_CALL"]})), "DENY SESSION_TYPE_NOT_ALLOWED");
    check(&[], token_call(), with(json!({"allowedTypes":["CONTRACT_CALL","TOKEN_TRANSFER"]})), "INSTANT");
    let cap = || with(json!({"maxAmountPerTx":{"native":"10", TOKEN:"3"}}));
    check(&[], transfer(BOB, 10), cap(), "INSTANT");
    check(&[], transfer(BOB, 11), cap(), "DENY SESSION_AMOUNT_EXCEEDED");
    check(&[], call(BOB, vec![], 11), cap(), "DENY SESSION_AMOUNT_EXCEEDED");
    check(&[], token_transfer(BOB, 4), cap(), "DENY SESSION_AMOUNT_EXCEEDED");
    check(&[], call(TOKEN, transfer_calldata(BOB, 4), 0), cap(), "DENY SESSION_AMOUNT_EXCEEDED");
    let recipients = || with(json!({"allowedRecipients":[BOB]}));
    check(&[], transfer(BOB, 1), recipients(), "INSTANT");
    check(&[], transfer(ALICE, 1), recipients(), "DENY SESSION_RECIPIENT_NOT_ALLOWED");
    check(&[], call(TOKEN, transfer_calldata(ALICE, 1), 0), recipients(), "DENY SESSION_RECIPIENT_NOT_ALLOWED");
    check(&[], transfer(BOB, 1), with(json!({"allowedNetworks":[NETWORK]})), "INSTANT");
    check(&[], transfer(BOB, 1), with(json!({"allowedNetworks":["mainnet"]})), "DENY SESSION_NETWORK_NOT_ALLOWED");
}

#[test]
fn recheck_applies_deny_rules_but_not_the_rate_limit() {
    let rate = policy(1, false, PolicyType::RateLimit, json!({"max_requests":1,"window_seconds":60}));
    let whitelist = policy(2, false, PolicyType::Whitelist, json!({"allowed_addresses":[ALICE]}));
    let eval = |policies: &[Policy], request: &TxKind| {
        let history = AgentHistory { request_times: vec![UnixSeconds(NOW - 1)], spent_usd_24h: 0.0 };
        recheck(&Evaluation {
            policies,
            request,
            network: NETWORK,
            constraints: None,
            defaults: &PolicyDefaults::default(),
            owner_set: true,
            now: UnixSeconds(NOW),
            reserved: &[],
            history: &history,
            prices: &Prices(vec![]),
            tokens: &[],
            native: Some(&eth()),
            tier_floor: None,
        })
        .and_then(|d| d.reason_code)
    };
    assert_eq!(eval(std::slice::from_ref(&rate), &transfer(BOB, 1)), None, "already counted at admission");
    assert_eq!(eval(&[rate, whitelist], &transfer(BOB, 1)), Some(DenyReason::AddressNotWhitelisted));
    assert_eq!(eval(&[], &token_transfer(BOB, 1)), Some(DenyReason::TokenNotAllowed), "default deny too");
}

#[test]
fn deny_reasons_round_trip() {
    for reason in DenyReason::ALL {
        assert_eq!(DenyReason::parse(reason.as_str()), Some(reason));
    }
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

/// A list entry of another chain family never matches: a Solana address listed allows no EVM recipient, contract,
/// token or spender, and an EVM address listed allows no Solana one, even over the same bytes.
#[test]
fn a_list_entry_of_another_family_never_matches() {
    const SOL: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
    let both = |n, policy_type, key: &str, list: &[&str]| policy(n, false, policy_type, json!({ key: list }));
    let solana_lists = [
        both(1, PolicyType::Whitelist, "allowed_addresses", &[SOL]),
        both(2, PolicyType::ContractWhitelist, "contracts", &[SOL]),
    ];
    check(&solana_lists, transfer(ALICE, 1), owner(), "DENY ADDRESS_NOT_WHITELISTED");
    check(&solana_lists, call(CONTRACT, vec![1, 2, 3, 4], 0), owner(), "DENY CONTRACT_NOT_WHITELISTED");
    check(&solana_lists, transfer(SOL, 1), owner(), "INSTANT");
    let tokens = [both(3, PolicyType::AllowedTokens, "tokens", &[SOL])];
    let usdc = State { token_decimals: Some(6), ..owner() };
    check(&tokens, token_transfer(ALICE, 1), usdc, "DENY TOKEN_NOT_ALLOWED");

    let evm_lists = [
        both(4, PolicyType::Whitelist, "allowed_addresses", &[ALICE]),
        both(5, PolicyType::ContractWhitelist, "contracts", &[CONTRACT]),
    ];
    check(&evm_lists, transfer(SOL, 1), owner(), "DENY ADDRESS_NOT_WHITELISTED");
    check(&evm_lists, call(SOL, vec![1, 2, 3, 4], 0), owner(), "DENY CONTRACT_NOT_WHITELISTED");
    check(&evm_lists, transfer(ALICE, 1), owner(), "INSTANT");
    // The same 20 bytes, read as a Solana key (zero-padded), are another address.
    let mut bytes = [0u8; 32];
    bytes[12..].copy_from_slice(evm(ALICE).0.as_slice());
    let alice_as_solana = crate::domain::SolanaAddress(bytes).to_string();
    check(&evm_lists, transfer(&alice_as_solana, 1), owner(), "DENY ADDRESS_NOT_WHITELISTED");
}
