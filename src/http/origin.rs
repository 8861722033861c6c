//! Which web pages may use the hub from a browser. A browser names the page that makes a
//! request in `Origin`; any page a user visits could otherwise POST to
//! `http://127.0.0.1:4000/publish/…` (a form or a `text/plain` fetch needs no preflight) or open
//! a WebSocket, which browsers never check against CORS. So a request that changes something
//! (every POST) or opens a session (a WebSocket upgrade) and names an origin must name the
//! hub's own or one of `[http] cors_origins`; requests without `Origin` (curl, services) are
//! not browsers' and pass. CORS headers are answered only for the configured origins.
//!
//! A page is the hub's own when it has the request's `Host` and that host is one the hub is
//! known by: an address, `localhost`, or a name of `[http] hosts`. Both headers come from the
//! browser, and a page on `http://evil.example:4000` whose name the attacker makes resolve to
//! 127.0.0.1 (DNS rebinding) sends `Host: evil.example:4000` and its own origin: equal, but not
//! a name the hub is known by. Such a page's own GETs carry no `Origin` at all; browsers mark
//! them `Sec-Fetch-Site: same-origin`, and one whose `Host` the hub is not known by is refused
//! too, so the page can read nothing either.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subhub_subscriptions::Refusal;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::HttpConfig;
use crate::hub::Hub;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Refuses with 403 a browser request from a page the hub does not allow.
pub async fn check(State(hub): State<Arc<Hub>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let http = &hub.config.http;
    let guarded = request.method() == Method::POST || headers.contains_key(header::UPGRADE);
    let message = match headers.get(header::ORIGIN) {
        Some(origin) if guarded && !allowed(http, origin, headers) => Some(format!(
            "requests from the page at {} are not allowed; add its origin to [http] cors_origins",
            origin.to_str().unwrap_or("an unreadable origin")
        )),
        _ if same_origin_fetch(headers) && !known_host(http, host(headers)) => Some(format!(
            "the hub is not known as {}: a page of that name may not use it; add the name to [http] hosts",
            host(headers).unwrap_or("an unreadable host")
        )),
        _ => None,
    };
    if let Some(message) = message {
        hub.metrics.refuse(Refusal::Forbidden);
        return super::error_response(StatusCode::FORBIDDEN, &message);
    }
    next.run(request).await
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|host| host.to_str().ok())
}

/// A browser's request from a page of the same origin as the request (`Sec-Fetch-Site`).
fn same_origin_fetch(headers: &HeaderMap) -> bool {
    headers.get(SEC_FETCH_SITE).is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"same-origin"))
}

/// A configured origin, or one of the hub's own pages: the request's own `Host`, and a host the
/// hub is known by.
fn allowed(http: &HttpConfig, origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let Ok(origin) = origin.to_str() else { return false };
    if http.cors_origins.iter().any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = host(headers);
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host))
        && known_host(http, host)
}

/// Whether the hub is known by the host of a `Host` header (its port aside): an address, which
/// no DNS answer can make a page's name; `localhost`, which resolves to this machine alone; or a
/// name of `[http] hosts`.
fn known_host(http: &HttpConfig, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(rest) => return rest.split_once(']').is_some_and(|(address, _)| address.parse::<IpAddr>().is_ok()),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || http.hosts.iter().any(|known| known.eq_ignore_ascii_case(name))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    fn http(cors: &[&str], hosts: &[&str]) -> HttpConfig {
        HttpConfig {
            cors_origins: cors.iter().map(|s| s.to_string()).collect(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn own_pages_and_configured_origins_are_allowed() {
        let origin = |o: &str| HeaderValue::from_str(o).unwrap();
        let own = headers("127.0.0.1:4000");
        let none = http(&[], &[]);
        assert!(allowed(&none, &origin("http://127.0.0.1:4000"), &own));
        assert!(!allowed(&none, &origin("http://127.0.0.1:4001"), &own));
        assert!(!allowed(&none, &origin("https://evil.example"), &own));
        assert!(!allowed(&none, &origin("null"), &own));
        let configured = http(&["https://app.example"], &[]);
        assert!(allowed(&configured, &origin("https://app.example"), &own));
        assert!(!allowed(&configured, &origin("https://app.example.evil"), &own));
        assert!(allowed(&http(&["*"], &[]), &origin("https://anyone.example"), &own));
    }

    /// A page whose name was made to resolve to the hub has the request's `Host` as its origin:
    /// it is the hub's own only when the hub is known by that name.
    #[test]
    fn a_rebound_name_is_not_the_hubs_own() {
        let origin = |o: &str| HeaderValue::from_str(o).unwrap();
        let rebound = headers("evil.example:4000");
        assert!(!allowed(&http(&[], &[]), &origin("http://evil.example:4000"), &rebound));
        let named = headers("hub.example.com");
        assert!(allowed(&http(&[], &["hub.example.com"]), &origin("https://hub.example.com"), &named));
        for host in ["localhost:4000", "LOCALHOST", "dash.localhost:4000", "[::1]:4000", "10.0.0.5", "127.0.0.1:80"] {
            assert!(known_host(&http(&[], &[]), Some(host)), "{host}");
        }
        for host in
            ["evil.example:4000", "127.0.0.1.evil.example", "localhost.evil.example", "[nonsense]:1", "hub.example.com"]
        {
            assert!(!known_host(&http(&[], &[]), Some(host)), "{host}");
        }
        assert!(!known_host(&http(&[], &[]), None));
    }
}
