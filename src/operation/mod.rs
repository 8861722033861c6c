//! From a client's prepared request to results: the key that makes identical operations share
//! one execution, and results turned into shared bytes.
//!
//! ## Layout
//! - this file: requests, operation keys, queries and mutations (results as JSON text are
//!   [`crate::results`]'s).
//! - [`federated`]: queries and mutations on the supergraph, run by the federation gateway.
//! - [`resume`]: a resumed subscription: its replay, then its held live results.
//! - [`running`]: an operation started for one client, on any transport.
//! - [`shared`]: a subscription on the hub's sources, executed once per event for every
//!   subscriber of its key.
//! - [`upstream`]: a subscription forwarded to an upstream server, its results passed through.

pub mod federated;
mod resume;
mod running;
mod shared;
mod upstream;

pub use running::{start, Caller, OperationHandle};
pub use shared::{replay_results, shared_results, Subscribed, SubscribedSlot};
pub use upstream::upstream_results;

pub use crate::results::{errors_json, failed_before_execution, is_request_error, response_json};

use async_graphql::dynamic::Schema;
use async_graphql::{Request, Response, Variables};
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{ExecutionItem, OperationKey};

use crate::documents::Prepared;
use crate::results::internal_error_json;

/// The request to execute, with the document parsed once already.
pub fn request(payload: &OperationPayload, prepared: &Prepared) -> Request {
    let mut request = Request::new(payload.query.clone());
    request.set_parsed_query(prepared.document.parsed.clone());
    if let Some(name) = &payload.operation_name {
        request = request.operation_name(name.clone());
    }
    if let Some(variables) = &payload.variables {
        request = request.variables(Variables::from_json(serde_json::Value::Object(variables.clone())));
    }
    request
}

/// The key of the shared execution: the same document, operation name, variables and auth
/// scope run once, whatever order the variables' keys came in.
pub fn key(payload: &OperationPayload, prepared: &Prepared, scope: &str) -> OperationKey {
    let mut variables = String::new();
    if let Some(vars) = &payload.variables {
        subhub_protocol::canonical::write(&serde_json::Value::Object(vars.clone()), &mut variables);
    }
    OperationKey {
        document: prepared.document.text.clone(),
        operation_name: payload.operation_name.clone(),
        variables,
        scope: scope.to_owned(),
    }
}

/// Runs a query or mutation.
pub async fn single_result(schema: &Schema, request: Request) -> ExecutionItem {
    item(schema.execute(request).await, true)
}

fn item(response: Response, first: bool) -> ExecutionItem {
    if first && failed_before_execution(&response) {
        ExecutionItem::Error(errors_json(&response.errors).into())
    } else {
        ExecutionItem::Next(response_json(&response).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{CostLimits, Documents};

    fn payload(query: &str, variables: serde_json::Value) -> OperationPayload {
        OperationPayload { query: query.into(), variables: variables.as_object().cloned(), ..Default::default() }
    }

    #[test]
    fn keys_ignore_variable_order() {
        let limits = CostLimits { max_depth: 4, max_complexity: 10, max_aliases: 2 };
        let documents = Documents::new(4, 1024, limits, subhub_subscriptions::Metrics::new().document_cache.clone());
        let key = |payload: &OperationPayload| {
            let prepared = documents.prepare(&payload.query, None).expect("prepared");
            key(payload, &prepared, "")
        };
        let a = key(&payload("{ q }", serde_json::json!({"a": 1, "b": {"y": 2, "x": 1}})));
        let b = key(&payload("{ q }", serde_json::json!({"b": {"x": 1, "y": 2}, "a": 1})));
        assert_eq!(a, b);
        assert_ne!(a, key(&payload("{ q }", serde_json::json!({"a": 2}))));
    }
}
