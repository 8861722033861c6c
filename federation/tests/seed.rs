//! The purchases example's supergraph (examples/purchases/supergraph.graphql, printed by
//! `subhub compose`) is one the planner reads, and it plans the example's query and its
//! classroom board's subscription across the three subgraphs.

use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::utils::cancellation::CancellationToken;

fn planner() -> Planner {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/purchases/supergraph.graphql");
    let sdl = std::fs::read_to_string(path).expect("examples/purchases/supergraph.graphql");
    let parsed = graphql_tools::parser::parse_schema(&sdl).expect("the supergraph parses").into_static();
    Planner::new_from_supergraph(&parsed, QueryPlannerOptions::default()).expect("the planner reads the supergraph")
}

fn plan(planner: &Planner, operation: &str) -> String {
    let document = graphql_tools::parser::parse_query(operation).expect("the operation parses").into_static();
    let normalized = normalize_operation(&planner.supergraph, &document, None).expect("the operation normalizes");
    let plan = planner
        .plan_from_normalized_operation(
            normalized.executable_operation(),
            PlannerOverrideContext::default(),
            &CancellationToken::new(),
        )
        .expect("the operation plans");
    let plan = format!("{plan}");
    println!("{plan}");
    plan
}

#[test]
fn the_seed_query_plans_across_purchases_and_classroom() {
    let plan = plan(&planner(), "{ me { purchases { id product { title } } enrollments { course { title } } } }");
    assert!(plan.contains("Fetch(service: \"purchases\")"), "{plan}");
    assert!(plan.contains("Fetch(service: \"classroom\")"), "{plan}");
    assert!(plan.contains("enrollments"), "{plan}");
    assert!(!plan.contains("\"subhub\""), "the hub's subgraph owns nothing the query asks:\n{plan}");
}

#[test]
fn the_classroom_board_subscription_starts_at_the_hub_and_completes_from_the_services() {
    let plan = plan(&planner(), "subscription { purchaseCreated { id amount product { title } student { name } } }");
    assert!(plan.contains("Subscription"), "{plan}");
    assert!(plan.contains("Fetch(service: \"subhub\")"), "{plan}");
    assert!(plan.contains("Fetch(service: \"purchases\")"), "{plan}");
    assert!(plan.contains("Fetch(service: \"classroom\")"), "{plan}");
}
