//! Queries and mutations that select the supergraph's root fields, run by the federation
//! gateway (DESIGN §15) on any transport. The document was parsed and held to `[limits]` by the
//! hub's document cache like every other, and the client identified by `[auth]`; the gateway
//! validates and plans it once, and runs the hub's own root fields of a mixed query through the
//! hub's schema beside its fetches.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use axum::http::{HeaderMap, HeaderValue};
use futures_util::FutureExt;
use serde_json::{Map, Value};
use subhub_federation::{Gateway, GatewayMetrics, Local, Refusal, SubgraphMetrics, SubgraphResult};
use subhub_protocol::OperationPayload;
use subhub_subscriptions::metrics::{Counter, Histogram};
use subhub_subscriptions::Metrics;

use crate::auth::Identity;
use crate::documents::Prepared;
use crate::hub::Hub;

/// A federated operation's answer.
pub enum Outcome {
    /// The serialized GraphQL response.
    Response(String),
    Refused(Refusal),
}

impl From<Outcome> for subhub_subscriptions::ExecutionItem {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Response(body) => subhub_subscriptions::ExecutionItem::Next(body.into()),
            Outcome::Refused(refusal) => subhub_subscriptions::ExecutionItem::Error(refusal.errors_json().into()),
        }
    }
}

/// Where the values a subgraph may be forwarded come from.
pub enum Forwarded<'a> {
    /// The request's HTTP headers.
    Http(&'a HeaderMap),
    /// A WebSocket client's `connection_init` payload, its keys as header names.
    Init(Option<&'a Map<String, Value>>),
}

/// Runs the operation when it selects a root field of the supergraph; `None` leaves it to the
/// hub's own schema.
pub async fn run(
    hub: &Arc<Hub>,
    payload: &OperationPayload,
    prepared: &Prepared,
    identity: &Identity,
    forwarded: Forwarded<'_>,
) -> Option<Outcome> {
    let gateway = hub.gateway.as_ref()?;
    if !selects_supergraph(gateway, &prepared.document.parsed, payload.operation_name.as_deref()) {
        return None;
    }
    let federated = match gateway.prepare(&payload.query, payload.operation_name.as_deref()).await {
        Ok(federated) => federated,
        Err(refusal) => return Some(Outcome::Refused(refusal)),
    };
    let local = federated.local.as_deref().map(|text| local_part(hub, payload, text, identity).boxed());
    let request = subhub_federation::Request {
        variables: payload.variables.as_ref(),
        headers: forwarded_headers(gateway, forwarded),
        claims: identity.authenticated.then_some(&identity.claims),
        local,
    };
    Some(match gateway.execute(&federated, request).await {
        Ok(body) => Outcome::Response(body),
        Err(refusal) => Outcome::Refused(refusal),
    })
}

/// The hub's own root fields of a mixed query, run through the hub's schema.
async fn local_part(hub: &Arc<Hub>, payload: &OperationPayload, text: &str, identity: &Identity) -> Local {
    let part = OperationPayload { query: text.to_owned(), ..payload.clone() };
    let response = match hub.prepare(&part) {
        Ok(prepared) => hub.schema.execute(super::request(&part, &prepared).data(identity.clone())).await,
        Err(refused) => {
            let errors = serde_json::from_str(refused.errors_json()).unwrap_or_default();
            return Local { data: Map::new(), errors };
        }
    };
    let mut value = serde_json::to_value(&response).unwrap_or_default();
    let data = match value.get_mut("data").map(Value::take) {
        Some(Value::Object(data)) => data,
        _ => Map::new(),
    };
    let errors = match value.get_mut("errors").map(Value::take) {
        Some(Value::Array(errors)) => errors,
        _ => Vec::new(),
    };
    Local { data, errors }
}

/// The client's values of the headers some subgraph forwards.
fn forwarded_headers(gateway: &Gateway, forwarded: Forwarded<'_>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in gateway.forwarded_headers() {
        match &forwarded {
            Forwarded::Http(client) => {
                for value in client.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
            Forwarded::Init(init) => {
                let value = init.and_then(|init| init.iter().find(|(key, _)| key.eq_ignore_ascii_case(name.as_str())));
                if let Some(value) = value.and_then(|(_, v)| v.as_str()).and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.append(name.clone(), value);
                }
            }
        }
    }
    headers
}

/// Whether the operation `name` picks selects a root field the supergraph serves.
fn selects_supergraph(gateway: &Gateway, document: &ExecutableDocument, name: Option<&str>) -> bool {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return false,
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => match operations.values().next() {
            Some(operation) => operation,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    let mutation = match operation.node.ty {
        OperationType::Query => false,
        OperationType::Mutation => true,
        OperationType::Subscription => return false,
    };
    let mut seen = Vec::new();
    selects(gateway, document, &operation.node.selection_set.node, mutation, &mut seen)
}

fn selects<'a>(
    gateway: &Gateway,
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    mutation: bool,
    seen: &mut Vec<&'a str>,
) -> bool {
    set.items.iter().any(|selection| match &selection.node {
        Selection::Field(field) => gateway.runs(mutation, field.node.name.node.as_str()),
        Selection::InlineFragment(inline) => {
            selects(gateway, document, &inline.node.selection_set.node, mutation, seen)
        }
        Selection::FragmentSpread(spread) => {
            let name = spread.node.fragment_name.node.as_str();
            if seen.contains(&name) {
                return false;
            }
            seen.push(name);
            document
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|fragment| selects(gateway, document, &fragment.node.selection_set.node, mutation, seen))
        }
    })
}

/// The gateway's numbers (DESIGN §18), counted into the hub's one list of metrics.
pub struct GatewayCounts(pub Arc<Metrics>);

impl GatewayMetrics for GatewayCounts {
    fn subgraph(&self, name: &str) -> Arc<dyn SubgraphMetrics> {
        let metrics = &self.0;
        Arc::new(SubgraphCounts {
            results: SubgraphResult::ALL.map(|result| metrics.subgraph_requests.series(&[name, result.label()])),
            seconds: metrics.subgraph_request_seconds.series(&[name]),
            shared: metrics.subgraph_requests_shared.series(&[name]),
        })
    }

    fn plan_lookup(&self, hit: bool) {
        let lookups = &self.0.plan_cache;
        if hit { &lookups.hits } else { &lookups.misses }.fetch_add(1, Relaxed);
    }
}

/// One subgraph's series, resolved when the gateway is built.
struct SubgraphCounts {
    /// By [`SubgraphResult::ALL`]'s order.
    results: [Counter; SubgraphResult::ALL.len()],
    seconds: Histogram,
    shared: Counter,
}

impl SubgraphMetrics for SubgraphCounts {
    fn request(&self, result: SubgraphResult, took: Duration) {
        if let Some(counter) = SubgraphResult::ALL.iter().position(|r| *r == result).map(|i| &self.results[i]) {
            counter.fetch_add(1, Relaxed);
        }
        self.seconds.observe(took.as_secs_f64());
    }

    fn shared(&self) {
        self.shared.fetch_add(1, Relaxed);
    }
}
