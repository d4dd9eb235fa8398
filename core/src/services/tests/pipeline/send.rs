//! Send (stages 1–3) over the harness: what `TxRepo::admit` is asked to store for each tier, how a denial is
//! stored and answered, the default deny of contract calls, and the refusal of token metadata the chain
//! contradicts — before any admission.

use serde_json::{Value, json};

use super::{CONTRACT, Call, NETWORK, OTHER, RECIPIENT, TOKEN, World, address, agent_id, pipeline, policy, session_id};
use crate::domain::{Asset, PolicyType, TxKind, TxStatus};
use crate::event::{Actor, Event, EventType};
use crate::policy_engine::Tier;
use crate::ports::TokenMetadata;
use crate::services::tests::T0;
use crate::{Amount, ErrorCode, UnixSeconds};

pub(super) fn transfer(to: &str, amount: u128) -> Value {
    json!({"type": "TRANSFER", "to": to, "amount": amount.to_string()})
}

/// Native thresholds 10 / 100 / 1000 wei, DELAY of 600 s.
pub(super) fn spending_limit() -> crate::domain::Policy {
    policy(
        PolicyType::SpendingLimit,
        json!({"instant_max": "10", "notify_max": "100", "delay_max": "1000", "delay_seconds": 600}),
    )
}

fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

fn evaluations(h: &super::Pipeline, tier: &str, result: &str) -> u64 {
    h.metrics.counter(crate::metrics::POLICY_EVALUATIONS_TOTAL, &[("tier", tier), ("result", result)])
}

#[test]
fn an_instant_send_admits_a_pending_row_with_tx_requested() {
    let h = pipeline(World::default());
    let answer = h.send(transfer(RECIPIENT, 1_000)).expect("admitted");

    assert_eq!(h.call_names(), ["admit"], "nothing is prepared, signed or sent in the request");
    let Call::Admit { agent, now, row, events } = &h.calls()[0] else { panic!("admit is the only call") };
    assert_eq!((*agent, *now), (agent_id(), UnixSeconds(T0)));
    assert_eq!(&answer, row, "the answer is the stored row");
    assert_eq!((row.status, row.tier), (TxStatus::Pending, Some(Tier::Instant)));
    assert_eq!(row.session_id, Some(session_id()));
    assert_eq!(row.kind, TxKind::Transfer { to: address(RECIPIENT), amount: Amount::from_u128(1_000) });
    assert_eq!(row.reserved, [(Asset::Native, Amount::from_u128(1_000))]);
    assert_eq!((row.execute_after, row.approval_deadline, row.attempts), (None, None, 0));
    assert_eq!(types(events), [EventType::TxRequested]);
    assert_eq!(events[0].actor, Actor::Session(session_id()));
    assert_eq!(events[0].tx_id, Some(row.id));
    assert_eq!(events[0].details["decision"]["tier"], "INSTANT");
    assert_eq!(h.published(), [EventType::TxRequested]);
    assert_eq!(evaluations(&h, "instant", "allowed"), 1);
}

#[test]
fn a_delay_send_is_queued_with_tx_queued_until_the_delay_passes() {
    let h = pipeline(World { policies: vec![spending_limit()], ..World::default() });
    h.clock.advance(50);
    let answer = h.send(transfer(RECIPIENT, 500)).expect("admitted");

    let [(row, events)] = h.admitted().try_into().expect("one admission");
    assert_eq!(answer, row);
    assert_eq!((row.status, row.tier), (TxStatus::Queued, Some(Tier::Delay)));
    assert_eq!(row.execute_after, Some(UnixSeconds(T0 + 50 + 600)), "now + delay_seconds, by the core's clock");
    assert_eq!(row.approval_deadline, None);
    assert_eq!(types(&events), [EventType::TxRequested, EventType::TxQueued]);
    assert_eq!(events[1].details["tier"], "DELAY");
    assert_eq!(events[1].details["delaySeconds"], 600);
    assert_eq!(events[1].details["matchedPolicyIds"], json!([spending_limit().id.to_string()]));
    assert_eq!(h.published(), [EventType::TxRequested, EventType::TxQueued]);
    assert_eq!(evaluations(&h, "delay", "allowed"), 1);
}

#[test]
fn an_approval_send_of_an_owned_agent_waits_for_the_owner_until_a_deadline() {
    let mut world = World { policies: vec![spending_limit()], ..World::default() };
    world.agent.owner_address = Some(OTHER.parse().expect("owner"));
    let h = pipeline(world);
    h.send(transfer(RECIPIENT, 5_000)).expect("admitted");

    let [(row, events)] = h.admitted().try_into().expect("one admission");
    assert_eq!((row.status, row.tier), (TxStatus::Queued, Some(Tier::Approval)));
    let timeout = crate::services::transactions::APPROVAL_TIMEOUT_SECONDS;
    assert_eq!(row.approval_deadline, Some(UnixSeconds(T0 + timeout)));
    assert_eq!(row.execute_after, None);
    assert_eq!(types(&events), [EventType::TxRequested, EventType::TxApprovalRequired]);
    assert_eq!(h.published(), types(&events));
}

#[test]
fn a_denied_send_stores_a_cancelled_row_and_answers_policy_denied_with_the_reason_code() {
    let whitelist = policy(PolicyType::Whitelist, json!({"allowed_addresses": [OTHER]}));
    let h = pipeline(World { policies: vec![whitelist.clone()], ..World::default() });
    let error = h.send(transfer(RECIPIENT, 1_000)).expect_err("denied");

    let [(row, events)] = h.admitted().try_into().expect("the denial is stored");
    assert_eq!(error.code, ErrorCode::PolicyDenied);
    let details = error.details.expect("details");
    assert_eq!(details["reasonCode"], "ADDRESS_NOT_WHITELISTED");
    assert_eq!(details["transactionId"], row.id.to_string());
    assert_eq!(details["matchedPolicyIds"], json!([whitelist.id.to_string()]));
    assert_eq!(row.status, TxStatus::Cancelled);
    assert_eq!(row.tier, None, "a denied request has no tier");
    assert_eq!(row.reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));
    assert!(row.reserved.is_empty(), "a denial reserves nothing: {:?}", row.reserved);
    assert_eq!(types(&events), [EventType::TxRequested, EventType::PolicyDenied]);
    assert_eq!(events[1].details["reasonCode"], "ADDRESS_NOT_WHITELISTED");
    assert_eq!(h.published(), [EventType::TxRequested, EventType::PolicyDenied]);
    assert_eq!(evaluations(&h, "none", "denied"), 1);
    assert_eq!(h.finals("none", "cancelled"), 1, "a denial is a final row");
}

#[test]
fn a_contract_call_is_denied_by_default_until_a_contract_whitelist_allows_it() {
    let call = json!({"type": "CONTRACT_CALL", "to": CONTRACT, "calldata": "0x12345678", "value": "0"});
    let h = pipeline(World::default());
    let error = h.send(call.clone()).expect_err("default deny");
    assert_eq!(error.code, ErrorCode::PolicyDenied);
    let details = error.details.expect("details");
    assert_eq!(details["reasonCode"], "CONTRACT_NOT_WHITELISTED");
    assert_eq!(details["matchedPolicyIds"], json!([]), "no policy matched: the default denied");
    let [(row, _)] = h.admitted().try_into().expect("the denial is stored");
    assert_eq!((row.status, row.reason_code.as_deref()), (TxStatus::Cancelled, Some("CONTRACT_NOT_WHITELISTED")));

    let listed = policy(PolicyType::ContractWhitelist, json!({"contracts": [CONTRACT]}));
    let mut default_off = World::default();
    default_off.defaults.deny_contracts = false;
    for (case, world) in [("whitelisted", World { policies: vec![listed], ..World::default() }), ("off", default_off)] {
        let h = pipeline(world);
        let row = h.send(call.clone()).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!((row.status, row.tier), (TxStatus::Pending, Some(Tier::Instant)), "{case}");
    }
}

#[test]
fn a_token_transfer_claiming_other_decimals_than_the_chain_is_refused_before_admission() {
    let world = World {
        policies: vec![policy(PolicyType::AllowedTokens, json!({"tokens": [TOKEN]}))],
        token: Some(TokenMetadata { decimals: 6, symbol: Some("USDC".into()) }),
        ..World::default()
    };
    let h = pipeline(world);
    let body = |decimals: u8| {
        json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1000000",
               "token": {"address": TOKEN, "decimals": decimals, "symbol": "USDC"}})
    };
    let error = h.send(body(36)).expect_err("decimals spoof");

    assert_eq!(error.code, ErrorCode::ValidationFailed);
    let issues = &error.details.expect("details")["issues"];
    assert_eq!(issues.as_array().map(Vec::len), Some(1), "{issues}");
    assert_eq!(issues[0]["path"], "token.decimals");
    assert_eq!(issues[0]["message"], "the token reports 6 decimals on chain, not 36");
    assert_eq!(h.calls(), [Call::TokenMetadata { network: NETWORK.into(), token: address(TOKEN) }]);
    assert!(h.admitted().is_empty(), "TxRepo::admit is never called");
    assert!(h.published().is_empty());

    let row = h.send(body(6)).expect("the chain's decimals pass");
    assert_eq!(row.status, TxStatus::Pending);
    assert_eq!(h.call_names(), ["token_metadata", "admit"], "the metadata is read once per network and token");
}
