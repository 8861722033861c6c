//! The hub's shared state: brokers, the registry, the schema, metrics, and the shutdown signal
//! every session watches.

use std::sync::Arc;

use subhub_brokers::{BrokerError, Brokers, BuildContext};
use subhub_subscriptions::{
    Executions, ForwardedSources, Metrics, OutboxConfig, Refusal, SlowConsumerPolicy, SourceLimits, Sources,
    UpstreamNumbers,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Auth, AuthError, Identity};
use crate::authz::{Access, Authz};
use crate::config::{Config, SlowConsumer};
use crate::documents::{CostLimits, Documents, Prepared, Refused};
use crate::execute::ExecModel;
use crate::publish::Publisher;
use crate::schema;
use crate::upstreams::Upstreams;
use crate::ws::keepalive::Keepalive;

pub struct Hub {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub brokers: Arc<Brokers>,
    pub sources: Arc<Sources>,
    pub executions: Arc<Executions>,
    pub publisher: Arc<Publisher>,
    pub upstreams: Arc<Upstreams>,
    /// The registry's sources of upstream operations.
    pub forwarded: Arc<ForwardedSources>,
    /// `None` when `[auth]` is not configured: everyone is anonymous.
    pub auth: Option<Auth>,
    /// `[authz]`, as every API checks it.
    pub access: Arc<Access>,
    pub schema: async_graphql::dynamic::Schema,
    /// What executions know of the schema's types, to write each event's result.
    pub exec_model: ExecModel,
    /// Documents parsed and measured once per distinct text.
    pub documents: Documents,
    /// Cancelled when the hub starts shutting down.
    pub shutdown: CancellationToken,
    /// Every client session (see `session`), so shutdown can wait for them to drain.
    pub sessions: TaskTracker,
    /// One permit per client session (`limits.max_connections`), taken before the upgrade is
    /// answered, so a burst of connects cannot overshoot the limit.
    pub session_permits: Arc<Semaphore>,
    /// Pings every WebSocket session each `limits.keepalive`.
    pub keepalive: Arc<Keepalive>,
    /// One permit per replay running (`limits.max_replays`).
    pub replays: Arc<Semaphore>,
    /// The federation gateway of `[federation]`: queries and mutations on the supergraph.
    pub gateway: Option<Arc<subhub_federation::Gateway>>,
}

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("broker setup failed: {0}")]
    Broker(#[from] BrokerError),
    #[error("schema: {0}")]
    Schema(String),
    #[error("{0}")]
    Auth(String),
    #[error(transparent)]
    Upstream(#[from] subhub_upstream_ws::UpstreamError),
    #[error("federation: {0}")]
    Federation(#[from] subhub_federation::StartError),
}

impl Hub {
    pub async fn new(config: Config) -> Result<Arc<Self>, StartError> {
        let metrics = Arc::new(Metrics::new());
        let limits = &config.limits;
        let context = BuildContext { max_message_bytes: limits.max_message_bytes };
        let brokers = Arc::new(Brokers::build(&config.brokers, &config.default_broker, &context).await?);
        let source_limits = SourceLimits {
            linger: limits.linger,
            buffer: limits.source_buffer,
            max_message_bytes: limits.max_message_bytes,
            max_topic_wildcards: limits.max_topic_wildcards,
            max_sources: limits.max_sources,
        };
        let sources = Sources::new(brokers.clone(), source_limits, metrics.clone());
        let executions = Executions::new(metrics.clone(), limits.max_executions);
        let publisher = Arc::new(Publisher::new(brokers.clone(), limits.max_message_bytes));
        let upstreams = Arc::new(Upstreams::start(&config.upstreams, limits.max_message_bytes).await?);
        let numbers = upstreams
            .entries()
            .iter()
            .map(|entry| UpstreamNumbers { name: entry.name.as_str().into(), stats: entry.pool.stats().clone() });
        metrics.read_stats_of(brokers.clone(), numbers.collect());
        let pools = upstreams.entries().iter().map(|entry| entry.pool.clone());
        let forwarded = Arc::new(ForwardedSources::new(pools, sources.capacity().clone(), metrics.clone()));
        let broker_names: Vec<&str> = config.brokers.keys().map(String::as_str).collect();
        let authz = config.authz.as_ref().map(|authz| Authz::from_config(authz, &broker_names)).transpose();
        let access = Arc::new(Access::new(authz.map_err(StartError::Auth)?, metrics.clone()));
        let parts = schema::Parts {
            access: access.clone(),
            sources: sources.clone(),
            publisher: publisher.clone(),
            upstreams: &upstreams,
            typed: config.typed.as_deref(),
            generic_api: config.generic_api,
        };
        let (schema, exec_model) = schema::build(parts).map_err(|e| StartError::Schema(e.0))?;
        let gateway = match (&config.federation, &config.supergraph) {
            (Some(federation), Some(supergraph)) => Some(Arc::new(subhub_federation::Gateway::new(
                supergraph.clone(),
                &schema.sdl(),
                federation,
                &config.subgraphs,
                Arc::new(crate::operation::federated::GatewayCounts(metrics.clone())),
            )?)),
            _ => None,
        };
        let auth = config.auth.as_ref().map(Auth::from_config).transpose().map_err(StartError::Auth)?;
        let shutdown = CancellationToken::new();
        if let Some(auth) = &auth {
            tokio::spawn(auth.keys().clone().watch(shutdown.clone()));
        }
        let session_permits = Arc::new(Semaphore::new(limits.max_connections));
        let replays = Arc::new(Semaphore::new(limits.max_replays));
        let keepalive = Keepalive::start(limits.keepalive, shutdown.clone());
        let cost_limits = CostLimits {
            max_depth: limits.max_query_depth,
            max_complexity: limits.max_query_complexity,
            max_aliases: limits.max_aliases,
        };
        let documents = Documents::new(
            limits.document_cache,
            limits.document_cache_bytes,
            cost_limits,
            metrics.document_cache.clone(),
        );
        let hub = Arc::new(Hub {
            upstreams,
            forwarded,
            auth,
            access,
            schema,
            exec_model,
            documents,
            publisher,
            config,
            metrics,
            brokers,
            sources,
            executions,
            shutdown,
            sessions: TaskTracker::new(),
            session_permits,
            keepalive,
            replays,
            gateway,
        });
        Ok(hub)
    }

    /// The queue limits every connection gets.
    pub fn outbox_config(&self) -> OutboxConfig {
        let limits = &self.config.limits;
        OutboxConfig {
            capacity: limits.connection_queue,
            max_bytes: limits.connection_buffer_bytes,
            policy: match limits.slow_consumer {
                SlowConsumer::DropOldest => SlowConsumerPolicy::DropOldest,
                SlowConsumer::Close => SlowConsumerPolicy::Close,
            },
            close_after: limits.slow_consumer_timeout,
        }
    }

    /// The document of a request, parsed once, with the operation it runs checked against the
    /// cost limits; an operation over a limit is counted.
    pub fn prepare(&self, payload: &subhub_protocol::OperationPayload) -> Result<Prepared, Refused> {
        let prepared = self.documents.prepare(&payload.query, payload.operation_name.as_deref());
        if let Err(Refused::Limit(_)) = &prepared {
            self.metrics.refuse(Refusal::Limit);
        }
        prepared
    }

    /// Who a client presenting `token` is.
    pub fn identify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        match &self.auth {
            Some(auth) => auth.identify(token),
            None => Ok(Identity::default()),
        }
    }
}
