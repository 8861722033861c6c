//! GraphQL over HTTP (graphql-over-http spec): POST and GET, content negotiation on `Accept`.
//!
//! A request that is not well-formed (body not JSON, bad parameters) gets 400. A document that
//! does not parse or validate gets 400 and no `data` with `application/graphql-response+json`,
//! and 200 with `errors` with `application/json` (also for `*/*` and a missing `Accept`), as
//! the spec's rules for legacy clients ask. Mutations over GET get 405. Subscriptions are
//! served on the WebSocket, and here as streams when `Accept` asks for one (see `super::stream`).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;
use subhub_protocol::OperationPayload;

use super::stream::{self, Framing};
use super::{error_response, identify};
use crate::auth::Identity;
use crate::authz::FORBIDDEN;
use crate::documents::{Kind, Refused};
use crate::hub::Hub;
use crate::operation;
use crate::session::ConnectionPlaces;

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
    places: Option<Extension<ConnectionPlaces>>,
) -> Response {
    if let Ok(ws) = upgrade {
        return crate::ws::upgrade(ws, hub, places.as_ref().map(|p| &p.0));
    }
    let stream = stream_framing(&headers);
    let identity = match identify_caller(&hub, &headers, stream, &params) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let Some(media) = MediaType::negotiate(&headers).or(stream.map(|_| MediaType::Json)) else {
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
    resume_from_last_event_id(&headers, stream, &mut payload);
    let call = Call { stream, via_get: true, identity, places: places.map(|p| p.0), headers };
    execute(&hub, media, payload, call).await
}

/// `POST /graphql` with a JSON body.
pub async fn post(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    places: Option<Extension<ConnectionPlaces>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let stream = stream_framing(&headers);
    let identity = match identify_caller(&hub, &headers, stream, &params) {
        Ok(identity) => identity,
        Err(refused) => return *refused,
    };
    let body = match super::body(&hub, body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let Some(media) = MediaType::negotiate(&headers).or(stream.map(|_| MediaType::Json)) else {
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
        Ok(mut payload) => {
            resume_from_last_event_id(&headers, stream, &mut payload);
            let call = Call { stream, via_get: false, identity, places: places.map(|p| p.0), headers };
            execute(&hub, media, payload, call).await
        }
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

/// An SSE client that reconnects sends the id of the last event it saw (`Last-Event-ID`, which
/// `EventSource` sets by itself): the cursor it resumes from, unless the payload names one.
fn resume_from_last_event_id(headers: &HeaderMap, stream: Option<Framing>, payload: &mut OperationPayload) {
    let Some(Framing::Sse) = stream else { return };
    let Some(cursor) = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|c| !c.is_empty()) else {
        return;
    };
    let extensions = payload.extensions.get_or_insert_with(Default::default);
    extensions.entry("resume").or_insert_with(|| Value::String(cursor.to_owned()));
}

/// How an operation was asked for.
struct Call {
    /// The streaming transport `Accept` asks for.
    stream: Option<Framing>,
    via_get: bool,
    identity: Identity,
    /// The connection's places, which a stream takes over.
    places: Option<ConnectionPlaces>,
    /// The request's headers, some of which subgraphs may be forwarded.
    headers: HeaderMap,
}

async fn execute(hub: &Arc<Hub>, media: MediaType, payload: OperationPayload, call: Call) -> Response {
    let Call { stream, via_get, identity, places, headers } = call;
    let prepared = match (hub.prepare(&payload), stream) {
        (Ok(prepared), _) => prepared,
        // A stream reports every refusal inside it, as graphql-sse asks.
        (Err(refused), Some(framing)) => return stream::ended(framing, refused.errors_json()),
        // Over a limit is a bad request whatever the media type; a document that does not
        // parse follows the media type's rules.
        (Err(Refused::Limit(errors)), None) => return media.bad_request(&errors),
        (Err(Refused::Invalid(errors)), None) => return media.request_error(&errors),
    };
    match (&prepared.kind, stream) {
        (Kind::Single(OperationType::Mutation), _) if via_get => {
            let mut response =
                error_response(StatusCode::METHOD_NOT_ALLOWED, "mutations are not allowed over GET; use POST");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        // graphql-sse streams every operation; a multipart client (Apollo's HttpLink) asks for
        // a stream of subscriptions and takes plain JSON for the rest.
        (Kind::Subscription(_), Some(framing)) | (Kind::Single(_), Some(framing @ Framing::Sse)) => {
            return stream::serve(hub, framing, &payload, &prepared, &identity, places.as_ref());
        }
        (Kind::Subscription(_), None) => {
            return media.request_error(&errors(
                "subscriptions are served over WebSocket, SSE (Accept: text/event-stream) or multipart (Accept: multipart/mixed) on this endpoint",
            ));
        }
        (Kind::Single(_), _) => {}
    }
    let forwarded = operation::federated::Forwarded::Http(&headers);
    match operation::federated::run(hub, &payload, &prepared, &identity, forwarded).await {
        Some(operation::federated::Outcome::Response(body)) => return media.body(StatusCode::OK, body),
        Some(operation::federated::Outcome::Refused(refusal)) => return media.request_error(refusal.errors_json()),
        None => {}
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

/// The streaming transport the `Accept` header asks for: SSE when it names
/// `text/event-stream`, multipart when it names `multipart/mixed` (whatever its parameters:
/// Apollo Client sends `boundary`, `subscriptionSpec` and `deferSpec`).
fn stream_framing(headers: &HeaderMap) -> Option<Framing> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())?;
    let mut multipart = false;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused =
            parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
        match media.as_str() {
            "text/event-stream" if !refused => return Some(Framing::Sse),
            "multipart/mixed" if !refused => multipart = true,
            _ => {}
        }
    }
    multipart.then_some(Framing::Multipart)
}

/// Who the caller is: by `Authorization`, and on a stream also by the cookie or query
/// parameter `[auth]` names.
fn identify_caller(
    hub: &Hub,
    headers: &HeaderMap,
    stream: Option<Framing>,
    params: &HashMap<String, String>,
) -> Result<Identity, Box<Response>> {
    match stream {
        Some(_) => super::identify_stream(hub, headers, params),
        None => identify(hub, headers),
    }
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
