//! The sender against receivers on loopback: what arrives (headers, body, Host), redirects not followed, the
//! timeout, Retry-After, and the SSRF guard at connect time through a resolver table.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::*;

/// A one-shot HTTP receiver: answers `response` to the first request and returns what it received.
fn receiver(response: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (&stream).write_all(response.as_bytes()).unwrap();
        head + &String::from_utf8(body).unwrap()
    });
    (port, handle)
}

fn sender(resolver: Arc<dyn HostResolver>) -> HttpWebhookSender {
    HttpWebhookSender::new(Duration::from_secs(2), false, resolver)
}

fn request(url: String) -> WebhookRequest {
    WebhookRequest { url, headers: vec![("webhook-id".into(), "evt_1".into())], body: br#"{"a":1}"#.to_vec() }
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_with_headers_to_the_resolved_address_keeping_the_host_name() {
    let (port, received) = receiver("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n");
    let table = Arc::new(StaticResolver::default());
    table.set("hooks.test", vec!["127.0.0.1".parse().unwrap()]);
    let answer = sender(table).send(&request(format!("http://hooks.test:{port}/in"))).await;
    assert!(matches!(answer, WebhookResponse::Status { code: 204, .. }), "{answer:?}");
    let text = received.join().unwrap();
    assert!(text.starts_with("POST /in HTTP/1.1"), "{text}");
    assert!(text.to_ascii_lowercase().contains(&format!("host: hooks.test:{port}")), "{text}");
    assert!(text.contains("webhook-id: evt_1") && text.ends_with(r#"{"a":1}"#), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed_and_retry_after_is_read() {
    let (port, _) = receiver("HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n");
    let answer = sender(Arc::new(SystemResolver)).send(&request(format!("http://127.0.0.1:{port}/"))).await;
    assert!(matches!(answer, WebhookResponse::Status { code: 302, .. }), "{answer:?}");
    let (port, _) = receiver("HTTP/1.1 429 Too Many\r\nretry-after: 7\r\ncontent-length: 2\r\n\r\nno");
    let answer = sender(Arc::new(SystemResolver)).send(&request(format!("http://127.0.0.1:{port}/"))).await;
    assert!(matches!(answer, WebhookResponse::Status { code: 429, retry_after_seconds: Some(7), .. }), "{answer:?}");
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(0), "a past date");
    assert_eq!(parse_retry_after("soon"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sender = HttpWebhookSender::new(Duration::from_millis(300), false, Arc::new(SystemResolver));
    let answer = sender.send(&request(format!("http://127.0.0.1:{port}/"))).await;
    assert!(matches!(answer, WebhookResponse::TransportError { .. }), "{answer:?}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_addresses_are_refused_before_connecting() {
    let table = Arc::new(StaticResolver::default());
    table.set("metadata.test", vec!["169.254.169.254".parse().unwrap()]);
    table.set("mixed.test", vec!["127.0.0.1".parse().unwrap(), "::ffff:169.254.169.254".parse().unwrap()]);
    for url in ["http://metadata.test/", "http://mixed.test:9/", "http://169.254.169.254/latest", "http://[fe80::1]/"] {
        let answer = sender(table.clone()).send(&request(url.to_owned())).await;
        assert!(matches!(answer, WebhookResponse::Refused { .. }), "{url}: {answer:?}");
    }
    let private = HttpWebhookSender::new(Duration::from_secs(1), true, Arc::new(SystemResolver));
    let answer = private.send(&request("http://127.0.0.1:9/".to_owned())).await;
    assert!(matches!(answer, WebhookResponse::Refused { .. }), "{answer:?}");
    assert_eq!(
        sender(table.clone()).resolve("metadata.test", 80).await.unwrap(),
        ["169.254.169.254".parse::<IpAddr>().unwrap()]
    );
    assert!(sender(table).resolve("unknown.test", 80).await.is_err());
}
