//! OPS-07 IP access control, as pure values: the endpoint classes, the CIDR rules of each class, and who the
//! client of a request is (the socket peer, or the rightmost untrusted `X-Forwarded-For` hop when the peer is a
//! trusted proxy). The server's middleware asks [`AclRules::admits`] before any authentication runs.
//!
//! - `admin` (every master-password route) is loopback only and cannot be configured: the socket peer, the
//!   resolved client and every forwarded hop must be loopback addresses, so neither binding `0.0.0.0` nor a proxy
//!   on loopback makes a remote client local.
//! - `session`, `owner` and `metrics` admit a client that no `*_denied_cidrs` entry contains and some
//!   `*_allowed_cidrs` entry contains (denials are evaluated first).
//! - `public` (`/health`, the API docs, unknown paths) admits everyone.
//!
//! Addresses are canonicalised before matching: an IPv4-mapped IPv6 address (`::ffff:10.0.0.5`) is the IPv4
//! address, so it matches IPv4 CIDRs.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which rules a route answers to. Derived from the route table by the server, never configured per route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointClass {
    /// `/health`, the kill-switch status and the API documents: open to every client the listener reaches.
    Public,
    /// `GET /metrics`: `[acl] metrics_allowed_cidrs` (default loopback).
    Metrics,
    /// The agent API (session tokens): `[acl] session_allowed_cidrs`.
    Session,
    /// The owner's nonce, approve and reject: `[acl] owner_allowed_cidrs`.
    Owner,
    /// Every master-password route: loopback only, not configurable.
    Admin,
}

impl EndpointClass {
    /// Every class that can refuse a client (the `class` label values of `waiaas_acl_denied_total`).
    pub const DENIABLE: &'static [&'static str] = &["admin", "session", "owner", "metrics"];

    /// The `class` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointClass::Public => "public",
            EndpointClass::Metrics => "metrics",
            EndpointClass::Session => "session",
            EndpointClass::Owner => "owner",
            EndpointClass::Admin => "admin",
        }
    }
}

/// The allowed and denied networks of one configurable class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRule {
    /// A client must be in one of these (`*_allowed_cidrs`).
    pub allowed: Vec<IpNet>,
    /// A client in one of these is refused first (`*_denied_cidrs`).
    pub denied: Vec<IpNet>,
}

impl ClassRule {
    /// Every address.
    pub fn all() -> ClassRule {
        ClassRule { allowed: ANY.iter().map(|n| n.parse().expect("valid literal")).collect(), denied: vec![] }
    }

    /// Loopback addresses only (`127.0.0.0/8`, `::1`).
    pub fn loopback() -> ClassRule {
        ClassRule { allowed: LOOPBACK.iter().map(|n| n.parse().expect("valid literal")).collect(), denied: vec![] }
    }

    /// Denied first, then allowed. `ip` must be canonical.
    pub fn admits(&self, ip: IpAddr) -> bool {
        !contains(&self.denied, ip) && contains(&self.allowed, ip)
    }
}

/// `[acl] *_allowed_cidrs` default of `session` and `owner`.
pub const ANY: &[&str] = &["0.0.0.0/0", "::/0"];
/// `[acl] metrics_allowed_cidrs` default.
pub const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128"];

/// The whole `[acl]` section, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRules {
    /// The agent API's rule.
    pub session: ClassRule,
    /// The owner endpoints' rule.
    pub owner: ClassRule,
    /// `GET /metrics`' rule.
    pub metrics: ClassRule,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for AclRules {
    fn default() -> Self {
        AclRules {
            session: ClassRule::all(),
            owner: ClassRule::all(),
            metrics: ClassRule::loopback(),
            trusted_proxies: vec![],
        }
    }
}

/// Who sent a request, as far as the daemon can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client address: audited, rate limited and matched against the class rules.
    pub ip: IpAddr,
    /// The socket peer and every forwarded hop are loopback addresses.
    pub local: bool,
}

impl AclRules {
    /// Whether `client` may reach a route of `class`.
    pub fn admits(&self, class: EndpointClass, client: &Client) -> bool {
        match class {
            EndpointClass::Public => true,
            EndpointClass::Admin => client.local,
            EndpointClass::Session => self.session.admits(client.ip),
            EndpointClass::Owner => self.owner.admits(client.ip),
            EndpointClass::Metrics => self.metrics.admits(client.ip),
        }
    }

    /// The client of a request from socket peer `peer` carrying the `X-Forwarded-For` header lines
    /// `forwarded_for` (in the order received). The header is believed only from a trusted proxy: then its
    /// hops, all lines joined, are walked right to left, trusted proxies skipped, and the first untrusted hop is
    /// the client. An unparseable hop ends the walk at the last trusted address (nothing left of it can be
    /// believed). Every hop seen, believed or not, must be loopback for the request to be local.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> Client {
        let peer = peer.to_canonical();
        let hops: Vec<Option<IpAddr>> = forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .map(parse_hop)
            .collect();
        let local = peer.is_loopback() && hops.iter().all(|hop| hop.is_some_and(|ip| ip.is_loopback()));
        let mut ip = peer;
        if contains(&self.trusted_proxies, peer) {
            for hop in hops.iter().rev() {
                let Some(hop) = hop else { break };
                ip = *hop;
                if !contains(&self.trusted_proxies, ip) {
                    break;
                }
            }
        }
        Client { ip, local }
    }
}

/// One `X-Forwarded-For` hop: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`), canonical.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// Whether any of `nets` contains `ip` (canonicalised).
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|net| net.contains(&ip))
}

/// Parses the CIDRs of config key `key` (a bare address is a single-host network). The error names the key and
/// the bad entry.
pub fn parse_cidrs(key: &str, values: &[String]) -> Result<Vec<IpNet>, String> {
    values
        .iter()
        .map(|value| {
            let text = value.trim();
            text.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
                .map_err(|_| format!("{key}: {value:?} is not a CIDR (e.g. 10.0.0.0/8, fd00::/8) or an IP address"))
        })
        .collect()
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(values: &[&str]) -> Vec<IpNet> {
        parse_cidrs("k", &values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn rules(session_allowed: &[&str], session_denied: &[&str], trusted: &[&str]) -> AclRules {
        AclRules {
            session: ClassRule { allowed: nets(session_allowed), denied: nets(session_denied) },
            trusted_proxies: nets(trusted),
            ..AclRules::default()
        }
    }

    #[track_caller]
    fn check_client(trusted: &[&str], peer: &str, xff: &[&str], client: &str, local: bool) {
        let acl = rules(ANY, &[], trusted);
        let got = acl.client(peer.parse().unwrap(), xff);
        assert_eq!(got, Client { ip: client.parse().unwrap(), local }, "peer {peer} xff {xff:?}");
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwards() {
        // Untrusted peers: the header is ignored (S-05).
        check_client(&[], "10.0.0.9", &["127.0.0.1"], "10.0.0.9", false);
        check_client(&["10.0.0.1"], "10.0.0.9", &["127.0.0.1"], "10.0.0.9", false);
        check_client(&[], "127.0.0.1", &[], "127.0.0.1", true);
        check_client(&[], "::ffff:127.0.0.1", &[], "127.0.0.1", true);
        check_client(&[], "::ffff:10.0.0.5", &[], "10.0.0.5", false);
        // A trusted proxy: the rightmost untrusted hop, over several header lines.
        check_client(&["10.0.0.1"], "10.0.0.1", &["203.0.113.7"], "203.0.113.7", false);
        check_client(&["10.0.0.1"], "10.0.0.1", &["127.0.0.1, 203.0.113.7"], "203.0.113.7", false);
        check_client(&["10.0.0.0/24"], "10.0.0.1", &["127.0.0.1, 198.51.100.2", "10.0.0.2"], "198.51.100.2", false);
        check_client(&["10.0.0.0/24"], "10.0.0.1", &["198.51.100.2:4711", "10.0.0.2"], "198.51.100.2", false);
        check_client(&["10.0.0.1"], "10.0.0.1", &["[2001:db8::1]:80"], "2001:db8::1", false);
        check_client(&["10.0.0.1"], "10.0.0.1", &["::ffff:192.0.2.1"], "192.0.2.1", false);
        // Only trusted hops: the leftmost one.
        check_client(&["10.0.0.0/24"], "10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3", false);
        // No header from a trusted proxy: the proxy itself.
        check_client(&["10.0.0.1"], "10.0.0.1", &[], "10.0.0.1", false);
        // Garbage stops the walk at the last believed address.
        check_client(&["10.0.0.0/24"], "10.0.0.1", &["198.51.100.2, nonsense, 10.0.0.2"], "10.0.0.2", false);
        // A proxy on loopback does not make a remote client local, trusted or not.
        check_client(&["127.0.0.1"], "127.0.0.1", &["203.0.113.7"], "203.0.113.7", false);
        check_client(&[], "127.0.0.1", &["203.0.113.7"], "127.0.0.1", false);
        check_client(&[], "127.0.0.1", &["nonsense"], "127.0.0.1", false);
        check_client(&["127.0.0.1"], "127.0.0.1", &["127.0.0.2"], "127.0.0.2", true);
    }

    #[track_caller]
    fn check_admits(acl: &AclRules, class: EndpointClass, ip: &str, admitted: bool) {
        let client = acl.client(ip.parse().unwrap(), &[]);
        assert_eq!(acl.admits(class, &client), admitted, "{class:?} from {ip}");
    }

    #[test]
    fn classes_admit_by_their_rules() {
        use EndpointClass::*;
        let defaults = AclRules::default();
        for (class, ip, admitted) in [
            (Public, "203.0.113.7", true),
            (Admin, "127.0.0.1", true),
            (Admin, "127.0.0.2", true),
            (Admin, "::1", true),
            (Admin, "::ffff:127.0.0.1", true),
            (Admin, "10.0.0.5", false),
            (Admin, "fd00::5", false),
            (Session, "203.0.113.7", true),
            (Session, "2001:db8::1", true),
            (Owner, "203.0.113.7", true),
            (Metrics, "127.0.0.1", true),
            (Metrics, "::1", true),
            (Metrics, "10.0.0.5", false),
        ] {
            check_admits(&defaults, class, ip, admitted);
        }
        let acl = rules(&["10.0.0.0/8", "2001:db8::/32"], &["10.9.0.0/16"], &[]);
        for (ip, admitted) in [
            ("10.0.0.5", true),
            ("::ffff:10.0.0.5", true),
            ("10.9.1.1", false),
            ("11.0.0.1", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("127.0.0.1", false),
        ] {
            check_admits(&acl, Session, ip, admitted);
        }
        // Admin is loopback whatever the session rules say.
        check_admits(&acl, Admin, "10.0.0.5", false);
        check_admits(&acl, Admin, "127.0.0.1", true);
    }

    #[test]
    fn cidrs_parse_or_name_the_key() {
        assert_eq!(nets(&["10.1.2.3/8"]), nets(&["10.0.0.0/8"]));
        assert_eq!(nets(&["192.0.2.1"]), nets(&["192.0.2.1/32"]));
        assert_eq!(nets(&["::ffff:192.0.2.1"]), nets(&["192.0.2.1/32"]));
        assert_eq!(nets(&[" fd00::/8 "]).len(), 1);
        for bad in ["10.0.0.0/33", "nonsense", "", "10.0.0/8", "::/129"] {
            let err = parse_cidrs("[acl] session_allowed_cidrs", &[bad.to_owned()]).unwrap_err();
            assert!(err.starts_with("[acl] session_allowed_cidrs: "), "{err}");
        }
    }
}
