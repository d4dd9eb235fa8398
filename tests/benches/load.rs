//! Load for the benchmarks (a module of the `bench` and `webhooks` binaries): policy-evaluated sends admitted into the pipeline by concurrent clients.

use std::time::Instant;

use serde_json::json;
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession};

use crate::support::{Anvil, EmbeddedDaemon};

/// Sends per second admitted from `clients` threads sending `total` transfers in all (each thread one request
/// after the other), for a fresh agent of `daemon` whose SPENDING_LIMIT queues every send for a day: the worker
/// does not execute them meanwhile, so this measures the admission path (HTTP, session auth, gates, policy +
/// reservation + audit in the grouped write transaction).
pub fn admission_rate(daemon: &EmbeddedDaemon, anvil: &Anvil, clients: usize, total: usize) -> f64 {
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("throughput", "anvil")).expect("agent");
    anvil.fund(&agent.address, 1_000_000_000_000_000_000_000);
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "0", "notify_max": "0", "delay_max": "1000000000000000000000000", "delay_seconds": 86_400}),
            enabled: None,
        })
        .expect("policy");
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = daemon.client().with_session_token(&token);
    let transfer = json!({"type": "TRANSFER", "to": "0x1111111111111111111111111111111111111111", "amount": "1000"});
    let per_client = total / clients;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                for _ in 0..per_client {
                    wallet.send_transaction_raw(&transfer).expect("send");
                }
            });
        }
    });
    (clients * per_client) as f64 / started.elapsed().as_secs_f64()
}
