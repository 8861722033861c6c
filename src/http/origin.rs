//! Which web pages may use the hub from a browser. A browser names the page that makes a
//! request in `Origin`; any page a user visits could otherwise POST to
//! `http://127.0.0.1:4000/publish/…` (a form or a `text/plain` fetch needs no preflight) or open
//! a WebSocket, which browsers never check against CORS. So a request that changes something
//! (every POST) or opens a session (a WebSocket upgrade) and names an origin must name the
//! hub's own or one of `[http] cors_origins`; requests without `Origin` (curl, services) are
//! not browsers' and pass. CORS headers are answered only for the configured origins.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subhub_subscriptions::Refusal;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::hub::Hub;

/// Refuses with 403 a browser request from a page the hub does not allow.
pub async fn check(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let guarded = request.method() == Method::POST || request.headers().contains_key(header::UPGRADE);
    if guarded {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            if !allowed(&hub.config.http.cors_origins, origin, request.headers()) {
                hub.metrics.refuse(Refusal::Forbidden);
                let message = format!(
                    "requests from the page at {} are not allowed; add its origin to [http] cors_origins",
                    origin.to_str().unwrap_or("an unreadable origin")
                );
                return super::error_response(StatusCode::FORBIDDEN, &message);
            }
        }
    }
    next.run(request).await
}

/// The hub's own pages (same scheme-less host and port as the request's `Host`), or a
/// configured origin.
fn allowed(configured: &[String], origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let Ok(origin) = origin.to_str() else { return false };
    if configured.iter().any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok());
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host))
}

/// CORS for the configured origins; `None` when there are none (no CORS headers at all).
pub fn cors(configured: &[String]) -> Option<CorsLayer> {
    if configured.is_empty() {
        return None;
    }
    let origins = if configured.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(configured.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT,
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Checks `[http] cors_origins`: `*`, or origins such as `https://app.example.com`.
pub fn validate(configured: &[String]) -> Result<(), String> {
    for origin in configured {
        if origin == "*" {
            continue;
        }
        let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        let valid = rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ']))
            && HeaderValue::from_str(origin).is_ok();
        if !valid {
            return Err(format!(
                "http.cors_origins: `{origin}` is not an origin; write scheme and host, such as https://app.example.com (no path)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    #[test]
    fn own_pages_and_configured_origins_are_allowed() {
        let origin = |o: &str| HeaderValue::from_str(o).unwrap();
        let own = headers("127.0.0.1:4000");
        assert!(allowed(&[], &origin("http://127.0.0.1:4000"), &own));
        assert!(!allowed(&[], &origin("http://127.0.0.1:4001"), &own));
        assert!(!allowed(&[], &origin("https://evil.example"), &own));
        assert!(!allowed(&[], &origin("null"), &own));
        let configured = ["https://app.example".to_owned()];
        assert!(allowed(&configured, &origin("https://app.example"), &own));
        assert!(!allowed(&configured, &origin("https://app.example.evil"), &own));
        assert!(allowed(&["*".to_owned()], &origin("https://anyone.example"), &own));
    }

    #[test]
    fn only_origins_are_valid() {
        assert!(validate(&["https://app.example.com".into(), "http://127.0.0.1:3000".into(), "*".into()]).is_ok());
        for bad in ["app.example.com", "https://app.example.com/", "ftp://x", "https://"] {
            assert!(validate(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
