//! Operations endpoints: health, readiness, metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use subhub_subscriptions::UpstreamSample;

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

/// Prometheus text format.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let upstreams: Vec<UpstreamSample> = hub
        .upstreams
        .entries()
        .iter()
        .map(|entry| UpstreamSample {
            name: entry.name.clone(),
            connections: entry.pool.stats().connections.load(Relaxed),
            sources_open: entry.pool.stats().sources_open.load(Relaxed),
        })
        .collect();
    let mut body = hub.metrics.render(&hub.brokers, &upstreams);
    let documents = &hub.documents;
    let _ = write!(
        body,
        "# HELP subhub_document_cache_total Documents looked up in the cache of parsed documents.\n# TYPE subhub_document_cache_total counter\nsubhub_document_cache_total{{result=\"hit\"}} {}\nsubhub_document_cache_total{{result=\"miss\"}} {}\n",
        documents.hits.load(Relaxed),
        documents.misses.load(Relaxed),
    );
    if let Some(gateway) = &hub.gateway {
        body.push_str(&gateway.metrics().render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
