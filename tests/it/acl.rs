//! OPS-07 IP access control over real sockets. Non-loopback peers come from a network namespace joined to the
//! host by a veth pair that the test creates (and deletes, also on failure) and speak HTTP with `curl` run inside
//! it (`ip netns exec`); loopback peers other than 127.0.0.1 come from a socket bound to that source address.
//! Needs root for the namespaces (CI runs as root) and the `ip` and `curl` commands (`.ci/run` installs them).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use waiaas_client::Client;
use waiaas_client::types::{AuditLog, AuditLogFilter, CreateAgent, CreateSession, ListParams};

use crate::support::{Daemon, DaemonOptions, EmbeddedDaemon, MASTER_PASSWORD, api_error, eventually};

/// A network namespace with a veth pair: the host side and the namespace side each get an IPv4 address of one
/// /30 and an IPv6 address of one /64. Dropping it deletes both.
struct Netns {
    name: String,
    host_link: String,
    host_v4: String,
    peer_v4: String,
    net_v4: String,
    host_v6: String,
    peer_v6: String,
    net_v6: String,
}

#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}{n}", pid % 100_000);
        let (a, b) = (200 + n % 50, pid % 250);
        let ns = Netns {
            name: format!("wacl{tag}"),
            host_link: format!("wa{tag}h"),
            host_v4: format!("10.{a}.{b}.1"),
            peer_v4: format!("10.{a}.{b}.2"),
            net_v4: format!("10.{a}.{b}.0/30"),
            host_v6: format!("fd57:ac1:{:x}:{n:x}::1", pid % 65_536),
            // In the form the daemon prints it (audit rows).
            peer_v6: format!("fd57:ac1:{:x}:{n:x}::2", pid % 65_536).parse::<IpAddr>().expect("v6").to_string(),
            net_v6: format!("fd57:ac1:{:x}:{n:x}::/64", pid % 65_536),
        };
        let peer_link = format!("wa{tag}n");
        // From here on, Drop cleans up whatever was created.
        ip(&["netns", "add", &ns.name]);
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", &peer_link]);
        ip(&["link", "set", &peer_link, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/30", ns.host_v4), "dev", &ns.host_link]);
        ip(&["-6", "addr", "add", &format!("{}/64", ns.host_v6), "dev", &ns.host_link, "nodad"]);
        ip(&["link", "set", &ns.host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/30", ns.peer_v4), "dev", &peer_link]);
        inside(&["-6", "addr", "add", &format!("{}/64", ns.peer_v6), "dev", &peer_link, "nodad"]);
        inside(&["link", "set", &peer_link, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// An HTTP request from inside the namespace: (status, JSON body or `Null`).
    fn curl(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let out = eventually(10, "the namespace's link to come up", || {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", &self.name, "curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}"]);
            for (name, value) in headers {
                command.arg("-H").arg(format!("{name}: {value}"));
            }
            let out = command.arg(url).output().expect("run curl in the namespace");
            // Exit 7: could not connect (the link may not be up yet); anything else is an answer or a failure.
            (out.status.code() != Some(7)).then_some(out)
        });
        assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        (status.trim().parse().expect("status code"), serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The daemon's port, from its URL.
fn port(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("port in the URL")
}

/// One HTTP/1.1 request over a connection bound to `source` (e.g. 127.0.0.2), to 127.0.0.1:`port`:
/// (status, JSON body or `Null`). `headers` may name a header several times.
pub(crate) fn http_from(source: &str, port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let source: IpAddr = source.parse().expect("source address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::new(source, 0).into()).expect("bind the source address");
    socket.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.into() };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Every audit row of `event_type`, oldest first.
fn audit_rows(admin: &Client, event_type: &str) -> Vec<AuditLog> {
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin
            .audit_logs(&AuditLogFilter {
                event_types: vec![event_type.into()],
                cursor: cursor.clone(),
                limit: Some(100),
                ..Default::default()
            })
            .expect("audit log");
        rows.extend(page.data);
        if !page.has_more {
            break;
        }
        cursor = page.next_cursor;
    }
    rows.sort_by_key(|r| r.id);
    rows
}

#[track_caller]
fn assert_denied((status, body): (u16, Value)) {
    assert_eq!((status, body["code"].as_str()), (403, Some("ACCESS_DENIED_IP")), "{body}");
}

fn metric(port: u16, series: &str) -> f64 {
    let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}/metrics")]).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} not in the scrape:\n{text}"))
}

fn start(env: &[(&str, &str)]) -> Daemon {
    Daemon::start_with(DaemonOptions {
        extra_env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..DaemonOptions::default()
    })
}

fn session_token(daemon: &Daemon) -> String {
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("acl", "anvil")).expect("agent");
    admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token
}

/// T-16, T-17, IPv4-mapped peers and IPv6 CIDRs: the daemon listens on `::` (dual stack, so IPv4 peers arrive as
/// `::ffff:a.b.c.d`); agents may come only from the namespace's IPv4 /30, owners only from its IPv6 /64.
#[test]
fn clients_inside_the_allowed_cidr_are_served_outside_refused_audited_and_counted() {
    let ns = Netns::create();
    let daemon = start(&[
        ("WAIAAS_DAEMON_HOSTNAME", "::"),
        ("WAIAAS_ACL_SESSION_ALLOWED_CIDRS", &ns.net_v4),
        ("WAIAAS_ACL_OWNER_ALLOWED_CIDRS", &ns.net_v6),
    ]);
    let port = port(&daemon.url);
    let token = session_token(&daemon);
    let bearer = format!("Bearer {token}");
    let agent_headers = [("Authorization", bearer.as_str()), ("Host", "localhost")];
    let v4 = format!("http://{}:{port}", ns.host_v4);
    let v6 = format!("http://[{}]:{port}", ns.host_v6);

    // T-16: inside the IPv4 CIDR (an IPv4-mapped peer on the dual-stack socket).
    let (status, body) = ns.curl("GET", &format!("{v4}/v1/wallet/address"), &agent_headers);
    assert_eq!(status, 200, "{body}");
    assert!(body["address"].as_str().is_some_and(|a| a.starts_with("0x")), "{body}");
    // T-17: the same namespace over IPv6, and loopback, are outside it.
    assert_denied(ns.curl("GET", &format!("{v6}/v1/wallet/address"), &agent_headers));
    let (status, code, _) = api_error(Client::new(&daemon.url).with_session_token(&token).wallet_address());
    assert_eq!((status, code.as_str()), (403, "ACCESS_DENIED_IP"));
    // An IPv6 CIDR: owners from the namespace's /64 only.
    let (status, body) = ns.curl("GET", &format!("{v6}/v1/nonce"), &[("Host", "localhost")]);
    assert_eq!(status, 200, "{body}");
    assert_denied(ns.curl("GET", &format!("{v4}/v1/nonce"), &[("Host", "localhost")]));
    // Metrics: loopback only by default.
    assert_denied(ns.curl("GET", &format!("{v4}/metrics"), &[("Host", "localhost")]));
    // Public routes answer everyone.
    assert_eq!(ns.curl("GET", &format!("{v4}/health"), &[("Host", "localhost")]).0, 200);

    let rows = audit_rows(&daemon.admin(), "ACCESS_DENIED_IP");
    let seen: Vec<(Option<&str>, &str)> =
        rows.iter().map(|r| (r.ip_address.as_deref(), r.details["class"].as_str().unwrap_or(""))).collect();
    assert!(seen.contains(&(Some(ns.peer_v6.as_str()), "session")), "{seen:?}");
    assert!(seen.contains(&(Some("::1"), "session")), "{seen:?}");
    assert!(seen.contains(&(Some(ns.peer_v4.as_str()), "owner")), "{seen:?}");
    assert!(rows.iter().all(|r| r.actor == "anonymous" && r.severity == "warning"));
    assert_eq!(metric(port, "waiaas_acl_denied_total{class=\"session\"}"), 2.0);
    assert_eq!(metric(port, "waiaas_acl_denied_total{class=\"owner\"}"), 1.0);
    assert_eq!(metric(port, "waiaas_acl_denied_total{class=\"metrics\"}"), 1.0);
    assert_eq!(metric(port, "waiaas_acl_denied_total{class=\"admin\"}"), 0.0);
}

/// T-18: bound to 0.0.0.0, the master API refuses a non-loopback peer even with the right password and
/// `Host: localhost` (and a forged `X-Forwarded-For`), and a proxy on loopback does not make a remote client local.
#[test]
fn master_endpoints_answer_loopback_clients_only_when_bound_to_all_interfaces() {
    let ns = Netns::create();
    let daemon = start(&[("WAIAAS_DAEMON_HOSTNAME", "0.0.0.0"), ("WAIAAS_ACL_TRUSTED_PROXIES", "127.0.0.2")]);
    let port = port(&daemon.url);
    let agents = format!("http://{}:{port}/v1/agents", ns.host_v4);
    let master = [("X-Master-Password", MASTER_PASSWORD), ("Host", "localhost")];
    assert_denied(ns.curl("GET", &agents, &master));
    assert_denied(ns.curl("GET", &agents, &[master[0], master[1], ("X-Forwarded-For", "127.0.0.1")]));

    // Loopback works: 127.0.0.1 through the client, other loopback sources, a trusted proxy relaying loopback.
    daemon.admin().list_agents(&ListParams::default()).expect("master API from loopback");
    assert_eq!(http_from("127.0.0.3", port, "GET", "/v1/agents", &master).0, 200);
    let relayed_local = [master[0], ("X-Forwarded-For", "127.0.0.5")];
    assert_eq!(http_from("127.0.0.2", port, "GET", "/v1/agents", &relayed_local).0, 200);
    // A remote client behind a proxy on loopback, trusted or not, is refused.
    let relayed_remote = [master[0], ("X-Forwarded-For", "203.0.113.9")];
    assert_denied(http_from("127.0.0.2", port, "GET", "/v1/agents", &relayed_remote));
    assert_denied(http_from("127.0.0.3", port, "GET", "/v1/agents", &relayed_remote));

    let rows = audit_rows(&daemon.admin(), "ACCESS_DENIED_IP");
    let ips: Vec<&str> = rows.iter().filter_map(|r| r.ip_address.as_deref()).collect();
    assert!(ips.contains(&ns.peer_v4.as_str()), "{ips:?}");
    assert!(ips.contains(&"203.0.113.9"), "{ips:?}");
    assert!(ips.contains(&"127.0.0.3"), "{ips:?}");
    assert!(rows.iter().all(|r| r.details["class"] == "admin"));
    // One row per source per minute: the namespace's second refusal was counted, not written.
    assert_eq!(ips.iter().filter(|ip| **ip == ns.peer_v4).count(), 1);
    assert_eq!(metric(port, "waiaas_acl_denied_total{class=\"admin\"}"), 4.0);
}

/// S-05: `X-Forwarded-For` is ignored from an untrusted peer (for the ACL, the audit IP and the rate limit); from
/// a trusted proxy the rightmost untrusted hop is the client, over several header lines.
#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let daemon = start(&[
        ("WAIAAS_ACL_TRUSTED_PROXIES", "127.0.0.2"),
        ("WAIAAS_ACL_SESSION_ALLOWED_CIDRS", "127.0.0.0/8"),
        ("WAIAAS_SECURITY_MASTER_AUTH_MAX_FAILURES", "3"),
    ]);
    let port = port(&daemon.url);
    let bearer = format!("Bearer {}", session_token(&daemon));
    let address = |source: &str, forwarded: &[&str]| {
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend(forwarded.iter().map(|hop| ("X-Forwarded-For", *hop)));
        http_from(source, port, "GET", "/v1/wallet/address", &headers)
    };
    // Untrusted peer: its own address is the client, whatever it forwards.
    assert_eq!(address("127.0.0.3", &["198.51.100.7"]).0, 200);
    // Trusted proxy: the forwarded client.
    assert_denied(address("127.0.0.2", &["198.51.100.7"]));
    assert_eq!(address("127.0.0.2", &["127.0.0.44"]).0, 200);
    // Several lines: all hops, right to left, trusted ones skipped.
    assert_denied(address("127.0.0.2", &["127.0.0.1, 198.51.100.8", "127.0.0.2"]));
    assert_eq!(address("127.0.0.2", &["198.51.100.9", "127.0.0.45, 127.0.0.2"]).0, 200);
    let denied: Vec<Option<String>> =
        audit_rows(&daemon.admin(), "ACCESS_DENIED_IP").into_iter().map(|r| r.ip_address).collect();
    assert_eq!(denied, [Some("198.51.100.7".to_owned()), Some("198.51.100.8".to_owned())]);

    // The rate limit and the audit rows use the same client address: an untrusted peer rotating its
    // X-Forwarded-For is still one source.
    let wrong = |source: &str, forwarded: &str| {
        let headers = [("X-Master-Password", "wrong password"), ("X-Forwarded-For", forwarded)];
        let (status, body) = http_from(source, port, "GET", "/v1/agents", &headers);
        (status, body["code"].as_str().unwrap_or_default().to_owned())
    };
    for i in 0..3 {
        assert_eq!(wrong("127.0.0.3", &format!("127.0.0.{}", 100 + i)), (401, "INVALID_MASTER_PASSWORD".into()));
    }
    assert_eq!(wrong("127.0.0.3", "127.0.0.200"), (429, "RATE_LIMITED".into()));
    assert_eq!(wrong("127.0.0.4", "127.0.0.3"), (401, "INVALID_MASTER_PASSWORD".into()));
    // Behind the trusted proxy, the forwarded (local) client is the source.
    assert_eq!(wrong("127.0.0.2", "127.0.0.60"), (401, "INVALID_MASTER_PASSWORD".into()));
    let failed: Vec<Option<String>> =
        audit_rows(&daemon.admin(), "MASTER_AUTH_FAILED").into_iter().map(|r| r.ip_address).collect();
    let expected = ["127.0.0.3", "127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.60"].map(|ip| Some(ip.to_owned()));
    assert_eq!(failed, expected);
}

/// 20,000 failed master passwords and 3,000 ACL refusals from rotating loopback sources: the trackers stay under
/// their caps and the audit log gets at most its per-window budget of rows (the daemon's clock stands still, so
/// all of them fall in one window); the next window's first row says how many were held back.
#[test]
fn failures_from_rotating_sources_leave_memory_flat_and_the_log_bounded() {
    use waiaas_core::services::{access, master_auth};

    let daemon = EmbeddedDaemon::start(&[
        ("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9"),
        ("WAIAAS_ACL_SESSION_ALLOWED_CIDRS", "127.0.0.1"),
    ]);
    let port = port(&daemon.url);
    let source = |i: u32| format!("127.{}.{}.{}", 1 + i / (256 * 254), (i / 254) % 256, 1 + i % 254);
    for i in 0..20_000 {
        let (status, body) = http_from(&source(i), port, "GET", "/v1/agents", &[("X-Master-Password", "wrong")]);
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_MASTER_PASSWORD")), "attempt {i}");
    }
    let tracked = daemon.core.master_auth_tracked_sources();
    assert!(tracked <= master_auth::TRACKED_SOURCES_CAP, "{tracked} sources tracked");
    let admin = daemon.admin();
    assert_eq!(audit_rows(&admin, "MASTER_AUTH_FAILED").len(), master_auth::AUDIT_ROWS_PER_WINDOW as usize);

    for i in 0..3_000 {
        assert_denied(http_from(&source(i), port, "GET", "/v1/wallet/address", &[("Authorization", "Bearer x")]));
    }
    assert!(daemon.core.access_denied_tracked_sources() <= access::TRACKED_SOURCES_CAP);
    assert_eq!(audit_rows(&admin, "ACCESS_DENIED_IP").len(), access::AUDIT_ROWS_PER_WINDOW as usize);

    // The next window: the first row carries the count held back.
    daemon.advance(61);
    assert_eq!(http_from("127.9.9.9", port, "GET", "/v1/agents", &[("X-Master-Password", "wrong")]).0, 401);
    let last = audit_rows(&admin, "MASTER_AUTH_FAILED").pop().expect("a row");
    assert_eq!(last.details["suppressedRows"], 20_000 - u64::from(master_auth::AUDIT_ROWS_PER_WINDOW));
}

/// Session binding (`constraints.allowedCidrs`, Vault's `token_bound_cidrs`): the token works from inside its
/// CIDRs only; a bad CIDR is refused when the session is created, naming it.
#[test]
fn a_session_bound_to_cidrs_is_refused_elsewhere() {
    let daemon = start(&[]);
    let port = port(&daemon.url);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("bound", "anvil")).expect("agent");
    let bound = |cidrs: Value| CreateSession {
        constraints: Some(serde_json::json!({ "allowedCidrs": cidrs })),
        ..CreateSession::for_agent(&agent.id)
    };
    let (status, code, details) =
        api_error(admin.create_session(&bound(serde_json::json!(["127.0.0.2/32", "10.0.0.0/33"]))));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
    assert!(details.unwrap_or_default().to_string().contains("constraints.allowedCidrs[1]"));

    let token =
        admin.create_session(&bound(serde_json::json!(["127.0.0.2/32", "fd00::/8"]))).expect("bound session").token;
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str())];
    let (status, body) = http_from("127.0.0.2", port, "GET", "/v1/wallet/address", &headers);
    assert_eq!(status, 200, "{body}");
    assert_denied(http_from("127.0.0.3", port, "GET", "/v1/wallet/address", &headers));
    let (status, code, _) = api_error(Client::new(&daemon.url).with_session_token(&token).wallet_address());
    assert_eq!((status, code.as_str()), (403, "ACCESS_DENIED_IP"));
    // An unbound session of the same agent works from anywhere the [acl] allows.
    let free = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    Client::new(&daemon.url).with_session_token(&free).wallet_address().expect("unbound session");

    let ips: Vec<Option<String>> = audit_rows(&admin, "ACCESS_DENIED_IP").into_iter().map(|r| r.ip_address).collect();
    assert_eq!(ips, [Some("127.0.0.3".to_owned()), Some("127.0.0.1".to_owned())]);
}

/// SIGHUP reloads `[acl]` from config.toml without a restart; a file that does not load keeps the rules in force
/// and the log says why.
#[test]
fn sighup_reloads_the_acl_and_a_bad_file_keeps_the_rules_in_force() {
    let daemon = start(&[]);
    let port = port(&daemon.url);
    let bearer = format!("Bearer {}", session_token(&daemon));
    let from = |source: &str| http_from(source, port, "GET", "/v1/wallet/address", &[("Authorization", &bearer)]);
    assert_eq!(from("127.0.0.3").0, 200);

    let config = daemon.data_dir().join("config.toml");
    let original = std::fs::read_to_string(&config).expect("config.toml");
    let hup = |log_line: &str, occurrences: usize| {
        let pid = daemon.pid().expect("running").to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
        eventually(10, log_line, || (daemon.stderr().matches(log_line).count() >= occurrences).then_some(()));
    };

    std::fs::write(&config, format!("{original}\n[acl]\nsession_allowed_cidrs = [\"127.0.0.2/32\"]\n")).unwrap();
    hup("SIGHUP: [acl] reloaded", 1);
    assert_eq!(from("127.0.0.2").0, 200);
    assert_denied(from("127.0.0.3"));

    std::fs::write(&config, format!("{original}\n[acl]\nsession_allowed_cidrs = [\"127.0.0.2/33\"]\n")).unwrap();
    hup("the [acl] rules in force are kept", 1);
    assert!(daemon.stderr().contains("[acl] session_allowed_cidrs"), "the log names the key:\n{}", daemon.stderr());
    assert_eq!(from("127.0.0.2").0, 200);
    assert_denied(from("127.0.0.3"));

    std::fs::write(&config, &original).unwrap();
    hup("SIGHUP: [acl] reloaded", 2);
    assert_eq!(from("127.0.0.3").0, 200);
}
