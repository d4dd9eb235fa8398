//! `[notifications]`: the channels people are told through (ntfy, Slack, Discord, Telegram, email), their order,
//! locale, retries and rate limit. Every credential (`ntfy_url`, `ntfy_token`, `slack_webhook_url`,
//! `discord_webhook_url`, `telegram_bot_token`, `smtp_password`) has a `<key>_file` variant naming a file that holds
//! it (`WAIAAS_NOTIFICATIONS_TELEGRAM_BOT_TOKEN_FILE=/run/secrets/bot`); setting both is refused. Files are read
//! when the daemon starts ([`NotificationsConfig::resolve`]), never logged: `Debug` shows `<redacted>` or the
//! file's path. A channel is configured by its required keys; `<channel>_events` overrides its event list.
//! Applied at start (not on SIGHUP: the channels hold their credentials for the daemon's life).

use std::path::PathBuf;

use waiaas_core::event::EventType;
use waiaas_core::notifications::{ChannelKind, Locale};

use super::Raw;

/// A credential: inline, or in a file read at start.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself (from the file or the environment).
    Value(String),
    /// A file holding it (surrounding whitespace trimmed).
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("<redacted>"),
            Secret::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl Secret {
    /// The value (a file is read now).
    pub fn read(&self, key: &str) -> Result<String, String> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("[notifications] {key}_file: cannot read {}: {e}", path.display()))?;
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return Err(format!("[notifications] {key}_file: {} is empty", path.display()));
                }
                Ok(text)
            }
        }
    }
}

/// How mail is protected on the way to the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SmtpTlsMode {
    /// Plain text.
    None,
    /// STARTTLS, required.
    #[default]
    StartTls,
    /// Implicit TLS.
    Tls,
}

/// `[notifications]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// Priority order; empty: every configured channel in the order ntfy, slack, discord, telegram, email.
    pub channels: Vec<ChannelKind>,
    pub locale: Locale,
    /// Milliseconds before each further round of an entry whose every channel failed.
    pub retry_schedule: Vec<u64>,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
    /// Messages per channel per window; 0 turns the limit off.
    pub rate_limit: u32,
    pub rate_limit_window_seconds: u64,
    pub ntfy_url: Option<Secret>,
    pub ntfy_token: Option<Secret>,
    pub slack_webhook_url: Option<Secret>,
    pub discord_webhook_url: Option<Secret>,
    pub telegram_bot_token: Option<Secret>,
    pub telegram_chat_id: Option<String>,
    pub telegram_api_url: String,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    pub smtp_from: Option<String>,
    pub smtp_to: Vec<String>,
    pub smtp_tls: SmtpTlsMode,
    /// Per channel, its own event list (absent: the default set).
    pub events: Vec<(ChannelKind, Vec<EventType>)>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            channels: Vec::new(),
            locale: Locale::En,
            retry_schedule: vec![1_000, 5_000, 30_000],
            timeout_ms: 10_000,
            rate_limit: 10,
            rate_limit_window_seconds: 60,
            ntfy_url: None,
            ntfy_token: None,
            slack_webhook_url: None,
            discord_webhook_url: None,
            telegram_bot_token: None,
            telegram_chat_id: None,
            telegram_api_url: DEFAULT_TELEGRAM_API.to_owned(),
            smtp_host: None,
            smtp_port: 587,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            smtp_to: Vec::new(),
            smtp_tls: SmtpTlsMode::StartTls,
            events: Vec::new(),
        }
    }
}

/// The Telegram Bot API's base URL.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

/// Keys holding a credential (each also takes `<key>_file`).
const SECRET_KEYS: &[&str] =
    &["ntfy_url", "ntfy_token", "slack_webhook_url", "discord_webhook_url", "telegram_bot_token", "smtp_password"];

/// The other keys.
const PLAIN_KEYS: &[&str] = &[
    "channels",
    "locale",
    "retry_schedule",
    "timeout_ms",
    "rate_limit",
    "rate_limit_window_seconds",
    "telegram_chat_id",
    "telegram_api_url",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_from",
    "smtp_to",
    "smtp_tls",
];

/// Every `[notifications]` key.
pub(super) fn keys() -> Vec<String> {
    let mut keys: Vec<String> = PLAIN_KEYS.iter().map(|k| (*k).to_owned()).collect();
    for key in SECRET_KEYS {
        keys.push((*key).to_owned());
        keys.push(format!("{key}_file"));
    }
    keys.extend(ChannelKind::ALL.iter().map(|c| format!("{}_events", c.as_str())));
    keys
}

fn optional(raw: Raw<'_>) -> Result<Option<String>, String> {
    let text = raw.string()?;
    Ok((!text.trim().is_empty()).then(|| text.trim().to_owned()))
}

fn slot<'a>(config: &'a mut NotificationsConfig, key: &str) -> &'a mut Option<Secret> {
    match key {
        "ntfy_url" => &mut config.ntfy_url,
        "ntfy_token" => &mut config.ntfy_token,
        "slack_webhook_url" => &mut config.slack_webhook_url,
        "discord_webhook_url" => &mut config.discord_webhook_url,
        "telegram_bot_token" => &mut config.telegram_bot_token,
        _ => &mut config.smtp_password,
    }
}

/// Sets `[notifications] key` from `raw`; the error does not name the key (the caller does).
pub(super) fn apply(config: &mut NotificationsConfig, key: &str, raw: Raw<'_>) -> Result<(), String> {
    if SECRET_KEYS.contains(&key) {
        let value = optional(raw)?;
        let slot = slot(config, key);
        if matches!(slot, Some(Secret::File(_))) && value.is_some() {
            return Err(format!("set {key} or {key}_file, not both"));
        }
        if value.is_some() || matches!(slot, Some(Secret::Value(_))) {
            *slot = value.map(Secret::Value);
        }
        return Ok(());
    }
    if let Some(base) = key.strip_suffix("_file").filter(|b| SECRET_KEYS.contains(b)) {
        let path = optional(raw)?;
        let slot = slot(config, base);
        if matches!(slot, Some(Secret::Value(_))) && path.is_some() {
            return Err(format!("set {base} or {base}_file, not both"));
        }
        if path.is_some() || matches!(slot, Some(Secret::File(_))) {
            *slot = path.map(|p| Secret::File(p.into()));
        }
        return Ok(());
    }
    if let Some(channel) = key.strip_suffix("_events").and_then(ChannelKind::parse) {
        let names = raw.string_list()?;
        let unknown: Vec<&str> = names.iter().filter(|n| EventType::parse(n).is_none()).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(format!("unknown event types: {}", unknown.join(", ")));
        }
        config.events.retain(|(c, _)| *c != channel);
        if !names.is_empty() {
            let mut types: Vec<EventType> = Vec::new();
            for t in names.iter().filter_map(|n| EventType::parse(n)) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            config.events.push((channel, types));
        }
        return Ok(());
    }
    match key {
        "channels" => {
            let mut channels = Vec::new();
            for name in raw.string_list()? {
                let channel = ChannelKind::parse(&name)
                    .ok_or_else(|| format!("unknown channel {name:?} (ntfy, slack, discord, telegram, email)"))?;
                if channels.contains(&channel) {
                    return Err(format!("{name:?} is listed twice"));
                }
                channels.push(channel);
            }
            config.channels = channels;
        }
        "locale" => {
            let text = raw.string()?;
            config.locale = Locale::parse(&text).ok_or_else(|| format!("expected \"en\" or \"ko\", found {text:?}"))?;
        }
        "retry_schedule" => {
            let items = raw.string_list_or_integers()?;
            config.retry_schedule = items
                .iter()
                .map(|s| s.trim().parse::<u64>().ok().filter(|n| (1..=86_400_000).contains(n)))
                .collect::<Option<Vec<_>>>()
                .filter(|v| v.len() <= 20)
                .ok_or_else(|| "expected at most 20 delays in milliseconds, each 1..=86400000".to_owned())?;
        }
        "timeout_ms" => config.timeout_ms = raw.integer("100..=120000")?,
        "rate_limit" => config.rate_limit = raw.integer("0..=10000")?,
        "rate_limit_window_seconds" => config.rate_limit_window_seconds = raw.integer("1..=86400")?,
        "telegram_chat_id" => config.telegram_chat_id = optional(raw)?,
        "telegram_api_url" => config.telegram_api_url = raw.string()?,
        "smtp_host" => config.smtp_host = optional(raw)?,
        "smtp_port" => config.smtp_port = raw.integer("1..=65535")?,
        "smtp_username" => config.smtp_username = optional(raw)?,
        "smtp_from" => config.smtp_from = optional(raw)?,
        "smtp_to" => config.smtp_to = raw.string_list()?,
        "smtp_tls" => {
            config.smtp_tls = match raw.string()?.as_str() {
                "none" => SmtpTlsMode::None,
                "starttls" => SmtpTlsMode::StartTls,
                "tls" => SmtpTlsMode::Tls,
                other => return Err(format!("expected \"none\", \"starttls\" or \"tls\", found {other:?}")),
            }
        }
        _ => return Err(format!("unknown key {key:?} in [notifications]")),
    }
    Ok(())
}

fn http_url(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/'))
}

impl NotificationsConfig {
    /// The channels whose required keys are set, in the default order.
    pub fn configured(&self) -> Vec<ChannelKind> {
        ChannelKind::ALL
            .iter()
            .copied()
            .filter(|c| match c {
                ChannelKind::Ntfy => self.ntfy_url.is_some(),
                ChannelKind::Slack => self.slack_webhook_url.is_some(),
                ChannelKind::Discord => self.discord_webhook_url.is_some(),
                ChannelKind::Telegram => self.telegram_bot_token.is_some(),
                ChannelKind::Email => self.smtp_host.is_some(),
            })
            .collect()
    }

    /// The priority order in force: `channels`, else every configured channel in the default order.
    pub fn order(&self) -> Vec<ChannelKind> {
        if self.channels.is_empty() { self.configured() } else { self.channels.clone() }
    }

    /// Cross-key checks; the message names the `[notifications] key`.
    pub(super) fn validate(&self) -> Result<(), String> {
        let configured = self.configured();
        if let Some(missing) = self.channels.iter().find(|c| !configured.contains(c)) {
            return Err(format!("[notifications] channels: {} is listed but not configured", missing.as_str()));
        }
        if !self.channels.is_empty()
            && let Some(unlisted) = configured.iter().find(|c| !self.channels.contains(c))
        {
            return Err(format!(
                "[notifications] channels: {} is configured but not listed (list every configured channel)",
                unlisted.as_str()
            ));
        }
        for (key, url) in [
            ("ntfy_url", &self.ntfy_url),
            ("slack_webhook_url", &self.slack_webhook_url),
            ("discord_webhook_url", &self.discord_webhook_url),
        ] {
            if let Some(Secret::Value(url)) = url
                && !http_url(url)
            {
                return Err(format!("[notifications] {key}: not an http:// or https:// URL"));
            }
        }
        if !http_url(&self.telegram_api_url) {
            return Err("[notifications] telegram_api_url: not an http:// or https:// URL".to_owned());
        }
        if self.telegram_bot_token.is_some() != self.telegram_chat_id.is_some() {
            return Err(
                "[notifications] telegram_chat_id: telegram needs both telegram_bot_token and telegram_chat_id"
                    .to_owned(),
            );
        }
        if self.smtp_host.is_some() {
            if self.smtp_from.is_none() {
                return Err("[notifications] smtp_from: email needs a sender address".to_owned());
            }
            if self.smtp_to.is_empty() {
                return Err("[notifications] smtp_to: email needs at least one recipient".to_owned());
            }
            if self.smtp_password.is_some() != self.smtp_username.is_some() {
                return Err(
                    "[notifications] smtp_username: set both smtp_username and smtp_password, or neither".to_owned()
                );
            }
        }
        if let Some((channel, _)) = self.events.iter().find(|(c, _)| !configured.contains(c)) {
            return Err(format!(
                "[notifications] {}_events: the {} channel is not configured",
                channel.as_str(),
                channel.as_str()
            ));
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("[notifications] timeout_ms: must be between 100 and 120000".to_owned());
        }
        if !(1..=86_400).contains(&self.rate_limit_window_seconds) {
            return Err("[notifications] rate_limit_window_seconds: must be between 1 and 86400".to_owned());
        }
        Ok(())
    }

    /// Every credential read (files now); errors name the key, never the value.
    pub fn resolve(&self) -> Result<ResolvedSecrets, String> {
        let read = |secret: &Option<Secret>, key: &str| secret.as_ref().map(|s| s.read(key)).transpose();
        let resolved = ResolvedSecrets {
            ntfy_url: read(&self.ntfy_url, "ntfy_url")?,
            ntfy_token: read(&self.ntfy_token, "ntfy_token")?,
            slack_webhook_url: read(&self.slack_webhook_url, "slack_webhook_url")?,
            discord_webhook_url: read(&self.discord_webhook_url, "discord_webhook_url")?,
            telegram_bot_token: read(&self.telegram_bot_token, "telegram_bot_token")?,
            smtp_password: read(&self.smtp_password, "smtp_password")?,
        };
        for (key, url) in [
            ("ntfy_url", &resolved.ntfy_url),
            ("slack_webhook_url", &resolved.slack_webhook_url),
            ("discord_webhook_url", &resolved.discord_webhook_url),
        ] {
            if url.as_deref().is_some_and(|u| !http_url(u)) {
                return Err(format!("[notifications] {key}: not an http:// or https:// URL"));
            }
        }
        Ok(resolved)
    }
}

/// The credentials, read. `Debug` shows none of them.
#[derive(Clone, Default)]
pub struct ResolvedSecrets {
    pub ntfy_url: Option<String>,
    pub ntfy_token: Option<String>,
    pub slack_webhook_url: Option<String>,
    pub discord_webhook_url: Option<String>,
    pub telegram_bot_token: Option<String>,
    pub smtp_password: Option<String>,
}

impl std::fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolvedSecrets(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, DEFAULT_CONFIG_TOML};
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load(Some(("config.toml", toml)), env).map_err(|e| e.to_string())
    }

    #[test]
    fn channels_are_configured_by_their_keys_and_ordered() {
        let config = load(
            "[notifications]\nslack_webhook_url = \"https://hooks.slack.com/services/T/B/x\"\n\
             telegram_bot_token = \"123:abc\"\ntelegram_chat_id = \"42\"\nlocale = \"ko\"\n\
             telegram_events = [\"TX_CONFIRMED\", \"TX_CONFIRMED\"]\n",
            &[("WAIAAS_NOTIFICATIONS_NTFY_URL", "https://ntfy.sh/alerts")],
        )
        .unwrap();
        let n = &config.notifications;
        assert_eq!(n.order(), [ChannelKind::Ntfy, ChannelKind::Slack, ChannelKind::Telegram]);
        assert_eq!(n.locale, Locale::Ko);
        assert_eq!(n.events, [(ChannelKind::Telegram, vec![EventType::TxConfirmed])]);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("123:abc") && !debug.contains("hooks.slack.com") && !debug.contains("ntfy.sh"),
            "{debug}"
        );
        let ordered = load(
            "[notifications]\nchannels = [\"telegram\", \"ntfy\"]\nntfy_url = \"http://127.0.0.1:1/t\"\n\
             telegram_bot_token_file = \"/run/secrets/bot\"\ntelegram_chat_id = \"@ops\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(ordered.notifications.order(), [ChannelKind::Telegram, ChannelKind::Ntfy]);
        assert_eq!(ordered.notifications.telegram_bot_token, Some(Secret::File("/run/secrets/bot".into())));
    }

    #[test]
    fn files_are_read_at_resolve_and_errors_name_keys_not_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-smtp\n").unwrap();
        let toml = format!(
            "[notifications]\nsmtp_host = \"127.0.0.1\"\nsmtp_from = \"w@example.com\"\nsmtp_to = [\"o@example.com\"]\n\
             smtp_username = \"u\"\nsmtp_password_file = {:?}\n",
            path.display().to_string()
        );
        let config = load(&toml, &[]).unwrap();
        assert_eq!(config.notifications.resolve().unwrap().smtp_password.as_deref(), Some("s3cret-smtp"));
        std::fs::write(&path, "  \n").unwrap();
        let error = config.notifications.resolve().unwrap_err();
        assert!(error.contains("smtp_password_file") && error.contains("empty"), "{error}");
    }

    #[test]
    fn bad_combinations_are_refused_naming_the_key() {
        for (toml, expected) in [
            ("ntfy_url = \"https://x/t\"\nntfy_url_file = \"/p\"", "set ntfy_url or ntfy_url_file, not both"),
            ("channels = [\"pager\"]", "unknown channel \"pager\""),
            ("channels = [\"slack\"]", "channels: slack is listed but not configured"),
            (
                "ntfy_url = \"https://x/t\"\nslack_webhook_url = \"https://y/z\"\nchannels = [\"slack\"]",
                "ntfy is configured but not listed",
            ),
            ("telegram_bot_token = \"1:a\"", "telegram needs both"),
            ("smtp_host = \"h\"\nsmtp_to = [\"a@b.c\"]", "smtp_from"),
            ("ntfy_url = \"ftp://x\"", "ntfy_url: not an http"),
            ("ntfy_events = [\"NOPE\"]", "unknown event types: NOPE"),
            ("slack_events = [\"TX_FAILED\"]", "the slack channel is not configured"),
            ("locale = \"fr\"", "expected \"en\" or \"ko\""),
            ("smtp_tls = \"ssl\"", "expected \"none\", \"starttls\" or \"tls\""),
            ("pager_url = \"x\"", "unknown key \"pager_url\" in [notifications]"),
        ] {
            let error = load(&format!("[notifications]\n{toml}\n"), &[]).unwrap_err();
            assert!(error.contains("[notifications]") && error.contains(expected), "{toml}: {error}");
        }
    }

    #[test]
    fn every_key_is_in_the_init_file() {
        for key in keys() {
            assert!(DEFAULT_CONFIG_TOML.contains(&format!("# {key} = ")), "{key} missing from the init file");
        }
        assert!(DEFAULT_CONFIG_TOML.contains("# [notifications]"));
    }
}
