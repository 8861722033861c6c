//! # subhub-federation
//!
//! The hub as a federation gateway (DESIGN §15): a Federation v2 supergraph is served beside
//! the hub's own schemas; each distinct query or mutation is validated, planned and cached
//! once, then every request runs the plan's prepared fetches across the subgraphs that own
//! the data and writes the client's answer in its selection's shape.
//!
//! Planning is not ours: `hive-router-query-planner` does it, behind [`planner`] alone. The
//! execution is ours: it is where requests are shared.
//!
//! ## Layout
//! - [`config`]: `[federation]` and `[subgraphs.NAME]`.
//! - [`compose`]: a supergraph composed from subgraph SDLs (`subhub compose`).
//! - [`supergraph`]: the supergraph read at start: its planner, its API schema.
//! - [`served`]: the supergraph's API schema and the hub's own, as one schema.
//! - [`introspection`]: `__schema` and `__type` answered from it.
//! - [`schema`]: the types of a schema, as execution and projection need them.
//! - [`planner`]: the query planner, the only module that knows it; [`plan`]: its plans in
//!   our terms.
//! - [`operation`]: an operation prepared once: validated, cut at its root, planned.
//! - [`plan_cache`]: prepared operations by (document hash, operation name), bounded.
//! - [`execute`]: a plan run: fetches, entities, merging, errors.
//! - [`project`]: the client's answer written from the merged data.
//! - [`subgraph`]: pooled HTTP clients of the subgraphs, shared in-flight requests.
//! - [`metrics`]: what it counts (`subhub_subgraph_*`, `subhub_plan_cache_total`), told to
//!   the hub's metrics.
//! - [`values`]: GraphQL literals as JSON.

pub mod compose;
pub mod config;
pub mod execute;
pub mod introspection;
pub mod metrics;
pub mod operation;
pub mod plan;
pub mod plan_cache;
pub mod planner;
pub mod project;
pub mod schema;
pub mod served;
pub mod subgraph;
pub mod supergraph;
pub mod values;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value as Json};

pub use config::{FederationConfig, SubgraphConfig};
pub use metrics::{GatewayMetrics, SubgraphMetrics, SubgraphResult};
pub use operation::{Prepared, Refusal};
pub use plan::OperationKind;
pub use supergraph::{Supergraph, SupergraphError};

use operation::Validation;
use plan_cache::PlanCache;
use subgraph::{Outgoing, Subgraphs};

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Supergraph(#[from] SupergraphError),
    #[error("{0}")]
    Served(String),
    #[error(transparent)]
    Subgraph(#[from] subgraph::SetupError),
    #[error("{0}")]
    UnknownSubgraph(String),
}

/// The part of a mixed operation the hub resolves itself: its root fields' values by response
/// key, and its errors.
#[derive(Debug, Default)]
pub struct Local {
    pub data: Map<String, Json>,
    pub errors: Vec<Json>,
}

/// One request through the gateway.
pub struct Request<'a> {
    pub variables: Option<&'a Map<String, Json>>,
    /// The client's headers (HTTP headers, or the values of a WebSocket's `connection_init`).
    pub headers: HeaderMap,
    /// The client's verified claims, when it presented a token.
    pub claims: Option<&'a Map<String, Json>>,
    /// The hub's own part of the operation ([`Prepared::local`]), running.
    pub local: Option<BoxFuture<'a, Local>>,
}

struct Shared {
    supergraph: Arc<Supergraph>,
    validation: Validation,
    /// The types of everything the hub serves.
    served: schema::Schema,
    introspection: introspection::Introspection,
}

pub struct Gateway {
    shared: Arc<Shared>,
    subgraphs: Subgraphs,
    cache: PlanCache,
    claims_header: Option<HeaderName>,
}

impl Gateway {
    /// The gateway of `supergraph`, served beside the hub's own schema (`own_sdl`), counting
    /// into `metrics`.
    pub fn new(
        supergraph: Arc<Supergraph>,
        own_sdl: &str,
        config: &FederationConfig,
        subgraph_configs: &BTreeMap<String, SubgraphConfig>,
        metrics: Arc<dyn GatewayMetrics>,
    ) -> Result<Self, StartError> {
        if let Some(unknown) = supergraph.unknown_subgraph(subgraph_configs.keys()) {
            return Err(StartError::UnknownSubgraph(unknown));
        }
        let urls = supergraph.planner.subgraph_urls();
        let served_document = served::merge(supergraph.planner.api_schema(), own_sdl).map_err(StartError::Served)?;
        let served = schema::Schema::from_document(&served_document);
        let introspection = introspection::Introspection::new(served_document.clone());
        let validation = Validation::new(served_document);
        let subgraphs = Subgraphs::new(urls, subgraph_configs, metrics.as_ref())?;
        let claims_header =
            config.claims_header.as_deref().and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok());
        Ok(Gateway {
            shared: Arc::new(Shared { supergraph, validation, served, introspection }),
            subgraphs,
            cache: PlanCache::new(config.plan_cache, config.plan_cache_bytes, metrics),
            claims_header,
        })
    }

    pub fn supergraph(&self) -> &Supergraph {
        &self.shared.supergraph
    }

    /// Whether the gateway runs an operation with the root field `name`: one the supergraph
    /// serves, or (in a query) introspection, which it answers for the whole served schema.
    pub fn runs(&self, mutation: bool, name: &str) -> bool {
        (!mutation && operation::is_introspection(name)) || self.serves(mutation, name)
    }

    /// Whether the supergraph serves the root field `name` of queries (or of mutations).
    pub fn serves(&self, mutation: bool, name: &str) -> bool {
        let api = &self.shared.supergraph.api;
        let root = if mutation { api.mutation.as_deref() } else { Some(api.query.as_str()) };
        !name.starts_with("__") && root.is_some_and(|root| api.field(root, name).is_some())
    }

    /// The header names some subgraph is sent from a client's.
    pub fn forwarded_headers(&self) -> &[HeaderName] {
        self.subgraphs.forwarded_names()
    }

    /// The operation `operation_name` picks in `text`, prepared (validated, planned) once and
    /// cached.
    pub async fn prepare(&self, text: &str, operation_name: Option<&str>) -> Result<Arc<Prepared>, Refusal> {
        let shared = self.shared.clone();
        let (owned_text, owned_name) = (text.to_owned(), operation_name.map(str::to_owned));
        self.cache
            .get_or_prepare(text, operation_name, move || {
                let parts = operation::Parts {
                    planner: &shared.supergraph.planner,
                    api: &shared.supergraph.api,
                    served: &shared.served,
                    validation: &shared.validation,
                };
                operation::prepare(&parts, &owned_text, owned_name.as_deref()).map(Arc::new)
            })
            .await
    }

    /// Runs a prepared operation: the serialized GraphQL response, or why it was not run.
    pub async fn execute(&self, prepared: &Prepared, request: Request<'_>) -> Result<String, Refusal> {
        self.complete(prepared, prepared.plan.root.as_ref(), Map::new(), request).await
    }

    /// Completes `root`, the data an operation has so far, with the fetches of `node`, and
    /// writes the answer in `prepared`'s shape. A query starts from nothing and its plan's root;
    /// a subscription's event is the data its subgraph sent, completed with the nodes after the
    /// plan's subscription ([`plan::Plan::root`]), once per event for every subscriber of it.
    pub async fn complete(
        &self,
        prepared: &Prepared,
        node: Option<&plan::Node>,
        root: Map<String, Json>,
        request: Request<'_>,
    ) -> Result<String, Refusal> {
        let served = &self.shared.served;
        let variables = prepared.variables(request.variables, served)?;
        let projection = prepared.projection(&variables, served)?;
        let outgoing = Outgoing { client_headers: request.headers, claims: self.claims(request.claims) };
        let context = execute::Context {
            schema: &self.shared.supergraph.types,
            subgraphs: &self.subgraphs,
            variables: &variables,
            outgoing: &outgoing,
            share: prepared.kind != OperationKind::Mutation,
        };
        let plan = execute::run(&context, node, root);
        let (state, mut local) = match request.local {
            Some(local) => futures_util::future::join(plan, local).await,
            None => (plan.await, Local::default()),
        };
        if prepared.kind == OperationKind::Query {
            local.data.extend(prepared.introspect(&self.shared.introspection, &variables, &served.query));
        }
        let mut errors = state.errors;
        let data = project::write::data(&projection, &state.data, &local.data, &mut errors);
        let mut body = String::with_capacity(data.len() + 64);
        body.push_str(r#"{"data":"#);
        body.push_str(std::str::from_utf8(&data).unwrap_or("null"));
        let mut all_errors: Vec<Json> = local.errors;
        all_errors.extend(errors.iter().filter_map(|error| serde_json::to_value(error).ok()));
        if !all_errors.is_empty() {
            body.push_str(r#","errors":"#);
            body.push_str(&Json::Array(all_errors).to_string());
        }
        body.push('}');
        Ok(body)
    }

    fn claims(&self, claims: Option<&Map<String, Json>>) -> Option<(HeaderName, HeaderValue)> {
        let name = self.claims_header.clone()?;
        let text = Json::Object(claims?.clone()).to_string();
        HeaderValue::from_bytes(text.as_bytes()).ok().map(|value| (name, value))
    }
}
