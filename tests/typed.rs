//! Typed schemas (DESIGN §5): SDL types served as written, fields bound to topics, filters,
//! publishes and metadata, against a real hub and real clients.

mod common;

use common::*;
use serde_json::json;

const ORDERS: &str = "schema = \"tests/fixtures/typed/orders.graphql\"\n";

#[tokio::test]
async fn a_typed_subscription_serves_typed_events() {
    let hub = TestHub::with_config(ORDERS).await;
    let mut client = Client::ready(&hub, TRANSPORT_WS).await;
    let query = "subscription($id: ID!) { orderUpdated(id: $id) { id status total items { sku qty } topic } }";
    client.subscribe("1", query, json!({"id": "7"})).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    hub.publish(
        "orders.7",
        r#"{"id": 7, "status": "PAID", "total": 12.5, "items": [{"sku": "a", "qty": 2}], "extra": true}"#,
    )
    .await;
    let text = client.recv_text().await;
    assert_eq!(
        text,
        r#"{"id":"1","type":"next","payload":{"data":{"orderUpdated":{"id":"7","status":"PAID","total":12.5,"items":[{"sku":"a","qty":2}],"topic":"orders.7"}}}}"#
    );
}
