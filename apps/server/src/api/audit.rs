//! `GET /v1/audit-logs` (master password): filtered, keyset-paginated audit rows, newest first. Reachable while
//! the kill switch is tripped.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::event::{EventType, Severity};
use waiaas_core::ports::AuditRecord;
use waiaas_core::services::AuditLogFilter;
use waiaas_core::{AgentId, TxId};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::error::ApiResult;
use crate::wire::{StrictInt, Wire};

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
        limit: Query<Option<StrictInt<u32>>>,
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
}
