//! # subhub-example-services
//!
//! The two subgraphs of the purchases example (README, "Federation: the purchases example"),
//! written with async-graphql's federation support: the purchases service owns purchases and
//! products, the classroom service students, their courses and enrollments. The hub composes
//! them with its own typed schema (`subhub compose`) and serves them all on one endpoint.
//!
//! ## Layout
//! - this file: serving a subgraph over HTTP; its SDL as composers read it.
//! - [`purchases`]: `Purchase @key(fields: "id")`, `Product`, `Query.me { purchases }`.
//! - [`classroom`]: `Student @key(fields: "id") { name enrollments { course { title } } }`.
//! - `src/bin/`: one binary each: `purchases --listen ADDR` (or `--sdl` to print its SDL).

pub mod classroom;
pub mod purchases;

use async_graphql::{ObjectType, Schema, SubscriptionType};
use async_graphql_axum::GraphQL;
use tokio::net::TcpListener;

/// The subgraph SDL of a schema: what its `{ _service { sdl } }` answers.
pub async fn sdl<Q, M, S>(schema: &Schema<Q, M, S>) -> anyhow::Result<String>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let response = schema.execute("{ _service { sdl } }").await.into_result().map_err(|errors| {
        anyhow::anyhow!("{}", errors.into_iter().map(|error| error.message).collect::<Vec<_>>().join("; "))
    })?;
    let data = response.data.into_json()?;
    data["_service"]["sdl"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no SDL in {data}"))
}

/// The `/graphql` route of a schema.
pub fn router<Q, M, S>(schema: Schema<Q, M, S>) -> axum::Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    axum::Router::new().route_service("/graphql", GraphQL::new(schema))
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(app: axum::Router, listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, app).await
}

/// What the binaries take: `--listen ADDR` to serve, `--sdl` to print the SDL.
pub enum Command {
    Serve(String),
    PrintSdl,
}

impl Command {
    pub fn from_args(default_listen: &str) -> anyhow::Result<Command> {
        let mut args = std::env::args().skip(1);
        let mut listen = default_listen.to_owned();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--sdl" => return Ok(Command::PrintSdl),
                "--listen" => listen = args.next().ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?,
                other => anyhow::bail!("unknown argument `{other}`: use --listen ADDR or --sdl"),
            }
        }
        Ok(Command::Serve(listen))
    }
}
