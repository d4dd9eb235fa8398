//! Fault injection (SPEC §5: bad input, dead nodes, dead receivers and killed processes lose nothing). Each fault
//! is a test against the real `waiaas` binary (or, where the test must move the daemon's clock past retry
//! backoffs, the same daemon embedded) and a real anvil node; after each one the test checks the chain (one
//! transfer, one nonce: the recipient's balance and the sender's nonce on anvil), the data dir (`waiaas audit
//! verify` and SQLite's integrity check) and the rows.
//!
//! How the daemon is stopped at a precise point of the pipeline: a JSON-RPC proxy in front of anvil that the test
//! controls ([`crate::support::RpcProxy`]), not a hook in the product. Holding `eth_sendRawTransaction` keeps a
//! signed transaction recorded (SUBMITTED, raw bytes and nonce stored) but never broadcast; forwarding it and
//! holding the answer makes a broadcast the daemon never learns about; anvil with automine off keeps a broadcast
//! transaction without a receipt. The test then SIGKILLs the daemon at that point, deterministically.
//!
//! | fault | test |
//! |---|---|
//! | SIGKILL between signing and broadcast | [`kill::sigkill_between_signing_and_broadcast_sends_once`] |
//! | SIGKILL with the broadcast done but its answer lost | [`kill::sigkill_after_an_unacknowledged_broadcast_sends_once`] |
//! | SIGKILL after broadcast, before the receipt | [`kill::sigkill_after_broadcast_before_the_receipt_confirms_once`] |
//! | SIGKILL during an online backup | [`kill::sigkill_during_an_online_backup_leaves_no_archive_and_the_next_works`] |
//! | SIGKILL during a restore | `backup::a_restore_killed_while_staging_leaves_the_data_untouched`, `backup::a_restore_killed_mid_swap_is_rolled_back_on_the_next_start` |
//! | SIGKILL with webhook deliveries pending and in flight | `webhooks::deliveries_survive_a_sigkill_with_the_same_webhook_id` |
//! | the node killed and restarted mid-pipeline | [`node::the_node_restarted_mid_pipeline_confirms_the_transfer_once`] |
//! | the node answering garbage, then hanging | [`node::a_node_answering_garbage_then_hanging_gives_clear_errors_and_the_queue_drains`] |
//! | the node losing the block a call was to run on | [`node::a_node_that_lost_its_block_is_retried_not_taken_for_a_failing_call`] |
//! | the node failing while a signed transaction waits for its receipt | [`node::a_submitted_transfer_is_never_failed_while_it_could_still_land`] |
//! | the backup dir's disk full | [`disk::a_full_backup_disk_is_a_clear_error_and_the_next_backup_works`] |

mod disk;
mod kill;
mod node;

use std::path::Path;

use serde_json::json;
use waiaas_client::Client;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreateSession, Transaction};

use crate::support::{Anvil, MASTER_PASSWORD, eventually, run_cli};

pub const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
pub const ONE_ETH: u128 = 1_000_000_000_000_000_000;

/// A funded agent and its session token, created through `admin`.
pub struct Agent {
    pub address: String,
    pub token: String,
}

pub fn funded_agent(admin: &Client, anvil: &Anvil, name: &str) -> Agent {
    let agent = admin.create_agent(&CreateAgent::ethereum(name, "anvil")).expect("agent");
    anvil.fund(&agent.address, 10 * ONE_ETH);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    Agent { address: agent.address, token }
}

pub fn transfer(amount: u128) -> serde_json::Value {
    json!({"type": "TRANSFER", "to": RECIPIENT, "amount": amount.to_string()})
}

/// Waits until `id` reaches a final status (up to `seconds`).
pub fn settled(agent: &Client, id: &str, seconds: u64) -> Transaction {
    eventually(seconds, "a final status", || {
        let t = agent.get_transaction(id).expect("get transaction");
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    })
}

/// Waits until `id` has status `status`.
pub fn reaches(agent: &Client, id: &str, status: &str) -> Transaction {
    eventually(30, status, || {
        let t = agent.get_transaction(id).expect("get transaction");
        (t.status == status).then_some(t)
    })
}

/// The audit rows of one transaction, oldest first, by type.
pub fn tx_rows(admin: &Client, id: &str) -> Vec<String> {
    let mut rows: Vec<String> = admin
        .audit_logs(&AuditLogFilter { tx_id: Some(id.to_owned()), limit: Some(100), ..Default::default() })
        .expect("audit rows")
        .data
        .into_iter()
        .map(|r| r.event_type)
        .collect();
    rows.reverse();
    rows
}

/// The data dir of a stopped daemon is consistent: the audit chain verifies against its sealed head and SQLite's
/// integrity check passes.
#[track_caller]
pub fn assert_consistent(data_dir: &Path) {
    let out = run_cli(data_dir, &["audit", "verify"], &[("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)]);
    assert!(
        out.status.success(),
        "audit verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let db = data_dir.join("data/waiaas.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let integrity: String = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.unwrap()
    });
    assert_eq!(integrity, "ok", "SQLite integrity check");
}
