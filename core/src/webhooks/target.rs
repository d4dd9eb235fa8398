//! Where a webhook may point (SSRF guard): the URL's syntax ([`parse_url`]) and the class of every address its
//! host resolves to ([`classify`], [`check_address`]). Checked at registration and again at every delivery
//! against the addresses actually connected to (the HTTP adapter resolves once and connects only to addresses
//! that passed).
//!
//! Always refused: unspecified (`0.0.0.0/8`, `::`), link-local (`169.254.0.0/16` with the cloud metadata address
//! `169.254.169.254`, `fe80::/10`), AWS's IPv6 metadata address `fd00:ec2::254`, multicast (`224.0.0.0/4`,
//! `ff00::/8`), broadcast and the reserved `240.0.0.0/4`. Loopback and private ranges (`127.0.0.0/8`, `::1`,
//! `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `100.64.0.0/10`, `fc00::/7`) are allowed unless
//! `[webhooks] block_private_targets`. IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`) are judged as that IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::{Error, ErrorCode, Result};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A checked webhook URL's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// The host as written (a name, or an IP literal without brackets).
    pub host: String,
    /// The IP address when the host is a literal.
    pub ip: Option<IpAddr>,
    /// The port (the scheme's default when absent).
    pub port: u16,
}

/// Parses and checks a webhook URL's syntax: absolute `http`/`https` with a host, no user name or password, at
/// most [`MAX_URL_LEN`] bytes. Failures are `VALIDATION_FAILED` on `url`.
pub fn parse_url(text: &str) -> Result<TargetUrl> {
    let bad = |why: &str| Error::invalid_field("url", why.to_owned());
    if text.len() > MAX_URL_LEN {
        return Err(bad("is longer than 2048 bytes"));
    }
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials (user:password@)"));
    }
    let (host, ip) = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => (name.to_owned(), None),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
        _ => return Err(bad("has no host")),
    };
    let port = url.port_or_known_default().ok_or_else(|| bad("has no port"))?;
    Ok(TargetUrl { scheme: url.scheme().to_owned(), host, ip, port })
}

/// What kind of destination an address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// A public address.
    Public,
    /// Loopback or a private range: allowed unless private targets are blocked.
    Private(&'static str),
    /// Never a webhook target.
    Forbidden(&'static str),
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().expect("a valid IPv4 CIDR")
}

fn v6(s: &str) -> Ipv6Net {
    s.parse().expect("a valid IPv6 CIDR")
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    let s = ip.segments();
    // IPv4-compatible (deprecated) ::a.b.c.d, but not :: and ::1 themselves.
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if v6("64:ff9b::/96").contains(&ip) {
        return Some(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    None
}

/// The class of `ip` (IPv6 forms carrying an IPv4 address are judged as that address).
pub fn classify(ip: IpAddr) -> AddressClass {
    use AddressClass::*;
    match ip {
        IpAddr::V4(ip) => {
            let table: [(&str, AddressClass); 12] = [
                ("0.0.0.0/8", Forbidden("unspecified")),
                ("169.254.0.0/16", Forbidden("link-local (cloud metadata)")),
                ("224.0.0.0/4", Forbidden("multicast")),
                ("255.255.255.255/32", Forbidden("broadcast")),
                ("240.0.0.0/4", Forbidden("reserved")),
                ("127.0.0.0/8", Private("loopback")),
                ("10.0.0.0/8", Private("private")),
                ("172.16.0.0/12", Private("private")),
                ("192.168.0.0/16", Private("private")),
                ("100.64.0.0/10", Private("shared (CGNAT)")),
                ("198.18.0.0/15", Private("benchmarking")),
                ("192.0.0.0/24", Private("IETF protocol assignments")),
            ];
            table.iter().find(|(net, _)| v4(net).contains(&ip)).map_or(Public, |(_, class)| *class)
        }
        IpAddr::V6(ip) => {
            if let Some(inner) = embedded_v4(ip) {
                return classify(IpAddr::V4(inner));
            }
            let table: [(IpNet, AddressClass); 6] = [
                (IpNet::V6(v6("::/128")), Forbidden("unspecified")),
                (IpNet::V6(v6("fd00:ec2::254/128")), Forbidden("cloud metadata")),
                (IpNet::V6(v6("fe80::/10")), Forbidden("link-local")),
                (IpNet::V6(v6("ff00::/8")), Forbidden("multicast")),
                (IpNet::V6(v6("::1/128")), Private("loopback")),
                (IpNet::V6(v6("fc00::/7")), Private("unique local")),
            ];
            let ip = IpAddr::V6(ip);
            table.iter().find(|(net, _)| net.contains(&ip)).map_or(Public, |(_, class)| *class)
        }
    }
}

/// Whether `ip` may be a webhook target; the refusal says why (`WEBHOOK_URL_FORBIDDEN`).
pub fn check_address(ip: IpAddr, block_private: bool) -> Result<()> {
    let refuse = |why: &str| Err(Error::new(ErrorCode::WebhookUrlForbidden, format!("the target {ip} is {why}")));
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Private(kind) if block_private => {
            refuse(&format!("{kind}, and [webhooks] block_private_targets is on"))
        }
        AddressClass::Private(_) => Ok(()),
        AddressClass::Forbidden(kind) => refuse(kind),
    }
}
