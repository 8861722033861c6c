//! The subgraphs the gateway sends requests to: one pooled HTTP client each (HTTP/1.1 with
//! keep-alive, HTTP/2 where TLS negotiates it), every request bounded in time and response
//! size, identical in-flight queries sent once.
//!
//! ## Layout
//! - this file: a subgraph, its settings and the requests made to it.
//! - [`client`]: one request over HTTP, its response read up to the limit.
//! - [`inflight`]: identical requests in flight shared.

pub mod client;
pub mod inflight;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::SubgraphConfig;
use crate::metrics::{GatewayMetrics, SubgraphMetrics, SubgraphResult};

/// Why a request to a subgraph gave no GraphQL response. The variants carry no URL and no
/// library text: clients see a fixed message for each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubgraphError {
    #[error("the request timed out")]
    Timeout,
    #[error("the subgraph could not be reached")]
    Unreachable,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the response was larger than {0} bytes")]
    TooLarge(usize),
    #[error("the response was not a GraphQL response")]
    NotGraphql,
}

/// The settings of a subgraph that no supergraph gives: `[subgraphs.NAME]`, or their
/// defaults.
fn settings(config: Option<&SubgraphConfig>) -> SubgraphConfig {
    config.cloned().unwrap_or_else(SubgraphConfig::defaults)
}

pub struct Subgraph {
    pub name: String,
    url: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
    /// Client headers passed on, lowercase.
    forward_headers: Vec<HeaderName>,
    inflight: inflight::Inflight,
    metrics: Arc<dyn SubgraphMetrics>,
}

/// What a request carries besides its body.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    /// The client's headers (those some subgraph forwards).
    pub client_headers: HeaderMap,
    /// The hub's verified claims, when `[federation] claims_header` names a header for them.
    pub claims: Option<(HeaderName, HeaderValue)>,
}

impl Subgraph {
    /// The headers this subgraph gets for a client: the ones it forwards, and the claims.
    pub fn headers(&self, outgoing: &Outgoing) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        for name in &self.forward_headers {
            // A claims header is the hub's to set: a client's of that name is never passed on.
            if outgoing.claims.as_ref().is_some_and(|(claims, _)| claims == name) {
                continue;
            }
            for value in outgoing.client_headers.get_all(name) {
                headers.push((name.clone(), value.clone()));
            }
        }
        if let Some(claims) = &outgoing.claims {
            headers.push(claims.clone());
        }
        headers
    }

    /// Sends `body`; with `share`, an identical request already in flight is joined instead.
    pub async fn request(
        self: &Arc<Self>,
        body: Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
        share: bool,
    ) -> Result<Bytes, SubgraphError> {
        if !share {
            return self.send(body, headers).await;
        }
        let subgraph = self.clone();
        let send = move |key: inflight::Key| async move { subgraph.send(key.body, key.headers).await };
        self.inflight.run(inflight::Key { body, headers }, send, || self.metrics.shared()).await
    }

    async fn send(&self, body: Bytes, headers: Vec<(HeaderName, HeaderValue)>) -> Result<Bytes, SubgraphError> {
        let started = Instant::now();
        let request = client::Request { url: &self.url, body, headers, max_response_bytes: self.max_response_bytes };
        let result = match tokio::time::timeout(self.timeout, client::send(&self.client, request)).await {
            Ok(result) => result,
            Err(_) => Err(SubgraphError::Timeout),
        };
        let outcome = match &result {
            Ok(_) => SubgraphResult::Ok,
            Err(SubgraphError::Timeout) => SubgraphResult::Timeout,
            Err(_) => SubgraphResult::Error,
        };
        self.metrics.request(outcome, started.elapsed());
        if let Err(error) = &result {
            tracing::debug!(subgraph = %self.name, %error, "subgraph request failed");
        }
        result
    }
}

/// The subgraphs of a supergraph, by name.
pub struct Subgraphs {
    by_name: HashMap<String, Arc<Subgraph>>,
    /// Every header name some subgraph forwards.
    forwarded: Vec<HeaderName>,
}

/// A subgraph could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("subgraph `{name}`: `{url}` is not a valid http:// or https:// URL")]
    Url { name: String, url: String },
    #[error("subgraph `{0}`: forward_headers names `{1}`, which is not a header name")]
    Header(String, String),
    #[error("subgraph `{0}`: its HTTP client could not be built")]
    Client(String),
}

impl Subgraphs {
    /// A client for each subgraph of the supergraph (`urls`, by name), with the URL and
    /// settings `[subgraphs.NAME]` overrides.
    pub fn new(
        urls: &HashMap<String, String>,
        configs: &std::collections::BTreeMap<String, SubgraphConfig>,
        metrics: &dyn GatewayMetrics,
    ) -> Result<Self, SetupError> {
        let mut by_name = HashMap::new();
        for (name, supergraph_url) in urls {
            let config = settings(configs.get(name));
            let url_text = config.url.clone().unwrap_or_else(|| supergraph_url.clone());
            let url = reqwest::Url::parse(&url_text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| SetupError::Url { name: name.clone(), url: url_text.clone() })?;
            let forward_headers = config
                .forward_headers
                .iter()
                .map(|header| {
                    HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
                        .map_err(|_| SetupError::Header(name.clone(), header.clone()))
                })
                .collect::<Result<_, _>>()?;
            let client = client::build(config.timeout).map_err(|_| SetupError::Client(name.clone()))?;
            let subgraph = Subgraph {
                name: name.clone(),
                url,
                client,
                timeout: config.timeout,
                max_response_bytes: config.max_response_bytes,
                forward_headers,
                inflight: inflight::Inflight::default(),
                metrics: metrics.subgraph(name),
            };
            by_name.insert(name.clone(), Arc::new(subgraph));
        }
        let mut forwarded: Vec<HeaderName> = by_name.values().flat_map(|s| s.forward_headers.iter().cloned()).collect();
        forwarded.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        forwarded.dedup();
        Ok(Subgraphs { by_name, forwarded })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Subgraph>> {
        self.by_name.get(name)
    }

    /// Every header name some subgraph forwards (what a transport must keep of a client's).
    pub fn forwarded_names(&self) -> &[HeaderName] {
        &self.forwarded
    }
}
