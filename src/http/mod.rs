//! The HTTP surface (DESIGN §3): one router over the hub.

mod graphql;
mod ops;
pub mod origin;
mod publish;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::hub::Hub;

pub fn router(hub: Arc<Hub>) -> Router {
    let cors = origin::cors(&hub.config.http.cors_origins);
    let router = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/publish/{topic}", post(publish::publish))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/graphiql", get(ops::graphiql))
        .route("/", get(ops::index))
        .layer(axum::middleware::from_fn_with_state(hub.clone(), origin::check))
        .with_state(hub);
    // Outermost, so preflight requests are answered before anything else sees them.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// A 401 for an HTTP request whose `Authorization` header `[auth]` refuses; `None` when allowed.
pub fn refusal(hub: &Hub, headers: &axum::http::HeaderMap) -> Option<axum::response::Response> {
    use axum::http::{header, HeaderValue, StatusCode};
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let error = hub.identify(crate::auth::Auth::token_in_header(value)).err()?;
    hub.metrics.refuse(subhub_subscriptions::Refusal::Auth);
    let mut response = error_response(StatusCode::UNAUTHORIZED, &error.to_string());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// A JSON error body `{"errors":[{"message":…}]}` with a status.
pub fn error_response(status: axum::http::StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "errors": [{ "message": message }] }))).into_response()
}
