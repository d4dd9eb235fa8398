//! Notifications for people (the pure part): which channels exist, what a message is, the
//! [`NotificationChannel`] port the adapters implement (ntfy, Slack, Discord, Telegram, email), routing by event
//! type ([`routing`]), the per-channel rate limit ([`rate`]) and the message templates in English and Korean
//! ([`templates`]). Webhooks are for systems; these are short, readable messages on channels people watch.
//!
//! The service ([`crate::services::NotificationHub`]) runs them: a notifier reads the audit log after its
//! persisted cursor, routes each row into its own durable queue, renders and sends (see
//! [`crate::ports::NotificationRepo`]). A channel never reports a credential: its errors and its name are all
//! that reach logs, the notification log and the audit log.

pub mod rate;
pub mod routing;
pub mod templates;

#[cfg(test)]
mod tests;

use async_trait::async_trait;

/// A kind of channel; at most one of each is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// ntfy: an HTTP POST to a topic URL with `Title`, `Priority`, `Tags` headers.
    Ntfy,
    /// A Slack incoming webhook (`{"text", "blocks"}`).
    Slack,
    /// A Discord webhook (`{"content", "embeds"}`).
    Discord,
    /// The Telegram Bot API's `sendMessage`.
    Telegram,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    /// Every kind, in the default priority order.
    pub const ALL: &'static [ChannelKind] =
        &[ChannelKind::Ntfy, ChannelKind::Slack, ChannelKind::Discord, ChannelKind::Telegram, ChannelKind::Email];

    /// The config and wire name (`ntfy`, `slack`, `discord`, `telegram`, `email`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Email => "email",
        }
    }

    /// Parses the config and wire name.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// The language messages are written in (`[notifications] locale`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Locale {
    /// English.
    #[default]
    En,
    /// Korean.
    Ko,
}

impl Locale {
    /// Every locale.
    pub const ALL: &'static [Locale] = &[Locale::En, Locale::Ko];

    /// The config name (`en`, `ko`).
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ko => "ko",
        }
    }

    /// Parses the config name.
    pub fn parse(s: &str) -> Option<Locale> {
        Locale::ALL.iter().copied().find(|l| l.as_str() == s)
    }
}

/// How urgent a message is (ntfy's priority 2..=5; other channels mark it in the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Routine (ntfy 2).
    Low,
    /// Worth reading (ntfy 3).
    Default,
    /// Needs attention (ntfy 4).
    High,
    /// Needs someone now (ntfy 5).
    Urgent,
}

impl Priority {
    /// ntfy's numeric priority.
    pub fn ntfy(self) -> u8 {
        match self {
            Priority::Low => 2,
            Priority::Default => 3,
            Priority::High => 4,
            Priority::Urgent => 5,
        }
    }
}

/// One message for people, rendered from an event ([`templates`]). It never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// A short title (the email subject, the ntfy title).
    pub title: String,
    /// The text, plain, lines separated by `\n`.
    pub body: String,
    /// How urgent it is.
    pub priority: Priority,
    /// Short ASCII tags (ntfy shows them; emoji short codes where ntfy knows them).
    pub tags: Vec<String>,
    /// A link to open (the block explorer), when there is one.
    pub link: Option<String>,
}

/// What one send through a channel gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The service took the message.
    Sent {
        /// Milliseconds until the service answered.
        elapsed_ms: u64,
    },
    /// It did not.
    Failed {
        /// Whether the same message may go through later (timeouts, connection errors, 408, 429, 5xx); false for
        /// an answer that will not change (a refused credential, a malformed request, a forbidden address).
        retryable: bool,
        /// Why, without any credential (the adapter scrubs its URL, token and password out).
        error: String,
        /// Milliseconds until the failure.
        elapsed_ms: u64,
    },
}

impl SendOutcome {
    /// True when the message was taken.
    pub fn is_sent(&self) -> bool {
        matches!(self, SendOutcome::Sent { .. })
    }

    /// Milliseconds the attempt took.
    pub fn elapsed_ms(&self) -> u64 {
        match self {
            SendOutcome::Sent { elapsed_ms } | SendOutcome::Failed { elapsed_ms, .. } => *elapsed_ms,
        }
    }
}

/// One configured channel: the service's real API, with its credentials kept inside the adapter.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NotificationChannel: Send + Sync {
    /// Which channel this is (the only thing logs and records name).
    fn kind(&self) -> ChannelKind;
    /// Sends one message; never panics, never reports a credential.
    async fn send(&self, message: &Message) -> SendOutcome;
}

/// What a notification log row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// A message about an event (an audit row).
    Event,
    /// A digest of the messages the rate limit held back.
    Digest,
    /// A test message (`POST /v1/admin/notifications/test`).
    Test,
}

impl LogKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Event => "event",
            LogKind::Digest => "digest",
            LogKind::Test => "test",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<LogKind> {
        [LogKind::Event, LogKind::Digest, LogKind::Test].into_iter().find(|k| k.as_str() == s)
    }
}

/// What happened to one message on one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStatus {
    /// The service took it.
    Sent,
    /// This attempt failed (another channel, a later round, or nothing follows: see the queue).
    Failed,
    /// The channel's rate limit held it back; it is counted in the channel's next digest.
    Held,
}

impl LogStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Sent => "sent",
            LogStatus::Failed => "failed",
            LogStatus::Held => "held",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(s: &str) -> Option<LogStatus> {
        [LogStatus::Sent, LogStatus::Failed, LogStatus::Held].into_iter().find(|k| k.as_str() == s)
    }

    /// The `result` label of `waiaas_notifications_total`.
    pub fn result_label(self) -> &'static str {
        self.as_str()
    }
}

/// The `result` label values of `waiaas_notifications_total`.
pub const RESULTS: &[&str] = &["sent", "failed", "held"];

/// The `channel` label values of `waiaas_notifications_total`.
pub const CHANNELS: &[&str] = &["ntfy", "slack", "discord", "telegram", "email"];
