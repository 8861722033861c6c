//! `[http]`: which web pages may use the hub from a browser, by which names it is reached, and
//! which proxies in front of it may say who their clients are.

use serde::Deserialize;

/// `[http]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Origins of web pages allowed to use the hub from a browser (CORS, and the `Origin` of
    /// POSTs and WebSocket upgrades): `https://app.example.com`, or `*` for any. None by
    /// default: only the hub's own pages and clients that are not browsers.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Host names the hub is reached by (`hub.example.com`), whose pages are the hub's own. An
    /// address (`10.0.0.5`, `[::1]`) and `localhost` always are; a name that is not listed may
    /// be a page whose name was made to resolve to the hub (DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Proxies and load balancers in front of the hub (addresses or CIDRs such as
    /// `10.0.0.0/8`): for a connection from one of them, the client's address is the one it
    /// names in `Forwarded` or `X-Forwarded-For`, and the per-address limits apply to that.
    /// None by default: those headers are ignored, since any client can send them.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl HttpConfig {
    /// Every origin, host and proxy in a form the hub can use, each mistake named by its key.
    pub(super) fn validate(&self) -> Result<(), String> {
        for origin in &self.cors_origins {
            if origin == "*" {
                continue;
            }
            let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            let valid = rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ']))
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if !valid {
                return Err(format!(
                    "http.cors_origins: `{origin}` is not an origin; write scheme and host, such as https://app.example.com (no path)"
                ));
            }
        }
        for host in &self.hosts {
            let valid = !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                && !host.starts_with(['.', '-']);
            if !valid {
                return Err(format!(
                    "http.hosts: `{host}` is not a host name; write the name alone, such as hub.example.com (no scheme, port or path)"
                ));
            }
        }
        self.proxies()?;
        Ok(())
    }

    /// `trusted_proxies` as networks; an address alone is a network of one.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|proxy| {
                proxy
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| proxy.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| {
                        format!(
                            "http.trusted_proxies: `{proxy}` is not an address or a CIDR; write one such as 10.0.0.0/8 or 192.0.2.7"
                        )
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(cors: &[&str], hosts: &[&str], proxies: &[&str]) -> HttpConfig {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        HttpConfig { cors_origins: owned(cors), hosts: owned(hosts), trusted_proxies: owned(proxies) }
    }

    #[test]
    fn only_origins_are_valid() {
        assert!(http(&["https://app.example.com", "http://127.0.0.1:3000", "*"], &[], &[]).validate().is_ok());
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x", "https://"] {
            assert!(http(&[bad], &[], &[]).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_names_alone() {
        assert!(http(&[], &["hub.example.com", "hub-1.internal"], &[]).validate().is_ok());
        for bad in ["https://hub.example.com", "hub.example.com:4000", "hub.example.com/x", "", ".example"] {
            assert!(http(&[], &[bad], &[]).validate().unwrap_err().contains("http.hosts"), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let config = http(&[], &[], &["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/16"]);
        let networks = config.proxies().unwrap();
        assert_eq!(networks[1], "192.0.2.7/32".parse().unwrap());
        assert_eq!(networks[3], "10.1.0.0/16".parse().unwrap(), "host bits are cleared");
        let message = http(&[], &[], &["10.0.0.0/33"]).validate().unwrap_err();
        assert!(message.contains("http.trusted_proxies") && message.contains("10.0.0.0/33"), "{message}");
    }
}
