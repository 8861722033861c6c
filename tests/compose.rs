//! `subhub compose` and `subhub subgraph-sdl` as a user runs them: the purchases example's
//! supergraph from its SDL files and from its running subgraph services (`_service` over HTTP),
//! the same as the checked-in one; composition errors that name the subgraph.

use std::path::{Path, PathBuf};
use std::process::Command;

use subhub_example_services::{classroom, purchases, router, serve};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs subhub from the repository's root (where the example's paths start); returns whether it
/// succeeded, its stdout and its stderr.
fn subhub(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_subhub"))
        .args(args)
        .current_dir(root())
        .env_remove("SUBHUB_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run subhub");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("subhub-compose-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

fn checked_in_supergraph() -> String {
    std::fs::read_to_string(root().join("examples/purchases/supergraph.graphql")).expect("the checked-in supergraph")
}

const EXAMPLE: &str = "examples/purchases/federation.toml";

#[test]
fn the_checked_in_supergraph_is_what_compose_prints() {
    let (ok, supergraph, stderr) = subhub(&["compose", "--config", EXAMPLE]);
    assert!(ok, "{stderr}");
    assert_eq!(
        supergraph,
        checked_in_supergraph(),
        "examples/purchases/supergraph.graphql is stale: `subhub compose --config {EXAMPLE}` prints it"
    );
}

#[test]
fn subgraph_sdl_prints_the_typed_schema_as_a_federation_2_subgraph() {
    let (ok, sdl, stderr) = subhub(&["subgraph-sdl", "--config", EXAMPLE]);
    assert!(ok, "{stderr}");
    assert!(
        sdl.starts_with(
            "extend schema\n  @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\"])\n"
        ),
        "{sdl}"
    );
    assert!(sdl.contains("type Purchase\n  @key(fields: \"id\", resolvable: false)\n{\n  id: ID!\n}"), "{sdl}");
    assert!(sdl.contains("  purchaseCreated: Purchase!\n"), "{sdl}");
    assert!(!sdl.contains("@subscribe") && !sdl.contains("directive"), "{sdl}");

    let config = config_file("no-schema", "[subgraphs.a]\nurl = \"http://127.0.0.1:1/graphql\"\n");
    let (ok, _, stderr) = subhub(&["subgraph-sdl", "--config", config.to_str().expect("path")]);
    assert!(!ok && stderr.contains("the config names no typed schema"), "{stderr}");
}

/// With no SDL files, compose asks each running service for `{ _service { sdl } }`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_reads_running_subgraphs_over_http() {
    let mut urls = Vec::new();
    for app in [purchases::router(purchases::schema()), router(classroom::schema())] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        urls.push(format!("http://{}/graphql", listener.local_addr().expect("address")));
        tokio::spawn(serve(app, listener));
    }
    let config = config_file(
        "urls",
        &format!(
            "schema = \"{}\"\ngeneric_api = false\ndefault_broker = \"kafka\"\n[brokers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"127.0.0.1:9092\"\n\
             [subgraphs.purchases]\nurl = \"{}\"\n[subgraphs.classroom]\nurl = \"{}\"\n",
            root().join("examples/purchases/federated.graphql").display(),
            urls[0],
            urls[1]
        ),
    );
    let path = config.to_str().expect("path").to_owned();
    let (ok, supergraph, stderr) =
        tokio::task::spawn_blocking(move || subhub(&["compose", "--config", &path])).await.expect("join");
    assert!(ok, "{stderr}");
    // The same supergraph as from the SDL files, but for where the services listen.
    let expected = checked_in_supergraph()
        .replace("http://127.0.0.1:4101/graphql", &urls[0])
        .replace("http://127.0.0.1:4102/graphql", &urls[1]);
    assert_eq!(supergraph, expected);
}

#[test]
fn an_unreachable_subgraph_is_named_with_its_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/graphql", listener.local_addr().expect("address"));
    drop(listener);
    let config = config_file("unreachable", &format!("[subgraphs.inventory]\nurl = \"{url}\"\n"));
    let (ok, stdout, stderr) = subhub(&["compose", "--config", config.to_str().expect("path")]);
    assert!(!ok && stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("subgraph `inventory`: cannot reach {url}: the connection was refused or failed")),
        "{stderr}"
    );
}

#[test]
fn conflicting_fields_name_both_subgraphs() {
    let config = config_file(
        "conflict",
        &format!(
            "[subgraphs.purchases]\nurl = \"http://127.0.0.1:4101/graphql\"\nsdl = \"examples/purchases/subgraphs/purchases.graphql\"\n\
             [subgraphs.old_purchases]\nurl = \"http://127.0.0.1:4103/graphql\"\nsdl = \"{}\"\n",
            root().join("tests/fixtures/federation/conflict.graphql").display()
        ),
    );
    let (ok, _, stderr) = subhub(&["compose", "--config", config.to_str().expect("path")]);
    assert!(!ok);
    assert!(stderr.starts_with("subhub: the subgraphs do not compose:\n  - "), "{stderr}");
    assert!(
        stderr.contains("Purchase.amount") && stderr.contains("old_purchases") && stderr.contains("purchases"),
        "{stderr}"
    );
}

#[test]
fn the_hubs_own_subgraph_name_and_missing_urls_are_refused_clearly() {
    let schema = root().join("examples/purchases/federated.graphql");
    let config = config_file(
        "self",
        &format!(
            "schema = \"{}\"\ngeneric_api = false\ndefault_broker = \"kafka\"\n[brokers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"127.0.0.1:9092\"\n[subgraphs.subhub]\nurl = \"http://127.0.0.1:4101/graphql\"\nsdl = \"{}\"\n",
            schema.display(),
            schema.display()
        ),
    );
    let (ok, _, stderr) = subhub(&["compose", "--config", config.to_str().expect("path")]);
    assert!(!ok && stderr.contains("[subgraphs.subhub] names the hub's own subgraph"), "{stderr}");

    let config = config_file("no-url", "[subgraphs.reviews]\nsdl = \"reviews.graphql\"\n");
    let (ok, _, stderr) = subhub(&["compose", "--config", config.to_str().expect("path")]);
    assert!(!ok && stderr.contains("[subgraphs.reviews] has no `url`"), "{stderr}");

    let config = config_file("none", "listen = \"127.0.0.1:0\"\n");
    let (ok, _, stderr) = subhub(&["compose", "--config", config.to_str().expect("path")]);
    assert!(!ok && stderr.contains("there is no subgraph to compose"), "{stderr}");
}
