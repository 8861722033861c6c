//! One request to a subgraph over HTTP: a GraphQL POST, its response read chunk by chunk up
//! to the subgraph's limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};

use super::SubgraphError;

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per subgraph host.
const MAX_IDLE_PER_HOST: usize = 256;

/// A subgraph's client: its own connection pool, HTTP/1.1 with keep-alive, HTTP/2 where TLS
/// negotiates it. Redirects are not followed and no proxy is used: a subgraph is reached at
/// the URL it is configured with, or not at all.
pub fn build(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}

pub struct Request<'a> {
    pub url: &'a reqwest::Url,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub max_response_bytes: usize,
}

/// Sends one request; the response body when the subgraph answered with a GraphQL response.
pub async fn send(client: &reqwest::Client, request: Request<'_>) -> Result<Bytes, SubgraphError> {
    let mut builder = client
        .post(request.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(ACCEPT, HeaderValue::from_static("application/graphql-response+json, application/json;q=0.9"));
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let mut response = builder.body(request.body).send().await.map_err(|_| SubgraphError::Unreachable)?;
    let max = request.max_response_bytes;
    if response.content_length().is_some_and(|length| length > max as u64) {
        return Err(SubgraphError::TooLarge(max));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| SubgraphError::Unreachable)? {
        if body.len() + chunk.len() > max {
            return Err(SubgraphError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let status = response.status();
    // A GraphQL server may answer a request it refuses with a 4xx and a GraphQL response
    // (graphql-response+json): its errors are the ones to pass on.
    if !status.is_success() && !has_errors(&body) {
        return Err(SubgraphError::Status(status.as_u16()));
    }
    Ok(body)
}

fn has_errors(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Errors>(body).is_ok_and(|response| !response.errors.is_empty())
}
