//! A host that runs the WAIaaS core entirely in memory over the `mockall` mocks of its ports (feature `mocks` of
//! `waiaas-core`): no database, no files, no chain. The host states which calls it expects the core to make —
//! settings read and written at unlock, one key generated, one agent row written with its `AGENT_CREATED` event —
//! and mockall checks them: a call nobody expected (a broadcast, a signature, a second key) fails the run, and so
//! does an expected call that did not happen. A create on a network the chain adapter does not serve is refused
//! before the keystore is touched.
//!
//! Run: `cargo run -p waiaas-examples --example embed_mocks`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use waiaas_core::ErrorCode;
use waiaas_core::domain::{Address, AgentStatus, KillSwitch};
use waiaas_core::event::{EventType, RequestContext};
use waiaas_core::ports::testing::{CountingEntropy, FixedClock, RecordingSink};
use waiaas_core::ports::{
    MockAgentRepo, MockAuditRepo, MockChainAdapter, MockKeyStore, MockKillSwitchRepo, MockPolicyRepo, MockPriceOracle,
    MockSessionRepo, MockSettingsRepo, MockTxBroadcaster, MockTxRepo, Network, NoMetrics,
};
use waiaas_core::services::{CoreConfig, Ports, Waiaas};

const KEY_ADDRESS: &str = "0x2222222222222222222222222222222222222222";

async fn host() {
    // Settings live in a map the host owns; unlock stores the master password's hash and the token key there.
    let settings_map: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut settings = MockSettingsRepo::new();
    let read = Arc::clone(&settings_map);
    settings.expect_get().returning(move |key| Ok(read.lock().expect("settings").get(key).cloned()));
    let written = Arc::clone(&settings_map);
    settings.expect_put().returning(move |key, value| {
        written.lock().expect("settings").insert(key.to_owned(), value.to_owned());
        Ok(())
    });

    let mut kill_switch = MockKillSwitchRepo::new();
    kill_switch.expect_get().times(1).returning(|| Ok(KillSwitch::default()));
    let mut sessions = MockSessionRepo::new();
    sessions.expect_count_active().returning(|_| Ok(0));
    let mut chain = MockChainAdapter::new();
    chain.expect_networks().returning(|| vec![Network::evm("mainnet")]);

    // The one agent: exactly one key, exactly one row, written with its audit event.
    let mut keystore = MockKeyStore::new();
    keystore.expect_create_key().times(1).returning(|_, _| Ok(KEY_ADDRESS.parse().expect("address")));
    let rows = Arc::new(Mutex::new(0_u64));
    let mut agents = MockAgentRepo::new();
    let inserted = Arc::clone(&rows);
    agents
        .expect_insert()
        .withf(|agent, event| {
            agent.name == "in-memory" && agent.network == "mainnet" && event.event_type == EventType::AgentCreated
        })
        .times(1)
        .returning(move |_, _| {
            *inserted.lock().expect("rows") += 1;
            Ok(())
        });
    let counted = Arc::clone(&rows);
    agents
        .expect_count_by_status()
        .withf(|status| *status == AgentStatus::Active)
        .returning(move |_| Ok(*counted.lock().expect("rows")));

    // Only the state gauges read the transactions: none is in flight.
    let mut transactions = MockTxRepo::new();
    transactions.expect_count_non_final().returning(|| Ok(Vec::new()));

    let events = Arc::new(RecordingSink::default());
    let ports = Ports {
        clock: Arc::new(FixedClock::at(1_767_225_600)),
        entropy: Arc::new(CountingEntropy::default()),
        agents: Arc::new(agents),
        sessions: Arc::new(sessions),
        // No expectations: the core must not call these at all here.
        policies: Arc::new(MockPolicyRepo::new()),
        settings: Arc::new(settings),
        kill_switch: Arc::new(kill_switch),
        audit: Arc::new(MockAuditRepo::new()),
        keystore: Arc::new(keystore),
        chain: Arc::new(chain),
        broadcaster: Arc::new(MockTxBroadcaster::new()),
        transactions: Arc::new(transactions),
        prices: Arc::new(MockPriceOracle::new()),
        events: events.clone(),
        metrics: Arc::new(NoMetrics),
    };
    let core = Waiaas::unlock(ports, CoreConfig::default(), "in-memory master password").await.expect("unlock");
    assert!(settings_map.lock().expect("settings").len() >= 2, "unlock stored the password hash and token key");

    let operator = RequestContext::system();
    let refused = core.create_agent(&operator, "elsewhere", "ethereum", "polygon").await.expect_err("not served");
    assert_eq!(refused.code, ErrorCode::NetworkNotConfigured);
    let agent = core.create_agent(&operator, "in-memory", "ethereum", "mainnet").await.expect("agent");
    let expected: Address = KEY_ADDRESS.parse().expect("address");
    assert_eq!(agent.address, expected, "the address is the keystore's");
    let published: Vec<EventType> = events.0.lock().expect("events").iter().map(|e| e.event_type).collect();
    assert_eq!(published, [EventType::AgentCreated]);
    // Dropping the core drops the mocks, which checks every `times(..)` expectation above.
    drop(core);
    println!("agent {} created in memory at {}", agent.id, agent.address);
}

fn run() {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(host());
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    run();
}

#[test]
fn the_core_runs_in_memory_over_port_mocks() {
    run();
}
