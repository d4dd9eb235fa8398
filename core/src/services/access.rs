//! OPS-07: what the core does when the IP access control refuses a request. The server decides the refusal
//! (`crate::acl`); the core counts it (`waiaas_acl_denied_total{class}`) and audits it as `ACCESS_DENIED_IP`,
//! at most one row per source address per window and [`AUDIT_ROWS_PER_WINDOW`] rows per window in all, with
//! at most [`TRACKED_SOURCES_CAP`] sources remembered: a scan from any number of addresses cannot flood the log
//! or the memory.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::acl::EndpointClass;
use crate::event::{Actor, Event, EventType, RequestContext};
use crate::limiter::{AuditBudget, SourceWindows};
use crate::metrics as m;

/// One audit row per source address per this many seconds.
pub const WINDOW_SECONDS: i64 = 60;
/// Most `ACCESS_DENIED_IP` rows per window.
pub const AUDIT_ROWS_PER_WINDOW: u32 = 100;
/// Most source addresses remembered at once.
pub const TRACKED_SOURCES_CAP: usize = 10_000;

/// The per-source and global limits of `ACCESS_DENIED_IP` rows.
pub(super) struct AccessDenials {
    sources: Mutex<SourceWindows<IpAddr>>,
    budget: Mutex<AuditBudget>,
}

impl AccessDenials {
    pub(super) fn new() -> Self {
        AccessDenials {
            sources: Mutex::new(SourceWindows::new(WINDOW_SECONDS, TRACKED_SOURCES_CAP)),
            budget: Mutex::new(AuditBudget::new(WINDOW_SECONDS, AUDIT_ROWS_PER_WINDOW)),
        }
    }
}

impl super::Waiaas {
    /// Records that a request of `class` from client address `ip` was refused by the IP access control: the
    /// metric always, the audit row within the limits above. An audit write failure is counted and logged by the
    /// caller's answer (403 either way), never surfaced.
    pub async fn record_access_denied(&self, class: EndpointClass, ip: IpAddr) {
        self.ports.metrics.increment_counter(m::ACL_DENIED_TOTAL, &[("class", class.as_str())], 1);
        let now = self.now();
        let first_in_window = self.denials.sources.lock().map(|mut s| s.hit(ip, now) == 1).unwrap_or(false);
        if !first_in_window {
            return;
        }
        let Some(suppressed) = self.denials.budget.lock().ok().and_then(|mut b| b.admit(now)) else {
            return;
        };
        let ctx = RequestContext { actor: Actor::Anonymous, ip: Some(ip) };
        let mut details = serde_json::json!({ "class": class.as_str() });
        if suppressed > 0 {
            details["suppressedRows"] = suppressed.into();
        }
        let event = Event::new(EventType::AccessDeniedIp, &ctx, now).details(details);
        if self.ports.audit.append(&event).await.is_err() {
            self.record_audit_write_failure();
            return;
        }
        self.publish(&event);
    }

    /// How many source addresses the denial tracker holds (bounded; for tests and diagnostics).
    pub fn access_denied_tracked_sources(&self) -> usize {
        self.denials.sources.lock().map(|s| s.len()).unwrap_or(0)
    }
}
