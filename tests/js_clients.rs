//! The reference JavaScript clients and the GraphQL-over-HTTP audit, run with node against a
//! live hub. Their npm packages are pinned in tests/js/package-lock.json and installed here on
//! first use (`npm ci`). Outside CI, a machine without node skips these with a loud line; in CI
//! (`CI` set) that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("js")
}

/// True when node and the npm packages are ready; installs the packages once per test binary.
fn node_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let in_ci = std::env::var_os("CI").is_some();
        if Command::new("node").arg("--version").output().is_err() {
            assert!(!in_ci, "node is required in CI for the JavaScript client tests");
            eprintln!("SKIPPED: node is not installed; the JavaScript client tests need node >= 20 and npm");
            return false;
        }
        if !installed() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(js_dir())
                .status()
                .expect("run npm ci in tests/js");
            assert!(status.success(), "npm ci in tests/js failed");
        }
        true
    })
}

/// Whether every package `package.json` names is in `node_modules`.
fn installed() -> bool {
    let manifest = std::fs::read_to_string(js_dir().join("package.json")).expect("tests/js/package.json");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("package.json is JSON");
    let dependencies = manifest["dependencies"].as_object().expect("dependencies");
    dependencies.keys().all(|name| js_dir().join("node_modules").join(name).join("package.json").exists())
}

async fn run_node(script: &str, hub: &TestHub) -> String {
    run_node_with(script, hub, &[], &[]).await
}

async fn run_node_with(script: &str, hub: &TestHub, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = js_dir();
    let mut command = Command::new("node");
    command.arg(script).arg(hub.url("")).args(args).current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_ws_client_subscribes_receives_and_completes() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("graphql-ws-client.mjs", &hub).await;
    assert!(out.contains("graphql-ws client ok"));
    hub.wait_metric("subhub_connections", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriptions_transport_ws_client_subscribes_receives_and_completes() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("legacy-client.mjs", &hub).await;
    assert!(out.contains("subscriptions-transport-ws client ok"));
    hub.wait_metric("subhub_connections", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_http_audit_passes_every_must() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("audit.mjs", &hub).await;
    let summary = out.lines().find(|l| l.starts_with("graphql-http audit:")).expect("audit summary");
    assert!(summary.ends_with("error 0"), "{summary}");
}

/// A frame over `max_message_bytes` reaches a real client as close 1009: the hub drains what
/// the client still sends instead of resetting the connection under the close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ws_client_sees_1009_for_frames_over_the_limit() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("oversized-frames.mjs", &hub).await;
    assert!(out.contains("oversized frames ok"));
}

/// A typed schema through the reference clients: GraphiQL's introspection query shows its types,
/// and the npm graphql-ws client subscribes to a typed field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_ws_client_subscribes_to_a_typed_field_and_introspection_shows_the_sdl() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::with_config("schema = \"tests/fixtures/typed/orders.graphql\"\n").await;
    let out = run_node("typed-schema.mjs", &hub).await;
    assert!(out.contains("typed schema ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_sse_client_receives_a_hundred_events_in_order_and_ids_are_cursors() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("sse-client.mjs", &hub).await;
    assert!(out.contains("100 events in order"), "{out}");
    assert!(out.contains("are the cursors"), "{out}");
}

/// DESIGN §11: a session ends when its token expires, over SSE as over WebSocket. The npm
/// graphql-sse client sees the expiry as the stream's last result, then its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_sse_client_is_ended_when_its_token_expires() {
    if !node_ready() {
        return;
    }
    let secret = "js-expiry-secret-0123456789";
    // Anonymous publishes (the harness sends no token); the client's token is checked all the same.
    let hub = TestHub::with_config(&format!("[auth]\nhs256_secret = \"{secret}\"\nrequired = false\n")).await;
    let token =
        subhub::auth::sign_hs256(secret.as_bytes(), &serde_json::json!({"sub": "ada", "exp": subhub::auth::now() + 3}));
    let out = run_node_with("sse-expiry.mjs", &hub, &[&token], &[]).await;
    assert!(out.contains("ended with Token expired"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_clients_http_link_subscribes_over_multipart() {
    if !node_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let out = run_node("apollo-multipart.mjs", &hub).await;
    assert!(out.contains("20 events in order"), "{out}");
}

/// Debian's Chromium, which `.ci/run` installs; outside CI a machine without it skips.
fn chromium_ready() -> bool {
    if Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "/usr/bin/chromium is required in CI for the browser test");
    eprintln!("SKIPPED: the browser test needs Debian's chromium (apt install chromium)");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_watches_the_dashboard_and_subscribes_in_graphiql() {
    if !node_ready() || !chromium_ready() {
        return;
    }
    let hub = TestHub::start().await;
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    let dir = screenshots.to_str().expect("UTF-8 path");
    let out = run_node_with("browser.mjs", &hub, &[dir], &[("SUBHUB_JS_TIMEOUT_MS", "90000")]).await;
    assert!(out.contains("counters follow two WebSocket clients"), "{out}");
    assert!(out.contains("the live tail shows a published event"), "{out}");
    assert!(out.contains("GraphiQL: a subscription shows a published event"), "{out}");
    assert!(out.contains("no request left 127.0.0.1"), "{out}");
    for shot in ["dashboard.png", "graphiql.png"] {
        let size = std::fs::metadata(screenshots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{shot} was not saved ({size} bytes)");
    }
    println!("screenshots in {dir}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_shows_a_typed_schema() {
    if !node_ready() || !chromium_ready() {
        return;
    }
    let hub = TestHub::with_config("schema = \"tests/fixtures/typed/orders.graphql\"\n").await;
    let out = run_node_with("browser-typed.mjs", &hub, &[], &[("SUBHUB_JS_TIMEOUT_MS", "60000")]).await;
    assert!(out.contains("GraphiQL shows the typed schema"), "{out}");
}
