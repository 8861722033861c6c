//! Operations endpoints: health, readiness, metrics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use subhub_subscriptions::Metrics;

use crate::hub::Hub;

/// 200 while the process serves.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when every broker and upstream is reachable, else 503 naming the ones that are not.
pub async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    if hub.shutdown.is_cancelled() {
        let body = serde_json::json!({ "ready": false, "reason": "shutting down" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let brokers: Vec<&str> =
        hub.brokers.iter().filter(|b| !b.stats().connected.load(Relaxed)).map(|b| b.name()).collect();
    let upstreams: Vec<&str> = hub
        .upstreams
        .entries()
        .iter()
        .filter(|u| u.pool.stats().failing.load(Relaxed))
        .map(|u| u.name.as_str())
        .collect();
    if brokers.is_empty() && upstreams.is_empty() {
        return Json(serde_json::json!({ "ready": true })).into_response();
    }
    let mut reasons = Vec::new();
    if !brokers.is_empty() {
        reasons.push(format!("brokers not connected: {}", brokers.join(", ")));
    }
    if !upstreams.is_empty() {
        reasons.push(format!("upstreams unreachable: {}", upstreams.join(", ")));
    }
    let body =
        serde_json::json!({ "ready": false, "reason": reasons.join("; "), "brokers": brokers, "upstreams": upstreams });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// The hub's metrics in the Prometheus text format.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    ([(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)], hub.metrics.render()).into_response()
}
