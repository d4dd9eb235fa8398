//! Agents: one AI agent's wallet, with one key held by the daemon.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;

use super::TransitionError;
use crate::{AgentId, UnixSeconds};

/// A 20-byte EVM address; displayed with its EIP-55 checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvmAddress(pub Address);

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_checksum(None))
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EvmAddress {
    type Err = String;

    /// Accepts `0x` + 40 hex digits; a mixed-case input must carry a valid EIP-55 checksum.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("0x").ok_or("address must start with 0x")?;
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("address must be 0x followed by 40 hex digits".into());
        }
        let mixed = hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
        if mixed {
            Address::parse_checksummed(s, None)
                .map(EvmAddress)
                .map_err(|_| "address checksum (EIP-55) does not match".into())
        } else {
            Address::from_str(s).map(EvmAddress).map_err(|e| e.to_string())
        }
    }
}

/// Chains the daemon can hold keys for. A second chain is a new variant plus an adapter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Chain {
    /// Ethereum and EVM networks.
    Ethereum,
}

impl Chain {
    /// The wire and DB name (`ethereum`).
    pub fn as_str(self) -> &'static str {
        match self {
            Chain::Ethereum => "ethereum",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Chain> {
        match s {
            "ethereum" => Some(Chain::Ethereum),
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
    /// The address of its key.
    pub address: EvmAddress,
    /// Its status.
    pub status: AgentStatus,
    /// The owner who approves its APPROVAL-tier transactions, if set.
    pub owner_address: Option<EvmAddress>,
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

    #[test]
    fn address_parsing_checks_eip55() {
        let ok: EvmAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap();
        assert_eq!(ok.to_string(), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        assert!("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<EvmAddress>().is_ok());
        assert!("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<EvmAddress>().is_err());
        assert!("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<EvmAddress>().is_err());
        assert!("0x1234".parse::<EvmAddress>().is_err());
    }
}
