//! Notifications for people (master password): the log of every attempt, held-back message, digest and test
//! (`GET /v1/admin/notifications/log`), and a test message through one channel, sent now
//! (`POST /v1/admin/notifications/test`). Nothing here names a channel's URL or credential.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use waiaas_core::notifications::{ChannelKind, LogKind, LogStatus, SendOutcome};
use waiaas_core::ports::NotificationLogEntry;

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::wire::PageLimit;

/// A notification channel.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum NotificationChannelDto {
    Ntfy,
    Slack,
    Discord,
    Telegram,
    Email,
}

impl NotificationChannelDto {
    fn core(self) -> ChannelKind {
        match self {
            NotificationChannelDto::Ntfy => ChannelKind::Ntfy,
            NotificationChannelDto::Slack => ChannelKind::Slack,
            NotificationChannelDto::Discord => ChannelKind::Discord,
            NotificationChannelDto::Telegram => ChannelKind::Telegram,
            NotificationChannelDto::Email => ChannelKind::Email,
        }
    }

    fn from_core(kind: ChannelKind) -> Self {
        match kind {
            ChannelKind::Ntfy => NotificationChannelDto::Ntfy,
            ChannelKind::Slack => NotificationChannelDto::Slack,
            ChannelKind::Discord => NotificationChannelDto::Discord,
            ChannelKind::Telegram => NotificationChannelDto::Telegram,
            ChannelKind::Email => NotificationChannelDto::Email,
        }
    }
}

/// What happened to a message on a channel.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum NotificationStatusDto {
    Sent,
    Failed,
    Held,
}

/// What the message was.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum NotificationKindDto {
    Event,
    Digest,
    Test,
}

/// One notification log row.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct NotificationLogDto {
    pub id: i64,
    pub channel: NotificationChannelDto,
    /// event (about an audit row), digest (of held-back messages) or test.
    pub kind: NotificationKindDto,
    /// The audit row of the event (event messages).
    #[oai(nullable)]
    pub audit_id: Option<i64>,
    #[oai(nullable)]
    pub event_type: Option<String>,
    /// The round of the event's queue entry (1 for the first).
    pub attempt: u32,
    /// sent, failed (this attempt) or held (by the channel's rate limit, counted in its next digest).
    pub status: NotificationStatusDto,
    /// Why it failed, or what a digest summed up; never a URL or credential.
    #[oai(nullable)]
    pub error: Option<String>,
    pub response_time_ms: u64,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<NotificationLogEntry> for NotificationLogDto {
    fn from(e: NotificationLogEntry) -> Self {
        NotificationLogDto {
            id: e.id,
            channel: NotificationChannelDto::from_core(e.channel),
            kind: match e.kind {
                LogKind::Event => NotificationKindDto::Event,
                LogKind::Digest => NotificationKindDto::Digest,
                LogKind::Test => NotificationKindDto::Test,
            },
            audit_id: e.audit_id,
            event_type: e.event_type.map(|t| t.as_str().to_owned()),
            attempt: e.attempt,
            status: match e.status {
                LogStatus::Sent => NotificationStatusDto::Sent,
                LogStatus::Failed => NotificationStatusDto::Failed,
                LogStatus::Held => NotificationStatusDto::Held,
            },
            error: e.error,
            response_time_ms: e.response_time_ms,
            created_at: e.created_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct NotificationLogPage {
    pub data: Vec<NotificationLogDto>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestNotificationRequest {
    /// A configured channel.
    pub channel: NotificationChannelDto,
}

/// What the test message gave.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TestNotificationDto {
    pub channel: NotificationChannelDto,
    /// True when the service took the message.
    pub sent: bool,
    /// Why not (never a URL or credential).
    #[oai(nullable)]
    pub error: Option<String>,
    pub response_time_ms: u64,
}

pub struct NotificationsApi;

#[OpenApi(tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// The notification log, newest first: every attempt on a channel, message held back, digest and test.
    #[oai(path = "/v1/admin/notifications/log", method = "get", operation_id = "listNotificationLog")]
    async fn log(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only this channel's rows.
        channel: Query<Option<NotificationChannelDto>>,
        /// Only rows with this status.
        status: Query<Option<NotificationStatusDto>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<NotificationLogPage>> {
        let channel = channel.0.map(|c| c.core().as_str());
        let status = status.0.map(|s| match s {
            NotificationStatusDto::Sent => "sent",
            NotificationStatusDto::Failed => "failed",
            NotificationStatusDto::Held => "held",
        });
        let result = state.core.notification_log(channel, status, cursor.0.as_deref(), limit.0.map(|l| l.0)).await?;
        let (data, next_cursor, has_more) = page(result, NotificationLogDto::from);
        Ok(Json(NotificationLogPage { data, next_cursor, has_more }))
    }

    /// Send a test message through one configured channel now (not rate limited), and say what it gave. A channel
    /// that is not configured is 404 `CHANNEL_NOT_CONFIGURED`.
    #[oai(path = "/v1/admin/notifications/test", method = "post", operation_id = "testNotification")]
    async fn test(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<TestNotificationRequest>,
    ) -> ApiResult<Json<TestNotificationDto>> {
        let tested = state.core.test_notification(body.0.channel.core()).await?;
        let (sent, error) = match &tested.outcome {
            SendOutcome::Sent { .. } => (true, None),
            SendOutcome::Failed { error, .. } => (false, Some(error.clone())),
        };
        Ok(Json(TestNotificationDto {
            channel: NotificationChannelDto::from_core(tested.channel),
            sent,
            error,
            response_time_ms: tested.outcome.elapsed_ms(),
        }))
    }
}
