//! Audit-log queries: filters, keyset cursors over `(created_at, id)`, newest first.

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{EventType, Severity};
use crate::ports::{AuditQuery, AuditRecord, AuditStats, AuditStatsQuery, Page};
use crate::{AgentId, TxId, UnixSeconds};

const CURSOR_KIND: &str = "audit";

/// Filters as they arrive from a client (strings not yet parsed).
#[derive(Clone, Debug, Default)]
pub struct AuditLogFilter {
    /// Only rows about this agent.
    pub agent_id: Option<AgentId>,
    /// Only rows of these event types (wire names); empty: all.
    pub event_types: Vec<String>,
    /// Only rows of this severity (`info`, `warning`, `critical`).
    pub severity: Option<String>,
    /// Only rows about this transaction.
    pub tx_id: Option<TxId>,
    /// Only rows by this actor (`master`, `system`, `owner`, or a session id).
    pub actor: Option<String>,
    /// Inclusive lower bound, Unix seconds.
    pub from: Option<i64>,
    /// Inclusive upper bound, Unix seconds.
    pub to: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

fn parse_position(position: &str) -> Option<(UnixSeconds, i64)> {
    let (created_at, id) = position.split_once(':')?;
    Some((UnixSeconds(created_at.parse().ok()?), id.parse().ok()?))
}

impl Waiaas {
    /// A page of audit rows matching `filter`, newest first.
    pub async fn audit_logs(&self, filter: &AuditLogFilter) -> Result<Page<AuditRecord>> {
        let limit = page_limit(filter.limit)?;
        let event_types = filter
            .event_types
            .iter()
            .map(|t| {
                EventType::parse(t)
                    .ok_or_else(|| Error::invalid_field("event_type", format!("unknown event type {t:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let severity = filter
            .severity
            .as_deref()
            .map(|s| {
                Severity::parse(s).ok_or_else(|| Error::invalid_field("severity", "one of info, warning, critical"))
            })
            .transpose()?;
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(Error::invalid_field("from", "must not be after `to`"));
        }
        let before = match filter.cursor.as_deref() {
            None => None,
            Some(c) => Some(parse_position(&cursor::decode(CURSOR_KIND, c)?).ok_or_else(|| {
                Error::new(ErrorCode::InvalidCursor, "cursor is malformed or belongs to another list")
            })?),
        };
        let query = AuditQuery {
            agent_id: filter.agent_id,
            event_types,
            severity,
            tx_id: filter.tx_id,
            actor: filter.actor.clone(),
            from: filter.from.map(UnixSeconds),
            to: filter.to.map(UnixSeconds),
            before,
            limit: limit + 1,
        };
        let mut items = self.ports.audit.query(&query).await?;
        let next_cursor = next_page(&mut items, limit, |r| {
            cursor::encode(CURSOR_KIND, &format!("{}:{}", r.event.created_at.0, r.id))
        });
        Ok(Page { items, next_cursor })
    }
}

/// Time bucket of the statistics' series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsBucket {
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl StatsBucket {
    /// The bucket's length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            StatsBucket::Hour => 3_600,
            StatsBucket::Day => 86_400,
        }
    }
}

/// Most buckets one statistics answer may hold.
pub const MAX_STATS_BUCKETS: i64 = 10_000;

impl Waiaas {
    /// Counts of audit rows over `[from, to]` (default: the last 24 hours), by event type, severity, agent and
    /// time bucket.
    pub async fn audit_stats(
        &self,
        agent_id: Option<AgentId>,
        from: Option<i64>,
        to: Option<i64>,
        bucket: StatsBucket,
    ) -> Result<(AuditStatsQuery, AuditStats)> {
        let to = to.map(UnixSeconds).unwrap_or_else(|| self.now());
        let from = from.map(UnixSeconds).unwrap_or_else(|| to.plus_seconds(-86_400));
        if from > to {
            return Err(Error::invalid_field("from", "must not be after `to`"));
        }
        if to.seconds_since(from) / bucket.seconds() > MAX_STATS_BUCKETS {
            return Err(Error::invalid_field(
                "bucket",
                format!("the period holds more than {MAX_STATS_BUCKETS} buckets"),
            ));
        }
        let query = AuditStatsQuery { agent_id, from, to, bucket_seconds: bucket.seconds() };
        let stats = self.ports.audit.stats(&query).await?;
        Ok((query, stats))
    }
}
