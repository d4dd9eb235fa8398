//! Property tests of the client resolution: any `X-Forwarded-For` text from any peer resolves without a panic,
//! only a trusted peer's header is believed, hops left of the first untrusted one (spoofable) never matter, and
//! locality needs every address seen to be loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
        (0u8..4).prop_map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        (0u8..4).prop_map(|n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))),
    ]
}

/// One hop as a proxy may write it: bare, with a port, bracketed IPv6 with a port, padded.
fn written(ip: IpAddr, style: u8) -> String {
    match (style % 3, ip) {
        (1, IpAddr::V4(v4)) => format!("{v4}:{}", 1000 + u16::from(style)),
        (1, IpAddr::V6(v6)) => format!("[{v6}]:443"),
        (2, ip) => format!("  {ip} "),
        (_, ip) => ip.to_string(),
    }
}

/// A header value: any text, or hops mixed with garbage.
fn header_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,60}",
        prop::collection::vec((ip(), any::<u8>()).prop_map(|(ip, s)| written(ip, s)), 0..5).prop_map(|h| h.join(",")),
        "[0-9a-f:.,\\[\\] ]{0,40}",
    ]
}

fn rules(trusted: Vec<IpNet>) -> AclRules {
    AclRules { trusted_proxies: trusted, ..AclRules::default() }
}

fn trusted_nets() -> impl Strategy<Value = Vec<IpNet>> {
    prop::collection::vec(
        prop_oneof![
            Just("10.0.0.0/24".parse::<IpNet>().unwrap()),
            Just("127.0.0.0/8".parse().unwrap()),
            Just("::1/128".parse().unwrap()),
            (ip(), 0u8..=128).prop_map(|(ip, len)| {
                let ip = ip.to_canonical();
                let max = if ip.is_ipv4() { 32 } else { 128 };
                IpNet::new(ip, len.min(max)).unwrap().trunc()
            }),
        ],
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any header from any peer: the client is the peer or one of the hops written, canonical; a local client
    /// came from a loopback peer and is loopback itself.
    #[test]
    fn any_header_resolves_to_the_peer_or_a_written_hop(
        trusted in trusted_nets(),
        peer in ip(),
        lines in prop::collection::vec(header_line(), 0..3),
    ) {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let client = rules(trusted.clone()).client(peer, &lines);
        prop_assert_eq!(client.ip, client.ip.to_canonical());
        let hops: Vec<IpAddr> =
            lines.iter().flat_map(|l| l.split(',')).filter_map(|h| parse_hop(h.trim())).collect();
        prop_assert!(client.ip == peer.to_canonical() || hops.contains(&client.ip));
        if client.local {
            prop_assert!(peer.to_canonical().is_loopback() && client.ip.is_loopback());
            prop_assert!(hops.iter().all(IpAddr::is_loopback));
        }
        if !contains(&trusted, peer) {
            prop_assert_eq!(client.ip, peer.to_canonical(), "an untrusted peer's header was believed");
        }
    }

    /// Behind a chain of trusted proxies, the client is the rightmost untrusted hop: whatever the client wrote
    /// left of itself (spoofed hops, garbage) changes nothing.
    #[test]
    fn spoofed_hops_left_of_the_client_never_matter(
        spoofed in prop::collection::vec(header_line(), 0..3),
        client in ip(),
        proxies in prop::collection::vec(0u8..=255, 0..3),
        style in any::<u8>(),
    ) {
        let trusted: Vec<IpNet> = vec!["10.9.0.0/16".parse().unwrap()];
        prop_assume!(!contains(&trusted, client));
        let peer = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1));
        let mut line = spoofed.join(",");
        line.push(',');
        line.push_str(&written(client, style));
        for p in &proxies {
            line.push_str(&format!(", 10.9.1.{p}"));
        }
        let resolved = rules(trusted).client(peer, &[&line]);
        prop_assert_eq!(resolved.ip, client.to_canonical());
        prop_assert!(!resolved.local, "a non-loopback peer made the client local");
    }

    /// An IPv4-mapped peer is the IPv4 peer: same client, same locality.
    #[test]
    fn mapped_peers_resolve_as_ipv4(trusted in trusted_nets(), v4 in any::<u32>(), line in header_line()) {
        let v4 = Ipv4Addr::from(v4);
        let r = rules(trusted);
        prop_assert_eq!(r.client(IpAddr::V4(v4), &[&line]), r.client(IpAddr::V6(v4.to_ipv6_mapped()), &[&line]));
    }
}
