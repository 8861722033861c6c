//! The `subhub` binary: a clear line for each bad start, and a graceful exit on SIGTERM.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn subhub() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_subhub"));
    command.env("RUST_LOG", "info").env_remove("SUBHUB_CONFIG");
    command
}

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("subhub-cli-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs to completion; returns exit success and stderr.
fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("run subhub");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn unknown_keys_and_wrong_types_fail_at_start_naming_file_line_and_key() {
    let path = config_file("unknown", "listen = \"127.0.0.1:0\"\n\n[limits]\nmax_conections = 10\n");
    let (ok, stderr) = run(subhub().arg("--config").arg(&path));
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{}:4:1", path.display())) && stderr.contains("max_conections"), "{stderr}");

    let path = config_file("type", "[limits]\nconnection_init_timeout = 3\n");
    let (ok, stderr) = run(subhub().arg("check").arg("--config").arg(&path));
    assert!(!ok);
    assert!(
        stderr.contains(":2:") && stderr.contains("connection_init_timeout") || stderr.contains("duration"),
        "{stderr}"
    );

    let (ok, stderr) = run(subhub().arg("--config").arg("/nonexistent/subhub.toml"));
    assert!(!ok && stderr.contains("/nonexistent/subhub.toml"), "{stderr}");

    let (ok, stderr) = run(subhub().env("SUBHUB_LIMITS__MAX_CONNECTIONS", "lots").arg("check"));
    assert!(!ok && stderr.contains("SUBHUB_LIMITS__MAX_CONNECTIONS"), "{stderr}");

    let path = config_file("good", "[limits]\nlinger = \"1s\"\n");
    let (ok, stderr) = run(subhub().arg("check").arg("--config").arg(&path));
    assert!(ok, "{stderr}");
}

/// The documented auth setup: the secret in `SUBHUB_JWT_SECRET`, named by `hs256_secret_env`,
/// beside a platform's service link. Neither names a config key, so neither may stop the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_that_name_no_key_do_not_stop_the_hub() {
    const SECRET: &str = "a-secret-of-enough-bytes";
    let path = config_file("secret-env", "[auth]\nhs256_secret_env = \"SUBHUB_JWT_SECRET\"\n");
    let env =
        [("SUBHUB_JWT_SECRET", SECRET), ("SUBHUB_PORT", "tcp://10.0.0.7:4000"), ("SUBHUB_SERVICE_HOST", "10.0.0.7")];
    let (ok, stderr) = run(subhub().arg("check").arg("--config").arg(&path).envs(env));
    assert!(ok, "{stderr}");
    let (mut child, addr) = start_binary_with(&["--config", path.to_str().expect("path")], &env);
    let token = subhub::auth::sign_hs256(SECRET.as_bytes(), &json!({"sub": "ada", "exp": u64::MAX / 2}));
    let mut client = Client::connect_url(&format!("ws://{addr}/graphql"), Some(TRANSPORT_WS)).await;
    client.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    assert_eq!(client.recv_json().await["type"], "connection_ack");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_listen_address_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let (ok, stderr) = run(subhub().arg("--listen").arg(addr.to_string()));
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on {addr}: address already in use")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_completes_subscriptions_closes_1001_and_exits_zero() {
    let (mut child, addr) = start_binary();
    let url = format!("ws://{addr}/graphql");
    let mut client = Client::connect_url(&url, Some(TRANSPORT_WS)).await;
    client.init().await;
    client.subscribe("live", EVENTS_QUERY, json!({"topic": "t"})).await;
    assert!(client.until_pong().await.is_empty());

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    assert_eq!(client.recv_json().await, json!({"id": "live", "type": "complete"}));
    assert_eq!(client.recv_close().await.0, 1001);
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(exit.success(), "{exit:?}");
}

/// `subhub token` signs with the config's secret a token the hub then accepts, and says why
/// when it cannot.
#[test]
fn token_signs_with_the_configs_secret() {
    const SECRET: &str = "a-secret-of-enough-bytes";
    let path = config_file("token", "[auth]\nhs256_secret_env = \"SUBHUB_JWT_SECRET\"\naudience = \"subhub\"\n");
    let output = subhub()
        .env("SUBHUB_JWT_SECRET", SECRET)
        .args(["token", "--ttl", "5m", "--config"])
        .arg(&path)
        .arg(r#"{"sub": "ada", "role": "admin"}"#)
        .output()
        .expect("run subhub token");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["subhub"]);
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).expect("key");
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("a valid token").claims;
    assert_eq!((&claims["sub"], &claims["role"], &claims["aud"]), (&json!("ada"), &json!("admin"), &json!("subhub")));
    let lifetime = claims["exp"].as_u64().unwrap_or(0).saturating_sub(subhub::auth::now());
    assert!((290..=300).contains(&lifetime), "{lifetime}");

    let (ok, stderr) =
        run(subhub().env("SUBHUB_JWT_SECRET", SECRET).arg("token").arg("--config").arg(&path).arg("[1]"));
    assert!(!ok && stderr.contains("must be a JSON object"), "{stderr}");
    let open = config_file("token-open", "listen = \"127.0.0.1:0\"\n");
    let (ok, stderr) = run(subhub().arg("token").arg("--config").arg(&open).arg("{}"));
    assert!(!ok && stderr.contains("no [auth]"), "{stderr}");
}
