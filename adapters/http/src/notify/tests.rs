//! Each HTTP channel against a one-shot receiver on loopback: the request as the service documents it; errors
//! carry no credential.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use waiaas_core::notifications::Priority;

use super::*;
use crate::SystemResolver;

/// (request line, lowercase headers, body).
type Request = (String, Vec<(String, String)>, String);

/// Answers `status` to one request and returns it.
fn receiver(status: u16) -> (u16, std::thread::JoinHandle<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.trim_end().split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        (&stream).write_all(answer.as_bytes()).unwrap();
        (request_line.trim_end().to_owned(), headers, String::from_utf8(body).unwrap())
    });
    (port, handle)
}

fn http() -> HttpPoster {
    HttpPoster::new(Duration::from_secs(5), Arc::new(SystemResolver))
}

fn message() -> Message {
    Message {
        title: "[WAIaaS] 승인 필요: <bot> & co".to_owned(),
        body: "line <1>\nline 2".to_owned(),
        priority: Priority::High,
        tags: vec!["lock".to_owned(), "waiaas".to_owned()],
        link: Some("https://explorer.example/tx/0x1".to_owned()),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn ntfy_posts_the_text_with_title_priority_tags_click_and_token() {
    let (port, got) = receiver(200);
    let channel = Ntfy::new(http(), format!("http://127.0.0.1:{port}/alerts-9f2"), Some("tk_secret_1".into()));
    assert!(channel.send(&message()).await.is_sent());
    let (line, headers, body) = got.join().unwrap();
    assert_eq!(line, "POST /alerts-9f2 HTTP/1.1");
    assert_eq!(body, "line <1>\nline 2");
    let title = header(&headers, "title").unwrap();
    let encoded = title.strip_prefix("=?UTF-8?B?").and_then(|t| t.strip_suffix("?=")).expect("RFC 2047");
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "[WAIaaS] 승인 필요: <bot> & co");
    assert_eq!(header(&headers, "priority"), Some("4"));
    assert_eq!(header(&headers, "tags"), Some("lock,waiaas"));
    assert_eq!(header(&headers, "click"), Some("https://explorer.example/tx/0x1"));
    assert_eq!(header(&headers, "authorization"), Some("Bearer tk_secret_1"));
    assert_eq!(header_text("plain"), "plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_discord_and_telegram_post_their_documented_json() {
    let (port, got) = receiver(200);
    assert!(Slack::new(http(), format!("http://127.0.0.1:{port}/services/T/B/x")).send(&message()).await.is_sent());
    let (line, _, body) = got.join().unwrap();
    assert_eq!(line, "POST /services/T/B/x HTTP/1.1");
    let slack: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(slack["blocks"][0]["text"]["text"], "[WAIaaS] 승인 필요: <bot> & co");
    assert_eq!(slack["blocks"][1]["text"], serde_json::json!({"type": "mrkdwn", "text": "line &lt;1&gt;\nline 2"}));
    assert!(slack["text"].as_str().unwrap().starts_with("*[WAIaaS] 승인 필요: &lt;bot&gt; &amp; co*\n"));

    let (port, got) = receiver(204);
    let mut long = message();
    long.body = "x".repeat(5000);
    assert!(Discord::new(http(), format!("http://127.0.0.1:{port}/api/webhooks/1/t")).send(&long).await.is_sent());
    let (_, _, body) = got.join().unwrap();
    let discord: serde_json::Value = serde_json::from_str(&body).unwrap();
    let content = discord["content"].as_str().unwrap();
    assert_eq!(content.chars().count(), DISCORD_MAX);
    assert!(content.starts_with("**[WAIaaS] 승인 필요: <bot> & co**\nxxx") && content.ends_with('…'));
    assert_eq!(discord["allowed_mentions"], serde_json::json!({"parse": []}));

    let (port, got) = receiver(200);
    let telegram = Telegram::new(http(), format!("http://127.0.0.1:{port}/"), "123:ABCsecret".into(), "-1001".into());
    assert!(telegram.send(&message()).await.is_sent());
    let (line, headers, body) = got.join().unwrap();
    assert_eq!(line, "POST /bot123:ABCsecret/sendMessage HTTP/1.1");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["chat_id"], -1001);
    assert_eq!(sent["parse_mode"], "HTML");
    assert_eq!(sent["text"], "<b>[WAIaaS] 승인 필요: &lt;bot&gt; &amp; co</b>\nline &lt;1&gt;\nline 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_classified_and_carry_no_credential() {
    let (port, got) = receiver(503);
    let outcome = Slack::new(http(), format!("http://127.0.0.1:{port}/services/SECRETPATH")).send(&message()).await;
    got.join().unwrap();
    assert!(
        matches!(&outcome, SendOutcome::Failed { retryable: true, error, .. } if error == "HTTP 503"),
        "{outcome:?}"
    );
    let (port, got) = receiver(401);
    let telegram = Telegram::new(http(), format!("http://127.0.0.1:{port}"), "999:TOKENsecret".into(), "@ops".into());
    let outcome = telegram.send(&message()).await;
    got.join().unwrap();
    assert!(matches!(outcome, SendOutcome::Failed { retryable: false, .. }), "{outcome:?}");
    // Nothing listens: a transport error, scrubbed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let telegram = Telegram::new(http(), format!("http://127.0.0.1:{closed}"), "999:TOKENsecret".into(), "1".into());
    let SendOutcome::Failed { retryable, error, .. } = telegram.send(&message()).await else { panic!("sent") };
    assert!(retryable && !error.contains("TOKENsecret"), "{error}");
    let ntfy = Ntfy::new(http(), "http://169.254.169.254/topic-secret".into(), None);
    let SendOutcome::Failed { retryable, error, .. } = ntfy.send(&message()).await else { panic!("sent") };
    assert!(!retryable && error.starts_with("refused") && !error.contains("topic-secret"), "{error}");
    let email = Email::new(
        EmailConfig {
            host: "127.0.0.1".into(),
            port: closed,
            username: Some("mailer".into()),
            password: Some("smtp-pass-secret".into()),
            from: "WAIaaS <waiaas@example.com>".into(),
            to: vec!["ops@example.com".into()],
            tls: SmtpTls::None,
            timeout: Duration::from_secs(2),
        },
        Arc::new(SystemResolver),
    );
    let SendOutcome::Failed { error, .. } = email.send(&message()).await else { panic!("sent") };
    assert!(!error.contains("smtp-pass-secret"), "{error}");
    assert_eq!(scrub("a https://h/x?k=abcd b", &["https://h/x?k=abcd", ""]), "a <redacted> b");
}
