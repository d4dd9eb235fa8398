//! The [`NotificationChannel`] port, one adapter per service, each speaking the service's documented API:
//!
//! * [`Ntfy`]: `POST <topic URL>` with the text as the body and `Title` (RFC 2047 encoded-word when not ASCII, as
//!   ntfy accepts), `Priority` (2..=5), `Tags` and `Click` headers; `Authorization: Bearer` with an access token.
//! * [`Slack`]: an incoming webhook, `{"text", "blocks": [header, section]}` (mrkdwn, `&<>` escaped).
//! * [`Discord`]: a webhook, `{"content", "allowed_mentions": {"parse": []}}`, at most 2000 characters.
//! * [`Telegram`]: `POST <api>/bot<token>/sendMessage` with `{chat_id, text, parse_mode: "HTML",
//!   disable_web_page_preview}` (HTML-escaped), at most 4096 characters; the API base is configurable.
//! * [`Email`]: SMTP through `lettre` (none, STARTTLS or implicit TLS; optional AUTH), text/plain UTF-8.
//!
//! The HTTP ones post through the webhook sender's machinery ([`crate::HttpWebhookSender`]: the SSRF-checked
//! resolver, no proxy, no redirects, one timeout, a capped body); email resolves its host through the same check.
//!
//! **Credentials never leave an adapter.** A webhook URL, a bot token, an access token or an SMTP password is
//! only in the request; every error is scrubbed of them ([`scrub`]) before it becomes the outcome, and `Debug`
//! shows the channel's name only.

mod email;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use waiaas_core::notifications::{ChannelKind, Message, NotificationChannel, SendOutcome};
use waiaas_core::ports::{WebhookRequest, WebhookResponse, WebhookSender};

pub use email::{Email, EmailConfig, SmtpTls};

use crate::{HostResolver, HttpWebhookSender};

/// The `User-Agent` of every notification request.
const USER_AGENT: &str = concat!("waiaas/", env!("CARGO_PKG_VERSION"));

/// Replaces every non-empty secret in `text` with `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "<redacted>");
    }
    out
}

/// Truncates to at most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `&`, `<`, `>` escaped (Slack mrkdwn and Telegram HTML both need these three).
fn escape_angle(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An RFC 2047 encoded-word when `text` is not ASCII (header values must be), the text itself otherwise.
pub fn header_text(text: &str) -> String {
    if text.is_ascii() && !text.contains(['\r', '\n']) {
        return text.to_owned();
    }
    format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(text.replace(['\r', '\n'], " ")))
}

/// The HTTP side shared by the HTTP channels: the webhook sender with a checked resolver.
#[derive(Clone)]
pub struct HttpPoster {
    sender: HttpWebhookSender,
}

impl HttpPoster {
    /// Posts with a per-attempt `timeout`, resolving hosts through `resolver` (checked against the forbidden
    /// address classes; loopback and private addresses are allowed: the operator configures these URLs).
    pub fn new(timeout: Duration, resolver: Arc<dyn HostResolver>) -> Self {
        HttpPoster { sender: HttpWebhookSender::new(timeout, false, resolver) }
    }

    /// Posts `body` to `url` and turns the answer into an outcome, with `secrets` scrubbed from any error.
    async fn post(&self, url: &str, headers: Vec<(&str, String)>, body: Vec<u8>, secrets: &[&str]) -> SendOutcome {
        let mut all = vec![("user-agent".to_owned(), USER_AGENT.to_owned())];
        all.extend(headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
        let request = WebhookRequest { url: url.to_owned(), headers: all, body };
        match self.sender.send(&request).await {
            WebhookResponse::Status { code, elapsed_ms, .. } if (200..300).contains(&code) => {
                SendOutcome::Sent { elapsed_ms }
            }
            WebhookResponse::Status { code, elapsed_ms, .. } => SendOutcome::Failed {
                retryable: matches!(code, 408 | 429 | 500..=599),
                error: format!("HTTP {code}"),
                elapsed_ms,
            },
            WebhookResponse::TransportError { message, elapsed_ms } => SendOutcome::Failed {
                retryable: true,
                error: format!("no answer: {}", scrub(&message, secrets)),
                elapsed_ms,
            },
            WebhookResponse::Refused { message } => SendOutcome::Failed {
                retryable: false,
                error: format!("refused: {}", scrub(&message, secrets)),
                elapsed_ms: 0,
            },
        }
    }
}

fn json_body(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

/// ntfy: a topic URL (the topic name may be a secret of its own) and an optional access token.
pub struct Ntfy {
    http: HttpPoster,
    url: String,
    token: Option<String>,
}

impl Ntfy {
    /// A channel posting to `url` (`https://ntfy.sh/<topic>`), with `token` as `Authorization: Bearer`.
    pub fn new(http: HttpPoster, url: String, token: Option<String>) -> Self {
        Ntfy { http, url, token }
    }
}

#[async_trait]
impl NotificationChannel for Ntfy {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ntfy
    }

    async fn send(&self, message: &Message) -> SendOutcome {
        let mut headers = vec![
            ("content-type", "text/plain; charset=utf-8".to_owned()),
            ("title", header_text(&message.title)),
            ("priority", message.priority.ntfy().to_string()),
            ("tags", message.tags.join(",")),
        ];
        if let Some(link) = &message.link {
            headers.push(("click", link.clone()));
        }
        if let Some(token) = &self.token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let secrets = [self.url.as_str(), self.token.as_deref().unwrap_or("")];
        self.http.post(&self.url, headers, message.body.as_bytes().to_vec(), &secrets).await
    }
}

/// A Slack incoming webhook (the URL is the credential).
pub struct Slack {
    http: HttpPoster,
    url: String,
}

impl Slack {
    /// A channel posting to the incoming webhook `url`.
    pub fn new(http: HttpPoster, url: String) -> Self {
        Slack { http, url }
    }
}

#[async_trait]
impl NotificationChannel for Slack {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Slack
    }

    async fn send(&self, message: &Message) -> SendOutcome {
        let title = escape_angle(&message.title);
        let body = escape_angle(&message.body);
        let payload = serde_json::json!({
            "text": truncate(&format!("*{title}*\n{body}"), 3000),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&message.title, 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&body, 3000)}},
            ],
        });
        let headers = vec![("content-type", "application/json".to_owned())];
        self.http.post(&self.url, headers, json_body(&payload), &[&self.url]).await
    }
}

/// A Discord webhook (the URL is the credential).
pub struct Discord {
    http: HttpPoster,
    url: String,
}

impl Discord {
    /// A channel posting to the webhook `url`.
    pub fn new(http: HttpPoster, url: String) -> Self {
        Discord { http, url }
    }
}

/// Discord's limit on a message's `content`, in characters.
pub const DISCORD_MAX: usize = 2000;

#[async_trait]
impl NotificationChannel for Discord {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Discord
    }

    async fn send(&self, message: &Message) -> SendOutcome {
        let payload = serde_json::json!({
            "content": truncate(&format!("**{}**\n{}", message.title, message.body), DISCORD_MAX),
            "allowed_mentions": {"parse": []},
        });
        let headers = vec![("content-type", "application/json".to_owned())];
        self.http.post(&self.url, headers, json_body(&payload), &[&self.url]).await
    }
}

/// The Telegram Bot API (the bot token is the credential; it sits in the URL's path).
pub struct Telegram {
    http: HttpPoster,
    api_url: String,
    token: String,
    chat_id: String,
}

/// Telegram's limit on a message's text, in characters.
pub const TELEGRAM_MAX: usize = 4096;

impl Telegram {
    /// A channel sending as bot `token` to `chat_id` through the Bot API at `api_url`
    /// (`https://api.telegram.org`).
    pub fn new(http: HttpPoster, api_url: String, token: String, chat_id: String) -> Self {
        Telegram { http, api_url, token, chat_id }
    }
}

#[async_trait]
impl NotificationChannel for Telegram {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    async fn send(&self, message: &Message) -> SendOutcome {
        let url = format!("{}/bot{}/sendMessage", self.api_url.trim_end_matches('/'), self.token);
        let chat_id = match self.chat_id.parse::<i64>() {
            Ok(id) => serde_json::Value::from(id),
            Err(_) => serde_json::Value::from(self.chat_id.clone()),
        };
        let text = format!("<b>{}</b>\n{}", escape_angle(&message.title), escape_angle(&message.body));
        let payload = serde_json::json!({
            "chat_id": chat_id,
            "text": truncate(&text, TELEGRAM_MAX),
            "parse_mode": "HTML",
            "disable_web_page_preview": true,
        });
        let headers = vec![("content-type", "application/json".to_owned())];
        self.http.post(&url, headers, json_body(&payload), &[&url, &self.token]).await
    }
}

#[cfg(test)]
mod tests;
