//! The kill switch: activation revokes sessions, suspends agents and cancels unsigned transactions in one
//! transaction; while tripped the agent API is refused with `SYSTEM_LOCKED`.

use super::Waiaas;
use crate::domain::{KillSwitch, KillSwitchState};
use crate::error::Result;
use crate::event::{Event, EventType, RequestContext};
use crate::ports::ActivationEffects;

/// The kill switch as reported by the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillSwitchView {
    /// The switch's state, reason and time of the last change.
    pub switch: KillSwitch,
    /// Present after an activation.
    pub effects: Option<ActivationEffects>,
}

impl Waiaas {
    /// The kill switch as cached in memory (the DB row is the source; one daemon per data dir).
    pub fn kill_switch(&self) -> KillSwitch {
        self.kill_switch_state()
    }

    /// ACTIVE → SUSPENDED, or SUSPENDED → LOCKED.
    pub async fn activate_kill_switch(&self, ctx: &RequestContext, reason: Option<String>) -> Result<KillSwitchView> {
        let current = self.kill_switch_state();
        let next = current.state.activate()?;
        let now = self.now();
        let switch = KillSwitch { state: next, reason: reason.clone(), changed_at: Some(now) };
        let from = current.state.as_str();
        let ctx = ctx.clone();
        let events_from_effects = Box::new(move |effects: &ActivationEffects| {
            let activation = Event::new(EventType::KillSwitchActivated, &ctx, now).details(serde_json::json!({
                "from": from,
                "to": next.as_str(),
                "reason": reason,
                "effects": {
                    "sessionsRevoked": effects.revoked_sessions.len(),
                    "agentsSuspended": effects.suspended_agents.len(),
                    "transactionsCancelled": effects.cancelled.len(),
                },
            }));
            let by_kill_switch = serde_json::json!({ "by": "kill_switch" });
            let revocations = effects.revoked_sessions.iter().map(|(session, agent)| {
                Event::new(EventType::SessionRevoked, &ctx, now)
                    .agent(*agent)
                    .session(*session)
                    .details(by_kill_switch.clone())
            });
            let suspensions = effects.suspended_agents.iter().map(|agent| {
                Event::new(EventType::AgentSuspended, &ctx, now).agent(*agent).details(serde_json::json!({
                    "from": "ACTIVE", "to": "SUSPENDED", "by": "kill_switch"
                }))
            });
            let cancellations = effects.cancelled.iter().map(|(tx, agent)| {
                Event::new(EventType::TxCancelled, &ctx, now)
                    .agent(*agent)
                    .tx(*tx)
                    .details(serde_json::json!({ "by": "kill_switch" }))
            });
            std::iter::once(activation).chain(revocations).chain(suspensions).chain(cancellations).collect()
        });
        let (effects, events) = self.ports.kill_switch.activate(&switch, events_from_effects).await?;
        self.set_cached(switch.clone());
        for event in &events {
            self.publish(event);
        }
        for (tx, _) in &effects.cancelled {
            if let Ok(Some(row)) = self.ports.transactions.get(*tx).await {
                self.record_final_of(&row, crate::domain::TxStatus::Cancelled).await;
            }
        }
        self.refresh_state_gauges_quietly().await;
        Ok(KillSwitchView { switch, effects: Some(effects) })
    }

    /// Back to ACTIVE. Sessions stay revoked and agents stay suspended until the operator resumes them.
    pub async fn recover_kill_switch(&self, ctx: &RequestContext) -> Result<KillSwitchView> {
        let current = self.kill_switch_state();
        let next = current.state.recover()?;
        let now = self.now();
        let switch = KillSwitch { state: next, reason: None, changed_at: Some(now) };
        let event = Event::new(EventType::KillSwitchRecovered, ctx, now)
            .details(serde_json::json!({ "from": current.state.as_str(), "to": KillSwitchState::Active.as_str() }));
        self.ports.kill_switch.recover(&switch, &event).await?;
        self.set_cached(switch.clone());
        self.publish(&event);
        Ok(KillSwitchView { switch, effects: None })
    }

    fn set_cached(&self, switch: KillSwitch) {
        self.set_killswitch_gauge(switch.state);
        if let Ok(mut cached) = self.kill_switch.write() {
            *cached = switch;
        }
    }
}
