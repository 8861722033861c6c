//! `POST /publish/{topic}`: the request body, as it is, becomes one event.
//! `?broker=NAME` picks a broker, `?key=K` sets the event key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use subhub_brokers::BrokerError;

use super::{error_response, identify};
use crate::authz::Action;
use crate::hub::Hub;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishParams {
    broker: Option<String>,
    key: Option<String>,
}

pub async fn publish(
    State(hub): State<Arc<Hub>>,
    Path(topic): Path<String>,
    headers: axum::http::HeaderMap,
    params: Result<Query<PublishParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let identity = match identify(&hub, &headers) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let body = match super::body(&hub, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let Ok(Query(params)) = params else {
        return error_response(StatusCode::BAD_REQUEST, "unknown query parameter: use ?broker=NAME and ?key=KEY");
    };
    if let Ok(broker) = hub.brokers.get(params.broker.as_deref()) {
        if let Err(forbidden) = hub.access.check(Action::Publish, broker.as_ref(), &topic, &identity.claims) {
            return error_response(StatusCode::FORBIDDEN, &forbidden.to_string());
        }
    }
    match hub.publisher.publish(params.broker.as_deref(), topic, params.key, body).await {
        Ok(ack) => Json(serde_json::json!({ "ok": true, "id": ack.id })).into_response(),
        Err(error) => {
            let status = match error {
                BrokerError::UnknownBroker(_) | BrokerError::NoSuchTopic { .. } => StatusCode::NOT_FOUND,
                BrokerError::InvalidTopic { .. } => StatusCode::BAD_REQUEST,
                BrokerError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BrokerError::Unavailable(_) | BrokerError::Config { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            error_response(status, &error.to_string())
        }
    }
}
