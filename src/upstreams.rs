//! The configured upstream GraphQL servers: their schemas read at start, which hub subscription
//! fields they serve, and the credentials each client's operations are forwarded with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use subhub_upstream_ws::{introspect, Namespace, TypeModel, Upstream, UpstreamConfig, UpstreamError};

/// One upstream, ready to serve.
pub struct UpstreamEntry {
    pub name: String,
    pub config: UpstreamConfig,
    pub pool: Arc<Upstream>,
    pub model: TypeModel,
    pub namespace: Namespace,
    /// Hub field name -> upstream field name, for its subscription fields.
    pub root_fields: HashMap<String, String>,
}

impl UpstreamEntry {
    /// The `connection_init` payload a client's operations go upstream with: the configured
    /// `init_payload` plus the client's own values of the `forward_init` keys.
    pub fn init_payload(&self, client: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
        let mut payload = self.config.init_payload.clone().unwrap_or_default();
        if let Some(client) = client {
            for key in &self.config.forward_init {
                if let Some(value) = client.get(key) {
                    payload.insert(key.clone(), value.clone());
                }
            }
        }
        (!payload.is_empty() || self.config.init_payload.is_some()).then_some(payload)
    }
}

/// Every upstream, and which serves each hub subscription field.
#[derive(Default)]
pub struct Upstreams {
    entries: Vec<Arc<UpstreamEntry>>,
    by_field: HashMap<String, usize>,
}

impl Upstreams {
    /// Reads each upstream's schema: from `sdl` if configured, else by introspection, waiting
    /// up to `startup_timeout` for an unreachable upstream.
    /// `max_message_bytes`: the largest result an upstream may send (`limits.max_message_bytes`).
    pub async fn start(
        configs: &BTreeMap<String, UpstreamConfig>,
        max_message_bytes: usize,
    ) -> Result<Self, UpstreamError> {
        let mut upstreams = Upstreams::default();
        for (name, config) in configs {
            let model = match &config.sdl {
                Some(path) => {
                    let schema_error = |reason: String| UpstreamError::Schema { upstream: name.clone(), reason };
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| schema_error(format!("cannot read sdl file {}: {e}", path.display())))?;
                    TypeModel::from_sdl(&text).map_err(|e| schema_error(format!("{}: {e}", path.display())))?
                }
                None => {
                    introspect::introspect(name, &config.url, config.init_payload.clone(), config.startup_timeout)
                        .await?
                }
            };
            let Some(subscription) = model.subscription.clone() else {
                return Err(UpstreamError::Schema {
                    upstream: name.clone(),
                    reason: "it has no subscription type".into(),
                });
            };
            let namespace = Namespace::new(
                config.namespace(name),
                model.reachable().into_iter().map(|t| t.name.clone()),
                &subscription,
            );
            let root_fields: HashMap<String, String> =
                model.subscription_fields().iter().map(|f| (namespace.hub_name(&f.name), f.name.clone())).collect();
            let index = upstreams.entries.len();
            for field in root_fields.keys() {
                upstreams.by_field.insert(field.clone(), index);
            }
            let pool = Upstream::new(name, &config.url, config.keepalive, config.linger, max_message_bytes);
            tracing::info!(upstream = %name, url = %config.url, fields = root_fields.len(), "upstream schema loaded");
            upstreams.entries.push(Arc::new(UpstreamEntry {
                name: name.clone(),
                config: config.clone(),
                pool,
                model,
                namespace,
                root_fields,
            }));
        }
        Ok(upstreams)
    }

    pub fn entries(&self) -> &[Arc<UpstreamEntry>] {
        &self.entries
    }

    /// Keeps only the keys of a client's `connection_init` payload that some upstream forwards
    /// (`forward_init`): the rest is never needed, and a session holds what it keeps.
    pub fn forwarded(&self, payload: Option<Map<String, Value>>) -> Option<Map<String, Value>> {
        let mut payload = payload?;
        payload.retain(|key, _| self.entries.iter().any(|entry| entry.config.forward_init.contains(key)));
        (!payload.is_empty()).then_some(payload)
    }

    /// The upstream serving a hub subscription field.
    pub fn route(&self, field: &str) -> Option<&Arc<UpstreamEntry>> {
        self.by_field.get(field).map(|&index| &self.entries[index])
    }
}
