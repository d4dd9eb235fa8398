//! A webhook receiver on loopback for the tests: an HTTP/1.1 server on its own threads that records every POST
//! (headers, body, arrival time) and answers from a script (a status with headers, or hanging until the test
//! ends). Each connection is served on its own thread, so a hanging answer holds only its caller.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received POST.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status, with these extra headers.
    Status(u16, Vec<(&'static str, String)>),
    /// Never answers (holds the connection).
    Hang,
}

/// The answering script, shared by the connection threads.
type Script = Arc<Mutex<Box<dyn FnMut(usize) -> Answer + Send>>>;

pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Script,
}

impl Receiver {
    /// Answers every POST with `status`.
    pub fn status(status: u16) -> Receiver {
        Receiver::scripted(move |_| Answer::Status(status, vec![]))
    }

    /// Answers POST number `n` (0-based) with `script(n)`.
    pub fn scripted(script: impl FnMut(usize) -> Answer + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answer: Script = Arc::new(Mutex::new(Box::new(script)));
        let (r, a) = (Arc::clone(&received), Arc::clone(&answer));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (r, a) = (Arc::clone(&r), Arc::clone(&a));
                std::thread::spawn(move || serve(stream, &r, &a));
            }
        });
        Receiver { port, received, answer }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }

    /// Waits until at least `n` requests arrived (up to `seconds`).
    pub fn wait_for(&self, n: usize, seconds: u64) -> Vec<Received> {
        super::eventually(seconds, &format!("{n} webhook deliveries"), || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
    }

    /// Replaces the script.
    pub fn answer_with(&self, script: impl FnMut(usize) -> Answer + Send + 'static) {
        *self.answer.lock().expect("receiver lock") = Box::new(script);
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Received>>, answer: &Mutex<Box<dyn FnMut(usize) -> Answer + Send>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = {
        let mut all = received.lock().expect("receiver lock");
        all.push(Received { path, headers, body, at: Instant::now() });
        all.len() - 1
    };
    let reply = (answer.lock().expect("receiver lock"))(n);
    match reply {
        Answer::Status(code, extra) => {
            let mut text = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n");
            for (name, value) in extra {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            text.push_str("\r\nok");
            let _ = (&stream).write_all(text.as_bytes());
        }
        Answer::Hang => std::thread::park_timeout(Duration::from_secs(60)),
    }
}
