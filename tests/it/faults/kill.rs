//! The daemon SIGKILLed at each point of the pipeline where a transfer could be lost or paid twice, and during an
//! online backup.

use alloy_primitives::U256;
use serde_json::json;
use waiaas_client::{BackupKdf, Client};

use super::{RECIPIENT, assert_consistent, funded_agent, reaches, settled, transfer, tx_rows};
use crate::support::{Anvil, Daemon, DaemonOptions, Fault, MASTER_PASSWORD, RpcProxy, eventually, run_cli};

fn daemon_on(rpc_url: &str, extra_env: &[(&str, &str)]) -> Daemon {
    Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".into(), rpc_url.to_owned())],
        extra_env: extra_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    })
}

/// After a restart the transfer `id` is CONFIRMED, the recipient holds exactly `amount`, the sender's nonce is
/// one, the transaction was signed once (one TX_SUBMITTED) and the stopped data dir is consistent.
#[track_caller]
fn paid_exactly_once(daemon: &mut Daemon, anvil: &Anvil, agent: &super::Agent, id: &str, amount: u128) {
    let wallet = daemon.client().with_session_token(&agent.token);
    let done = settled(&wallet, id, 60);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(amount), "one transfer reached the recipient");
    assert_eq!(anvil.nonce(&agent.address), 1, "one nonce used");
    let rows = tx_rows(&daemon.admin(), id);
    assert_eq!(rows.iter().filter(|r| *r == "TX_SUBMITTED").count(), 1, "signed once: {rows:?}");
    assert_eq!(rows.iter().filter(|r| *r == "TX_CONFIRMED").count(), 1, "{rows:?}");
    daemon.stop();
    assert_consistent(daemon.data_dir());
}

/// (a) The transaction is signed and recorded SUBMITTED (raw bytes, nonce) but its broadcast never reaches the
/// node (the proxy holds `eth_sendRawTransaction`) when the daemon is killed. After the restart the stored bytes
/// are broadcast: the same transaction, paid once.
#[test]
fn sigkill_between_signing_and_broadcast_sends_once() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    proxy.set("eth_sendRawTransaction", Fault::Hang);
    let mut daemon = daemon_on(&proxy.url, &[]);
    let agent = funded_agent(&daemon.admin(), &anvil, "signed-not-sent");
    let wallet = daemon.client().with_session_token(&agent.token);
    let id = wallet.send_transaction_raw(&transfer(4_321)).expect("send").id;
    eventually(30, "the broadcast to be held", || (proxy.seen("eth_sendRawTransaction") >= 1).then_some(()));
    let signed = reaches(&wallet, &id, "SUBMITTED");
    assert_eq!(anvil.nonce(&agent.address), 0, "nothing reached the node");
    assert_eq!(anvil.rpc("eth_getTransactionByHash", json!([signed.tx_hash])), serde_json::Value::Null);

    proxy.set("eth_sendRawTransaction", Fault::Forward);
    daemon.kill_and_restart();
    paid_exactly_once(&mut daemon, &anvil, &agent, &id, 4_321);
}

/// (a′) The broadcast reached the node (and was mined) but the answer was lost when the daemon was killed: after
/// the restart the daemon finds the receipt of the hash it stored and settles the row; it neither rebuilds nor
/// pays again.
#[test]
fn sigkill_after_an_unacknowledged_broadcast_sends_once() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    proxy.set("eth_sendRawTransaction", Fault::ForwardThenHang);
    let mut daemon = daemon_on(&proxy.url, &[]);
    let agent = funded_agent(&daemon.admin(), &anvil, "sent-unacknowledged");
    let wallet = daemon.client().with_session_token(&agent.token);
    let id = wallet.send_transaction_raw(&transfer(5_555)).expect("send").id;
    eventually(30, "the transfer mined behind the daemon's back", || (anvil.nonce(&agent.address) == 1).then_some(()));
    assert_eq!(wallet.get_transaction(&id).expect("get").status, "SUBMITTED");

    proxy.set("eth_sendRawTransaction", Fault::Forward);
    daemon.kill_and_restart();
    paid_exactly_once(&mut daemon, &anvil, &agent, &id, 5_555);
}

/// (b) The transaction is broadcast and sits in the node's pool without a receipt (automine off) while the daemon
/// polls for it, when the daemon is killed. After the restart it keeps following the same hash; once a block
/// includes it the row is CONFIRMED, paid once.
#[test]
fn sigkill_after_broadcast_before_the_receipt_confirms_once() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let mut daemon = daemon_on(&proxy.url, &[]);
    let agent = funded_agent(&daemon.admin(), &anvil, "broadcast-no-receipt");
    let wallet = daemon.client().with_session_token(&agent.token);
    anvil.rpc("evm_setAutomine", json!([false]));
    let id = wallet.send_transaction_raw(&transfer(6_789)).expect("send").id;
    let submitted = reaches(&wallet, &id, "SUBMITTED");
    let hash = submitted.tx_hash.expect("hash");
    eventually(30, "the transaction in the node's pool", || {
        (!anvil.rpc("eth_getTransactionByHash", json!([hash])).is_null()).then_some(())
    });
    let polled = proxy.seen("eth_getTransactionReceipt");
    eventually(30, "the daemon polling for the receipt", || {
        (proxy.seen("eth_getTransactionReceipt") > polled).then_some(())
    });

    daemon.kill_and_restart();
    let wallet = daemon.client().with_session_token(&agent.token);
    assert_eq!(wallet.get_transaction(&id).expect("get").status, "SUBMITTED", "still followed after the restart");
    anvil.rpc("evm_mine", json!([]));
    anvil.rpc("evm_setAutomine", json!([true]));
    let done = settled(&wallet, &id, 60);
    assert_eq!(done.tx_hash.as_deref(), Some(hash.as_str()), "the same transaction, not a rebuilt one");
    paid_exactly_once(&mut daemon, &anvil, &agent, &id, 6_789);
}

/// (c) The daemon dies while sealing an online backup (it aborts at the `archive:written` point, after the
/// archive's bytes are written to the temporary file and before it is renamed into place: what a SIGKILL there
/// leaves). After the restart no archive is listed, the leftovers (the temporary archive and the plaintext
/// snapshot) are gone, the data dir is consistent, and the next backup works and verifies.
#[test]
fn sigkill_during_an_online_backup_leaves_no_archive_and_the_next_works() {
    let mut daemon = Daemon::start_with(DaemonOptions {
        extra_env: vec![("WAIAAS_TEST_CRASH_AT".into(), "archive:written".into())],
        ..Default::default()
    });
    daemon.admin().create_agent(&waiaas_client::types::CreateAgent::ethereum("kept", "anvil")).expect("agent");
    let backups = daemon.data_dir().join("backups");
    let refused = daemon.admin().create_backup(BackupKdf::Pbkdf2);
    assert!(matches!(refused, Err(waiaas_client::ClientError::Transport(_))), "the daemon died: {refused:?}");
    let leftovers = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let left = leftovers(&backups);
    assert!(left.iter().any(|n| n.starts_with(".waiaas-backup-")), "the crash point is mid-archive: {left:?}");

    daemon.options.extra_env.clear();
    daemon.kill_and_restart();
    let admin: Client = daemon.admin();
    assert!(admin.list_backups().expect("list").data.is_empty(), "a half-written archive is listed as a backup");
    assert_eq!(leftovers(&backups), Vec::<String>::new(), "leftovers of the killed backup remain");
    let made = admin.create_backup(BackupKdf::Pbkdf2).expect("the next backup");
    assert_eq!(admin.list_backups().expect("list").data.len(), 1);
    let verified =
        run_cli(daemon.data_dir(), &["backup", "verify", &made.path], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    daemon.stop();
    assert_consistent(daemon.data_dir());
}
