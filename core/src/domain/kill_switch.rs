//! The kill switch: ACTIVE (normal) → SUSPENDED → LOCKED, and recovery back to ACTIVE.

use super::TransitionError;
use crate::UnixSeconds;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
/// Whether the kill switch is tripped.
pub enum KillSwitchState {
    /// Normal operation.
    Active,
    /// Tripped: sessions revoked, agents suspended, the agent API answers 503.
    Suspended,
    /// Tripped twice: as SUSPENDED, and recovery is still possible only with the master password.
    Locked,
}

impl KillSwitchState {
    /// The wire and DB name (`ACTIVE`, `SUSPENDED`, `LOCKED`).
    pub fn as_str(self) -> &'static str {
        match self {
            KillSwitchState::Active => "ACTIVE",
            KillSwitchState::Suspended => "SUSPENDED",
            KillSwitchState::Locked => "LOCKED",
        }
    }

    /// Parses the wire and DB name.
    pub fn parse(s: &str) -> Option<KillSwitchState> {
        match s {
            "ACTIVE" => Some(KillSwitchState::Active),
            "SUSPENDED" => Some(KillSwitchState::Suspended),
            "LOCKED" => Some(KillSwitchState::Locked),
            _ => None,
        }
    }

    /// True when agent actions must be refused.
    pub fn is_tripped(self) -> bool {
        self != KillSwitchState::Active
    }

    /// Activating trips a normal daemon to SUSPENDED and a suspended one to LOCKED.
    pub fn activate(self) -> Result<KillSwitchState, TransitionError> {
        match self {
            KillSwitchState::Active => Ok(KillSwitchState::Suspended),
            KillSwitchState::Suspended => Ok(KillSwitchState::Locked),
            KillSwitchState::Locked => Err(TransitionError { from: "LOCKED", to: "LOCKED" }),
        }
    }

    /// The recovery transition (only from a tripped state).
    pub fn recover(self) -> Result<KillSwitchState, TransitionError> {
        match self {
            KillSwitchState::Suspended | KillSwitchState::Locked => Ok(KillSwitchState::Active),
            KillSwitchState::Active => Err(TransitionError { from: "ACTIVE", to: "ACTIVE" }),
        }
    }

    /// Numeric form for the metrics gauge: 0 active, 1 suspended, 2 locked.
    pub fn as_gauge(self) -> f64 {
        match self {
            KillSwitchState::Active => 0.0,
            KillSwitchState::Suspended => 1.0,
            KillSwitchState::Locked => 2.0,
        }
    }
}

/// The persisted kill-switch record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillSwitch {
    /// The current state.
    pub state: KillSwitchState,
    /// Why it was tripped, as the operator gave it.
    pub reason: Option<String>,
    /// When the state last changed (None before the first change).
    pub changed_at: Option<UnixSeconds>,
}

impl Default for KillSwitch {
    fn default() -> Self {
        KillSwitch { state: KillSwitchState::Active, reason: None, changed_at: None }
    }
}

#[cfg(test)]
mod tests {
    use super::KillSwitchState::*;

    #[test]
    fn transitions() {
        assert_eq!(Active.activate(), Ok(Suspended));
        assert_eq!(Suspended.activate(), Ok(Locked));
        assert!(Locked.activate().is_err());
        assert_eq!(Suspended.recover(), Ok(Active));
        assert_eq!(Locked.recover(), Ok(Active));
        assert!(Active.recover().is_err());
    }
}
