//! A funded agent on a real anvil, served by a daemon embedded with a clock the test advances: the fixture of the
//! dry-run and policy tests, driven through the agent's session client.

use waiaas_client::Client;
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession, Transaction};

use super::{Anvil, EmbeddedDaemon, eventually};

/// One wei-denominated ether.
pub const ONE_ETH: u128 = 1_000_000_000_000_000_000;

pub struct FundedAgent {
    pub anvil: Anvil,
    pub daemon: EmbeddedDaemon,
    pub agent_id: String,
    pub address: String,
    /// The agent's session client.
    pub agent: Client,
}

impl FundedAgent {
    /// A daemon on `anvil` (network `anvil`) with `settings`, and an agent named `name` holding 10 ETH.
    pub fn start(anvil: Anvil, settings: &[(&str, &str)], name: &str) -> FundedAgent {
        let mut all = vec![("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())];
        all.extend_from_slice(settings);
        let daemon = EmbeddedDaemon::start(&all);
        let admin = daemon.admin();
        let agent = admin.create_agent(&CreateAgent::ethereum(name, "anvil")).expect("agent");
        anvil.fund(&agent.address, 10 * ONE_ETH);
        let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
        let client = daemon.client().with_session_token(&token);
        FundedAgent { anvil, daemon, agent_id: agent.id, address: agent.address, agent: client }
    }

    /// Creates a policy of the agent's own; returns its id.
    pub fn policy(&self, policy_type: &str, rules: serde_json::Value) -> String {
        let create = CreatePolicy {
            agent_id: Some(self.agent_id.clone()),
            policy_type: policy_type.into(),
            rules,
            enabled: None,
        };
        self.daemon.admin().create_policy(&create).expect("policy").id
    }

    /// Waits until the agent's transaction `id` reaches a final status.
    pub fn settled(&self, id: &str) -> Transaction {
        eventually(30, "a final status", || {
            let t = self.agent.get_transaction(id).expect("get transaction");
            matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
        })
    }
}
