//! Tests of the transaction repository over a real SQLite file: admission, compare-and-set moves, the
//! SUBMITTED write's checks, the worker's batches and every field's round trip.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use waiaas_core::Amount;
use waiaas_core::domain::{Asset, Policy, TokenRef};
use waiaas_core::event::{EventType, RequestContext};
use waiaas_core::ports::PolicyRepo;

use waiaas_core::ErrorCode;
use waiaas_core::domain::{Tier, TxKind};
use waiaas_core::ports::RecentTx;

use super::*;
use crate::test_support::{TestDb, address, audit_types, count_audit_rows};
use crate::tx_rows::{RECENT_SQL, insert_record};
use crate::unsigned::cancellable_statuses;

/// 2^255: two of them overflow 256 bits.
const HALF_OF_U256: &str = "57896044618658097711785492504343953926634992332820282019728792003956564819968";
const U256_MAX: &str = "115792089237316195423570985008687907853269984665640564039457584007913129639935";

fn amount(text: &str) -> Amount {
    text.parse().unwrap()
}

fn token(n: u64) -> TokenRef {
    TokenRef { address: address(n), decimals: 6, symbol: format!("T{n}") }
}

async fn new_agent(t: &TestDb) -> AgentId {
    let agent = t.agent();
    t.insert_agent(&agent).await;
    agent.id
}

/// A queued APPROVAL record with every optional field set, for a batch touching three assets.
fn full_record(t: &TestDb, agent: AgentId) -> TxRecord {
    let kind = TxKind::Batch {
        instructions: vec![
            TxKind::Transfer { to: address(1), amount: Amount::from_u128(10) },
            TxKind::TokenTransfer { to: address(2), amount: Amount::from_u128(20), token: token(100) },
            TxKind::ContractCall {
                to: address(3),
                calldata: vec![0xa9, 0x05],
                value: Amount::from_u128(5),
                accounts: Vec::new(),
            },
            TxKind::Approve { spender: address(4), amount: amount(U256_MAX), token: token(101) },
        ],
    };
    TxRecord {
        session_id: Some(t.session(agent).id),
        reserved: kind.outflows(),
        kind,
        tier: Some(Tier::Approval),
        usd_value: Some(12.5),
        execute_after: Some(UnixSeconds(11)),
        approval_deadline: Some(UnixSeconds(12)),
        approved_at: Some(UnixSeconds(13)),
        reason_code: Some("RATE_LIMIT_EXCEEDED".into()),
        tx_hash: Some("0xabc".into()),
        raw_tx: Some(vec![0, 1, 2, 255]),
        nonce: Some(u64::try_from(i64::MAX).unwrap()),
        error: Some("boom".into()),
        attempts: 3,
        ..t.tx(agent, TxStatus::Queued, 0)
    }
}

fn decide_with(record: &TxRecord, events: &[Event]) -> Decide {
    let (record, events) = (record.clone(), events.to_vec());
    Box::new(move |_| crate::test_support::admission(record, events))
}

async fn count_rows(t: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM transactions").fetch_one(&t.db.pools.reader).await.unwrap()
}

async fn get(t: &TestDb, id: TxId) -> TxRecord {
    t.db.transactions().get(id).await.unwrap().expect("row exists")
}

#[test]
fn status_lists_follow_the_state_machine() {
    assert_eq!(reserved::holding_statuses(), "'PENDING', 'QUEUED', 'EXECUTING', 'SUBMITTED'");
    assert_eq!(cancellable_statuses(), "'PENDING', 'QUEUED', 'EXECUTING'");
}

#[tokio::test]
async fn admit_writes_the_row_and_its_events_and_every_field_round_trips() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = full_record(&t, agent);
    let events = [
        t.event(EventType::TxRequested).agent(agent).tx(record.id),
        t.event(EventType::TxApprovalRequired).agent(agent).tx(record.id),
    ];
    let admitted = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap();
    assert_eq!(admitted.record, record);
    assert_eq!(get(&t, record.id).await, record);
    let chain = t.db.audit_chain(0, 100).await.unwrap();
    let written: Vec<Event> = chain.into_iter().skip(1).map(|r| r.event).collect();
    assert_eq!(written, events, "every event, in order");

    // A denied request: no tier, nothing reserved, final.
    let denied = TxRecord {
        status: TxStatus::Cancelled,
        tier: None,
        reserved: vec![],
        reason_code: Some("ADDRESS_NOT_WHITELISTED".into()),
        ..t.tx(agent, TxStatus::Cancelled, 3)
    };
    t.admit(&denied).await;
    assert_eq!(get(&t, denied.id).await, denied);

    // The columns kept for people reading the table follow the request.
    let shown: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT type, to_address, amount FROM transactions WHERE reserved_amount IS NULL ORDER BY id")
            .fetch_all(&t.db.pools.reader)
            .await
            .unwrap();
    assert_eq!(
        shown,
        [("BATCH".into(), None, None), ("TRANSFER".into(), Some(address(7).to_string()), Some("3".into()))]
    );
}

#[tokio::test]
async fn an_admission_that_fails_anywhere_writes_nothing() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = t.tx(agent, TxStatus::Queued, 9);
    let events = [
        t.event(EventType::TxRequested).agent(agent).tx(record.id),
        t.event(EventType::TxQueued).agent(agent).tx(record.id),
    ];
    // The second event's audit row fails after the row and the first event were written.
    t.refuse_audit_of(EventType::TxQueued).await;
    let err = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    assert_eq!(t.db.transactions().get(record.id).await.unwrap(), None);
    assert_eq!((count_rows(&t).await, audit_types(&t.db).await), (0, vec![EventType::AgentCreated]));
    sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();

    // A row for an agent that does not exist: no audit rows either.
    let orphan = t.tx(t.agent().id, TxStatus::Pending, 1);
    let err = t.db.transactions().admit(orphan.agent_id, UnixSeconds(0), decide_with(&orphan, &events)).await;
    assert_eq!(err.unwrap_err().code, ErrorCode::AgentNotFound);
    // A decision about another agent than the one whose snapshot was read.
    let err = t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&orphan, &events)).await;
    assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
    assert_eq!((count_rows(&t).await, count_audit_rows(&t.db).await), (0, 1));

    // With the audit log healthy the same admission goes through.
    t.db.transactions().admit(agent, UnixSeconds(0), decide_with(&record, &events)).await.unwrap();
    assert_eq!((count_rows(&t).await, count_audit_rows(&t.db).await), (1, 3));
}

/// A batch reserving `native` wei and `tokens` of token 100.
fn two_asset_tx(t: &TestDb, agent: AgentId, status: TxStatus, native: u128, tokens: u128) -> TxRecord {
    let kind = TxKind::Batch {
        instructions: vec![
            TxKind::Transfer { to: address(1), amount: Amount::from_u128(native) },
            TxKind::TokenTransfer { to: address(2), amount: Amount::from_u128(tokens), token: token(100) },
        ],
    };
    TxRecord { reserved: kind.outflows(), kind, ..t.tx(agent, status, 0) }
}

#[tokio::test]
async fn the_snapshot_sums_reservations_of_non_final_rows_per_asset() {
    let t = TestDb::new().await;
    let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
    let huge = |t: &TestDb| {
        let kind = TxKind::Approve { spender: address(4), amount: amount(HALF_OF_U256), token: token(101) };
        TxRecord { reserved: kind.outflows(), kind, ..t.tx(agent, TxStatus::Queued, 0) }
    };
    // Token 101 is reserved first: the snapshot still lists the native coin, then tokens by address.
    t.admit(&huge(&t)).await;
    t.admit(&huge(&t)).await;
    for (i, status) in TxStatus::ALL.into_iter().enumerate() {
        t.admit(&two_asset_tx(&t, agent, status, 1 << i, 1 << (i + 8))).await;
        t.admit(&two_asset_tx(&t, other, status, 1_000, 1_000)).await;
    }

    let snapshot = t.db.transactions().snapshot(agent, UnixSeconds(0)).await.unwrap();
    // PENDING, QUEUED, EXECUTING and SUBMITTED are the first four statuses: 1+2+4+8.
    assert_eq!(
        snapshot.reserved,
        [
            (Asset::Native, Amount::from_u128(15)),
            (Asset::Token(address(100)), Amount::from_u128(15 << 8)),
            (Asset::Token(address(101)), amount(U256_MAX)),
        ],
        "summed per asset over non-final rows, saturating at 2^256 - 1"
    );
    let others = t.db.transactions().snapshot(other, UnixSeconds(0)).await.unwrap();
    assert_eq!(others.reserved[0], (Asset::Native, Amount::from_u128(4_000)));
    let nobody = t.db.transactions().snapshot(t.agent().id, UnixSeconds(0)).await.unwrap();
    assert_eq!(nobody, AdmissionSnapshot::default());
}

#[tokio::test]
async fn the_snapshot_reads_the_agents_enabled_policies_and_recent_requests() {
    let t = TestDb::new().await;
    let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
    let mut applicable = Vec::new();
    for (owner, enabled) in
        [(None, true), (None, false), (Some(agent), true), (Some(agent), false), (Some(other), true)]
    {
        let policy = Policy { agent_id: owner, enabled, ..t.rate_limit_policy() };
        t.db.policies().insert(&policy, &t.event(EventType::PolicyCreated)).await.unwrap();
        if enabled && owner != Some(other) {
            applicable.push(policy);
        }
    }
    let mut mine = Vec::new();
    for (i, status) in
        [TxStatus::Confirmed, TxStatus::Pending, TxStatus::Cancelled, TxStatus::Failed].iter().enumerate()
    {
        let record = TxRecord {
            usd_value: (i % 2 == 0).then_some(i as f64 + 0.5),
            reason_code: (*status == TxStatus::Cancelled).then(|| "RATE_LIMIT_EXCEEDED".to_owned()),
            ..t.tx(agent, *status, 1)
        };
        t.admit(&record).await;
        t.admit(&t.tx(other, TxStatus::Pending, 1)).await;
        mine.push(record);
    }
    // The rate limit's window is 60 s: at `now` the snapshot reads back to `since`.
    let since = mine[1].created_at;
    let snapshot = t.db.transactions().snapshot(agent, since.plus_seconds(60)).await.unwrap();
    assert_eq!(snapshot.policies, applicable);
    let expected: Vec<RecentTx> = mine[1..]
        .iter()
        .map(|r| RecentTx {
            created_at: r.created_at,
            status: r.status,
            usd_value: r.usd_value,
            denied: r.reason_code.is_some(),
        })
        .collect();
    assert_eq!(snapshot.recent, expected, "the agent's requests since `since`, inclusive, oldest first");
    assert!(snapshot.recent[1].denied && !snapshot.recent[0].denied);
    // Without a rate or daily limit in force no history is read.
    let unlimited = TestDb::new().await;
    let agent = new_agent(&unlimited).await;
    let record = unlimited.tx(agent, TxStatus::Pending, 1);
    unlimited.admit(&record).await;
    let snapshot = unlimited.db.transactions().snapshot(agent, record.created_at).await.unwrap();
    assert_eq!((snapshot.recent, snapshot.reserved.len()), (vec![], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_for_one_agent_serialize() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let (first, second) = (t.tx(agent, TxStatus::Pending, 7), t.tx(agent, TxStatus::Queued, 11));
    let (entered, mut entries) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let (release, released) = mpsc::channel::<()>();
    let seen = Arc::new(Mutex::new(Vec::new()));

    let admit = |name: &'static str, record: TxRecord, gate: Option<mpsc::Receiver<()>>| {
        let (repo, entered, seen) = (t.db.transactions(), entered.clone(), Arc::clone(&seen));
        tokio::spawn(async move {
            let decide: Decide = Box::new(move |snapshot| {
                seen.lock().unwrap().push((name, snapshot.reserved.clone()));
                entered.send(name).unwrap();
                if let Some(gate) = gate {
                    gate.recv_timeout(Duration::from_secs(10)).expect("released");
                }
                crate::test_support::admission(record, vec![])
            });
            repo.admit(agent, UnixSeconds(0), decide).await
        })
    };
    let a = admit("first", first.clone(), Some(released));
    assert_eq!(entries.recv().await, Some("first"));
    let b = admit("second", second.clone(), None);
    // The first admission is open (deciding): the second cannot even read its snapshot meanwhile.
    let early = tokio::time::timeout(Duration::from_millis(300), entries.recv()).await;
    assert!(early.is_err(), "the second admission decided while the first was open: {early:?}");
    release.send(()).unwrap();
    assert_eq!(a.await.unwrap().unwrap().record, first);
    assert_eq!(b.await.unwrap().unwrap().record, second);
    assert_eq!(
        *seen.lock().unwrap(),
        [("first", vec![]), ("second", vec![(Asset::Native, Amount::from_u128(7))])],
        "the second decision saw the first one's reservation"
    );
}

#[tokio::test]
async fn transition_is_compare_and_set_and_a_lost_race_writes_nothing() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = t.tx(agent, TxStatus::Pending, 5);
    t.admit(&record).await;
    let repo = t.db.transactions();
    let audit_rows = count_audit_rows(&t.db).await;

    // An event-less move: no audit row, `updated_at` kept.
    assert!(
        repo.transition(record.id, TxStatus::Pending, TxStatus::Executing, &TxUpdate::default(), None).await.unwrap()
    );
    let executing = TxRecord { status: TxStatus::Executing, ..record.clone() };
    assert_eq!(get(&t, record.id).await, executing);
    assert_eq!(count_audit_rows(&t.db).await, audit_rows);

    // A lost race: the row is no longer PENDING, so nothing is written, not even the event.
    let cancel = TxUpdate { error: Some("too late".into()), ..TxUpdate::default() };
    let event = t.event(EventType::TxCancelled).agent(agent).tx(record.id);
    assert!(!repo.transition(record.id, TxStatus::Pending, TxStatus::Cancelled, &cancel, Some(event)).await.unwrap());
    assert_eq!(get(&t, record.id).await, executing);
    assert_eq!(count_audit_rows(&t.db).await, audit_rows);
    let unknown = TxId::generate(&t.clock, &t.entropy);
    let event = t.event(EventType::TxCancelled);
    assert!(!repo.transition(unknown, TxStatus::Pending, TxStatus::Cancelled, &cancel, Some(event)).await.unwrap());
    assert_eq!(count_audit_rows(&t.db).await, audit_rows);

    // Signed: the hash and raw bytes land with the status and the event, at the event's time.
    let signed =
        TxUpdate { tx_hash: Some("0xfeed".into()), raw_tx: Some(vec![2, 0xf8]), nonce: Some(3), ..TxUpdate::default() };
    let submitted =
        Event::new(EventType::TxSubmitted, &RequestContext::system(), UnixSeconds(record.created_at.0 + 50))
            .agent(agent)
            .tx(record.id);
    assert!(
        repo.transition(record.id, TxStatus::Executing, TxStatus::Submitted, &signed, Some(submitted.clone()))
            .await
            .unwrap()
    );
    let stored = get(&t, record.id).await;
    let expected = TxRecord {
        status: TxStatus::Submitted,
        tx_hash: Some("0xfeed".into()),
        raw_tx: Some(vec![2, 0xf8]),
        nonce: Some(3),
        updated_at: submitted.created_at,
        ..executing
    };
    assert_eq!(stored, expected);
    assert_eq!(t.db.audit_chain(0, 100).await.unwrap().pop().unwrap().event, submitted);

    // In place: fields set, the others (None) left as they are.
    let retry = TxUpdate {
        attempts: Some(2),
        error: Some("rpc down".into()),
        execute_after: Some(UnixSeconds(99)),
        ..TxUpdate::default()
    };
    assert!(repo.transition(record.id, TxStatus::Submitted, TxStatus::Submitted, &retry, None).await.unwrap());
    let expected =
        TxRecord { attempts: 2, error: Some("rpc down".into()), execute_after: Some(UnixSeconds(99)), ..expected };
    assert_eq!(get(&t, record.id).await, expected);

    // A move the state machine does not have is refused before anything is written.
    let err = repo.transition(record.id, TxStatus::Submitted, TxStatus::Pending, &TxUpdate::default(), None).await;
    assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
    assert_eq!(get(&t, record.id).await, expected);

    // Reaching a final status releases the reservation.
    assert_eq!(repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved, [(Asset::Native, Amount::from_u128(5))]);
    let confirmed = t.event(EventType::TxConfirmed).agent(agent).tx(record.id);
    assert!(
        repo.transition(record.id, TxStatus::Submitted, TxStatus::Confirmed, &TxUpdate::default(), Some(confirmed))
            .await
            .unwrap()
    );
    assert_eq!(repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved, []);
    assert_eq!(count_audit_rows(&t.db).await, audit_rows + 2);
}

#[tokio::test]
async fn an_approval_is_set_once() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = TxRecord { tier: Some(Tier::Approval), ..t.tx(agent, TxStatus::Queued, 5) };
    t.admit(&record).await;
    let repo = t.db.transactions();
    let approve = |at: i64| TxUpdate { approved_at: Some(UnixSeconds(at)), ..TxUpdate::default() };
    let event = || t.event(EventType::TxApproved).agent(agent).tx(record.id);
    assert!(repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve(10), Some(event())).await.unwrap());
    let audit_rows = count_audit_rows(&t.db).await;
    assert!(
        !repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve(20), Some(event())).await.unwrap()
    );
    assert_eq!(get(&t, record.id).await.approved_at, Some(UnixSeconds(10)));
    assert_eq!(count_audit_rows(&t.db).await, audit_rows, "the second approval wrote nothing");
    // Other in-place updates of an approved row still apply.
    let retry = TxUpdate { attempts: Some(1), ..TxUpdate::default() };
    assert!(repo.transition(record.id, TxStatus::Queued, TxStatus::Queued, &retry, None).await.unwrap());
}

#[tokio::test]
async fn a_transition_whose_audit_row_fails_is_rolled_back() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = t.tx(agent, TxStatus::Queued, 5);
    t.admit(&record).await;
    t.refuse_audit_of(EventType::TxApproved).await;
    let approve = TxUpdate { approved_at: Some(UnixSeconds(77)), ..TxUpdate::default() };
    let event = t.event(EventType::TxApproved).agent(agent).tx(record.id);
    let err =
        t.db.transactions().transition(record.id, TxStatus::Queued, TxStatus::Queued, &approve, Some(event)).await;
    assert_eq!(err.unwrap_err().code, ErrorCode::InternalError);
    assert_eq!(get(&t, record.id).await, record);
}

#[tokio::test]
async fn work_returns_exactly_the_due_rows_oldest_first() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let now = UnixSeconds(1_800_000_000);
    let (before, after) = (UnixSeconds(now.0 - 1), UnixSeconds(now.0 + 1));
    let queued = |t: &TestDb| t.tx(agent, TxStatus::Queued, 1);
    let rows: Vec<(&str, TxRecord, bool, bool)> = vec![
        // (what, row, due now, due a second later)
        ("pending", t.tx(agent, TxStatus::Pending, 1), true, true),
        ("executing", t.tx(agent, TxStatus::Executing, 1), true, true),
        ("submitted", t.tx(agent, TxStatus::Submitted, 1), true, true),
        // Retry backoffs.
        (
            "pending retry due",
            TxRecord { execute_after: Some(before), ..t.tx(agent, TxStatus::Pending, 1) },
            true,
            true,
        ),
        (
            "executing backing off",
            TxRecord { execute_after: Some(after), ..t.tx(agent, TxStatus::Executing, 1) },
            false,
            true,
        ),
        (
            "submitted retry due",
            TxRecord { execute_after: Some(now), ..t.tx(agent, TxStatus::Submitted, 1) },
            true,
            true,
        ),
        ("delay due", TxRecord { execute_after: Some(now), ..queued(&t) }, true, true),
        ("delay waiting", TxRecord { execute_after: Some(after), ..queued(&t) }, false, true),
        ("approval waiting", TxRecord { approval_deadline: Some(after), ..queued(&t) }, false, true),
        ("approved", TxRecord { approval_deadline: Some(after), approved_at: Some(before), ..queued(&t) }, true, true),
        ("approval expired", TxRecord { approval_deadline: Some(now), ..queued(&t) }, true, true),
        ("confirmed", t.tx(agent, TxStatus::Confirmed, 1), false, false),
        ("failed", t.tx(agent, TxStatus::Failed, 1), false, false),
        ("cancelled", t.tx(agent, TxStatus::Cancelled, 1), false, false),
        ("expired", TxRecord { approval_deadline: Some(before), ..t.tx(agent, TxStatus::Expired, 1) }, false, false),
    ];
    // Creation times run against the ids (later ids are older), two rows per second: the order is
    // (created_at, id), not the id alone.
    let count = rows.len() as i64;
    let mut rows: Vec<(&str, TxRecord, bool, bool)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (what, row, now_due, later_due))| {
            let created_at = UnixSeconds(1_000 + (count - i as i64) / 2);
            (what, TxRecord { created_at, updated_at: created_at, ..row }, now_due, later_due)
        })
        .collect();
    for (_, row, _, _) in &rows {
        t.admit(row).await;
    }
    rows.sort_by_key(|(_, row, _, _)| (row.created_at, row.id.to_string()));
    let names = |records: Vec<TxRecord>| -> Vec<&str> {
        records.iter().map(|r| rows.iter().find(|(_, row, _, _)| row.id == r.id).unwrap().0).collect()
    };
    let due_now: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.0).collect();
    let due_later: Vec<&str> = rows.iter().filter(|r| r.3).map(|r| r.0).collect();
    assert_eq!(names(t.db.transactions().work(now).await.unwrap()), due_now);
    assert_eq!(names(t.db.transactions().work(after).await.unwrap()), due_later);
    assert_eq!(due_now.first(), Some(&"approval expired"), "sanity: the order is not the insertion order");
}

/// Rows of every class older than the newest work, more of each stuck class than one batch holds.
#[tokio::test]
async fn stuck_rows_of_one_class_never_keep_another_class_out() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let now = UnixSeconds(1_800_000_000);
    let stuck = usize::try_from(WORK_BATCH).unwrap() + 10;
    let mut tx = t.db.pools.begin_write().await.unwrap();
    let (mut submitted, mut executing) = (Vec::new(), Vec::new());
    for _ in 0..stuck {
        let record = t.tx(agent, TxStatus::Submitted, 1);
        insert_record(&mut tx, &record).await.unwrap();
        submitted.push(record.id);
        let record = t.tx(agent, TxStatus::Executing, 1);
        insert_record(&mut tx, &record).await.unwrap();
        executing.push(record.id);
    }
    let pending = t.tx(agent, TxStatus::Pending, 1);
    let queued = TxRecord { execute_after: Some(now), ..t.tx(agent, TxStatus::Queued, 1) };
    let waiting = TxRecord { execute_after: Some(now.plus_seconds(1)), ..t.tx(agent, TxStatus::Queued, 1) };
    for record in [&pending, &queued, &waiting] {
        insert_record(&mut tx, record).await.unwrap();
    }
    tx.commit().await.unwrap();

    let batch: Vec<TxId> = t.db.transactions().work(now).await.unwrap().into_iter().map(|r| r.id).collect();
    let batch_size = usize::try_from(WORK_BATCH).unwrap();
    let mut expected: Vec<TxId> = submitted[..batch_size].to_vec();
    expected.extend(&executing[..batch_size]);
    expected.extend([pending.id, queued.id]);
    expected.sort_by_key(|id| expected_order(&submitted, &executing, *id));
    assert_eq!(batch.len(), 2 * batch_size + 2);
    assert_eq!(batch, expected, "the oldest of each class, and all the new work, oldest first");
}

/// The creation order of the rows in [`stuck_rows_of_one_class_never_keep_another_class_out`]: submitted and
/// executing rows alternate, then the new work.
fn expected_order(submitted: &[TxId], executing: &[TxId], id: TxId) -> usize {
    let position = |rows: &[TxId]| rows.iter().position(|r| *r == id);
    position(submitted).map(|i| 2 * i).or_else(|| position(executing).map(|i| 2 * i + 1)).unwrap_or(usize::MAX - 1)
}

#[tokio::test]
async fn submit_records_the_signature_only_while_nothing_stopped_the_work() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let repo = t.db.transactions();
    let signed = || TxUpdate {
        tx_hash: Some("0xfeed".into()),
        raw_tx: Some(vec![2, 0xf8]),
        nonce: Some(7),
        clear_error: true,
        ..TxUpdate::default()
    };
    let event = |id: TxId| {
        Event::new(EventType::TxSubmitted, &RequestContext::system(), UnixSeconds(1_800_000_000)).agent(agent).tx(id)
    };
    let executing = t.tx(agent, TxStatus::Executing, 1);
    let pending = t.tx(agent, TxStatus::Pending, 1);
    t.admit(&executing).await;
    t.admit(&pending).await;
    let audit_rows = count_audit_rows(&t.db).await;
    let set = |sql: &'static str| {
        let writer = t.db.pools.writer.clone();
        async move { sqlx::query(sql).execute(&writer).await.unwrap() }
    };

    // Each refusal writes nothing: the row stays as it was, no audit row.
    set("UPDATE kill_switch SET state = 'SUSPENDED'").await;
    assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::KillSwitchTripped);
    set("UPDATE kill_switch SET state = 'ACTIVE'").await;
    set("UPDATE agents SET status = 'SUSPENDED'").await;
    assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::AgentNotActive);
    set("UPDATE agents SET status = 'ACTIVE'").await;
    assert_eq!(repo.submit(pending.id, &signed(), event(pending.id)).await.unwrap(), Submission::NotExecuting);
    let unknown = TxId::generate(&t.clock, &t.entropy);
    assert_eq!(repo.submit(unknown, &signed(), event(unknown)).await.unwrap(), Submission::NotExecuting);
    let huge = TxUpdate { nonce: Some(u64::MAX), ..signed() };
    assert_eq!(repo.submit(executing.id, &huge, event(executing.id)).await.unwrap_err().code, ErrorCode::InternalError);
    t.refuse_audit_of(EventType::TxSubmitted).await;
    let err = repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InternalError);
    sqlx::query("DROP TRIGGER refuse_audit").execute(&t.db.pools.writer).await.unwrap();
    assert_eq!((get(&t, executing.id).await, get(&t, pending.id).await), (executing.clone(), pending.clone()));
    assert_eq!(count_audit_rows(&t.db).await, audit_rows);

    // Nothing in the way: SUBMITTED with the hash, the raw bytes and the nonce, and its audit row.
    assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::Recorded);
    let stored = get(&t, executing.id).await;
    assert_eq!(
        (stored.status, stored.tx_hash.as_deref(), stored.raw_tx.as_deref(), stored.nonce),
        (TxStatus::Submitted, Some("0xfeed"), Some(&[2, 0xf8][..]), Some(7))
    );
    assert_eq!(t.db.audit_chain(0, 100).await.unwrap().pop().unwrap().event, event(executing.id));
    assert_eq!(repo.submit(executing.id, &signed(), event(executing.id)).await.unwrap(), Submission::NotExecuting);
}

/// The kill switch and a suspension cancel EXECUTING rows in their own write: a signature made meanwhile
/// finds the row cancelled and is refused, even after the switch is recovered and the agent resumed.
#[tokio::test]
async fn a_signature_made_while_the_work_was_stopped_is_refused() {
    use waiaas_core::domain::{KillSwitch, KillSwitchState};
    use waiaas_core::ports::KillSwitchRepo;

    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let repo = t.db.transactions();
    let signed = TxUpdate { tx_hash: Some("0xfeed".into()), nonce: Some(0), ..TxUpdate::default() };
    let event = |id: TxId| t.event(EventType::TxSubmitted).agent(agent).tx(id);

    let first = t.tx(agent, TxStatus::Executing, 1);
    t.admit(&first).await;
    let tripped = KillSwitch { state: KillSwitchState::Suspended, reason: None, changed_at: Some(UnixSeconds(5)) };
    t.db.kill_switch().activate(&tripped, t.activation()).await.unwrap();
    assert_eq!(repo.submit(first.id, &signed, event(first.id)).await.unwrap(), Submission::KillSwitchTripped);
    t.db.kill_switch().recover(&KillSwitch::default(), &t.event(EventType::KillSwitchRecovered)).await.unwrap();
    t.set_status(agent, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(6)).await.unwrap().unwrap();
    assert_eq!(repo.submit(first.id, &signed, event(first.id)).await.unwrap(), Submission::NotExecuting);
    assert_eq!(get(&t, first.id).await.status, TxStatus::Cancelled);

    let second = t.tx(agent, TxStatus::Executing, 1);
    t.admit(&second).await;
    t.set_status(agent, AgentStatus::Active, AgentStatus::Suspended, UnixSeconds(7)).await.unwrap().unwrap();
    assert_eq!(repo.submit(second.id, &signed, event(second.id)).await.unwrap(), Submission::AgentNotActive);
    t.set_status(agent, AgentStatus::Suspended, AgentStatus::Active, UnixSeconds(8)).await.unwrap().unwrap();
    assert_eq!(repo.submit(second.id, &signed, event(second.id)).await.unwrap(), Submission::NotExecuting);
    assert_eq!(get(&t, second.id).await.status, TxStatus::Cancelled);
    assert_eq!(repo.snapshot(agent, UnixSeconds(0)).await.unwrap().reserved, [], "nothing held any more");
}

#[tokio::test]
async fn list_is_one_agents_rows_newest_first_in_keyset_pages() {
    let t = TestDb::new().await;
    let (agent, other) = (new_agent(&t).await, new_agent(&t).await);
    let mut all = Vec::new();
    for i in 0..5 {
        let record = t.tx(agent, TxStatus::Pending, i);
        t.admit(&record).await;
        t.admit(&t.tx(other, TxStatus::Pending, i)).await;
        all.push(record);
    }
    all.reverse();
    let repo = t.db.transactions();
    assert_eq!(repo.list(agent, None, 10).await.unwrap(), all);
    let page = repo.list(agent, None, 2).await.unwrap();
    assert_eq!(page, all[..2]);
    assert_eq!(repo.list(agent, Some(page[1].id), 2).await.unwrap(), all[2..4]);
    assert_eq!(repo.list(agent, Some(all[4].id), 2).await.unwrap(), []);
}

#[tokio::test]
async fn unreadable_stored_values_are_internal_errors_that_name_the_column_only() {
    let t = TestDb::new().await;
    let agent = new_agent(&t).await;
    let record = t.tx(agent, TxStatus::Pending, 1);
    t.admit(&record).await;
    let repo = t.db.transactions();
    for (column, value) in [
        ("request", r#"{"type":"s3cr3t"}"#),
        ("reserved", r#"[{"asset":"native","amount":"s3cr3t"}]"#),
        ("network", "anvil"),
    ] {
        let original: String = sqlx::query_scalar(&format!("SELECT {column} FROM transactions"))
            .fetch_one(&t.db.pools.reader)
            .await
            .unwrap();
        sqlx::query(&format!("UPDATE transactions SET {column} = ?"))
            .bind(value)
            .execute(&t.db.pools.writer)
            .await
            .unwrap();
        if column == "network" {
            assert!(repo.get(record.id).await.is_ok(), "the control case reads");
            continue;
        }
        let mut errors = vec![repo.get(record.id).await.unwrap_err(), repo.work(UnixSeconds(0)).await.unwrap_err()];
        if column == "reserved" {
            // Releasing it as the row becomes final reads it: the move fails and writes nothing.
            let none = TxUpdate::default();
            errors.push(
                repo.transition(record.id, TxStatus::Pending, TxStatus::Cancelled, &none, None).await.unwrap_err(),
            );
        }
        for err in errors {
            assert_named_only(&err, &format!("transactions.{column}"));
        }
        sqlx::query(&format!("UPDATE transactions SET {column} = ?"))
            .bind(original)
            .execute(&t.db.pools.writer)
            .await
            .unwrap();
    }
    assert_eq!(get(&t, record.id).await, record);
    sqlx::query("UPDATE reserved_totals SET amount = 's3cr3t'").execute(&t.db.pools.writer).await.unwrap();
    assert_named_only(&repo.snapshot(agent, UnixSeconds(0)).await.unwrap_err(), "reserved_totals.amount");
}

fn assert_named_only(err: &Error, column: &str) {
    assert_eq!(err.code, ErrorCode::InternalError, "{column}");
    let cause = err.internal.as_ref().unwrap().to_string();
    assert!(cause.contains(column), "{cause}");
    assert!(!cause.contains("s3cr3t") && !err.message.contains("s3cr3t"), "{cause}");
}

async fn plan(t: &TestDb, sql: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind("x")
        .bind(1)
        .bind(2)
        .fetch_all(&t.db.pools.reader)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
}

/// The per-request queries read only what they need: the agent's non-final rows, its recent rows, the
/// non-final rows of the worker; never a scan of the table (which keeps every final row forever).
#[tokio::test]
async fn the_pipeline_queries_walk_indexes() {
    let t = TestDb::new().await;
    let reserved = plan(&t, &reserved::rows_sql(true)).await;
    assert!(reserved.contains("USING INDEX idx_transactions_agent_status (agent_id=? AND status=?)"), "{reserved}");
    let recent = plan(&t, RECENT_SQL).await;
    assert!(recent.contains("USING INDEX idx_transactions_agent_time (agent_id=? AND created_at>?)"), "{recent}");
    let work = plan(&t, &work_sql()).await;
    assert!(work.contains("USING INDEX idx_transactions_work (status=?)"), "{work}");
    let before = TxId::generate(&t.clock, &t.entropy);
    let list = plan(&t, list_query(AgentId::generate(&t.clock, &t.entropy), Some(before), 10).sql()).await;
    assert!(list.contains("USING INDEX idx_transactions_agent_id (agent_id=? AND id<?)"), "{list}");
    for (what, plan) in [("recent", &recent), ("list", &list)] {
        assert!(!plan.contains("TEMP B-TREE"), "{what} needs no sort: {plan}");
    }
    for plan in [reserved, recent, work, list] {
        assert!(!plan.contains("SCAN transactions"), "{plan}");
    }
}
