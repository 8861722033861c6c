//! The WebSocket opening handshake (RFC 6455 §4.2), done here rather than by axum's extractor
//! because the session needs the TCP stream itself: executions write `next` frames straight to
//! it (see `socket`).

use axum::extract::FromRequestParts;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use subhub_protocol::Protocol;

/// A request to open a WebSocket.
pub struct Upgrade {
    key: HeaderValue,
    /// The first of the hub's sub-protocols that the client offered.
    pub protocol: Option<Protocol>,
    pub on_upgrade: OnUpgrade,
}

/// The request is not a WebSocket upgrade (an ordinary GET, or a malformed handshake).
#[derive(Debug)]
pub struct NotAnUpgrade(&'static str);

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotAnUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        if parts.method != Method::GET || parts.version != Version::HTTP_11 {
            return Err(NotAnUpgrade("a WebSocket upgrade is a GET over HTTP/1.1"));
        }
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return Err(NotAnUpgrade("`Connection` must include `upgrade`"));
        }
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return Err(NotAnUpgrade("`Upgrade` must be `websocket`"));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|version| version != "13") {
            return Err(NotAnUpgrade("`Sec-WebSocket-Version` must be 13"));
        }
        let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned().ok_or(NotAnUpgrade("`Sec-WebSocket-Key` missing"))?;
        let offered: Vec<&str> = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let protocol = Protocol::NAMES.into_iter().find(|name| offered.contains(name)).and_then(Protocol::from_name);
        let on_upgrade =
            parts.extensions.remove::<OnUpgrade>().ok_or(NotAnUpgrade("this connection cannot be upgraded"))?;
        Ok(Upgrade { key, protocol, on_upgrade })
    }
}

impl Upgrade {
    /// The `101 Switching Protocols` answer; the connection becomes a WebSocket once it is sent.
    pub fn accept(&self) -> Response {
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = self.protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol.name()));
        }
        response
    }
}

/// Whether a comma-separated header holds `token`, ignoring case.
fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}
