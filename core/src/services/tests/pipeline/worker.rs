//! The worker (stages 4–6) over the harness: `Waiaas::process_work` driven with the rows the mocked
//! `TxRepo::work` returns — execute, confirm, retry with backoff, give up, rebuild, expiry, the kill switch, an
//! inactive agent and the re-check of queued work against the policies in force.

use serde_json::json;

use super::{
    AGENT_ADDRESS, Moved, NETWORK, OTHER, RECIPIENT, World, address, agent_id, pipeline, policy, prepared, row, signed,
    tx_id,
};
use crate::domain::{AgentStatus, PolicyType, TxStatus};
use crate::event::{EventType, RequestContext};
use crate::policy_engine::Tier;
use crate::ports::{Broadcast, TxOnChain, TxRecord, TxUpdate};
use crate::services::tests::{T0, block_on};
use crate::services::transactions::MAX_ATTEMPTS;
use crate::{ErrorCode, UnixSeconds};

/// A DELAY row whose delay ended at `T0 + 300`.
fn queued() -> TxRecord {
    TxRecord { status: TxStatus::Queued, tier: Some(Tier::Delay), execute_after: Some(UnixSeconds(T0 + 300)), ..row() }
}

/// A row signed and recorded SUBMITTED in an earlier round.
fn submitted() -> TxRecord {
    TxRecord { status: TxStatus::Submitted, tx_hash: Some(signed().hash), raw_tx: Some(signed().raw), ..row() }
}

fn moved(from: TxStatus, to: TxStatus, update: TxUpdate, event: Option<EventType>) -> Moved {
    Moved { id: tx_id(), from, to, update, event }
}

/// The update that records a signed transaction.
fn submit_update() -> TxUpdate {
    TxUpdate {
        tx_hash: Some(signed().hash),
        raw_tx: Some(signed().raw),
        nonce: Some(prepared().nonce),
        clear_error: true,
        ..TxUpdate::default()
    }
}

#[test]
fn execute_prepares_signs_records_submitted_with_hash_and_raw_bytes_then_broadcasts() {
    let h = pipeline(World { rows: vec![row()], ..World::default() });
    let report = h.work();

    assert_eq!((report.rows, report.errors.len()), (1, 0), "{:?}", report.errors);
    assert_eq!(
        h.call_names(),
        ["work", "in_force", "transition", "prepare", "sign", "transition", "broadcast"],
        "signed only after the EXECUTING claim, broadcast only after SUBMITTED is stored"
    );
    assert_eq!(h.prepares(), [(NETWORK.to_owned(), address(AGENT_ADDRESS), row().kind)], "from the agent");
    assert_eq!(h.signs(), [(agent_id(), prepared().signing_payload)]);
    assert_eq!(
        h.transitions(),
        [
            moved(TxStatus::Pending, TxStatus::Executing, TxUpdate::default(), None),
            moved(TxStatus::Executing, TxStatus::Submitted, submit_update(), Some(EventType::TxSubmitted)),
        ]
    );
    let [submitted] = h.transition_events().try_into().expect("one event");
    assert_eq!(submitted.details["txHash"], signed().hash);
    assert_eq!(submitted.details["nonce"], prepared().nonce);
    assert_eq!(h.broadcasts(), [(NETWORK.to_owned(), signed())]);
    assert_eq!(h.published(), [EventType::TxSubmitted]);
    assert_eq!(h.stored(tx_id()).status, TxStatus::Submitted);
}

#[test]
fn confirm_moves_an_included_receipt_to_confirmed() {
    let h = pipeline(World { rows: vec![submitted()], ..World::default() });
    h.clock.advance(30);
    h.work();

    assert_eq!(h.call_names(), ["work", "status", "transition"]);
    assert_eq!(
        h.transitions(),
        [moved(TxStatus::Submitted, TxStatus::Confirmed, TxUpdate::default(), Some(EventType::TxConfirmed))]
    );
    let [event] = h.transition_events().try_into().expect("one event");
    assert_eq!(event.details["gasUsed"], 21_000);
    assert_eq!(event.details["blockNumber"], 12);
    assert_eq!(h.published(), [EventType::TxConfirmed]);
    assert_eq!(h.finals("instant", "confirmed"), 1);
    assert_eq!(h.metrics.observations(crate::metrics::TRANSACTION_DURATION_SECONDS, &[]), [30.0]);
    assert!(h.signs().is_empty() && h.broadcasts().is_empty());
}

#[test]
fn a_transaction_executed_in_one_round_is_confirmed_in_the_next() {
    let h = pipeline(World { rows: vec![row()], ..World::default() });
    h.work();
    h.work();
    assert_eq!(h.stored(tx_id()).status, TxStatus::Confirmed);
    assert_eq!(h.published(), [EventType::TxSubmitted, EventType::TxConfirmed]);
    assert_eq!(h.signs().len(), 1, "signed once");
}

#[test]
fn a_reverted_receipt_fails_the_row() {
    let receipt = Ok(TxOnChain::Included { success: false, gas_used: 30_000, block_number: 12, logs: Vec::new() });
    let h = pipeline(World { rows: vec![submitted()], receipt, ..World::default() });
    h.work();
    let update = TxUpdate { error: Some("reverted on chain in block 12".into()), ..TxUpdate::default() };
    assert_eq!(h.transitions(), [moved(TxStatus::Submitted, TxStatus::Failed, update, Some(EventType::TxFailed))]);
    assert_eq!(h.finals("instant", "failed"), 1);
}

#[test]
fn a_retryable_chain_error_counts_an_attempt_and_waits_out_the_backoff() {
    let executing = TxRecord { status: TxStatus::Executing, attempts: 2, ..row() };
    let h = pipeline(World { rows: vec![executing], prepare: Err(ErrorCode::ChainError), ..World::default() });
    h.clock.advance(100);
    let report = h.work();

    assert!(report.errors.is_empty(), "a retry is not an error of the round: {:?}", report.errors);
    let update = TxUpdate {
        attempts: Some(3),
        error: Some("the node answered CHAIN_ERROR".into()),
        execute_after: Some(UnixSeconds(T0 + 100 + (1 << 3))),
        ..TxUpdate::default()
    };
    assert_eq!(h.transitions(), [moved(TxStatus::Executing, TxStatus::Executing, update, None)]);
    assert!(h.signs().is_empty() && h.broadcasts().is_empty());
    assert!(h.published().is_empty(), "a retry is recorded on the row, not as an event");
}

#[test]
fn the_last_allowed_attempt_fails_the_row() {
    let executing = TxRecord { status: TxStatus::Executing, attempts: MAX_ATTEMPTS - 1, ..row() };
    let h = pipeline(World { rows: vec![executing], prepare: Err(ErrorCode::ChainError), ..World::default() });
    h.work();

    let reason = format!("gave up after {MAX_ATTEMPTS} attempts (CHAIN_ERROR): the node answered CHAIN_ERROR");
    let update = TxUpdate { error: Some(reason.clone()), ..TxUpdate::default() };
    assert_eq!(h.transitions(), [moved(TxStatus::Executing, TxStatus::Failed, update, Some(EventType::TxFailed))]);
    let [failed] = h.transition_events().try_into().expect("one event");
    assert_eq!(failed.details["error"], reason);
    assert_eq!(h.published(), [EventType::TxFailed]);
    assert_eq!(h.finals("instant", "failed"), 1);
    assert!(h.signs().is_empty());
}

/// A signed transaction can still be included while the node fails: however many checks failed, the row stays
/// SUBMITTED and is checked again after the longest backoff (16 s), never FAILED on a guess.
#[test]
fn a_submitted_row_is_never_given_up_while_the_node_fails() {
    let waiting = TxRecord { attempts: MAX_ATTEMPTS + 3, nonce: Some(7), ..submitted() };
    let h = pipeline(World { rows: vec![waiting], receipt: Err(ErrorCode::ChainError), ..World::default() });
    h.clock.advance(100);
    let report = h.work();

    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let update = TxUpdate {
        attempts: Some(MAX_ATTEMPTS + 4),
        error: Some("the node answered CHAIN_ERROR".into()),
        execute_after: Some(UnixSeconds(T0 + 100 + 16)),
        ..TxUpdate::default()
    };
    assert_eq!(h.transitions(), [moved(TxStatus::Submitted, TxStatus::Submitted, update, None)]);
    assert!(h.published().is_empty(), "no TX_FAILED");
    assert!(h.broadcasts().is_empty());
}

#[test]
fn a_taken_nonce_sends_the_row_back_to_executing_as_one_more_attempt() {
    // The original provably did not land: no receipt, and the account nonce moved past the row's.
    let h = pipeline(World {
        rows: vec![row()],
        broadcast: Ok(Broadcast::NonceAlreadyUsed),
        receipt: Ok(TxOnChain::Pending { known: false }),
        account_nonce: prepared().nonce + 1,
        ..World::default()
    });
    h.work();

    let rebuild = TxUpdate { attempts: Some(1), ..TxUpdate::default() };
    assert_eq!(
        h.transitions(),
        [
            moved(TxStatus::Pending, TxStatus::Executing, TxUpdate::default(), None),
            moved(TxStatus::Executing, TxStatus::Submitted, submit_update(), Some(EventType::TxSubmitted)),
            moved(TxStatus::Submitted, TxStatus::Executing, rebuild, None),
        ]
    );
    assert_eq!(h.broadcasts().len(), 1);
    assert_eq!((h.stored(tx_id()).status, h.stored(tx_id()).attempts), (TxStatus::Executing, 1));
}

#[test]
fn an_unknown_submitted_transaction_is_broadcast_again_from_its_stored_bytes() {
    let h = pipeline(World {
        rows: vec![submitted()],
        receipt: Ok(TxOnChain::Pending { known: false }),
        ..World::default()
    });
    h.work();
    assert_eq!(h.call_names(), ["work", "status", "broadcast"]);
    assert_eq!(h.broadcasts(), [(NETWORK.to_owned(), signed())]);
    assert!(h.signs().is_empty(), "the stored raw transaction is sent, nothing is signed again");
}

#[test]
fn an_approval_past_its_deadline_expires_without_executing() {
    let waiting = TxRecord {
        status: TxStatus::Queued,
        tier: Some(Tier::Approval),
        approval_deadline: Some(UnixSeconds(T0 + 3_600)),
        ..row()
    };
    let h = pipeline(World { rows: vec![waiting], ..World::default() });
    h.clock.advance(3_600);
    h.work();

    assert_eq!(h.call_names(), ["work", "transition"]);
    assert_eq!(
        h.transitions(),
        [moved(TxStatus::Queued, TxStatus::Expired, TxUpdate::default(), Some(EventType::TxExpired))]
    );
    assert_eq!(h.published(), [EventType::TxExpired]);
    assert_eq!(h.finals("approval", "expired"), 1);
}

#[test]
fn with_the_kill_switch_tripped_a_row_is_cancelled_and_never_signed() {
    let h = pipeline(World { rows: vec![queued()], ..World::default() });
    block_on(h.core.activate_kill_switch(&RequestContext::master(None), Some("test".into()))).expect("tripped");
    h.clock.advance(300);
    h.work();

    assert_eq!(h.call_names(), ["work", "transition"], "cancelled before any policy, chain or key is asked");

    let update = TxUpdate { error: Some("kill switch active".into()), ..TxUpdate::default() };
    assert_eq!(h.transitions(), [moved(TxStatus::Queued, TxStatus::Cancelled, update, Some(EventType::TxCancelled))]);
    let [cancelled] = h.transition_events().try_into().expect("one event");
    assert_eq!(
        (cancelled.details["by"].clone(), cancelled.details["reason"].clone()),
        (json!("system"), json!("kill switch active"))
    );
    assert_eq!(h.published(), [EventType::KillSwitchActivated, EventType::TxCancelled]);
    assert!(h.signs().is_empty() && h.broadcasts().is_empty());
    assert_eq!(h.stored(tx_id()).status, TxStatus::Cancelled);
}

#[test]
fn a_row_cancelled_while_it_was_being_prepared_is_never_signed() {
    let h = pipeline(World { rows: vec![row()], during_prepare: Some(TxStatus::Cancelled), ..World::default() });
    h.work();
    assert_eq!(h.call_names(), ["work", "in_force", "transition", "prepare"]);
    assert!(h.signs().is_empty() && h.broadcasts().is_empty());
    assert_eq!(h.stored(tx_id()).status, TxStatus::Cancelled);
}

#[test]
fn a_suspended_agents_row_is_cancelled_and_never_signed() {
    let mut world = World { rows: vec![row()], ..World::default() };
    world.agent.status = AgentStatus::Suspended;
    let h = pipeline(world);
    h.work();
    let update = TxUpdate { error: Some("agent not active".into()), ..TxUpdate::default() };
    assert_eq!(h.transitions(), [moved(TxStatus::Pending, TxStatus::Cancelled, update, Some(EventType::TxCancelled))]);
    assert!(h.prepares().is_empty() && h.signs().is_empty());
}

#[test]
fn a_queued_row_whose_recipient_a_new_whitelist_excludes_is_cancelled_with_the_reason_code() {
    let whitelist = policy(PolicyType::Whitelist, json!({"allowed_addresses": [OTHER]}));
    let h = pipeline(World { rows: vec![queued()], policies: vec![whitelist.clone()], ..World::default() });
    h.clock.advance(300);
    h.work();

    assert_eq!(h.call_names(), ["work", "in_force", "transition"]);
    let [moved_row] = h.transitions().try_into().expect("one transition");
    assert_eq!(
        (moved_row.from, moved_row.to, moved_row.event),
        (TxStatus::Queued, TxStatus::Cancelled, Some(EventType::TxCancelled))
    );
    assert_eq!(moved_row.update.reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));
    let reason = format!("{} is not allowed by the WHITELIST policy", address(RECIPIENT));
    assert_eq!(moved_row.update.error, Some(reason));
    let [event] = h.transition_events().try_into().expect("one event");
    assert_eq!(event.details["by"], "policy");
    assert_eq!(event.details["reasonCode"], "ADDRESS_NOT_WHITELISTED");
    assert_eq!(event.details["matchedPolicyIds"], json!([whitelist.id.to_string()]));
    assert!(h.prepares().is_empty() && h.signs().is_empty() && h.broadcasts().is_empty());
    assert_eq!(h.stored(tx_id()).reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));

    let allowed = policy(PolicyType::Whitelist, json!({"allowed_addresses": [RECIPIENT]}));
    let h = pipeline(World { rows: vec![queued()], policies: vec![allowed], ..World::default() });
    h.clock.advance(300);
    h.work();
    assert_eq!(h.signs().len(), 1, "the same row under a whitelist naming its recipient is signed");
}
