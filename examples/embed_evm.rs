//! A host that embeds the WAIaaS core with the real adapters and no REST server: SQLite for the repositories,
//! the filesystem keystore, the EVM JSON-RPC chain adapter. It sets a policy of its own (only one recipient, small
//! amounts instant), sends a native transfer as an agent session would, drives the pipeline's worker itself, and
//! checks the recipient's balance on a real anvil node. A transfer to anyone else is denied by the host's policy.
//!
//! Run: `cargo run -p waiaas-examples --example embed_evm` (anvil from `npm ci --prefix tests/evm`, or the path in
//! `ANVIL`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::json;
use waiaas_core::domain::{Address, TxStatus};
use waiaas_core::event::{Event, EventType, RequestContext};
use waiaas_core::ports::{ChainAdapter, Clock, EventSink, NoMetrics};
use waiaas_core::prices::StaticPriceTable;
use waiaas_core::services::{CoreConfig, Ports, Waiaas};
use waiaas_core::{Amount, ErrorCode};
use waiaas_evm::EvmChain;
use waiaas_fs::{DataDir, FsKeyStore, KdfParams, OsEntropy, SystemClock};
use waiaas_sqlite::Database;
use zeroize::Zeroizing;

/// The one address the host's policy lets its agent pay.
const RECIPIENT: &str = "0x00000000000000000000000000000000000e3b6d";
/// 0.01 ETH in wei.
const AMOUNT: u128 = 10_000_000_000_000_000;

/// The host's own event sink: it keeps the event types (a real host would forward them to its own bus).
#[derive(Default)]
struct HostEvents(Mutex<Vec<EventType>>);

impl EventSink for HostEvents {
    fn publish(&self, event: &Event) {
        self.0.lock().expect("events").push(event.event_type);
    }
}

/// A real anvil node on a free loopback port, killed on drop.
struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    fn start() -> Anvil {
        let binary = std::env::var_os("ANVIL").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        });
        assert!(binary.exists(), "no anvil at {}: run `npm ci --prefix tests/evm`", binary.display());
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        let mut lines = BufReader::new(child.stdout.take().expect("anvil stdout")).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("Listening on ").map(|a| a.trim().to_owned()))
            .expect("anvil did not report its address");
        // Keep draining stdout so anvil never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Anvil { child, url: format!("http://{address}") }
    }

    fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let value: serde_json::Value =
            ureq::post(&self.url).send_json(&body).expect("anvil rpc").body_mut().read_json().expect("anvil json");
        assert!(value.get("error").is_none(), "{method}: {value}");
        value["result"].clone()
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn host(anvil: &Anvil) {
    // The adapters, composed by the host itself.
    let dir = tempfile::tempdir().expect("temp dir");
    let data = DataDir::create(dir.path()).expect("data dir");
    let db = Database::open(&data.db_file()).await.expect("database");
    let password = Zeroizing::new("the host's master password".to_owned());
    // Cheap Argon2 for the example; a production host keeps the defaults.
    let keystore =
        FsKeyStore::for_data_dir(&data, password.clone(), KdfParams { m_cost_kib: 1024, t_cost: 1, p_cost: 1 });
    let chain = EvmChain::new([("anvil".to_owned(), anvil.url.clone())]);
    let events = Arc::new(HostEvents::default());
    let ports = Ports {
        clock: Arc::new(SystemClock),
        entropy: Arc::new(OsEntropy),
        agents: db.agents(),
        sessions: db.sessions(),
        policies: db.policies(),
        settings: db.settings(),
        kill_switch: db.kill_switch(),
        audit: db.audit(),
        keystore: Arc::new(keystore),
        chain: Arc::new(chain.clone()),
        broadcaster: Arc::new(chain.clone()),
        transactions: db.transactions(),
        prices: Arc::new(StaticPriceTable::new([("ETH".to_owned(), 3000.0)], SystemClock.now())),
        events: events.clone(),
        metrics: Arc::new(NoMetrics),
    };
    let core = Waiaas::unlock(ports, CoreConfig::default(), &password).await.expect("unlock");

    // An agent with a funded address, and the host's policy: pay only RECIPIENT, up to 1 ETH instantly.
    let operator = RequestContext::system();
    let agent = core.create_agent(&operator, "host-agent", "ethereum", "anvil").await.expect("agent");
    anvil.rpc("anvil_setBalance", json!([agent.address.to_string(), "0x8ac7230489e80000"]));
    core.create_policy(&operator, Some(agent.id), "WHITELIST", &json!({"allowed_addresses": [RECIPIENT]}), None)
        .await
        .expect("whitelist");
    let limits = json!({"instant_max": "1000000000000000000", "notify_max": "1000000000000000000",
                        "delay_max": "1000000000000000000"});
    core.create_policy(&operator, Some(agent.id), "SPENDING_LIMIT", &limits, None).await.expect("limits");

    // What an agent's session does over REST, called directly.
    let session = core.create_session(&operator, agent.id, None, None).await.expect("session");
    let principal = core.authenticate_session(&session.token, None).await.expect("principal");
    let stranger = "0x1111111111111111111111111111111111111111";
    let denied = core
        .send_transaction(&principal, &json!({"type": "TRANSFER", "to": stranger, "amount": AMOUNT.to_string()}))
        .await
        .expect_err("the host's whitelist denies other recipients");
    assert_eq!(denied.code, ErrorCode::PolicyDenied);
    let sent = core
        .send_transaction(&principal, &json!({"type": "TRANSFER", "to": RECIPIENT, "amount": AMOUNT.to_string()}))
        .await
        .expect("send");

    // The host runs the pipeline's background stages itself: sign, broadcast, confirm (anvil mines at once).
    let mut status = sent.status;
    for _ in 0..20 {
        if status.is_final() {
            break;
        }
        core.process_work().await.expect("worker round");
        status = core.transaction(&principal, sent.id).await.expect("transaction").status;
    }
    assert_eq!(status, TxStatus::Confirmed);

    let recipient: Address = RECIPIENT.parse().expect("address");
    let balance = chain.native_balance("anvil", recipient).await.expect("balance");
    assert_eq!(balance, Amount::from_u128(AMOUNT), "the recipient holds exactly the amount sent");
    let seen = events.0.lock().expect("events").clone();
    for expected in [EventType::PolicyDenied, EventType::TxRequested, EventType::TxConfirmed] {
        assert!(seen.contains(&expected), "the host saw {expected:?}: {seen:?}");
    }
    db.close().await;
    println!("sent {AMOUNT} wei to {RECIPIENT} through the embedded core; balance on anvil: {balance:?}");
}

fn run() {
    let anvil = Anvil::start();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(host(&anvil));
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    run();
}

#[test]
fn the_embedded_core_pays_the_whitelisted_recipient_on_anvil() {
    run();
}
