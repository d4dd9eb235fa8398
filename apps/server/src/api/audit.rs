//! `GET /v1/audit-logs` (master password): filtered, keyset-paginated audit rows, newest first, and
//! `GET /v1/audit-logs/stats`: counts by event type, severity, agent and time bucket. Reachable while the kill
//! switch is tripped.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::event::{EventType, Severity};
use waiaas_core::ports::AuditRecord;
use waiaas_core::services::{AuditLogFilter, StatsBucket};
use waiaas_core::{AgentId, TxId};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::error::ApiResult;
use crate::wire::{PageLimit, StrictInt, Wire};

/// One audit row.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AuditLogDto {
    /// Row id (increasing).
    pub id: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub event_type: Wire<EventType>,
    #[oai(nullable)]
    pub agent_id: Option<Uuid>,
    #[oai(nullable)]
    pub session_id: Option<Uuid>,
    #[oai(nullable)]
    pub tx_id: Option<Uuid>,
    /// `master`, `session:<id>`, `owner:<address>`, `system` or `anonymous`.
    pub actor: String,
    pub severity: Wire<Severity>,
    /// Structured, event-specific; never holds a secret.
    pub details: Value,
    /// The client's socket address, when the event came from a request.
    #[oai(nullable)]
    pub ip_address: Option<String>,
}

impl From<AuditRecord> for AuditLogDto {
    fn from(record: AuditRecord) -> Self {
        let event = record.event;
        AuditLogDto {
            id: record.id,
            created_at: event.created_at.0,
            event_type: Wire(event.event_type),
            agent_id: event.agent_id.map(|id| id.as_uuid()),
            session_id: event.session_id.map(|id| id.as_uuid()),
            tx_id: event.tx_id.map(|id| id.as_uuid()),
            actor: event.actor.to_wire(),
            severity: Wire(event.severity),
            details: event.details,
            ip_address: event.ip_address.map(|ip| ip.to_string()),
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AuditLogPage {
    pub data: Vec<AuditLogDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// Width of a statistics bucket.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum BucketDto {
    Hour,
    Day,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct EventTypeCount {
    pub event_type: Wire<EventType>,
    pub count: u64,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SeverityCount {
    pub severity: Wire<Severity>,
    pub count: u64,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AgentCount {
    /// Null for rows about no agent (e.g. failed master-password attempts).
    #[oai(nullable)]
    pub agent_id: Option<Uuid>,
    pub count: u64,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct BucketCount {
    /// Unix seconds at which the bucket starts (a multiple of its width).
    pub bucket_start: i64,
    pub count: u64,
}

/// Audit row counts over a period.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AuditStatsDto {
    /// The period, inclusive, Unix seconds.
    pub from: i64,
    pub to: i64,
    pub bucket: BucketDto,
    pub total: u64,
    pub by_event_type: Vec<EventTypeCount>,
    pub by_severity: Vec<SeverityCount>,
    pub by_agent: Vec<AgentCount>,
    /// Buckets that hold rows, oldest first.
    pub series: Vec<BucketCount>,
}

pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// Query the audit log, newest first.
    #[oai(path = "/v1/audit-logs", method = "get", operation_id = "listAuditLogs")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only rows about this agent.
        agent_id: Query<Option<Uuid>>,
        /// Only rows of these types (repeat the parameter for several).
        event_type: Query<Option<Vec<Wire<EventType>>>>,
        /// Only rows of this severity.
        severity: Query<Option<Wire<Severity>>>,
        /// Only rows about this transaction.
        tx_id: Query<Option<Uuid>>,
        /// Only rows by this actor (`master`, `session:<id>`, `owner:<address>`, `system`, `anonymous`).
        actor: Query<Option<String>>,
        /// Inclusive lower bound, Unix seconds.
        from: Query<Option<StrictInt<i64>>>,
        /// Inclusive upper bound, Unix seconds.
        to: Query<Option<StrictInt<i64>>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<AuditLogPage>> {
        let filter = AuditLogFilter {
            agent_id: agent_id.0.map(AgentId::from_uuid),
            event_types: event_type.0.unwrap_or_default().iter().map(|t| t.0.as_str().to_owned()).collect(),
            severity: severity.0.map(|s| s.0.as_str().to_owned()),
            tx_id: tx_id.0.map(TxId::from_uuid),
            actor: actor.0,
            from: from.0.map(|v| v.0),
            to: to.0.map(|v| v.0),
            cursor: cursor.0,
            limit: limit.0.map(|v| v.0),
        };
        let result = state.core.audit_logs(&filter).await?;
        let (data, next_cursor, has_more) = page(result, AuditLogDto::from);
        Ok(Json(AuditLogPage { data, next_cursor, has_more }))
    }

    /// Audit row counts over a period (default: the last 24 hours) by event type, severity and agent, with a
    /// time series (default hourly buckets).
    #[oai(path = "/v1/audit-logs/stats", method = "get", operation_id = "auditLogStats")]
    async fn stats(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only rows about this agent.
        agent_id: Query<Option<Uuid>>,
        /// Inclusive lower bound, Unix seconds (default: `to` minus one day).
        from: Query<Option<StrictInt<i64>>>,
        /// Inclusive upper bound, Unix seconds (default: now).
        to: Query<Option<StrictInt<i64>>>,
        /// Bucket width of the series (default `hour`).
        bucket: Query<Option<BucketDto>>,
    ) -> ApiResult<Json<AuditStatsDto>> {
        let bucket = bucket.0.unwrap_or(BucketDto::Hour);
        let width = match bucket {
            BucketDto::Hour => StatsBucket::Hour,
            BucketDto::Day => StatsBucket::Day,
        };
        let (query, stats) = state
            .core
            .audit_stats(agent_id.0.map(AgentId::from_uuid), from.0.map(|v| v.0), to.0.map(|v| v.0), width)
            .await?;
        Ok(Json(AuditStatsDto {
            from: query.from.0,
            to: query.to.0,
            bucket,
            total: stats.total,
            by_event_type: stats
                .by_event_type
                .into_iter()
                .map(|(event_type, count)| EventTypeCount { event_type: Wire(event_type), count })
                .collect(),
            by_severity: stats
                .by_severity
                .into_iter()
                .map(|(severity, count)| SeverityCount { severity: Wire(severity), count })
                .collect(),
            by_agent: stats
                .by_agent
                .into_iter()
                .map(|(agent, count)| AgentCount { agent_id: agent.map(|a| a.as_uuid()), count })
                .collect(),
            series: stats
                .series
                .into_iter()
                .map(|(start, count)| BucketCount { bucket_start: start.0, count })
                .collect(),
        }))
    }
}
