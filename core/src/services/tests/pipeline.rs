//! The in-memory harness of the transaction pipeline: a [`Waiaas`] unlocked over mockall mocks of every port, with
//! an injected [`FixedClock`], no SQLite and no network — the way an embedding host tests its own policies.
//!
//! [`pipeline`] builds the mocks from a [`World`]: plain values with sensible defaults (one ACTIVE agent on
//! `anvil`, no policy, the kill switch off, a chain that prepares, signs, accepts and includes everything). A test
//! changes only the fields it is about, drives the core through its public entry points (`send_transaction`,
//! `simulate_transaction`, `process_work`) and asserts on [`Pipeline::calls`], the ordered log of what the core
//! asked the ports to do, and on the published events and recorded metrics.
//!
//! The transaction repository mock keeps the rows it admits or is seeded with ([`World::rows`]): `transition` is
//! the compare-and-set the port promises (it applies the [`TxUpdate`] only when the stored status is `from`), `get`
//! reads them and `work` answers those that are not final, in seed order. A port method the core starts calling
//! needs its expectation here (mockall panics on a call nothing expects), recorded as a [`Call`].

mod send;
mod simulate;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{T0, block_on};
use crate::domain::{
    Address, Agent, AgentStatus, Asset, Chain, KillSwitch, Policy, PolicyRules, PolicyType, Session,
    SessionConstraints, TxKind, TxStatus,
};
use crate::event::{Actor, Event, EventType, RequestContext};
use crate::policy_engine::{PolicyDefaults, Tier};
use crate::ports::testing::{CountingEntropy, FixedClock, RecordingMetrics, RecordingSink};
use crate::ports::{
    ActivationEffects, AdmissionSnapshot, Broadcast, MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore,
    MockKillSwitchRepo, MockPolicyRepo, MockSessionRepo, MockSettingsRepo, MockTxBroadcaster, MockTxRepo, PreparedTx,
    SignedTx, SimulationOutcome, TokenMetadata, TxOnChain, TxRecord, TxUpdate,
};
use crate::services::simulate::Simulation;
use crate::services::transactions::WorkReport;
use crate::services::{CoreConfig, Ports, SessionPrincipal, Waiaas};
use crate::{AgentId, Amount, Error, ErrorCode, PolicyId, Result, SessionId, TxId, UnixSeconds};

/// The harness's agent (fixed ids, so expectations can name them).
pub(super) fn agent_id() -> AgentId {
    AgentId::from_uuid(Uuid::from_u128(0xa1))
}

/// The session every agent request of the harness comes through.
pub(super) fn session_id() -> SessionId {
    SessionId::from_uuid(Uuid::from_u128(0x5e))
}

/// The id of [`row`].
pub(super) fn tx_id() -> TxId {
    TxId::from_uuid(Uuid::from_u128(0x7a))
}

pub(super) const NETWORK: &str = "anvil";
pub(super) const AGENT_ADDRESS: &str = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
pub(super) const RECIPIENT: &str = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359";
pub(super) const OTHER: &str = "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb";
pub(super) const TOKEN: &str = "0xd1220a0cf47c7b9be7a2e6ba89f429762e7b9adb";
pub(super) const CONTRACT: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
/// The signature the keystore mock returns.
pub(super) const SIGNATURE: [u8; 65] = [9; 65];

pub(super) fn address(text: &str) -> Address {
    text.parse().expect("test address")
}

/// Everything the mocked ports answer. Tests override the fields they are about (`..World::default()`).
#[derive(Clone)]
pub(super) struct World {
    pub agent: Agent,
    /// The stored kill switch the core reads when it unlocks.
    pub kill_switch: KillSwitch,
    /// `PolicyRepo::in_force` and the policies of the admission snapshot.
    pub policies: Vec<Policy>,
    /// The reserved totals of the admission snapshot.
    pub reserved: Vec<(Asset, Amount)>,
    pub defaults: PolicyDefaults,
    /// The constraints of the harness's session (its principal and `SessionRepo::get`).
    pub constraints: Option<SessionConstraints>,
    /// Rows stored before the test starts (what `TxRepo::work` and `TxRepo::get` find).
    pub rows: Vec<TxRecord>,
    /// `ChainAdapter::token_metadata` for any token.
    pub token: Option<TokenMetadata>,
    /// `ChainAdapter::prepare`; an error code becomes an error with that code.
    pub prepare: std::result::Result<PreparedTx, ErrorCode>,
    /// The stored status of every row becomes this while `prepare` runs (another writer moved it meanwhile).
    pub during_prepare: Option<TxStatus>,
    pub broadcast: std::result::Result<Broadcast, ErrorCode>,
    /// `ChainAdapter::status` of any hash.
    pub receipt: std::result::Result<TxOnChain, ErrorCode>,
    /// `ChainAdapter::account_nonce` of the agent (the latest block's transaction count).
    pub account_nonce: u64,
    /// Every balance the chain reports.
    pub balance: Amount,
    /// The anomaly tier floor of the admission snapshot.
    pub tier_floor: Option<crate::anomaly::TierFloor>,
}

impl Default for World {
    fn default() -> Self {
        World {
            agent: Agent {
                id: agent_id(),
                name: "agent".into(),
                chain: Chain::Ethereum,
                network: NETWORK.into(),
                address: address(AGENT_ADDRESS),
                status: AgentStatus::Active,
                owner_address: None,
                created_at: UnixSeconds(T0),
                updated_at: UnixSeconds(T0),
            },
            kill_switch: KillSwitch::default(),
            policies: Vec::new(),
            reserved: Vec::new(),
            defaults: PolicyDefaults::default(),
            constraints: None,
            rows: Vec::new(),
            token: None,
            prepare: Ok(prepared()),
            during_prepare: None,
            broadcast: Ok(Broadcast::Accepted),
            receipt: Ok(TxOnChain::Included { success: true, gas_used: 21_000, block_number: 12, logs: Vec::new() }),
            account_nonce: 0,
            balance: Amount::from_u128(10u128.pow(20)),
            tier_floor: None,
        }
    }
}

/// The transaction the chain mock prepares.
pub(super) fn prepared() -> PreparedTx {
    PreparedTx {
        network: NETWORK.into(),
        chain_id: 31_337,
        nonce: 3,
        gas_limit: 21_000,
        base_fee_per_gas: 1_000_000_000,
        max_fee_per_gas: 3_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        unsigned: vec![0x02, 0xaa],
        signing_payload: vec![7; 32],
        simulation: SimulationOutcome { success: true, error: None, gas_used: Some(21_000), logs: None },
        block_number: 11,
    }
}

/// What `ChainAdapter::attach_signature` makes of [`prepared`] and [`SIGNATURE`] (raw: unsigned ‖ signature).
pub(super) fn signed() -> SignedTx {
    attach(&prepared(), &SIGNATURE)
}

fn attach(prepared: &PreparedTx, signature: &[u8]) -> SignedTx {
    SignedTx {
        raw: [prepared.unsigned.as_slice(), signature].concat(),
        hash: format!("0x{}", hex::encode(&prepared.signing_payload)),
    }
}

/// A PENDING INSTANT transfer of 1000 wei to [`RECIPIENT`], admitted at `T0` through the harness's session.
pub(super) fn row() -> TxRecord {
    let kind = TxKind::Transfer { to: address(RECIPIENT), amount: Amount::from_u128(1_000) };
    TxRecord {
        reserved: kind.outflows(),
        tier: Some(Tier::Instant),
        ..TxRecord::pending(tx_id(), agent_id(), Some(session_id()), NETWORK.into(), kind, UnixSeconds(T0))
    }
}

/// A policy of the harness's agent; its id is fixed per type (tests use at most one policy of a type).
#[track_caller]
pub(super) fn policy(policy_type: PolicyType, rules: serde_json::Value) -> Policy {
    let index = PolicyType::ALL.iter().position(|t| *t == policy_type).expect("a policy type") as u128;
    Policy {
        id: PolicyId::from_uuid(Uuid::from_u128(0x9000 + index)),
        agent_id: Some(agent_id()),
        rules: PolicyRules::parse(policy_type, &rules).expect("valid test rules"),
        enabled: true,
        created_at: UnixSeconds(T0),
        updated_at: UnixSeconds(T0),
    }
}

/// One call the core made to a port, in order.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Call {
    TokenMetadata {
        network: String,
        token: Address,
    },
    /// `TxRepo::admit`, with what its decision closure produced.
    Admit {
        agent: AgentId,
        now: UnixSeconds,
        row: TxRecord,
        events: Vec<Event>,
    },
    Snapshot {
        agent: AgentId,
        now: UnixSeconds,
    },
    Work {
        now: UnixSeconds,
    },
    InForce {
        agent: AgentId,
    },
    Transition {
        id: TxId,
        from: TxStatus,
        to: TxStatus,
        update: TxUpdate,
        event: Option<Event>,
    },
    Prepare {
        network: String,
        from: Address,
        kind: TxKind,
    },
    Sign {
        agent: AgentId,
        payload: Vec<u8>,
    },
    Broadcast {
        network: String,
        signed: SignedTx,
    },
    Status {
        network: String,
        hash: String,
    },
}

impl Call {
    /// The port method's name, for asserting the order of calls.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Call::TokenMetadata { .. } => "token_metadata",
            Call::Admit { .. } => "admit",
            Call::Snapshot { .. } => "snapshot",
            Call::Work { .. } => "work",
            Call::InForce { .. } => "in_force",
            Call::Transition { .. } => "transition",
            Call::Prepare { .. } => "prepare",
            Call::Sign { .. } => "sign",
            Call::Broadcast { .. } => "broadcast",
            Call::Status { .. } => "status",
        }
    }
}

/// A requested row transition, as the tests compare them.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Moved {
    pub id: TxId,
    pub from: TxStatus,
    pub to: TxStatus,
    pub update: TxUpdate,
    /// The type of the event written with it.
    pub event: Option<EventType>,
}

type Log = Arc<Mutex<Vec<Call>>>;
type Rows = Arc<Mutex<Vec<TxRecord>>>;

/// The core under test and what its ports saw.
pub(super) struct Pipeline {
    pub core: Waiaas,
    pub clock: Arc<FixedClock>,
    pub sink: Arc<RecordingSink>,
    pub metrics: Arc<RecordingMetrics>,
    /// The authenticated session an agent request arrives with.
    pub principal: SessionPrincipal,
    log: Log,
    rows: Rows,
}

impl Pipeline {
    /// Every port call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().expect("log").clone()
    }

    pub fn call_names(&self) -> Vec<&'static str> {
        self.calls().iter().map(Call::name).collect()
    }

    fn pick<T>(&self, select: impl Fn(Call) -> Option<T>) -> Vec<T> {
        self.calls().into_iter().filter_map(select).collect()
    }

    /// `TxRepo::admit` calls: the row and events each decision produced.
    pub fn admitted(&self) -> Vec<(TxRecord, Vec<Event>)> {
        self.pick(|c| match c {
            Call::Admit { row, events, .. } => Some((row, events)),
            _ => None,
        })
    }

    pub fn transitions(&self) -> Vec<Moved> {
        self.pick(|c| match c {
            Call::Transition { id, from, to, update, event } => {
                Some(Moved { id, from, to, update, event: event.map(|e| e.event_type) })
            }
            _ => None,
        })
    }

    /// The event written with each transition that wrote one.
    pub fn transition_events(&self) -> Vec<Event> {
        self.pick(|c| match c {
            Call::Transition { event, .. } => event,
            _ => None,
        })
    }

    pub fn signs(&self) -> Vec<(AgentId, Vec<u8>)> {
        self.pick(|c| match c {
            Call::Sign { agent, payload } => Some((agent, payload)),
            _ => None,
        })
    }

    pub fn broadcasts(&self) -> Vec<(String, SignedTx)> {
        self.pick(|c| match c {
            Call::Broadcast { network, signed } => Some((network, signed)),
            _ => None,
        })
    }

    pub fn prepares(&self) -> Vec<(String, Address, TxKind)> {
        self.pick(|c| match c {
            Call::Prepare { network, from, kind } => Some((network, from, kind)),
            _ => None,
        })
    }

    /// The types of the events published to the sink, in order.
    pub fn published(&self) -> Vec<EventType> {
        self.sink.0.lock().expect("sink").iter().map(|e| e.event_type).collect()
    }

    /// The stored row (as the transitions left it).
    #[track_caller]
    pub fn stored(&self, id: TxId) -> TxRecord {
        self.rows.lock().expect("rows").iter().find(|r| r.id == id).cloned().expect("a stored row")
    }

    pub fn send(&self, body: serde_json::Value) -> Result<TxRecord> {
        block_on(self.core.send_transaction(&self.principal, &body))
    }

    pub fn simulate(&self, body: serde_json::Value) -> Result<Simulation> {
        block_on(self.core.simulate_transaction(&self.principal, &body))
    }

    /// One worker round; a round itself never fails in these tests.
    #[track_caller]
    pub fn work(&self) -> WorkReport {
        block_on(self.core.process_work()).expect("a worker round")
    }

    /// `waiaas_transactions_total` for a transfer of the harness's agent.
    pub fn finals(&self, tier: &str, status: &str) -> u64 {
        let labels = [("chain", "ethereum"), ("type", "transfer"), ("tier", tier), ("status", status)];
        self.metrics.counter(crate::metrics::TRANSACTIONS_TOTAL, &labels)
    }
}

fn chain_error(code: ErrorCode) -> Error {
    Error::new(code, format!("the node answered {code}"))
}

fn record(log: &Log, call: Call) {
    log.lock().expect("log").push(call);
}

/// Applies a transition to the stored rows as the port promises: only from `from`, with `update`.
fn apply(rows: &Rows, id: TxId, from: TxStatus, to: TxStatus, update: &TxUpdate, now: UnixSeconds) -> bool {
    let mut rows = rows.lock().expect("rows");
    let Some(row) = rows.iter_mut().find(|r| r.id == id && r.status == from) else { return false };
    row.status = to;
    row.updated_at = now;
    if update.tx_hash.is_some() {
        row.tx_hash.clone_from(&update.tx_hash);
    }
    if update.raw_tx.is_some() {
        row.raw_tx.clone_from(&update.raw_tx);
    }
    row.nonce = update.nonce.or(row.nonce);
    if update.clear_error {
        row.error = None;
    }
    if update.error.is_some() {
        row.error.clone_from(&update.error);
    }
    if update.reason_code.is_some() {
        row.reason_code.clone_from(&update.reason_code);
    }
    row.approved_at = update.approved_at.or(row.approved_at);
    row.attempts = update.attempts.unwrap_or(row.attempts);
    row.execute_after = update.execute_after.or(row.execute_after);
    true
}

fn tx_repo(world: &World, log: &Log, rows: &Rows, clock: &Arc<FixedClock>) -> MockTxRepo {
    use crate::ports::Clock as _;
    let snapshot = AdmissionSnapshot {
        policies: world.policies.clone(),
        reserved: world.reserved.clone(),
        recent: Vec::new(),
        tier_floor: world.tier_floor.clone(),
    };
    let mut repo = MockTxRepo::new();
    let (l, r, s) = (log.clone(), rows.clone(), snapshot.clone());
    repo.expect_admit().returning(move |agent, now, decide| {
        let admission = decide(&s);
        let row = admission.record.clone();
        record(&l, Call::Admit { agent, now, row: row.clone(), events: admission.events.clone() });
        r.lock().expect("rows").push(row);
        Ok(admission)
    });
    let l = log.clone();
    repo.expect_snapshot().returning(move |agent, now| {
        record(&l, Call::Snapshot { agent, now });
        Ok(snapshot.clone())
    });
    let r = rows.clone();
    repo.expect_get().returning(move |id| Ok(r.lock().expect("rows").iter().find(|row| row.id == id).cloned()));
    let (l, r, c) = (log.clone(), rows.clone(), clock.clone());
    repo.expect_transition().returning(move |id, from, to, update: &TxUpdate, event| {
        record(&l, Call::Transition { id, from, to, update: update.clone(), event });
        Ok(apply(&r, id, from, to, update, c.now()))
    });
    // The SUBMITTED write re-checks the row in the same critical section: recorded as the EXECUTING → SUBMITTED
    // transition it is, refused when the row moved meanwhile.
    let (l, r, c) = (log.clone(), rows.clone(), clock.clone());
    repo.expect_submit().returning(move |id, update: &TxUpdate, event| {
        let (from, to) = (TxStatus::Executing, TxStatus::Submitted);
        record(&l, Call::Transition { id, from, to, update: update.clone(), event: Some(event) });
        Ok(if apply(&r, id, from, to, update, c.now()) {
            crate::ports::Submission::Recorded
        } else {
            crate::ports::Submission::NotExecuting
        })
    });
    let (l, r) = (log.clone(), rows.clone());
    repo.expect_work().returning(move |now| {
        record(&l, Call::Work { now });
        Ok(r.lock().expect("rows").iter().filter(|row| !row.status.is_final()).cloned().collect())
    });
    let r = rows.clone();
    repo.expect_count_non_final().returning(move || {
        let rows = r.lock().expect("rows");
        let statuses = TxStatus::ALL.into_iter().filter(|s| !s.is_final());
        Ok(statuses.map(|s| (s, rows.iter().filter(|row| row.status == s).count() as u64)).collect())
    });
    repo
}

fn chain(world: &World, log: &Log, rows: &Rows) -> MockChainAdapter {
    let mut chain = MockChainAdapter::new();
    chain.expect_networks().returning(|| vec![crate::ports::Network::evm(NETWORK)]);
    let (l, token) = (log.clone(), world.token.clone());
    chain.expect_token_metadata().returning(move |network: &str, address| {
        record(&l, Call::TokenMetadata { network: network.to_owned(), token: address });
        Ok(token.clone())
    });
    let (l, r, answer, during) = (log.clone(), rows.clone(), world.prepare.clone(), world.during_prepare);
    chain.expect_prepare().returning(move |network: &str, from, kind: &TxKind| {
        record(&l, Call::Prepare { network: network.to_owned(), from, kind: kind.clone() });
        if let Some(status) = during {
            r.lock().expect("rows").iter_mut().for_each(|row| row.status = status);
        }
        answer.clone().map_err(chain_error)
    });
    let account_nonce = world.account_nonce;
    chain.expect_native_asset().returning(|_| Ok(crate::ports::NativeAsset { symbol: "ETH".into(), decimals: 18 }));
    chain.expect_account_nonce().returning(move |_, _| Ok(account_nonce));
    chain.expect_attach_signature().returning(|prepared, signature| Ok(attach(prepared, signature)));
    let (l, receipt) = (log.clone(), world.receipt.clone());
    chain.expect_status().returning(move |network: &str, hash: &str| {
        record(&l, Call::Status { network: network.to_owned(), hash: hash.to_owned() });
        receipt.clone().map_err(chain_error)
    });
    let balance = world.balance;
    chain.expect_native_balance().returning(move |_, _| Ok(balance));
    chain.expect_token_balance().returning(move |_, _, _| Ok(balance));
    chain
}

fn signers(world: &World, log: &Log) -> (MockKeyStore, MockTxBroadcaster) {
    let mut keystore = MockKeyStore::new();
    let l = log.clone();
    keystore.expect_sign().returning(move |agent, payload| {
        record(&l, Call::Sign { agent, payload });
        Ok(SIGNATURE.to_vec())
    });
    let mut broadcaster = MockTxBroadcaster::new();
    let (l, answer) = (log.clone(), world.broadcast);
    broadcaster.expect_broadcast().returning(move |network: &str, signed: &SignedTx| {
        record(&l, Call::Broadcast { network: network.to_owned(), signed: signed.clone() });
        answer.map_err(chain_error)
    });
    (keystore, broadcaster)
}

/// The repositories the pipeline only reads (agents, sessions, policies) and those unlock needs.
fn repositories(world: &World, log: &Log) -> (MockAgentRepo, MockSessionRepo, MockPolicyRepo, MockKillSwitchRepo) {
    let mut agents = MockAgentRepo::new();
    let agent = world.agent.clone();
    agents.expect_get().returning(move |id| Ok((id == agent.id).then(|| agent.clone())));
    agents.expect_count_by_status().returning(|_| Ok(1));

    let mut sessions = MockSessionRepo::new();
    let session = Session {
        id: session_id(),
        agent_id: agent_id(),
        token_hash: String::new(),
        constraints: world.constraints.clone(),
        created_at: UnixSeconds(T0),
        expires_at: UnixSeconds(T0 + 86_400),
        revoked_at: None,
        renewal_count: 0,
    };
    sessions.expect_get().returning(move |id| Ok((id == session.id).then(|| session.clone())));
    sessions.expect_count_active().returning(|_| Ok(1));

    let mut policies = MockPolicyRepo::new();
    let (l, in_force) = (log.clone(), world.policies.clone());
    policies.expect_in_force().returning(move |agent| {
        record(&l, Call::InForce { agent });
        Ok(in_force.clone())
    });

    let mut kill_switch = MockKillSwitchRepo::new();
    let stored = world.kill_switch.clone();
    kill_switch.expect_get().returning(move || Ok(stored.clone()));
    kill_switch.expect_activate().returning(|_, events| {
        let effects = ActivationEffects::default();
        let events = events(&effects);
        Ok((effects, events))
    });
    (agents, sessions, policies, kill_switch)
}

/// The core unlocked over mocks answering as `world` says, at `T0`.
#[track_caller]
pub(super) fn pipeline(world: World) -> Pipeline {
    let clock = Arc::new(FixedClock::at(T0));
    let log: Log = Arc::default();
    let rows: Rows = Arc::new(Mutex::new(world.rows.clone()));

    let settings: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut settings_repo = MockSettingsRepo::new();
    let reads = settings.clone();
    settings_repo.expect_get().returning(move |key| Ok(reads.lock().expect("settings").get(key).cloned()));
    settings_repo.expect_put().returning(move |key, value| {
        settings.lock().expect("settings").insert(key.to_owned(), value.to_owned());
        Ok(())
    });
    let mut audit = MockAuditRepo::new();
    audit.expect_append().returning(|_| Ok(()));

    let (agents, sessions, policies, kill_switch) = repositories(&world, &log);
    let (keystore, broadcaster) = signers(&world, &log);
    let sink = Arc::new(RecordingSink::default());
    let metrics = Arc::new(RecordingMetrics::default());
    let ports = Ports {
        clock: clock.clone(),
        entropy: Arc::new(CountingEntropy::default()),
        agents: Arc::new(agents),
        sessions: Arc::new(sessions),
        policies: Arc::new(policies),
        settings: Arc::new(settings_repo),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(audit),
        keystore: Arc::new(keystore),
        chain: Arc::new(chain(&world, &log, &rows)),
        broadcaster: Arc::new(broadcaster),
        transactions: Arc::new(tx_repo(&world, &log, &rows, &clock)),
        prices: Arc::new(crate::prices::StaticPriceTable::new([("ETH".to_owned(), 3_000.0)], UnixSeconds(T0))),
        events: sink.clone(),
        metrics: metrics.clone(),
    };
    let config = CoreConfig { policy_defaults: world.defaults, ..CoreConfig::default() };
    let core = block_on(Waiaas::unlock(ports, config, "pipeline harness")).expect("unlock over mocks");
    let principal = SessionPrincipal {
        session_id: session_id(),
        agent: world.agent.clone(),
        constraints: world.constraints.clone(),
        context: RequestContext { actor: Actor::Session(session_id()), ip: None },
    };
    Pipeline { core, clock, sink, metrics, principal, log, rows }
}
