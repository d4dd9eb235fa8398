//! OPS-06 over the API (master password): anomaly findings, an agent's tier floor, and clearing it.

use serde::{Deserialize, Serialize};

use crate::{Auth, Client, Page, Result, page_query, seg, with_query};

/// One finding of an anomaly rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub id: i64,
    pub agent_id: String,
    #[serde(default)]
    pub tx_id: Option<String>,
    /// `A-01` .. `A-05`, or a host's own rule.
    pub rule: String,
    pub observed: f64,
    pub threshold: f64,
    pub window_seconds: u64,
    pub unit: String,
    pub shadow: bool,
    pub created_at: i64,
}

/// A minimum tier imposed on an agent after a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierFloor {
    pub agent_id: String,
    /// `NOTIFY`, `DELAY` or `APPROVAL`.
    pub tier: String,
    pub expires_at: i64,
    pub rule: String,
    pub updated_at: i64,
}

/// `GET /v1/agents/{id}/anomalies`: a page of findings and the tier floor in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentAnomalies {
    pub data: Vec<Anomaly>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub tier_floor: Option<TierFloor>,
}

impl Client {
    /// `GET /v1/agents/{id}/anomalies`: the agent's findings, newest first, and its tier floor in force.
    pub fn agent_anomalies(&self, agent_id: &str, cursor: Option<&str>, limit: Option<u32>) -> Result<AgentAnomalies> {
        let path = with_query(&format!("/v1/agents/{}/anomalies", seg(agent_id)), &page_query(cursor, limit));
        self.call("GET", &path, Auth::Master, None::<&()>)
    }

    /// `GET /v1/anomalies`: every agent's findings, newest first, made at or after `since` (Unix seconds).
    pub fn anomalies(&self, since: Option<i64>, cursor: Option<&str>, limit: Option<u32>) -> Result<Page<Anomaly>> {
        let mut query = page_query(cursor, limit);
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        self.call("GET", &with_query("/v1/anomalies", &query), Auth::Master, None::<&()>)
    }

    /// `DELETE /v1/agents/{id}/tier-floor`: clears the agent's tier floor (audited `ANOMALY_CLEARED`) and returns
    /// it; `NOT_FOUND` when none is in force.
    pub fn clear_tier_floor(&self, agent_id: &str) -> Result<TierFloor> {
        self.call("DELETE", &format!("/v1/agents/{}/tier-floor", seg(agent_id)), Auth::Master, None::<&()>)
    }
}
