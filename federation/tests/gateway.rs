//! The gateway on its own (no subgraph is asked): the API schema it serves and introspects, with
//! the supergraph's machinery and `@inaccessible` elements left out.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use subhub_federation::{FederationConfig, Gateway, Request, Supergraph};

fn gateway() -> Gateway {
    let sdl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/plans/shapes/supergraph.graphql"))
        .expect("fixture");
    let supergraph = Arc::new(Supergraph::from_sdl(&sdl, Duration::from_secs(10)).expect("a supergraph"));
    let config: FederationConfig = serde_json::from_value(json!({ "supergraph": "unused.graphql" })).expect("config");
    Gateway::new(
        supergraph,
        "scalar Local type Query { hello: String }",
        &config,
        &Default::default(),
        std::sync::Arc::new(subhub_federation::metrics::Uncounted),
    )
    .expect("a gateway")
}

async fn run(gateway: &Gateway, query: &str) -> Value {
    let body = match gateway.prepare(query, None).await {
        Ok(prepared) => {
            let request = Request { variables: None, headers: Default::default(), claims: None, local: None };
            gateway
                .execute(&prepared, request)
                .await
                .unwrap_or_else(|refusal| format!(r#"{{"errors":{}}}"#, refusal.errors_json()))
        }
        Err(refusal) => format!(r#"{{"errors":{}}}"#, refusal.errors_json()),
    };
    serde_json::from_str(&body).expect("a JSON response")
}

#[tokio::test]
async fn introspection_leaves_out_inaccessible_fields_and_the_machinery() {
    let gateway = gateway();
    let response = run(&gateway, "{ __schema { queryType { fields { name } } types { name } } }").await;
    let names = |value: &Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(names(&response["data"]["__schema"]["queryType"]["fields"]), ["node", "nodes", "hello"]);
    let types = names(&response["data"]["__schema"]["types"]);
    assert!(types.iter().all(|t| !t.starts_with("join__") && !t.starts_with("link__")), "{types:?}");
    assert!(types.contains(&"Local".to_owned()) && types.contains(&"Account".to_owned()), "{types:?}");
    let response = run(&gateway, r#"{ __type(name: "Node") { kind possibleTypes { name } fields { name } } }"#).await;
    assert_eq!(
        response["data"]["__type"],
        json!({"kind": "INTERFACE", "possibleTypes": [{"name": "Account"}, {"name": "Chat"}], "fields": [{"name": "id"}]})
    );
}

#[tokio::test]
async fn an_inaccessible_field_cannot_be_selected() {
    let response = run(&gateway(), "{ secret }").await;
    assert!(response["errors"][0]["message"].as_str().unwrap_or_default().contains("secret"), "{response}");
    assert_eq!(response.get("data"), None);
}
