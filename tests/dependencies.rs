//! A crate depends only on what it uses (DESIGN §1): the upstream client, the protocol crate and
//! the vocabulary they share with the brokers (subhub-core) link no broker client. Read from `cargo tree`, so a new dependency that drags a broker
//! client in fails here, not in a review.

use std::collections::BTreeSet;
use std::process::Command;

/// Every package `root` links (normal dependencies, transitively, for this platform), by name.
fn linked_by(root: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", root])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_upstream_client_the_protocol_and_the_core_link_no_broker_client() {
    for (crate_name, surely) in
        [("subhub-upstream-ws", "serde_json"), ("subhub-protocol", "serde_json"), ("subhub-core", "tokio")]
    {
        let linked = linked_by(crate_name);
        assert!(linked.contains(surely), "{crate_name}: the walk found its dependencies: {linked:?}");
        for broker_client in ["rdkafka", "rdkafka-sys", "lapin", "redis", "rumqttc", "async-nats", "subhub-brokers"] {
            assert!(!linked.contains(broker_client), "{crate_name} links {broker_client}");
        }
    }
}
