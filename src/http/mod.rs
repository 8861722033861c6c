//! The HTTP surface (DESIGN §3): the API's routes, and the layers every route is served
//! under (body limit, request timeout, which pages may call, compression, CORS). The server
//! assembles them with the pages' routes.
//!
//! ## Layout
//! - `graphql`: GraphQL over HTTP, and the streams and upgrades asked for on `/graphql`.
//! - [`stream`]: SSE and multipart streams.
//! - `publish`: `POST /publish/{topic}`.
//! - `ops`: health, readiness, metrics.
//! - [`origin`]: which pages may use the hub from a browser.
//! - this file: routes, layers, and what handlers share (the caller's identity, the body,
//!   error bodies).

mod graphql;
mod ops;
pub mod origin;
mod publish;
pub mod stream;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use subhub_subscriptions::Refusal;

use crate::hub::Hub;

/// The API's routes.
pub fn routes() -> Router<Arc<Hub>> {
    Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/publish/{topic}", post(publish::publish))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
}

/// `routes` served under the layers every request passes.
pub fn serve(routes: Router<Arc<Hub>>, hub: Arc<Hub>) -> Router {
    let limits = &hub.config.limits;
    let cors = origin::cors(&hub.config.http.cors_origins);
    let router = routes
        // A request body is read up to `max_message_bytes` (and its one byte more, so a body
        // over the limit is told so by the handler: 413 with a JSON reason).
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_message_bytes.saturating_add(1)))
        // The whole request, body included, is read and answered within `request_timeout`: a
        // client trickling its body holds its place no longer. A stream or an upgrade is
        // answered at once, and its session runs on.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(axum::middleware::map_response_with_state(hub.clone(), count_timeouts))
        .layer(axum::middleware::from_fn_with_state(hub.clone(), origin::check))
        .layer(compression())
        .with_state(hub);
    // Outermost, so preflight requests are answered before anything else sees them.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// A request cut by `request_timeout` is a refusal at a limit, and is told which.
async fn count_timeouts(
    axum::extract::State(hub): axum::extract::State<Arc<Hub>>,
    response: axum::response::Response,
) -> axum::response::Response {
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        return response;
    }
    hub.metrics.refuse(Refusal::Limit);
    let seconds = hub.config.limits.request_timeout.as_secs_f64();
    let message = format!("the request was not received and answered within {seconds}s (limits.request_timeout)");
    error_response(StatusCode::REQUEST_TIMEOUT, &message)
}

/// Responses are compressed as `Accept-Encoding` asks (gzip, brotli), except streams: an SSE
/// event or a multipart part must reach the client when it is written, not when a compressor's
/// block fills. tower-http's default predicate already leaves out `text/event-stream`, small
/// bodies and images.
fn compression() -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    tower_http::compression::CompressionLayer::new()
        .compress_when(DefaultPredicate::new().and(NotForContentType::const_new("multipart/mixed")))
}

/// Who an HTTP request runs as, by its `Authorization` header; a 401 when `[auth]` refuses it.
pub fn identify(
    hub: &Hub,
    headers: &axum::http::HeaderMap,
) -> Result<crate::auth::Identity, Box<axum::response::Response>> {
    let value = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    identify_token(hub, crate::auth::Auth::token_in_header(value))
}

/// Who the caller of a stream is (SSE, multipart, the dashboard's status): by `Authorization`,
/// else by the cookie or query parameter `[auth]` names, since `EventSource` cannot set headers.
pub fn identify_stream(
    hub: &Hub,
    headers: &axum::http::HeaderMap,
    params: &std::collections::HashMap<String, String>,
) -> Result<crate::auth::Identity, Box<axum::response::Response>> {
    match &hub.config.auth {
        Some(auth) if !headers.contains_key(axum::http::header::AUTHORIZATION) => {
            let token = token_in_cookie(headers, auth.token_cookie.as_deref())
                .or_else(|| auth.token_query.as_ref().and_then(|name| params.get(name)).cloned());
            identify_token(hub, token.as_deref())
        }
        _ => identify(hub, headers),
    }
}

/// Who a request presenting `token` runs as; a 401 when `[auth]` refuses it.
pub fn identify_token(hub: &Hub, token: Option<&str>) -> Result<crate::auth::Identity, Box<axum::response::Response>> {
    use axum::http::{header, HeaderValue, StatusCode};
    hub.identify(token).map_err(|error| {
        hub.metrics.refuse(subhub_subscriptions::Refusal::Auth);
        let mut response = error_response(StatusCode::UNAUTHORIZED, &error.to_string());
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Box::new(response)
    })
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn token_in_cookie(headers: &axum::http::HeaderMap, name: Option<&str>) -> Option<String> {
    let name = name?;
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// A request body, or the answer to give when it cannot be read: 413 naming the limit when it
/// is longer than `max_message_bytes`.
pub fn body(
    hub: &Hub,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, Box<axum::response::Response>> {
    use axum::http::StatusCode;
    let max = hub.config.limits.max_message_bytes;
    if !matches!(&body, Ok(body) if body.len() <= max) {
        hub.metrics.refuse(subhub_subscriptions::Refusal::Limit);
    }
    match body {
        Ok(body) if body.len() <= max => Ok(body),
        Ok(body) => Err(Box::new(too_large(body.len(), max))),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Box::new(too_large(max + 1, max))),
        Err(rejection) => Err(Box::new(error_response(rejection.status(), "the request body could not be read"))),
    }
}

fn too_large(size: usize, max: usize) -> axum::response::Response {
    let message = subhub_brokers::BrokerError::TooLarge { size, max }.to_string();
    error_response(axum::http::StatusCode::PAYLOAD_TOO_LARGE, &format!("{message} (limits.max_message_bytes)"))
}

/// A JSON error body `{"errors":[{"message":…}]}` with a status.
pub fn error_response(status: axum::http::StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "errors": [{ "message": message }] }))).into_response()
}
