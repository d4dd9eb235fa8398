//! Property tests of the SSRF guard: the URL syntax check on arbitrary text, the address classes on arbitrary
//! addresses, and that no IPv6 form carrying a refused IPv4 address (IPv4-mapped, IPv4-compatible, NAT64) gets
//! through where the IPv4 address itself is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::target::{AddressClass, MAX_URL_LEN, check_address, classify, parse_url};
use crate::error::ErrorCode;

/// IPv4 addresses biased towards the special ranges (where the interesting boundaries are).
fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    let special = prop::sample::select(vec![0u8, 10, 100, 127, 169, 172, 192, 198, 224, 239, 240, 255]);
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from),
        (special, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d)),
    ]
}

/// The IPv6 forms that carry `ip`: IPv4-mapped, IPv4-compatible and NAT64 (64:ff9b::/96).
fn carriers(ip: Ipv4Addr) -> [Ipv6Addr; 3] {
    let [a, b, c, d] = ip.octets();
    let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
    [ip.to_ipv6_mapped(), ip.to_ipv6_compatible(), Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Every form of a refused IPv4 address is refused too (in both modes), with the same code. The one
    /// exception is `::0.0.0.1`, the IPv4-compatible spelling of `0.0.0.1`, which *is* `::1`, the IPv6 loopback
    /// address, and is judged as such (it reaches the host itself, not an IPv4 network).
    #[test]
    fn every_ipv6_form_of_a_refused_ipv4_is_refused(ip in ipv4(), block_private in any::<bool>()) {
        let verdict = check_address(IpAddr::V4(ip), block_private).map_err(|e| e.code);
        for (i, form) in carriers(ip).into_iter().enumerate() {
            if form == Ipv6Addr::LOCALHOST {
                prop_assert_eq!(classify(IpAddr::V6(form)), AddressClass::Private("loopback"));
                continue;
            }
            let theirs = check_address(IpAddr::V6(form), block_private).map_err(|e| e.code);
            if verdict.is_err() {
                prop_assert_eq!(&theirs, &verdict, "form {} ({}) of {}", i, form, ip);
            }
            // The forms are judged as the address they carry, refused or not.
            prop_assert_eq!(classify(IpAddr::V6(form)), classify(IpAddr::V4(ip)), "form {} ({})", i, form);
        }
    }

    /// Any address: classified without panicking; a refusal is `WEBHOOK_URL_FORBIDDEN`; blocking private targets
    /// only ever refuses more.
    #[test]
    fn any_address_is_classified_and_refusals_carry_the_code(bits in any::<u128>(), v4 in any::<u32>(), six in any::<bool>()) {
        let ip = if six { IpAddr::V6(Ipv6Addr::from(bits)) } else { IpAddr::V4(Ipv4Addr::from(v4)) };
        let open = check_address(ip, false);
        let strict = check_address(ip, true);
        for result in [&open, &strict] {
            if let Err(e) = result {
                prop_assert_eq!(e.code, ErrorCode::WebhookUrlForbidden);
            }
        }
        prop_assert!(open.is_ok() || strict.is_err());
        match classify(ip) {
            AddressClass::Public => prop_assert!(open.is_ok() && strict.is_ok()),
            AddressClass::Private(_) => prop_assert!(open.is_ok() && strict.is_err()),
            AddressClass::Forbidden(_) => prop_assert!(open.is_err() && strict.is_err()),
        }
    }

    /// Arbitrary text as a webhook URL: parsed (http/https, a host, no credentials, a port) or refused as
    /// `VALIDATION_FAILED`.
    #[test]
    fn arbitrary_text_is_a_url_or_validation_failed(text in prop_oneof![
        "\\PC{0,80}",
        "(http|https|ftp|file)://([a-z]{1,5}(:[a-z]{0,3})?@)?(\\[[0-9a-f:.]{0,30}\\]|[0-9a-z.%-]{0,30})(:[0-9]{0,6})?(/\\PC{0,20})?",
    ]) {
        match parse_url(&text) {
            Ok(url) => {
                prop_assert!(url.scheme == "http" || url.scheme == "https");
                prop_assert!(!url.host.is_empty());
                prop_assert!(url.port > 0 || text.contains(":0"));
                if let Some(ip) = url.ip {
                    prop_assert_eq!(ip.to_string(), url.host);
                }
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::ValidationFailed),
        }
    }

    /// An over-long URL is refused before it is parsed.
    #[test]
    fn over_long_urls_are_refused(extra in 1usize..64) {
        let text = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN + extra - 20));
        prop_assert_eq!(parse_url(&text).unwrap_err().code, ErrorCode::ValidationFailed);
    }

    /// A URL naming an IP literal yields that address, which the address check then judges.
    #[test]
    fn ip_literals_are_extracted(bits in any::<u128>(), v4 in any::<u32>(), six in any::<bool>(), port in 1u16..) {
        let (ip, host) = if six {
            let ip = Ipv6Addr::from(bits);
            (IpAddr::V6(ip), format!("[{ip}]"))
        } else {
            let ip = Ipv4Addr::from(v4);
            (IpAddr::V4(ip), ip.to_string())
        };
        let url = parse_url(&format!("http://{host}:{port}/hook")).unwrap();
        prop_assert_eq!(url.ip, Some(ip));
        prop_assert_eq!(url.port, port);
    }
}
