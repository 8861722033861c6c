//! # subhub
//!
//! A real-time GraphQL subscription hub: clients subscribe over WebSocket (graphql-transport-ws
//! or the legacy graphql-ws), GraphQL over SSE or multipart HTTP, and the hub bridges each subscription to a shared source on a
//! broker. Every source is opened once and closed after its last subscriber; every event is
//! executed once per distinct operation and fanned out as shared bytes.
//!
//! ## Layout
//! - `address`: client addresses (forwarded by trusted proxies) and the limits each is held to.
//! - [`auth`]: JWT (HS256) verification on `connection_init` and HTTP.
//! - [`authz`]: `[authz]`: which topics a client may subscribe to and publish on.
//! - [`config`]: the TOML config, `SUBHUB_*` overrides, validation.
//! - [`documents`]: GraphQL documents parsed and measured once per distinct text, under the
//!   cost limits.
//! - [`execute`]: each event through a subscription's selection, once per execution, into the
//!   bytes every subscriber is sent.
//! - [`hub`]: the shared state: brokers, registry, schema, metrics, shutdown.
//! - [`server`]: binding, the accept loop, each connection, graceful shutdown.
//! - `session`: one client session, whatever carries it: admission, gauges, places, its end
//!   at shutdown or at its token's expiry.
//! - [`template`]: `{{ args.NAME }}` and `{{ claims.PATH }}` in directives and rules.
//! - [`schema`]: the schema the hub serves (the built-in `events` / `publish` / `brokers`).
//! - [`operation`]: from a prepared request to shared results: operation key, executions.
//! - [`results`]: GraphQL responses and error lists as JSON text.
//! - [`publish`]: publishing through the hub.
//! - `rate`: the token bucket of `limits.subscribe_rate`.
//! - [`upstreams`]: upstream GraphQL servers: schemas loaded at start, routing, credentials.
//! - `http`: GraphQL over HTTP, SSE and multipart streams, `POST /publish/{topic}`, health,
//!   readiness, metrics, and the layers every request passes.
//! - `pages`: the live dashboard and GraphiQL, their assets in the binary.
//! - `ws`: the WebSocket endpoint and each connection's session loop.
//!
//! The protocol types live in `subhub-protocol`, the broker boundary in `subhub-brokers`, and the
//! registry in `subhub-subscriptions`.

mod address;
pub mod auth;
pub mod authz;
pub mod config;
pub mod documents;
pub mod execute;
pub(crate) mod http;
pub mod hub;
pub mod operation;
mod pages;
pub mod publish;
mod rate;
pub mod results;
pub mod schema;
pub mod server;
mod session;
pub mod template;
pub mod upstreams;
mod ws;

pub use config::Config;
pub use hub::Hub;
pub use server::{termination_signal, Server};
