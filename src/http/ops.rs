//! Operations endpoints: health, readiness, metrics, GraphiQL and the index page.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::hub::Hub;

/// 200 while the process serves.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when every broker is reachable, else 503 naming the ones that are not.
pub async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    let down: Vec<&str> = hub.brokers.iter().filter(|b| !b.stats().connected.load(Relaxed)).map(|b| b.name()).collect();
    if hub.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": "shutting down" })),
        )
            .into_response();
    }
    if down.is_empty() {
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        let reason = format!("brokers not connected: {}", down.join(", "));
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": reason, "brokers": down })),
        )
            .into_response()
    }
}

/// Prometheus text format.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let body = hub.metrics.render(&hub.brokers);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// GraphiQL, wired to the WebSocket endpoint for subscriptions.
pub async fn graphiql() -> Html<String> {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("subhub")
            .finish(),
    )
}

pub async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}
