//! Agents: one AI agent's wallet, with one key held by the daemon.

use super::TransitionError;
use super::address::{Address, ChainFamily};
use crate::{AgentId, UnixSeconds};

/// Chains the daemon can hold keys for. A second chain is a new variant plus an adapter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Chain {
    /// Ethereum and EVM networks.
    Ethereum,
    /// Solana networks (ed25519 keys, base58 addresses).
    Solana,
}

impl Chain {
    /// The wire and DB name (`ethereum`, `solana`).
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Ethereum => "ethereum",
            Chain::Solana => "solana",
        }
    }

    /// The family of the chain: how its addresses, keys and transactions look.
    pub fn family(self) -> ChainFamily {
        match self {
            Chain::Ethereum => ChainFamily::Evm,
            Chain::Solana => ChainFamily::Solana,
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Chain> {
        match s {
            "ethereum" => Some(Chain::Ethereum),
            "solana" => Some(Chain::Solana),
            _ => None,
        }
    }
}

/// Lifecycle of an agent. TERMINATED is final; its audit rows stay.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AgentStatus {
    /// May act.
    Active,
    /// Paused by the operator or the kill switch; may be resumed.
    Suspended,
    /// Final: never acts again (its row, key and audit rows stay).
    Terminated,
}

impl AgentStatus {
    /// The wire and DB name (`ACTIVE`, `SUSPENDED`, `TERMINATED`).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "ACTIVE",
            AgentStatus::Suspended => "SUSPENDED",
            AgentStatus::Terminated => "TERMINATED",
        }
    }

    /// Parses the wire and DB name.
    pub fn parse(s: &str) -> Option<AgentStatus> {
        match s {
            "ACTIVE" => Some(AgentStatus::Active),
            "SUSPENDED" => Some(AgentStatus::Suspended),
            "TERMINATED" => Some(AgentStatus::Terminated),
            _ => None,
        }
    }

    fn to(self, next: AgentStatus) -> Result<AgentStatus, TransitionError> {
        Err(TransitionError { from: self.as_str(), to: next.as_str() })
    }

    /// ACTIVE → SUSPENDED.
    pub fn suspend(self) -> Result<AgentStatus, TransitionError> {
        match self {
            AgentStatus::Active => Ok(AgentStatus::Suspended),
            other => other.to(AgentStatus::Suspended),
        }
    }

    /// SUSPENDED → ACTIVE.
    pub fn resume(self) -> Result<AgentStatus, TransitionError> {
        match self {
            AgentStatus::Suspended => Ok(AgentStatus::Active),
            other => other.to(AgentStatus::Active),
        }
    }

    /// ACTIVE or SUSPENDED → TERMINATED.
    pub fn terminate(self) -> Result<AgentStatus, TransitionError> {
        match self {
            AgentStatus::Active | AgentStatus::Suspended => Ok(AgentStatus::Terminated),
            other => other.to(AgentStatus::Terminated),
        }
    }
}

/// One agent's wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// The agent's id.
    pub id: AgentId,
    /// Its display name (1 to 100 characters).
    pub name: String,
    /// Its chain family.
    pub chain: Chain,
    /// The configured network it acts on.
    pub network: String,
    /// The address of its key, of its chain's family.
    pub address: Address,
    /// Its status.
    pub status: AgentStatus,
    /// The owner who approves its APPROVAL-tier transactions, if set: an address of the agent's chain family,
    /// whose key signs the decisions (EIP-191 on EVM, ed25519 on Solana).
    pub owner_address: Option<Address>,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// When it last changed.
    pub updated_at: UnixSeconds,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(
        from: AgentStatus,
        op: fn(AgentStatus) -> Result<AgentStatus, TransitionError>,
        expected: Option<AgentStatus>,
    ) {
        assert_eq!(op(from).ok(), expected, "from {from:?}");
    }

    #[test]
    fn status_transitions() {
        use AgentStatus::*;
        check(Active, AgentStatus::suspend, Some(Suspended));
        check(Suspended, AgentStatus::suspend, None);
        check(Terminated, AgentStatus::suspend, None);
        check(Suspended, AgentStatus::resume, Some(Active));
        check(Active, AgentStatus::resume, None);
        check(Terminated, AgentStatus::resume, None);
        check(Active, AgentStatus::terminate, Some(Terminated));
        check(Suspended, AgentStatus::terminate, Some(Terminated));
        check(Terminated, AgentStatus::terminate, None);
    }
}
