//! Domain entities and their state machines.

pub mod address;
pub mod agent;
pub mod decision;
pub mod effect;
pub mod kill_switch;
pub mod policy;
pub mod request;
pub mod session;
pub mod tier;
pub mod tx;

pub use address::{Address, ChainFamily, EvmAddress, SolanaAddress};
pub use agent::{Agent, AgentStatus, Chain};
pub use effect::{Effect, EffectKind, TokenLog, unobserved_effect};
pub use kill_switch::{KillSwitch, KillSwitchState};
pub use policy::{Policy, PolicyRules, PolicyType};
pub use request::{Asset, TokenRef, TxKind};
pub use session::{Session, SessionConstraints};
pub use tier::Tier;
pub use tx::TxStatus;

/// Raised when a status change is not allowed from the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The current state's name.
    pub from: &'static str,
    /// The refused target state's name.
    pub to: &'static str,
}

impl From<TransitionError> for crate::Error {
    fn from(e: TransitionError) -> Self {
        crate::Error::new(crate::ErrorCode::InvalidStateTransition, e.to_string())
    }
}
