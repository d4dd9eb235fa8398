//! OPS-07 benchmark (called from the bench binary; prints numbers, asserts nothing): the IP access control's cost
//! per request with 1,000 CIDR rules, in microseconds. Each check is what the middleware does for a request:
//! resolve the client (socket peer, `X-Forwarded-For` walked right to left through trusted proxies) and ask the
//! class's rules, here with the matching rule last (every rule is tried).

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use waiaas_core::acl::{AclRules, ClassRule, EndpointClass};

fn rules(count: usize) -> Vec<IpNet> {
    (0..count).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256).parse().expect("CIDR")).collect()
}

fn per_check_us(acl: &AclRules, peer: IpAddr, forwarded: &[&str], class: EndpointClass) -> f64 {
    const N: u32 = 20_000;
    let started = Instant::now();
    for _ in 0..N {
        let client = acl.client(std::hint::black_box(peer), forwarded);
        std::hint::black_box(acl.admits(class, &client));
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(N)
}

pub fn report() {
    let mut allowed = rules(999);
    allowed.push("192.0.2.0/24".parse().expect("CIDR"));
    let acl = AclRules {
        session: ClassRule { allowed, denied: vec![] },
        trusted_proxies: rules(1_000).into_iter().rev().collect(),
        ..AclRules::default()
    };
    let peer: IpAddr = "192.0.2.7".parse().expect("IP");
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("IP");
    let proxy: IpAddr = "10.0.0.9".parse().expect("IP");
    for (name, peer, forwarded) in [
        ("ACL check, 1,000 allowed CIDRs (last matches)", peer, &[][..]),
        ("ACL check, IPv4-mapped peer", mapped, &[][..]),
        ("ACL check via 1,000 trusted-proxy CIDRs + XFF", proxy, &["192.0.2.7, 10.0.0.10"][..]),
    ] {
        let us = per_check_us(&acl, peer, forwarded, EndpointClass::Session);
        println!("{name:<44} {us:>8.2} µs per request   reference: OPS-07 (no SPEC §7 figure)");
    }
}
