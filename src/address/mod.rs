//! Client addresses: which client a connection or a request is for, and the limits each client
//! address is held to (`limits.connect_rate_per_ip`, `limits.connections_per_ip`).
//!
//! A client is known by its address, an IPv6 client by its /64: one host is given a whole /64
//! and may use any address in it, so a limit per full IPv6 address would not hold it.
//!
//! Behind a load balancer every connection comes from the balancer. For a peer in
//! `[http] trusted_proxies`, the client is the address the proxy names in `Forwarded` or
//! `X-Forwarded-For`, which is known only once a request's head is read: the per-address limits
//! are then applied to each request (see `server`), instead of to the connection at accept.
//! From any other peer those headers are ignored: a client could write anything in them.
//!
//! ## Layout
//! - this file: the key of an address, and the client a trusted proxy forwards.
//! - [`limits`]: the connect rate and the open connections of each address.

pub mod limits;

use std::net::{IpAddr, Ipv6Addr};

use axum::http::{header, HeaderMap, HeaderName};
use ipnet::IpNet;

pub use limits::{AddressLimits, AddressSlot, OverLimit};

/// The key of a client address in the per-address limits: an IPv4 address itself (also when it
/// arrives mapped into IPv6), an IPv6 address by its /64.
pub fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The proxies of `[http] trusted_proxies`.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            IpAddr::V4(_) => address,
        };
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client a request from the trusted proxy `peer` is for: walking the hops the proxies
    /// appended (`Forwarded` if there is one, else `X-Forwarded-For`) from the nearest, the
    /// first that is not itself a trusted proxy. A hop that is not an address (`unknown`, an
    /// obfuscated name) ends the walk at the last one known, so a client can never choose the
    /// address it is counted under.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded: Vec<&str> = values(headers, &header::FORWARDED);
        let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
            values(headers, &X_FORWARDED_FOR).iter().flat_map(|value| value.split(',')).map(parse_node).collect()
        } else {
            forwarded
                .iter()
                .flat_map(|value| value.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                        .and_then(|(_, node)| parse_node(node))
                })
                .collect()
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|value| value.to_str().ok()).collect()
}

/// One node of a `Forwarded: for=` or an `X-Forwarded-For` list: `192.0.2.7`, `192.0.2.7:4711`,
/// `"[2001:db8::1]:4711"`, `2001:db8::1`; `None` for `unknown` and obfuscated names.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(address, _)| address.parse().ok());
    }
    node.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), key(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(key(ip("2001:db8:1:2::1")), key(ip("2001:db8:1:3::1")));
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_client_is_the_nearest_hop_that_is_not_a_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(trusted.client_of(peer, &spoofed), ip("203.0.113.9"), "what the client wrote itself is passed");
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(trusted.client_of(peer, &split), ip("203.0.113.9"));
        let forwarded = headers(&[
            ("forwarded", r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(trusted.client_of(peer, &forwarded), ip("2001:db8::7"), "Forwarded comes first");
        assert_eq!(trusted.client_of(peer, &HeaderMap::new()), peer, "no header: the proxy itself");
        let all_trusted = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(trusted.client_of(peer, &all_trusted), ip("10.1.1.1"));
        let unknown = headers(&[("forwarded", "for=203.0.113.9, for=unknown")]);
        assert_eq!(trusted.client_of(peer, &unknown), peer, "a hop that is no address ends the walk");
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(trusted.client_of(peer, &garbage), peer);
    }

    #[test]
    fn trusted_proxies_match_mapped_addresses() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(trusted.contains(ip("10.9.9.9")));
        assert!(trusted.contains(ip("::ffff:10.9.9.9")));
        assert!(trusted.contains(ip("2001:db8:ffff::1")));
        assert!(!trusted.contains(ip("192.0.2.1")));
        assert!(!TrustedProxies::default().contains(ip("10.0.0.1")));
    }
}
