//! `[federation]` and `[subgraphs.NAME]` (DESIGN §15).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[federation]`: the supergraph the hub serves as a gateway.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// A Federation v2 supergraph SDL, as rover, the Hive CLI, wgc or `subhub compose` print it.
    pub supergraph: PathBuf,
    /// The subgraph of the supergraph that the hub serves itself (the typed schema's fields).
    #[serde(default = "defaults::self_name", rename = "self")]
    pub self_name: String,
    /// Query plans kept, by (document hash, operation name).
    #[serde(default = "defaults::plan_cache")]
    pub plan_cache: usize,
    /// Bytes of document text the cached plans may stand for (a plan grows with its document).
    #[serde(default = "defaults::plan_cache_bytes")]
    pub plan_cache_bytes: usize,
    /// Longest time one operation may take to plan; over it the operation fails, not the hub.
    #[serde(default = "defaults::plan_timeout", with = "humantime_serde")]
    pub plan_timeout: Duration,
    /// A header every subgraph request carries the client's verified token claims in (as a
    /// JSON object), so subgraphs need not verify the token again; none when unset. A
    /// client's own header of that name is never passed on.
    pub claims_header: Option<String>,
}

/// `[subgraphs.NAME]`: settings of one subgraph, by its name in the supergraph.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubgraphConfig {
    /// Overrides the supergraph's URL of the subgraph (`http://` or `https://`).
    pub url: Option<String>,
    /// Where Subscription fields the subgraph owns are forwarded (`ws://` or `wss://`).
    pub subscriptions: Option<String>,
    /// The subgraph's SDL, for `subhub compose`; else `{ _service { sdl } }` at the url.
    pub sdl: Option<PathBuf>,
    /// Client headers passed on to the subgraph (HTTP headers, or `connection_init` values).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// Time one request to the subgraph may take.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest response body read from the subgraph.
    #[serde(default = "defaults::max_response_bytes")]
    pub max_response_bytes: usize,
}

mod defaults {
    use std::time::Duration;

    pub fn self_name() -> String {
        "subhub".to_owned()
    }

    pub const fn plan_cache() -> usize {
        1024
    }

    pub const fn plan_cache_bytes() -> usize {
        16 * 1024 * 1024
    }

    pub const fn plan_timeout() -> Duration {
        Duration::from_secs(10)
    }

    pub const fn timeout() -> Duration {
        Duration::from_secs(10)
    }

    pub const fn max_response_bytes() -> usize {
        8 * 1024 * 1024
    }
}

impl FederationConfig {
    /// Checks what can be checked without reading files; names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.plan_cache == 0 {
            return Err("federation.plan_cache must be at least 1".to_owned());
        }
        if self.plan_cache_bytes == 0 {
            return Err("federation.plan_cache_bytes must be at least 1".to_owned());
        }
        if self.self_name.is_empty() {
            return Err("federation.self must name a subgraph".to_owned());
        }
        if self.plan_timeout.is_zero() {
            return Err("federation.plan_timeout must be longer than 0s".to_owned());
        }
        if let Some(name) = &self.claims_header {
            if !is_header_name(name) {
                return Err(format!("federation.claims_header: `{name}` is not an HTTP header name"));
            }
        }
        Ok(())
    }
}

impl SubgraphConfig {
    /// Checks what can be checked without connecting; names the key at fault.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("subgraphs.{name}.url: `{url}` is not an http:// or https:// URL"));
            }
        }
        if let Some(url) = &self.subscriptions {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(format!("subgraphs.{name}.subscriptions: `{url}` is not a ws:// or wss:// URL"));
            }
        }
        if self.timeout.is_zero() {
            return Err(format!("subgraphs.{name}.timeout must be longer than 0s"));
        }
        if self.max_response_bytes == 0 {
            return Err(format!("subgraphs.{name}.max_response_bytes must be at least 1"));
        }
        if let Some(header) = self.forward_headers.iter().find(|header| !is_header_name(header)) {
            return Err(format!("subgraphs.{name}.forward_headers: `{header}` is not an HTTP header name"));
        }
        Ok(())
    }

    /// The settings of a subgraph without a `[subgraphs.NAME]` table.
    pub fn defaults() -> Self {
        SubgraphConfig {
            url: None,
            subscriptions: None,
            sdl: None,
            forward_headers: Vec::new(),
            timeout: defaults::timeout(),
            max_response_bytes: defaults::max_response_bytes(),
        }
    }
}

/// An HTTP header name (RFC 9110 token characters).
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
