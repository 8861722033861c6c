//! `[upstreams.NAME]`: one upstream GraphQL server.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `ws://` or `wss://`; graphql-transport-ws or graphql-ws, whichever the server picks.
    pub url: String,
    /// Prefix of the upstream's types and subscription fields (`pricing_ticks`, `pricing_Tick`);
    /// by default the upstream's name. `""` merges them as they are (a clash fails start).
    pub namespace: Option<String>,
    /// Read the upstream's schema from this SDL file instead of introspecting it at start.
    pub sdl: Option<PathBuf>,
    /// The `connection_init` payload sent upstream.
    pub init_payload: Option<Map<String, Value>>,
    /// Keys of the client's own `connection_init` payload forwarded upstream (e.g.
    /// `["authorization"]`). Clients whose forwarded values differ never share a connection.
    #[serde(default)]
    pub forward_init: Vec<String>,
    /// How long a connection stays open after its last subscription ends.
    #[serde(default, with = "humantime_serde")]
    pub linger: Duration,
    /// How long start waits for an unreachable upstream (unless its schema comes from `sdl`).
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// Interval of pings to the upstream; no answer for two intervals means the connection is lost.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_keepalive() -> Duration {
    Duration::from_secs(12)
}

impl UpstreamConfig {
    /// The prefix for this upstream's names (`name` unless configured).
    pub fn namespace<'a>(&'a self, name: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(name)
    }

    /// Checks what can be checked without connecting; names the key at fault.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return Err(format!("upstreams.{name}.url: `{}` is not a ws:// or wss:// URL", self.url));
        }
        if self.url.starts_with("wss://") {
            return Err(format!("upstreams.{name}.url: wss:// is not supported by this build; use ws://"));
        }
        let namespace = self.namespace(name);
        if !namespace.is_empty() && !namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("upstreams.{name}.namespace: `{namespace}` must be letters, digits and `_`"));
        }
        if namespace.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("upstreams.{name}.namespace: `{namespace}` must not start with a digit"));
        }
        if self.keepalive.is_zero() {
            return Err(format!("upstreams.{name}.keepalive: must be longer than 0s"));
        }
        Ok(())
    }
}
