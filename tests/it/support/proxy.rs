//! A JSON-RPC proxy in front of anvil that the test controls: an HTTP/1.1 server on loopback that forwards each
//! call to the node, or, per method or for every method, hangs it, forwards it and then hangs the answer, or
//! answers garbage. The daemon is pointed at the proxy instead of the node, so a test puts the pipeline at a
//! precise point (a signed transaction recorded but not broadcast; broadcast but its answer lost) without any
//! hook in the product, and plays a node that fails in ways a dead port cannot.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards the call and relays the node's answer.
    Forward,
    /// Never forwards the call and never answers (until [`RpcProxy::release`] or the caller goes away): the node
    /// never sees it.
    Hang,
    /// Forwards the call to the node, then never relays the answer: the node acted, the caller does not know.
    ForwardThenHang,
    /// Answers without asking the node, with something that is not a JSON-RPC answer (in turn: HTML with status
    /// 200, a JSON-RPC result of the wrong type, a truncated body, a 500 with text).
    Garbage,
    /// Answers without asking the node, as a node without the method does (JSON-RPC error -32601).
    Unsupported,
    /// Answers without asking the node, as anvil does when the block "latest" named is gone before the call ran
    /// (JSON-RPC error -32602 `BlockOutOfRangeError`; geth's "header not found" is the same failure).
    LostBlock,
}

#[derive(Default)]
struct Rules {
    default: Option<Fault>,
    by_method: HashMap<String, Fault>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Rules>,
    /// Every method received, in arrival order.
    seen: Mutex<Vec<String>>,
    /// Bumped by `release`: every call hanging at the time gives up (its connection is closed).
    epoch: AtomicU64,
    garbage: AtomicUsize,
}

pub struct RpcProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl RpcProxy {
    /// A proxy forwarding everything to `upstream` (e.g. anvil's URL).
    pub fn start(upstream: &str) -> RpcProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            rules: Mutex::default(),
            seen: Mutex::default(),
            epoch: AtomicU64::new(0),
            garbage: AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        RpcProxy { url, shared }
    }

    /// What to do with every call of `method` from now on.
    pub fn set(&self, method: &str, fault: Fault) {
        self.shared.rules.lock().expect("proxy rules").by_method.insert(method.to_owned(), fault);
    }

    /// What to do with every call from now on, whatever its method (per-method rules are dropped).
    pub fn set_all(&self, fault: Fault) {
        let mut rules = self.shared.rules.lock().expect("proxy rules");
        rules.by_method.clear();
        rules.default = Some(fault);
    }

    /// Lets every call hanging now go (its connection is closed without an answer).
    pub fn release(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// How many calls of `method` arrived so far.
    pub fn seen(&self, method: &str) -> usize {
        self.shared.seen.lock().expect("proxy log").iter().filter(|m| *m == method).count()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.release();
    }
}

/// A JSON-RPC error answer to `request`.
fn error_answer(request: &serde_json::Value, code: i64, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": code, "message": message}}).to_string()
}

/// Serves one connection's requests one after the other (ureq keeps connections alive).
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(read_half) = stream.try_clone() else { return };
    let (mut reader, mut writer) = (BufReader::new(read_half), stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            match line.trim_end().split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    length = value.trim().parse().unwrap_or(0);
                }
                None if line.trim_end().is_empty() => break,
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let method = request["method"].as_str().unwrap_or("").to_owned();
        shared.seen.lock().expect("proxy log").push(method.clone());
        let fault = {
            let rules = shared.rules.lock().expect("proxy rules");
            rules.by_method.get(&method).copied().or(rules.default).unwrap_or(Fault::Forward)
        };
        let answer = match fault {
            Fault::Forward => forward(&shared.upstream, &body),
            Fault::Hang => return hang(shared),
            Fault::ForwardThenHang => {
                let _ = forward(&shared.upstream, &body);
                return hang(shared);
            }
            Fault::Garbage => garbage(shared, &request),
            Fault::Unsupported => Some((200, error_answer(&request, -32601, "Method not found"))),
            Fault::LostBlock => Some((
                200,
                error_answer(&request, -32602, "BlockOutOfRangeError: block height is 9 but requested was 8"),
            )),
        };
        let Some((status, text)) = answer else { return };
        let head =
            format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", text.len());
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(text.as_bytes())).is_err() {
            return;
        }
        if status != 200 {
            return;
        }
    }
}

/// The node's answer to `body`, or `None` when the node is unreachable (the caller's connection is closed).
fn forward(upstream: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut response = ureq::post(upstream).content_type("application/json").send(body).ok()?;
    Some((200, response.body_mut().read_to_string().ok()?))
}

/// Holds the call until `release` (or two minutes); the connection is then closed without an answer.
fn hang(shared: &Shared) {
    let epoch = shared.epoch.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.epoch.load(Ordering::SeqCst) == epoch && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

fn garbage(shared: &Shared, request: &serde_json::Value) -> Option<(u16, String)> {
    let n = shared.garbage.fetch_add(1, Ordering::SeqCst);
    Some(match n % 4 {
        0 => (200, "<html><body>502 Bad Gateway</body></html>".to_owned()),
        1 => (200, serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": {"banana": true}}).to_string()),
        2 => (200, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x".to_owned()),
        _ => (500, "internal server error".to_owned()),
    })
}
