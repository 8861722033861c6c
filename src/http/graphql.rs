//! GraphQL over HTTP (graphql-over-http spec): POST and GET, content negotiation on `Accept`.
//!
//! A request that is not well-formed (body not JSON, bad parameters) gets 400. A document that
//! does not parse or validate gets 400 and no `data` with `application/graphql-response+json`,
//! and 200 with `errors` with `application/json` (also for `*/*` and a missing `Accept`), as
//! the spec's rules for legacy clients ask. Mutations over GET get 405, subscriptions belong on the WebSocket.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use subhub_protocol::OperationPayload;

use super::{error_response, identify};
use crate::auth::Identity;
use crate::authz::FORBIDDEN;
use crate::documents::{Kind, Refused};
use crate::hub::Hub;
use crate::operation;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

/// The response media type the client asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    /// Picks by the `Accept` header's order and q-values; `None` when nothing we serve is acceptable.
    fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(MediaType::Json);
        };
        let mut best: Option<(f32, MediaType)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let candidate = match media.as_str() {
                "application/graphql-response+json" => MediaType::GraphqlResponseJson,
                "application/json" | "application/*" | "*/*" => MediaType::Json,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, candidate));
            }
        }
        best.map(|(_, media)| media)
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => JSON,
        })
    }

    /// A request that is not a well-formed GraphQL request (body not JSON, bad parameters):
    /// 400 under either media type.
    fn bad_request(self, errors_json: &str) -> Response {
        self.body(StatusCode::BAD_REQUEST, format!(r#"{{"errors":{errors_json}}}"#))
    }

    /// A document that does not parse or validate: 400 and no `data` under
    /// graphql-response+json, 200 under json.
    fn request_error(self, errors_json: &str) -> Response {
        let status = match self {
            MediaType::GraphqlResponseJson => StatusCode::BAD_REQUEST,
            MediaType::Json => StatusCode::OK,
        };
        self.body(status, format!(r#"{{"errors":{errors_json}}}"#))
    }

    fn body(self, status: StatusCode, body: String) -> Response {
        (status, [(header::CONTENT_TYPE, self.content_type())], body).into_response()
    }
}

fn errors(message: &str) -> String {
    subhub_protocol::server::error_list(message)
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
pub async fn get(
    State(hub): State<Arc<Hub>>,
    upgrade: Result<crate::ws::handshake::Upgrade, crate::ws::handshake::NotAnUpgrade>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Ok(ws) = upgrade {
        return crate::ws::upgrade(ws, hub);
    }
    let identity = match identify(&hub, &headers) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let Some(query) = params.get("query") else {
        return media.bad_request(&errors("missing `query` parameter"));
    };
    let mut payload = OperationPayload {
        query: query.clone(),
        operation_name: params.get("operationName").cloned(),
        ..Default::default()
    };
    for (name, target) in [("variables", &mut payload.variables), ("extensions", &mut payload.extensions)] {
        if let Some(text) = params.get(name) {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => *target = Some(map),
                Ok(Value::Null) => {}
                _ => return media.bad_request(&errors(&format!("`{name}` must be a JSON object"))),
            }
        }
    }
    execute(&hub, media, payload, true, identity).await
}

/// `POST /graphql` with a JSON body.
pub async fn post(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
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
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && mime != "application/graphql-response+json" {
        let message = if content_type.is_empty() {
            "missing Content-Type: send application/json"
        } else {
            "unsupported Content-Type: send application/json"
        };
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    }
    let params = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return media.bad_request(&errors("the request body must be a JSON object")),
        Err(_) => return media.bad_request(&errors("the request body is not valid JSON")),
    };
    match payload_from(params) {
        Ok(payload) => execute(&hub, media, payload, false, identity).await,
        Err(message) => media.bad_request(&errors(&message)),
    }
}

fn payload_from(mut params: serde_json::Map<String, Value>) -> Result<OperationPayload, String> {
    let query = match params.remove("query") {
        Some(Value::String(query)) => query,
        None => return Err("missing `query` parameter".into()),
        Some(_) => return Err("`query` must be a string".into()),
    };
    let operation_name = match params.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err("`operationName` must be a string".into()),
    };
    let mut object = |name: &str| match params.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(format!("`{name}` must be an object")),
    };
    let variables = object("variables")?;
    let extensions = object("extensions")?;
    Ok(OperationPayload { query, operation_name, variables, extensions })
}

async fn execute(
    hub: &Hub,
    media: MediaType,
    payload: OperationPayload,
    via_get: bool,
    identity: Identity,
) -> Response {
    let prepared = match hub.prepare(&payload) {
        Ok(prepared) => prepared,
        // Over a limit is a bad request whatever the media type; a document that does not
        // parse follows the media type's rules.
        Err(Refused::Limit(errors)) => return media.bad_request(&errors),
        Err(Refused::Invalid(errors)) => return media.request_error(&errors),
    };
    match prepared.kind {
        Kind::Subscription(_) => {
            return media.request_error(&errors(
                "subscriptions are served over WebSocket on this endpoint (graphql-transport-ws or graphql-ws)",
            ));
        }
        Kind::Single(OperationType::Mutation) if via_get => {
            let mut response =
                error_response(StatusCode::METHOD_NOT_ALLOWED, "mutations are not allowed over GET; use POST");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        Kind::Single(_) => {}
    }
    let response = hub.schema.execute(operation::request(&payload, &prepared).data(identity)).await;
    if refused_by_authz(&response) {
        return media.body(StatusCode::FORBIDDEN, operation::response_json(&response));
    }
    if operation::is_request_error(&response) {
        return media.request_error(&operation::errors_json(&response.errors));
    }
    media.body(StatusCode::OK, operation::response_json(&response))
}

/// Refused by `[authz]` with nothing else to show (every root field null, every error a
/// refusal): the answer is 403.
fn refused_by_authz(response: &async_graphql::Response) -> bool {
    let nothing = match &response.data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields.values().all(|value| *value == async_graphql::Value::Null),
        _ => false,
    };
    let code = async_graphql::Value::from(FORBIDDEN);
    nothing
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.extensions.as_ref().and_then(|e| e.get("code")) == Some(&code))
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        "acceptable response types: application/graphql-response+json, application/json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        MediaType::negotiate(&headers)
    }

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(MediaType::negotiate(&HeaderMap::new()), Some(MediaType::Json));
        assert_eq!(accept("*/*"), Some(MediaType::Json));
        assert_eq!(accept("application/graphql-response+json"), Some(MediaType::GraphqlResponseJson));
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(accept("application/json, application/graphql-response+json;q=0.5"), Some(MediaType::Json));
        assert_eq!(accept("text/html"), None);
    }
}
