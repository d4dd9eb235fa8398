//! OPS-06 in the core: feeding the rules, recording what they find, and the operator's view and control.
//!
//! [`AnomalyMonitor`] holds each agent's [`AgentActivity`] and the [`AnomalyRegistry`]. The host feeds it the
//! events published after commit ([`AnomalyMonitor::on_event`]): when a transaction reaches CONFIRMED or FAILED,
//! its row is read (one indexed read) and observed, and after a confirmation the agent's native balance is read
//! through the chain adapter (A-05's observations; no polling loop). Nothing here runs inside admission: the
//! host runs the monitor off the request path, and a slow or failing monitor never delays a send.
//!
//! A finding is recorded in one write transaction ([`crate::ports::AnomalyRepo::record`]): the finding row, the
//! agent's tier floor (unless the rule is in shadow mode) and the `ANOMALY_DETECTED` audit row. The floor is read
//! into the admission snapshot, so send and simulate apply it alike until it expires or the operator clears it
//! (`ANOMALY_CLEARED`). `waiaas_anomaly_detections_total{rule}` counts findings, shadow ones included.
//!
//! The activity is rebuilt at startup from the final transactions of the last 7 days
//! ([`AnomalyMonitor::rebuild`], in pages), so a restart judges the next transaction as the running daemon would
//! have. Balance readings are not stored: after a restart A-05 waits for new ones.
//!
//! The store is attached after unlock ([`Waiaas::attach_anomaly_store`]): a host without anomaly detection never
//! attaches one, and the operator calls answer `NOT_FOUND`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::anomaly::{
    AgentActivity, AnomalyRegistry, AnomalySettings, BalanceReading, Detection, FindingRecord, HOUR_SECONDS,
    LEARNING_SECONDS, Observation, TierFloor,
};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::metrics as m;
use crate::ports::{AnomalyRepo, FindingQuery, MetricsRegistry, Page, TxRecord};
use crate::{AgentId, TxId, UnixSeconds};

const CURSOR_KIND: &str = "anomalies";
/// Final rows read per page by the startup rebuild.
pub const REBUILD_PAGE: u32 = 5_000;

/// One agent's state: its activity and when each rule last fired for it (a rule that fired is quiet for its
/// window, at most an hour, so one spike is one finding, not one per transaction).
#[derive(Clone, Debug, Default)]
struct AgentState {
    activity: AgentActivity,
    fired: HashMap<String, UnixSeconds>,
}

/// The anomaly rules at work: the registry and every agent's rolling activity (see the module documentation).
pub struct AnomalyMonitor {
    registry: RwLock<AnomalyRegistry>,
    agents: Mutex<HashMap<AgentId, AgentState>>,
}

impl std::fmt::Debug for AnomalyMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyMonitor").finish_non_exhaustive()
    }
}

/// The activity a final row adds, if it is activity.
pub fn observation(record: &TxRecord) -> Option<Observation> {
    Observation::of_final(record.status, record.updated_at, record.usd_value, &record.network, &record.kind)
}

impl AnomalyMonitor {
    /// A monitor over `registry`; exports `waiaas_anomaly_detections_total` at zero for every registered rule.
    pub fn new(registry: AnomalyRegistry, metrics: &dyn MetricsRegistry) -> Self {
        for rule in registry.rule_ids() {
            metrics.register(m::ANOMALY_DETECTIONS_TOTAL, m::MetricKind::Counter, &[("rule", &rule)]);
        }
        AnomalyMonitor { registry: RwLock::new(registry), agents: Mutex::new(HashMap::new()) }
    }

    /// Replaces the settings (SIGHUP); the rules and the agents' activity stay.
    pub fn configure(&self, settings: AnomalySettings) {
        if let Ok(mut registry) = self.registry.write() {
            registry.configure(settings);
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> AnomalySettings {
        self.registry.read().map(|r| r.settings().clone()).unwrap_or_default()
    }

    /// The agent's activity (a copy), if it has any.
    pub fn activity(&self, agent: AgentId) -> Option<AgentActivity> {
        self.agents.lock().ok()?.get(&agent).map(|s| s.activity.clone())
    }

    /// Agents with activity.
    pub fn agents(&self) -> usize {
        self.agents.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Replays the final transactions of the 7 days up to `now` into the activity (no finding is made), and
    /// the findings of the last hour into when each rule last fired; returns how many transactions it read. Reads
    /// pages of [`REBUILD_PAGE`] rows, so memory stays bounded by the activity.
    pub async fn rebuild(&self, store: &dyn AnomalyRepo, now: UnixSeconds) -> Result<u64> {
        let read = self.replay_transactions(store, now).await?;
        let mut query = FindingQuery {
            since: Some(now.plus_seconds(-HOUR_SECONDS)),
            limit: REBUILD_PAGE,
            ..FindingQuery::default()
        };
        loop {
            let page = store.findings(&query).await?;
            let Some(last) = page.last() else { return Ok(read) };
            query.before = Some((last.created_at, last.id));
            let mut agents = self.agents.lock().map_err(|_| Error::internal_msg("anomaly state poisoned"))?;
            for found in &page {
                let fired = agents.entry(found.agent_id).or_default().fired.entry(found.finding.rule.clone());
                let at = fired.or_insert(found.created_at);
                *at = (*at).max(found.created_at);
            }
        }
    }

    async fn replay_transactions(&self, store: &dyn AnomalyRepo, now: UnixSeconds) -> Result<u64> {
        let since = now.plus_seconds(-LEARNING_SECONDS);
        let (mut after, mut read) = (None, 0u64);
        loop {
            let page = store.final_since(since, after, REBUILD_PAGE).await?;
            let Some(last) = page.last() else { return Ok(read) };
            after = Some((last.updated_at, last.id));
            read += page.len() as u64;
            let mut agents = self.agents.lock().map_err(|_| Error::internal_msg("anomaly state poisoned"))?;
            for record in &page {
                if let Some(observed) = observation(record) {
                    agents.entry(record.agent_id).or_default().activity.record(&observed);
                }
            }
        }
    }

    /// Adds one final transaction of `agent` and returns what the rules find at `now` (each rule at most once per
    /// window and agent).
    pub fn observe(&self, agent: AgentId, observed: &Observation, now: UnixSeconds) -> Vec<Detection> {
        self.update(agent, now, |activity| {
            activity.record(observed);
        })
    }

    /// Adds one native balance reading of `agent` and returns what the rules find at `now`.
    pub fn observe_balance(&self, agent: AgentId, reading: BalanceReading, now: UnixSeconds) -> Vec<Detection> {
        self.update(agent, now, |activity| activity.record_balance(reading))
    }

    fn update(&self, agent: AgentId, now: UnixSeconds, change: impl FnOnce(&mut AgentActivity)) -> Vec<Detection> {
        let Ok(registry) = self.registry.read() else { return Vec::new() };
        let Ok(mut agents) = self.agents.lock() else { return Vec::new() };
        let state = agents.entry(agent).or_default();
        change(&mut state.activity);
        let mut found = registry.evaluate(&state.activity, now);
        found.retain(|detection| {
            let quiet = i64::try_from(detection.finding.window_seconds).unwrap_or(0).min(HOUR_SECONDS);
            let rule = &detection.finding.rule;
            if state.fired.get(rule).is_some_and(|last| now.seconds_since(*last) < quiet) {
                return false;
            }
            state.fired.insert(rule.clone(), now);
            true
        });
        found
    }

    /// The host's entry point, for every event published after commit: a transaction that reached CONFIRMED or
    /// FAILED is observed (and, after a confirmation, the agent's native balance read), and every finding is
    /// recorded. Other events are ignored. Returns the findings recorded.
    pub async fn on_event(&self, core: &Waiaas, event: &Event) -> Result<Vec<FindingRecord>> {
        if !matches!(event.event_type, EventType::TxConfirmed | EventType::TxFailed) || !self.settings().enabled {
            return Ok(Vec::new());
        }
        let Some(tx) = event.tx_id else { return Ok(Vec::new()) };
        let Some(record) = core.ports.transactions.get(tx).await? else { return Ok(Vec::new()) };
        let now = core.now();
        let mut found = match observation(&record) {
            Some(observed) => self.observe(record.agent_id, &observed, now),
            None => Vec::new(),
        };
        if event.event_type == EventType::TxConfirmed {
            let agent = core.agent(record.agent_id).await?;
            // A failed read leaves A-05 without this reading; the next confirmation reads again.
            if let Ok(amount) = core.ports.chain.native_balance(&record.network, agent.address).await {
                let reading = BalanceReading { at: now, network: record.network.clone(), amount };
                found.extend(self.observe_balance(record.agent_id, reading, now));
            }
        }
        let settings = self.settings();
        let mut recorded = Vec::with_capacity(found.len());
        for detection in &found {
            recorded.push(core.record_detection(record.agent_id, Some(tx), detection, &settings).await?);
        }
        Ok(recorded)
    }
}

fn floor_json(floor: Option<&TierFloor>) -> serde_json::Value {
    match floor {
        None => serde_json::Value::Null,
        Some(floor) => serde_json::json!({
            "tier": floor.tier.as_str(),
            "expiresAt": floor.expires_at.0,
            "rule": floor.rule,
        }),
    }
}

fn parse_position(position: &str) -> Option<(UnixSeconds, i64)> {
    let (created_at, id) = position.split_once(':')?;
    Some((UnixSeconds(created_at.parse().ok()?), id.parse().ok()?))
}

impl Waiaas {
    /// Attaches the anomaly store (once; a second call returns false and changes nothing).
    pub fn attach_anomaly_store(&self, store: Arc<dyn AnomalyRepo>) -> bool {
        self.anomalies.set(store).is_ok()
    }

    /// The attached anomaly store.
    pub fn anomaly_store(&self) -> Result<&Arc<dyn AnomalyRepo>> {
        self.anomalies
            .get()
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "anomaly detection is not configured on this host"))
    }

    /// Records one detection of `agent` (set off by `tx`): the finding, the floor `settings` name unless the rule
    /// is in shadow mode, and `ANOMALY_DETECTED` (rule, observed, threshold, window, unit, shadow, the floor in
    /// force after it) in one write transaction; then publishes the event and counts the finding.
    pub async fn record_detection(
        &self,
        agent: AgentId,
        tx: Option<TxId>,
        detection: &Detection,
        settings: &AnomalySettings,
    ) -> Result<FindingRecord> {
        let now = self.now();
        let record = FindingRecord {
            id: 0,
            agent_id: agent,
            tx_id: tx,
            finding: detection.finding.clone(),
            shadow: detection.shadow,
            created_at: now,
        };
        let floor = (!detection.shadow).then(|| TierFloor {
            agent_id: agent,
            tier: settings.floor_tier,
            expires_at: now.plus_seconds(settings.floor_ttl_seconds),
            rule: detection.finding.rule.clone(),
            updated_at: now,
        });
        let build = Box::new(move |stored: &FindingRecord, floor: Option<&TierFloor>| {
            let finding = &stored.finding;
            let mut event = Event::new(EventType::AnomalyDetected, &RequestContext::system(), stored.created_at)
                .agent(stored.agent_id)
                .details(serde_json::json!({
                    "findingId": stored.id,
                    "rule": finding.rule,
                    "observed": finding.observed,
                    "threshold": finding.threshold,
                    "windowSeconds": finding.window_seconds,
                    "unit": finding.unit,
                    "shadow": stored.shadow,
                    "tierFloor": floor_json(floor),
                }));
            event.tx_id = stored.tx_id;
            event
        });
        let (stored, _, event) = self.anomaly_store()?.record(&record, floor, build).await?;
        self.publish(&event);
        let rule = stored.finding.rule.as_str();
        self.ports.metrics.increment_counter(m::ANOMALY_DETECTIONS_TOTAL, &[("rule", rule)], 1);
        Ok(stored)
    }

    /// A page of findings, newest first: of one agent (`AGENT_NOT_FOUND` when there is no such agent) or of all,
    /// made at or after `since` when given.
    pub async fn anomalies(
        &self,
        agent: Option<AgentId>,
        since: Option<i64>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<FindingRecord>> {
        let limit = page_limit(limit)?;
        if let Some(agent) = agent {
            self.agent(agent).await?;
        }
        let before = match cursor {
            None => None,
            Some(c) => Some(parse_position(&cursor::decode(CURSOR_KIND, c)?).ok_or_else(|| {
                Error::new(ErrorCode::InvalidCursor, "cursor is malformed or belongs to another list")
            })?),
        };
        let query = FindingQuery { agent_id: agent, since: since.map(UnixSeconds), before, limit: limit + 1 };
        let mut items = self.anomaly_store()?.findings(&query).await?;
        let next_cursor =
            next_page(&mut items, limit, |r| cursor::encode(CURSOR_KIND, &format!("{}:{}", r.created_at.0, r.id)));
        Ok(Page { items, next_cursor })
    }

    /// The agent's tier floor in force now, if any (`AGENT_NOT_FOUND` when there is no such agent).
    pub async fn tier_floor(&self, agent: AgentId) -> Result<Option<TierFloor>> {
        self.agent(agent).await?;
        let now = self.now();
        Ok(self.anomaly_store()?.floor(agent).await?.filter(|floor| floor.in_force(now)))
    }

    /// The operator clears the agent's tier floor, audited as `ANOMALY_CLEARED` with the floor it removed;
    /// `INVALID_STATE_TRANSITION` (409) when none is in force: the agent exists, its state has nothing to clear
    /// (a 404 would read as "no such agent" to a client that only looks at the status).
    pub async fn clear_tier_floor(&self, ctx: &RequestContext, agent: AgentId) -> Result<TierFloor> {
        self.agent(agent).await?;
        let store = self.anomaly_store()?;
        let now = self.now();
        let current = store.floor(agent).await?.filter(|floor| floor.in_force(now));
        let none =
            || Error::new(ErrorCode::InvalidStateTransition, format!("agent {agent} has no tier floor in force"));
        let current = current.ok_or_else(none)?;
        let event = Event::new(EventType::AnomalyCleared, ctx, now)
            .agent(agent)
            .details(serde_json::json!({ "cleared": floor_json(Some(&current)) }));
        let cleared = store.clear_floor(agent, now, &event).await?.ok_or_else(none)?;
        self.publish(&event);
        Ok(cleared)
    }
}
