//! Reading an upstream's schema at start.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use subhub_protocol::client::{self, ServerMessage};
use subhub_protocol::OperationPayload;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{connect, Target};
use crate::error::UpstreamError;
use crate::model::{TypeModel, INTROSPECTION_QUERY};
use crate::stats::UpstreamStats;

/// Introspects the upstream, retrying an unreachable one until `startup_timeout` passes.
pub async fn introspect(
    name: &str,
    url: &str,
    init_payload: Option<Map<String, Value>>,
    startup_timeout: Duration,
) -> Result<TypeModel, UpstreamError> {
    let target = Target {
        upstream: name.into(),
        url: url.to_owned(),
        init_payload,
        keepalive: Duration::from_secs(30),
        stats: std::sync::Arc::new(UpstreamStats::default()),
        // A schema can be large; this is tungstenite's own default.
        max_message_bytes: 64 << 20,
    };
    let deadline = Instant::now() + startup_timeout;
    let mut backoff = subhub_core::Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).unwrap_or_default();
    loop {
        match introspect_once(&target).await {
            Ok(model) => return Ok(model),
            Err(error @ UpstreamError::Unreachable { .. }) if Instant::now() < deadline => {
                tracing::info!(upstream = name, %error, "waiting for the upstream");
                tokio::time::sleep(backoff.next_delay().min(deadline.saturating_duration_since(Instant::now()))).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn introspect_once(target: &Target) -> Result<TypeModel, UpstreamError> {
    let (mut socket, protocol) = connect(target).await?;
    let schema_error = |reason: String| UpstreamError::Schema { upstream: target.upstream.to_string(), reason };
    let operation = OperationPayload { query: INTROSPECTION_QUERY.to_owned(), ..Default::default() };
    socket
        .send(Message::Text(client::subscribe(protocol, "introspection", &operation).into()))
        .await
        .map_err(|e| schema_error(e.to_string()))?;
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            match ServerMessage::parse(protocol, &text) {
                Ok(ServerMessage::Next { payload, .. }) => {
                    if let Some(errors) = payload.get("errors").filter(|e| !e.is_null()) {
                        return Err(schema_error(format!("introspection failed: {errors}")));
                    }
                    return TypeModel::from_introspection(&payload["data"]).map_err(schema_error);
                }
                Ok(ServerMessage::Error { payload, .. }) => {
                    return Err(schema_error(format!("introspection failed: {payload}")))
                }
                _ => {}
            }
        }
        Err(schema_error("closed before answering the introspection query".into()))
    })
    .await
    .unwrap_or_else(|_| Err(schema_error("no introspection result within 10s".into())));
    let _ = socket.close(None).await;
    result
}
