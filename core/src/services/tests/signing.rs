//! In-memory tests of the worker's execute and confirm stages: bounded signing failures, the proof required
//! before a "nonce too low" rebuild, and the signature dropped when the repository refuses the SUBMITTED write.
//! The chain, the key store and the broadcaster are `mockall` mocks (an unexpected call fails the test); the one
//! transaction row lives in a small in-memory repository that applies moves like the SQLite one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::super::transactions::MAX_ATTEMPTS;
use super::super::*;
use super::{ADDRESS, T0, active_agent as agent, block_on};
use crate::domain::{KillSwitch, TxKind, TxStatus};
use crate::event::{Event, EventType};
use crate::policy_engine::Tier;
use crate::ports::testing::{CountingEntropy, FixedClock, RecordingMetrics, RecordingSink};
use crate::ports::{
    AdmissionSnapshot, Broadcast, Decide, MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore,
    MockKillSwitchRepo, MockPolicyRepo, MockSessionRepo, MockSettingsRepo, MockTxBroadcaster, PreparedTx, SignedTx,
    SimulationOutcome, Submission, TxOnChain, TxRecord, TxRepo, TxUpdate,
};
use crate::{AgentId, Amount, Error, ErrorCode, TxId, UnixSeconds};

const HASH: &str = "0x00000000000000000000000000000000000000000000000000000000000000aa";

/// One transaction row, moved the way the SQLite repository moves it (compare-and-set on the status).
struct OneRow {
    row: Mutex<TxRecord>,
    /// What `submit` answers instead of recording, when set.
    refuse_submit: Option<Submission>,
}

impl OneRow {
    fn row(&self) -> TxRecord {
        self.row.lock().unwrap().clone()
    }

    fn apply(row: &mut TxRecord, to: TxStatus, update: &TxUpdate) {
        row.status = to;
        row.tx_hash = update.tx_hash.clone().or(row.tx_hash.take());
        row.raw_tx = update.raw_tx.clone().or(row.raw_tx.take());
        row.nonce = update.nonce.or(row.nonce);
        row.error = if update.clear_error { None } else { update.error.clone().or(row.error.take()) };
        row.approved_at = update.approved_at.or(row.approved_at);
        row.attempts = update.attempts.unwrap_or(row.attempts);
        row.execute_after = update.execute_after.or(row.execute_after);
    }
}

fn unused() -> Error {
    Error::internal_msg("not used by the worker")
}

#[async_trait]
impl TxRepo for OneRow {
    async fn admit(&self, _agent: AgentId, _now: UnixSeconds, _decide: Decide) -> Result<crate::ports::Admission> {
        Err(unused())
    }
    async fn snapshot(&self, _agent: AgentId, _now: UnixSeconds) -> Result<AdmissionSnapshot> {
        Err(unused())
    }
    async fn get(&self, id: TxId) -> Result<Option<TxRecord>> {
        Ok(Some(self.row()).filter(|row| row.id == id))
    }
    async fn list(&self, _agent: AgentId, _before: Option<TxId>, _limit: u32) -> Result<Vec<TxRecord>> {
        Err(unused())
    }
    async fn transition(
        &self,
        id: TxId,
        from: TxStatus,
        to: TxStatus,
        update: &TxUpdate,
        _event: Option<Event>,
    ) -> Result<bool> {
        assert!(from.can_become(to), "{from:?} -> {to:?}");
        let mut row = self.row.lock().unwrap();
        if row.id != id || row.status != from {
            return Ok(false);
        }
        Self::apply(&mut row, to, update);
        Ok(true)
    }
    async fn submit(&self, id: TxId, update: &TxUpdate, _event: Event) -> Result<Submission> {
        if let Some(refusal) = self.refuse_submit {
            return Ok(refusal);
        }
        let mut row = self.row.lock().unwrap();
        if row.id != id || row.status != TxStatus::Executing {
            return Ok(Submission::NotExecuting);
        }
        Self::apply(&mut row, TxStatus::Submitted, update);
        Ok(Submission::Recorded)
    }
    async fn work(&self, now: UnixSeconds) -> Result<Vec<TxRecord>> {
        let row = self.row();
        let due = !row.status.is_final() && row.execute_after.is_none_or(|at| at <= now);
        Ok(if due { vec![row] } else { Vec::new() })
    }
    async fn count_non_final(&self) -> Result<Vec<(TxStatus, u64)>> {
        let row = self.row();
        Ok(if row.status.is_final() { Vec::new() } else { vec![(row.status, 1)] })
    }
}

struct Worker {
    core: Waiaas,
    clock: Arc<FixedClock>,
    repo: Arc<OneRow>,
    sink: Arc<RecordingSink>,
}

impl Worker {
    /// Runs rounds (moving the clock past any backoff) until the row is final or `rounds` have run.
    fn run(&self, rounds: usize) -> Vec<Error> {
        let mut errors = Vec::new();
        for _ in 0..rounds {
            let report = block_on(self.core.process_work()).expect("round");
            errors.extend(report.errors.into_iter().map(|(_, e)| e));
            if self.repo.row().status.is_final() {
                break;
            }
            self.clock.advance(60);
        }
        errors
    }

    fn published(&self) -> Vec<Event> {
        self.sink.0.lock().unwrap().clone()
    }
}

/// A core over mocks with one row of `agent` in `status` (signed with `nonce`, as `HASH`, when SUBMITTED).
fn worker(
    status: TxStatus,
    nonce: Option<u64>,
    refuse_submit: Option<Submission>,
    chain: MockChainAdapter,
    keystore: MockKeyStore,
    broadcaster: MockTxBroadcaster,
) -> Worker {
    let clock = Arc::new(FixedClock::at(T0));
    let entropy = Arc::new(CountingEntropy::default());
    let agent_id = AgentId::generate(clock.as_ref(), entropy.as_ref());
    let signed = status == TxStatus::Submitted;
    let row = TxRecord {
        status,
        tier: Some(Tier::Instant),
        tx_hash: signed.then(|| HASH.to_owned()),
        raw_tx: signed.then(|| vec![2, 0xf8]),
        nonce,
        ..TxRecord::pending(
            TxId::generate(clock.as_ref(), entropy.as_ref()),
            agent_id,
            None,
            "anvil".into(),
            TxKind::Transfer { to: ADDRESS.parse().unwrap(), amount: Amount::from_u128(5) },
            UnixSeconds(T0),
        )
    };
    let repo = Arc::new(OneRow { row: Mutex::new(row), refuse_submit });

    let settings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut settings_repo = MockSettingsRepo::new();
    let (reads, writes) = (settings.clone(), settings);
    settings_repo.expect_get().returning(move |key| Ok(reads.lock().unwrap().get(key).cloned()));
    settings_repo.expect_put().returning(move |key, value| {
        writes.lock().unwrap().insert(key.to_owned(), value.to_owned());
        Ok(())
    });
    let mut agents = MockAgentRepo::new();
    agents.expect_get().returning(move |id| Ok(Some(agent(id))));
    agents.expect_count_by_status().returning(|_| Ok(1));
    let mut sessions = MockSessionRepo::new();
    sessions.expect_count_active().returning(|_| Ok(0));
    sessions.expect_get().returning(|_| Ok(None));
    // No policy in force: the re-check before execution denies nothing.
    let mut policies = MockPolicyRepo::new();
    policies.expect_in_force().returning(|_| Ok(Vec::new()));
    let mut kill_switch = MockKillSwitchRepo::new();
    kill_switch.expect_get().returning(|| Ok(KillSwitch::default()));
    let sink = Arc::new(RecordingSink::default());
    let ports = Ports {
        clock: clock.clone(),
        entropy,
        agents: Arc::new(agents),
        sessions: Arc::new(sessions),
        policies: Arc::new(policies),
        settings: Arc::new(settings_repo),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(MockAuditRepo::new()),
        keystore: Arc::new(keystore),
        chain: Arc::new(chain),
        broadcaster: Arc::new(broadcaster),
        transactions: repo.clone(),
        prices: Arc::new(crate::prices::StaticPriceTable::default()),
        events: sink.clone(),
        metrics: Arc::new(RecordingMetrics::default()),
    };
    let core = block_on(Waiaas::unlock(ports, CoreConfig::default(), "pw")).expect("unlock");
    Worker { core, clock, repo, sink }
}

fn prepared(nonce: u64) -> PreparedTx {
    PreparedTx {
        network: "anvil".into(),
        chain_id: 31_337,
        nonce,
        gas_limit: 21_000,
        base_fee_per_gas: 1,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 1,
        unsigned: vec![1, 2, 3],
        signing_payload: vec![7; 32],
        simulation: SimulationOutcome { success: true, error: None, gas_used: Some(21_000), logs: None },
        block_number: 1,
    }
}

/// A chain whose node builds every transaction with `nonce`.
fn building_chain(nonce: u64) -> MockChainAdapter {
    let mut chain = MockChainAdapter::new();
    chain.expect_networks().returning(|| vec![crate::ports::Network::evm("anvil")]);
    chain.expect_prepare().returning(move |_, _, _| Ok(prepared(nonce)));
    chain
}

fn event_types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

#[test]
fn a_signing_error_fails_the_row_with_its_code_after_bounded_attempts() {
    let mut keystore = MockKeyStore::new();
    keystore
        .expect_sign()
        .times(MAX_ATTEMPTS as usize)
        .returning(|_, _| Err(Error::new(ErrorCode::KeystoreError, "the key file cannot be decrypted")));
    // The broadcaster has no expectation: a broadcast would fail the test.
    let w = worker(TxStatus::Pending, None, None, building_chain(0), keystore, MockTxBroadcaster::new());

    let errors = w.run(20);
    let row = w.repo.row();
    assert_eq!((row.status, row.attempts), (TxStatus::Failed, MAX_ATTEMPTS - 1), "{row:?}");
    let error = row.error.unwrap_or_default();
    assert!(error.contains("KEYSTORE_ERROR") && error.contains("signing failed"), "{error}");
    assert_eq!(errors.len(), MAX_ATTEMPTS as usize, "each failure is reported for the host's log");
    assert!(errors.iter().all(|e| e.code == ErrorCode::KeystoreError));
    let failed = w.published().into_iter().find(|e| e.event_type == EventType::TxFailed).expect("TX_FAILED");
    assert_eq!(failed.details["code"], "KEYSTORE_ERROR");
}

#[test]
fn an_attach_signature_error_is_bounded_too() {
    let mut keystore = MockKeyStore::new();
    keystore.expect_sign().times(MAX_ATTEMPTS as usize).returning(|_, _| Ok(vec![0; 65]));
    let mut chain = building_chain(0);
    chain
        .expect_attach_signature()
        .times(MAX_ATTEMPTS as usize)
        .returning(|_, _| Err(Error::internal_msg("signature has recovery byte 9")));
    let w = worker(TxStatus::Executing, None, None, chain, keystore, MockTxBroadcaster::new());
    w.run(20);
    let row = w.repo.row();
    assert_eq!(row.status, TxStatus::Failed, "{row:?}");
    assert!(row.error.unwrap_or_default().contains("INTERNAL_ERROR"));
}

#[test]
fn a_signature_the_repository_refuses_is_never_broadcast() {
    for refusal in [Submission::KillSwitchTripped, Submission::AgentNotActive, Submission::NotExecuting] {
        let mut keystore = MockKeyStore::new();
        keystore.expect_sign().times(1).returning(|_, _| Ok(vec![0; 65]));
        let mut chain = building_chain(3);
        chain.expect_attach_signature().returning(|_, _| Ok(SignedTx { raw: vec![2], hash: HASH.into() }));
        let w = worker(TxStatus::Executing, None, Some(refusal), chain, keystore, MockTxBroadcaster::new());
        let report = block_on(w.core.process_work()).unwrap();
        assert!(report.errors.is_empty(), "{refusal:?}: {:?}", report.errors);
        assert_eq!(w.repo.row().status, TxStatus::Executing, "{refusal:?}: nothing recorded");
        assert!(!event_types(&w.published()).contains(&EventType::TxSubmitted), "{refusal:?}");
    }
}

/// A SUBMITTED row (signed with nonce 5) the node does not know: the re-broadcast is answered "nonce too low".
/// `account_nonce` and `receipt` are what the chain says next.
fn nonce_taken_case(
    nonce: Option<u64>,
    account_nonce: Result<u64>,
    receipt: TxOnChain,
) -> (Worker, Arc<Mutex<Vec<&'static str>>>) {
    let calls: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let mut chain = MockChainAdapter::new();
    chain.expect_networks().returning(|| vec![crate::ports::Network::evm("anvil")]);
    let (log, mut statuses) = (calls.clone(), vec![receipt, TxOnChain::Pending { known: false }]);
    chain.expect_status().times(2).returning(move |_, hash| {
        assert_eq!(hash, HASH);
        log.lock().unwrap().push("status");
        Ok(statuses.pop().expect("two status reads"))
    });
    let (log, mut answer) = (calls.clone(), Some(account_nonce));
    chain.expect_account_nonce().times(1).returning(move |_, address| {
        assert_eq!(address.to_string(), ADDRESS);
        log.lock().unwrap().push("account_nonce");
        answer.take().expect("one nonce read")
    });
    let mut broadcaster = MockTxBroadcaster::new();
    let log = calls.clone();
    broadcaster.expect_broadcast().times(1).returning(move |_, signed| {
        assert_eq!(signed.raw, [2, 0xf8], "the stored raw transaction");
        log.lock().unwrap().push("broadcast");
        Ok(Broadcast::NonceAlreadyUsed)
    });
    let w = worker(TxStatus::Submitted, nonce, None, chain, MockKeyStore::new(), broadcaster);
    block_on(w.core.process_work()).unwrap();
    (w, calls)
}

/// One [`nonce_taken_case`]: the row ends in `status`, with one attempt counted when it is rebuilt or checked
/// again later.
#[track_caller]
fn check_nonce_taken(case: &str, nonce: Option<u64>, account_nonce: u64, receipt: TxOnChain, status: TxStatus) {
    let (w, calls) = nonce_taken_case(nonce, Ok(account_nonce), receipt);
    let row = w.repo.row();
    let attempts = u32::from(matches!(status, TxStatus::Executing | TxStatus::Submitted));
    assert_eq!((row.status, row.attempts), (status, attempts), "{case}: {row:?}");
    assert_eq!(
        *calls.lock().unwrap(),
        ["status", "broadcast", "account_nonce", "status"],
        "{case}: the nonce is read before the receipt"
    );
    if status == TxStatus::Submitted {
        assert!(row.execute_after.is_some_and(|at| at > UnixSeconds(T0)), "{case}: a backoff");
        assert!(row.error.unwrap_or_default().contains("not proven lost"), "{case}");
    }
}

#[test]
fn a_nonce_reported_used_is_rebuilt_only_when_the_original_provably_did_not_land() {
    let pending = || TxOnChain::Pending { known: false };
    let included = |success| TxOnChain::Included { success, gas_used: 21_000, block_number: 9, logs: Vec::new() };
    check_nonce_taken("the nonce moved past, no receipt: lost, rebuilt", Some(5), 6, pending(), TxStatus::Executing);
    check_nonce_taken("a receipt after all: confirmed", Some(5), 6, included(true), TxStatus::Confirmed);
    check_nonce_taken("a reverted receipt: failed", Some(5), 6, included(false), TxStatus::Failed);
    check_nonce_taken("the nonce has not moved past: checked again", Some(5), 5, pending(), TxStatus::Submitted);
    check_nonce_taken("no stored nonce: never proven lost", None, 100, pending(), TxStatus::Submitted);

    // The nonce cannot be read: no receipt is asked for, nothing is rebuilt.
    let calls: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let mut chain = MockChainAdapter::new();
    chain.expect_networks().returning(|| vec![crate::ports::Network::evm("anvil")]);
    let log = calls.clone();
    chain.expect_status().times(1).returning(move |_, _| {
        log.lock().unwrap().push("status");
        Ok(TxOnChain::Pending { known: false })
    });
    chain
        .expect_account_nonce()
        .times(1)
        .returning(|_, _| Err(Error::new(ErrorCode::ChainError, "the chain node did not answer")));
    let mut broadcaster = MockTxBroadcaster::new();
    broadcaster.expect_broadcast().times(1).returning(|_, _| Ok(Broadcast::NonceAlreadyUsed));
    let w = worker(TxStatus::Submitted, Some(5), None, chain, MockKeyStore::new(), broadcaster);
    block_on(w.core.process_work()).unwrap();
    let row = w.repo.row();
    assert_eq!((row.status, row.attempts), (TxStatus::Submitted, 1), "{row:?}");
    assert_eq!(*calls.lock().unwrap(), ["status"]);
}

#[test]
fn a_first_broadcast_answered_nonce_too_low_is_checked_the_same_way() {
    let mut keystore = MockKeyStore::new();
    keystore.expect_sign().times(1).returning(|_, _| Ok(vec![0; 65]));
    let mut chain = building_chain(4);
    chain.expect_attach_signature().returning(|_, _| Ok(SignedTx { raw: vec![2], hash: HASH.into() }));
    chain.expect_account_nonce().times(1).returning(|_, _| Ok(5));
    chain.expect_status().times(1).returning(|_, _| {
        Ok(TxOnChain::Included { success: true, gas_used: 21_000, block_number: 3, logs: Vec::new() })
    });
    let mut broadcaster = MockTxBroadcaster::new();
    broadcaster.expect_broadcast().times(1).returning(|_, _| Ok(Broadcast::NonceAlreadyUsed));
    let w = worker(TxStatus::Pending, None, None, chain, keystore, broadcaster);
    block_on(w.core.process_work()).unwrap();
    let row = w.repo.row();
    assert_eq!((row.status, row.nonce, row.tx_hash.as_deref()), (TxStatus::Confirmed, Some(4), Some(HASH)));
    assert_eq!(
        event_types(&w.published()),
        [EventType::TxSubmitted, EventType::TxConfirmed],
        "a mined transaction is confirmed, not built again"
    );
}
