//! Receivers for every notification channel, each reading the request the way its service documents it: ntfy
//! (the body is the message; `Title` possibly an RFC 2047 encoded-word, `Priority`, `Tags`), a Slack incoming
//! webhook (`text`, `blocks`), a Discord webhook (`content`), the Telegram Bot API (`/bot<token>/sendMessage`
//! with `chat_id`, `text`, `parse_mode`) and an SMTP server (aiosmtpd, with AUTH). [`Channels::env`] configures a
//! daemon for all of them, with a credential each; [`SECRETS`] lists them for the hygiene scans.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Received, Receiver};

pub const NTFY_TOKEN: &str = "tk_ntfytoken7f3a9c";
pub const SLACK_PATH: &str = "/services/T0SLACK/B0SLACK/slackhooksecret42";
pub const DISCORD_PATH: &str = "/api/webhooks/1234/discordhooksecret42";
pub const TELEGRAM_TOKEN: &str = "424242:telegramBotSecretToken";
pub const TELEGRAM_CHAT: &str = "-1001234";
pub const SMTP_USER: &str = "mailer";
pub const SMTP_PASSWORD: &str = "smtp-password-9c1e";
pub const NTFY_TOPIC: &str = "/waiaas-topic-8e2d";

/// Every credential a daemon configured by [`Channels::env`] holds.
pub const SECRETS: &[&str] = &[
    NTFY_TOKEN,
    NTFY_TOPIC,
    SLACK_PATH,
    DISCORD_PATH,
    "slackhooksecret42",
    "discordhooksecret42",
    TELEGRAM_TOKEN,
    SMTP_PASSWORD,
];

/// One message as a person would read it, from any channel.
#[derive(Clone, Debug)]
pub struct Seen {
    pub title: String,
    pub text: String,
}

/// Decodes `=?UTF-8?B?...?=` (RFC 2047), or returns the text.
fn rfc2047(value: &str) -> String {
    match value.strip_prefix("=?UTF-8?B?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => String::from_utf8(STANDARD.decode(encoded).expect("base64 word")).expect("UTF-8 title"),
        None => value.to_owned(),
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// ntfy: POST to the topic, the body is the message.
pub fn ntfy(r: &Received) -> Seen {
    assert_eq!(r.path, NTFY_TOPIC, "ntfy posts to the topic URL");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {NTFY_TOKEN}").as_str()));
    let priority: u8 = r.header("priority").expect("Priority").parse().expect("a numeric priority");
    assert!((1..=5).contains(&priority));
    assert!(r.header("tags").is_some_and(|t| t.split(',').all(|t| !t.is_empty())), "Tags");
    Seen { title: rfc2047(r.header("title").expect("Title")), text: String::from_utf8(r.body.clone()).expect("UTF-8") }
}

/// Slack: `{"text", "blocks": [header, section]}`.
pub fn slack(r: &Received) -> Seen {
    assert_eq!(r.path, SLACK_PATH);
    let body = r.json();
    assert!(body["text"].is_string(), "{body}");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][1]["text"]["type"], "mrkdwn");
    Seen {
        title: body["blocks"][0]["text"]["text"].as_str().expect("header").to_owned(),
        text: unescape(body["blocks"][1]["text"]["text"].as_str().expect("section")),
    }
}

/// Discord: `{"content"}` of at most 2000 characters, no mentions parsed.
pub fn discord(r: &Received) -> Seen {
    assert_eq!(r.path, DISCORD_PATH);
    let body = r.json();
    let content = body["content"].as_str().expect("content");
    assert!(content.chars().count() <= 2000);
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
    let (title, text) = content.split_once('\n').expect("title line");
    Seen { title: title.trim_matches('*').to_owned(), text: text.to_owned() }
}

/// Telegram: `POST /bot<token>/sendMessage` with `{chat_id, text, parse_mode: "HTML"}`.
pub fn telegram(r: &Received) -> Seen {
    assert_eq!(r.path, format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
    let body = r.json();
    assert_eq!(body["chat_id"], TELEGRAM_CHAT.parse::<i64>().unwrap());
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().expect("text");
    assert!(text.chars().count() <= 4096);
    let (title, rest) = text.split_once('\n').expect("title line");
    Seen { title: unescape(title.trim_start_matches("<b>").trim_end_matches("</b>")), text: unescape(rest) }
}

/// One email the SMTP sink received.
#[derive(Clone, Debug)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub login: String,
    pub subject: String,
    pub body: String,
}

/// An SMTP server on loopback (aiosmtpd from target/tools/python, installed by scripts/test).
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    child: Child,
}

/// A MIME header's value (RFC 2047 words decoded).
fn mime_header(head: &str, name: &str) -> String {
    let mut value = String::new();
    let mut inside = false;
    for line in head.lines() {
        if inside && line.starts_with([' ', '\t']) {
            value.push_str(line.trim());
            continue;
        }
        inside = false;
        if let Some(v) = line.strip_prefix(&format!("{name}: ")) {
            value = v.trim().to_owned();
            inside = true;
        }
    }
    value
        .split_whitespace()
        .map(|word| {
            if let Some(b) = word.strip_prefix("=?utf-8?b?").or_else(|| word.strip_prefix("=?UTF-8?B?")) {
                String::from_utf8(STANDARD.decode(b.trim_end_matches("?=")).expect("base64")).expect("UTF-8")
            } else {
                format!("{word} ")
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A MIME body as text (quoted-printable or base64 decoded).
fn mime_body(head: &str, body: &str) -> String {
    let encoding = mime_header(head, "Content-Transfer-Encoding").to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8(STANDARD.decode(joined).expect("base64 body")).expect("UTF-8 body")
        }
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "").replace("=\n", "");
            let mut bytes = Vec::new();
            let raw = joined.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'=' && i + 2 < raw.len() {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap_or("");
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        bytes.push(b);
                        i += 3;
                        continue;
                    }
                }
                bytes.push(raw[i]);
                i += 1;
            }
            String::from_utf8(bytes).expect("UTF-8 body")
        }
        _ => body.to_owned(),
    }
    .replace("\r\n", "\n")
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/python");
        assert!(tools.join("aiosmtpd").is_dir(), "aiosmtpd is not installed: run scripts/test");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("it/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([SMTP_USER, SMTP_PASSWORD])
            .env("PYTHONPATH", tools)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().expect("the sink's port").expect("a line")).expect("JSON");
        let port = u16::try_from(first["port"].as_u64().expect("port")).expect("a port");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&mails);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let m: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                let data = m["data"].as_str().unwrap_or_default().replace("\r\n", "\n");
                let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
                let mail = Mail {
                    mail_from: m["mail_from"].as_str().unwrap_or_default().to_owned(),
                    rcpt_tos: m["rcpt_tos"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .map(str::to_owned)
                        .collect(),
                    login: m["login"].as_str().unwrap_or_default().to_owned(),
                    subject: mime_header(head, "Subject"),
                    body: mime_body(head, body),
                };
                sink.lock().expect("mails").push(mail);
            }
        });
        SmtpSink { port, mails, child }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.mails()
            .into_iter()
            .map(|m| {
                assert_eq!((m.mail_from.as_str(), m.login.as_str()), ("waiaas@example.com", SMTP_USER));
                assert_eq!(m.rcpt_tos, ["ops@example.com", "owner@example.com"]);
                Seen { title: m.subject, text: m.body }
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receiver for each channel.
pub struct Channels {
    pub ntfy: Receiver,
    pub slack: Receiver,
    pub discord: Receiver,
    pub telegram: Receiver,
    pub smtp: SmtpSink,
}

impl Channels {
    /// Every receiver answering as its service does on success.
    pub fn start() -> Channels {
        Channels {
            ntfy: Receiver::status(200),
            slack: Receiver::status(200),
            discord: Receiver::status(204),
            telegram: Receiver::status(200),
            smtp: SmtpSink::start(),
        }
    }

    /// `WAIAAS_NOTIFICATIONS_*` for all five channels (default order: ntfy, slack, discord, telegram, email).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("NTFY_URL", self.ntfy.url(NTFY_TOPIC)),
            ("NTFY_TOKEN", NTFY_TOKEN.to_owned()),
            ("SLACK_WEBHOOK_URL", self.slack.url(SLACK_PATH)),
            ("DISCORD_WEBHOOK_URL", self.discord.url(DISCORD_PATH)),
            ("TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN.to_owned()),
            ("TELEGRAM_CHAT_ID", TELEGRAM_CHAT.to_owned()),
            ("TELEGRAM_API_URL", self.telegram.url("")),
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", self.smtp.port.to_string()),
            ("SMTP_USERNAME", SMTP_USER.to_owned()),
            ("SMTP_PASSWORD", SMTP_PASSWORD.to_owned()),
            ("SMTP_FROM", "WAIaaS <waiaas@example.com>".to_owned()),
            ("SMTP_TO", "ops@example.com,owner@example.com".to_owned()),
            ("SMTP_TLS", "none".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("WAIAAS_NOTIFICATIONS_{k}"), v))
        .collect()
    }

    /// What each channel delivered so far, as (channel, message).
    pub fn seen(&self) -> Vec<(&'static str, Seen)> {
        let mut all = Vec::new();
        all.extend(self.ntfy.received().iter().map(|r| ("ntfy", ntfy(r))));
        all.extend(self.slack.received().iter().map(|r| ("slack", slack(r))));
        all.extend(self.discord.received().iter().map(|r| ("discord", discord(r))));
        all.extend(self.telegram.received().iter().map(|r| ("telegram", telegram(r))));
        all.extend(self.smtp.seen().into_iter().map(|s| ("email", s)));
        all
    }

    /// The channels that delivered a message whose title contains `title`.
    pub fn delivered(&self, title: &str) -> Vec<&'static str> {
        let mut channels: Vec<&'static str> =
            self.seen().into_iter().filter(|(_, s)| s.title.contains(title)).map(|(c, _)| c).collect();
        channels.dedup();
        channels
    }
}
