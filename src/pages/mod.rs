//! The hub's pages: the live dashboard at `/` (DESIGN §13) and GraphiQL at `/graphiql`, with
//! every script and style they use served from the binary, so they work with no internet
//! access.
//!
//! The dashboard updates itself over `GET /status`, an SSE stream of one snapshot a second
//! (after the last minutes of samples for its charts), and tails topics over the hub's own
//! GraphQL-over-SSE endpoint, so `[authz]` decides what a viewer may tail. A status stream is
//! a client session like every stream (see `session`): admitted against the session limits,
//! ended by shutdown and by the viewer's token expiring.
//!
//! ## Layout
//! - [`status`]: the sampler and the snapshots it hands viewers.
//! - `assets/`: the pages, their script and style, and `vendor/`: GraphiQL 3.9.0, React
//!   18.3.1 and graphql-ws 6.4.2, as published on npm (minified UMD builds), with their licences.
//! - this file: the routes.

pub mod status;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use subhub_subscriptions::Transport;
use tokio::sync::watch;

use crate::auth::Identity;
use crate::http::stream::body::{self, BodyWriter};
use crate::http::stream::framing::sse_event;
use crate::http::stream::{session_response, Framing};
use crate::hub::Hub;
use crate::session::{Admission, ClientSession, ConnectionPlaces, SessionEnd, TOKEN_EXPIRED};
use status::{Snapshot, Status};

/// One file of a page, served from the binary.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, content_type: $type, bytes: include_bytes!(concat!("assets/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("graphiql.js", "text/javascript; charset=utf-8"),
    asset!("vendor/graphiql-3.9.0.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/graphiql-3.9.0.min.css", "text/css; charset=utf-8"),
    asset!("vendor/react-18.3.1.production.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/react-dom-18.3.1.production.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/graphql-ws-6.4.2.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/licenses/graphiql.LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/licenses/react.LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/licenses/react-dom.LICENSE", "text/plain; charset=utf-8"),
    asset!("vendor/licenses/graphql-ws.LICENSE.md", "text/plain; charset=utf-8"),
];

/// The pages' routes, merged into the hub's router; starts the sampler behind `/status`.
pub fn routes(hub: &Arc<Hub>) -> Router<Arc<Hub>> {
    let status = Status::new();
    tokio::spawn(status::sample(Arc::downgrade(hub), status.clone()));
    Router::new()
        .route("/", get(|| page(include_str!("assets/dashboard.html"))))
        .route("/graphiql", get(|| page(include_str!("assets/graphiql.html"))))
        .route("/assets/{*name}", get(asset))
        .route("/status", get(status_stream))
        .layer(Extension(status))
        .layer(Extension(Arc::new(Framed::default())))
}

/// The latest snapshot's `status` event, framed once for all the viewers who see the same: the
/// anonymous, and (without `[authz]`) every authenticated viewer. A thousand anonymous viewers
/// cost one serialization a second, not a thousand at once.
#[derive(Default)]
struct Framed(std::sync::Mutex<Option<FramedSnapshot>>);

struct FramedSnapshot {
    of: Arc<Snapshot>,
    /// By [`Framed::shared_view`].
    views: [Option<Bytes>; 2],
}

impl Framed {
    /// The view `viewer` shares with others, if it shares one.
    fn shared_view(hub: &Hub, viewer: Option<&Identity>) -> Option<usize> {
        match viewer {
            None => Some(0),
            Some(_) if hub.config.authz.is_none() => Some(1),
            Some(_) => None,
        }
    }

    /// The `status` event of `snapshot` as `viewer` may see it.
    fn event(&self, hub: &Hub, snapshot: &Arc<Snapshot>, viewer: Option<&Identity>) -> Option<Bytes> {
        let frame = || {
            let json = serde_json::to_string(&snapshot.for_viewer(hub, viewer)).ok()?;
            let mut out = Vec::new();
            sse_event(&mut out, "status", None, &json);
            Some(Bytes::from(out))
        };
        let Some(view) = Self::shared_view(hub, viewer) else { return frame() };
        // Framed under the lock: the other viewers of this view wait for it instead of framing it too.
        let mut framed = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !framed.as_ref().is_some_and(|framed| Arc::ptr_eq(&framed.of, snapshot)) {
            *framed = Some(FramedSnapshot { of: snapshot.clone(), views: [None, None] });
        }
        let views = &mut framed.as_mut()?.views;
        if views[view].is_none() {
            views[view] = frame();
        }
        views[view].clone()
    }
}

async fn page(html: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, html).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    // Vendored files carry their version in their name: they never change under it.
    let cache = if name.starts_with("vendor/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    (headers, asset.bytes).into_response()
}

/// `GET /status`: `event: history` with the last minutes of samples, then `event: status`
/// with a snapshot every second, until the viewer leaves or the session's time is up. Sources
/// are listed as far as the viewer may see them (see [`status::Snapshot::for_viewer`]).
async fn status_stream(
    State(hub): State<Arc<Hub>>,
    Extension(status): Extension<Arc<Status>>,
    Extension(framed): Extension<Arc<Framed>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    places: Option<Extension<ConnectionPlaces>>,
) -> Response {
    let viewer = crate::http::identify_stream(&hub, &headers, &params).ok();
    let admission = match Admission::new(&hub, places.as_ref().map(|p| &p.0)) {
        Ok(admission) => admission,
        Err(refused) => return crate::http::error_response(StatusCode::SERVICE_UNAVAILABLE, &refused.to_string()),
    };
    let (mut body, response_body) = body::channel(&hub);
    let history = serde_json::to_string(&status.history()).unwrap_or_else(|_| "[]".into());
    sse_event(&mut body.out, "history", None, &history);
    let mut session = admission.open(Transport::Sse);
    if let Some(viewer) = &viewer {
        session.expires_with(viewer);
    }
    hub.sessions.spawn(watch_status(session, body, (status.watch(), framed), viewer));
    session_response(Framing::Sse, response_body)
}

/// A viewer's status stream: each snapshot as it may see it, until it leaves or its session's
/// time is up (its token's expiry said as SSE streams say an error, then the end).
async fn watch_status(
    session: ClientSession,
    mut body: BodyWriter,
    (mut snapshots, framed): (watch::Receiver<Option<Arc<Snapshot>>>, Arc<Framed>),
    viewer: Option<Identity>,
) {
    let hub = session.hub().clone();
    let mut ending = session.ending();
    if body.flush().await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            biased;
            end = &mut ending => {
                if end == SessionEnd::TokenExpired {
                    Framing::Sse.transport_error(&mut body.out, TOKEN_EXPIRED);
                }
                break;
            }
            () = body.closed() => return,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                let Some(snapshot) = snapshots.borrow_and_update().clone() else { continue };
                let Some(event) = framed.event(&hub, &snapshot, viewer.as_ref()) else { continue };
                body.out.extend_from_slice(&event);
                if body.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    body.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_a_page_names_is_served() {
        for page in [include_str!("assets/dashboard.html"), include_str!("assets/graphiql.html")] {
            for reference in page.split(['"', '\'']).filter_map(|part| part.strip_prefix("/assets/")) {
                assert!(ASSETS.iter().any(|asset| asset.name == reference), "{reference} is not served");
            }
        }
    }
}
