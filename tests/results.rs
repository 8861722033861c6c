//! Results keep their shape on every path: fields in the order the selection gives them, and a
//! JSON payload passed through as it was published, the same bytes.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn fields_follow_the_selection_and_json_passes_through_as_published() {
    let hub = TestHub::start().await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let query = "subscription { events(topic: \"t\") { topic broker payload } }";
    client.subscribe("1", query, json!({})).await;
    let reordered = "subscription { events(topic: \"t\") { b: broker ...F id __typename } } fragment F on Event { a: topic payload }";
    client.subscribe("2", reordered, json!({})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let published = r#"{"z": 1, "a": [2, {"y":0,"b":1}],  "m":"\u00e9"}"#;
    hub.publish("t", published).await;
    let mut texts = [client.recv_text().await, client.recv_text().await];
    texts.sort();
    assert_eq!(
        texts[0],
        format!(
            r#"{{"id":"1","type":"next","payload":{{"data":{{"events":{{"topic":"t","broker":"local","payload":{published}}}}},"extensions":{{"cursor":"1"}}}}}}"#
        )
    );
    assert_eq!(
        texts[1],
        format!(
            r#"{{"id":"2","type":"next","payload":{{"data":{{"events":{{"b":"local","a":"t","payload":{published},"id":"1","__typename":"Event"}}}},"extensions":{{"cursor":"1"}}}}}}"#
        )
    );
}

/// Through an upstream the results are parsed and written again (their types are renamed), and
/// still keep the upstream's field order and the payload's member order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_results_keep_their_order() {
    let upstream = TestHub::start().await;
    let hub = TestHub::with_config(&format!("[upstreams.up]\nurl = \"ws://{}/graphql\"\n", upstream.addr)).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    client.subscribe("1", "subscription { up_events(topic: \"t\") { topic broker payload } }", json!({})).await;
    upstream.wait_metric("subhub_subscriptions", 1.0).await;
    upstream.publish("t", r#"{"z":1,"a":2}"#).await;
    let text = client.recv_text().await;
    assert!(text.contains(r#"{"up_events":{"topic":"t","broker":"local","payload":{"z":1,"a":2}}}"#), "{text}");
}
