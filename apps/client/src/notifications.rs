//! Notifications for people over the API: the notification log and test messages (master password).

use serde::{Deserialize, Serialize};

use crate::types::Page;
use crate::{Auth, Client, Result, page_query, push, with_query};

/// One notification log row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationLog {
    pub id: i64,
    /// `ntfy`, `slack`, `discord`, `telegram` or `email`.
    pub channel: String,
    /// `event`, `digest` or `test`.
    pub kind: String,
    #[serde(default)]
    pub audit_id: Option<i64>,
    #[serde(default)]
    pub event_type: Option<String>,
    pub attempt: u32,
    /// `sent`, `failed` or `held`.
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    pub response_time_ms: u64,
    pub created_at: i64,
}

/// `GET /v1/admin/notifications/log` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationLogFilter {
    pub channel: Option<String>,
    /// `sent`, `failed` or `held`.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// What a test message gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationTest {
    pub channel: String,
    pub sent: bool,
    #[serde(default)]
    pub error: Option<String>,
    pub response_time_ms: u64,
}

#[derive(Serialize)]
struct TestRequest<'a> {
    channel: &'a str,
}

impl Client {
    /// The notification log, newest first.
    pub fn notification_log(&self, filter: &NotificationLogFilter) -> Result<Page<NotificationLog>> {
        let mut query = Vec::new();
        push(&mut query, "channel", filter.channel.as_deref());
        push(&mut query, "status", filter.status.as_deref());
        query.extend(page_query(filter.cursor.as_deref(), filter.limit));
        self.call("GET", &with_query("/v1/admin/notifications/log", &query), Auth::Master, None::<&()>)
    }

    /// Sends a test message through `channel` (`ntfy`, `slack`, `discord`, `telegram`, `email`) now.
    pub fn test_notification(&self, channel: &str) -> Result<NotificationTest> {
        self.call("POST", "/v1/admin/notifications/test", Auth::Master, Some(&TestRequest { channel }))
    }
}
