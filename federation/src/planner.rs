//! The one place that knows the query planner: `hive-router-query-planner` (MIT), pinned
//! exactly. It reads the supergraph, derives the API schema clients see, and plans each
//! operation; its plans are turned into [`crate::plan`] at once, so the planner can be forked
//! or replaced here without touching the executor.
//!
//! Planning runs under `catch_unwind` and with a deadline: a planner fault or a pathological
//! operation fails that operation only, with a fixed message, never the hub.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use graphql_tools::parser::query as query_ast;
use graphql_tools::parser::schema as schema_ast;
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::plan_nodes::{
    self as hive, FetchNodePathSegment, FetchRewrite, FlattenNodePath, FlattenNodePathSegment, PlanNode,
};
use hive_router_query_planner::planner::{Planner as HivePlanner, QueryPlannerOptions};
use hive_router_query_planner::state::supergraph_state::OperationKind as HiveKind;
use hive_router_query_planner::utils::cancellation::CancellationToken;

use crate::plan::{
    BatchAlias, BatchFetch, Fetch, Node, OperationKind, PathSegment, Plan, Rewrite, RewriteSegment, Selection,
};

/// Why an operation could not be planned. The text is for logs; clients get a fixed message.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the planner refused the operation: {0}")]
    Refused(String),
    #[error("planning took longer than {0:?}")]
    Deadline(Duration),
    #[error("the planner failed (a panic); the operation is not planned")]
    Panicked,
    #[error("the plan has a shape the executor does not run: {0}")]
    Unsupported(String),
}

/// The supergraph could not be read by the planner.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SupergraphError(pub String);

pub struct Planner {
    inner: HivePlanner,
    deadline: Duration,
}

impl Planner {
    pub fn new(
        supergraph: &schema_ast::Document<'static, String>,
        deadline: Duration,
    ) -> Result<Self, SupergraphError> {
        let built = catch_unwind(AssertUnwindSafe(|| {
            HivePlanner::new_from_supergraph(supergraph, QueryPlannerOptions::default())
        }));
        match built {
            Ok(Ok(inner)) => Ok(Planner { inner, deadline }),
            Ok(Err(error)) => Err(SupergraphError(error.to_string())),
            Err(_) => Err(SupergraphError("the planner could not read the supergraph".to_owned())),
        }
    }

    /// The schema clients see: the supergraph without the `join__`/`link__` machinery and
    /// without `@inaccessible` elements (with the introspection types the planner adds).
    pub fn api_schema(&self) -> &schema_ast::Document<'static, String> {
        &self.inner.consumer_schema.document
    }

    /// Each subgraph's URL in the supergraph, by its name.
    pub fn subgraph_urls(&self) -> &HashMap<String, String> {
        &self.inner.supergraph.subgraph_endpoint_map
    }

    /// Plans the operation `operation_name` picks in `document` (which must select only
    /// fields of the supergraph).
    pub fn plan(
        &self,
        document: &query_ast::Document<'static, String>,
        operation_name: Option<&str>,
    ) -> Result<Plan, PlanError> {
        let planned = catch_unwind(AssertUnwindSafe(|| {
            let normalized = normalize_operation(&self.inner.supergraph, document, operation_name)
                .map_err(|e| PlanError::Refused(e.to_string()))?;
            let cancel = CancellationToken::with_timeout(self.deadline);
            self.inner
                .plan_from_normalized_operation(&normalized.operation, PlannerOverrideContext::default(), &cancel)
                .map_err(|error| match error {
                    hive_router_query_planner::planner::PlannerError::CancellationError(_) => {
                        PlanError::Deadline(self.deadline)
                    }
                    other => PlanError::Refused(other.to_string()),
                })
        }));
        match planned {
            Ok(Ok(plan)) => convert_plan(plan),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(PlanError::Panicked),
        }
    }
}

fn convert_plan(plan: hive::QueryPlan) -> Result<Plan, PlanError> {
    // A subscription opens at one subgraph, and the rest of the plan completes each event.
    let (subscription, rest) = match plan.node {
        Some(PlanNode::Subscription(subscription)) => (Some(subscription.primary), None),
        Some(PlanNode::Sequence(sequence)) if matches!(sequence.nodes.first(), Some(PlanNode::Subscription(_))) => {
            let mut nodes = sequence.nodes.into_iter();
            let Some(PlanNode::Subscription(subscription)) = nodes.next() else { unreachable!("matched above") };
            (Some(subscription.primary), Some(PlanNode::sequence(nodes.collect())))
        }
        other => (None, other),
    };
    Ok(Plan {
        subscription: subscription.map(|fetch| convert_fetch(fetch, Vec::new()).map(Arc::new)).transpose()?,
        root: rest.map(|node| convert_node(node, Vec::new())).transpose()?,
    })
}

fn convert_node(node: PlanNode, path: Vec<PathSegment>) -> Result<Node, PlanError> {
    Ok(match node {
        PlanNode::Fetch(fetch) => Node::Fetch(convert_fetch(fetch, path)?.into()),
        PlanNode::Flatten(flatten) => {
            if !path.is_empty() {
                return Err(PlanError::Unsupported("a flatten inside a flatten".into()));
            }
            convert_node(*flatten.node, flatten_path(&flatten.path))?
        }
        PlanNode::BatchFetch(batch) => {
            if !path.is_empty() {
                return Err(PlanError::Unsupported("a batch fetch inside a flatten".into()));
            }
            Node::BatchFetch(convert_batch(batch)?.into())
        }
        PlanNode::Sequence(sequence) => {
            Node::Sequence(sequence.nodes.into_iter().map(|n| convert_node(n, path.clone())).collect::<Result<_, _>>()?)
        }
        PlanNode::Parallel(parallel) => {
            Node::Parallel(parallel.nodes.into_iter().map(|n| convert_node(n, path.clone())).collect::<Result<_, _>>()?)
        }
        PlanNode::Condition(condition) => Node::Condition {
            variable: condition.condition,
            then: condition.if_clause.map(|n| convert_node(*n, path.clone()).map(Box::new)).transpose()?,
            otherwise: condition.else_clause.map(|n| convert_node(*n, path.clone()).map(Box::new)).transpose()?,
        },
        PlanNode::Subscription(_) => return Err(PlanError::Unsupported("a subscription inside a plan".into())),
        PlanNode::Defer(_) => return Err(PlanError::Unsupported("@defer".into())),
    })
}

fn kind(kind: Option<&HiveKind>) -> Result<OperationKind, PlanError> {
    Ok(match kind {
        None | Some(HiveKind::Query) => OperationKind::Query,
        Some(HiveKind::Mutation) => OperationKind::Mutation,
        Some(HiveKind::Subscription) => OperationKind::Subscription,
    })
}

fn convert_fetch(fetch: hive::FetchNode, path: Vec<PathSegment>) -> Result<Fetch, PlanError> {
    Ok(Fetch {
        kind: kind(fetch.operation_kind.as_ref())?,
        subgraph: fetch.service_name,
        operation: fetch.operation.document_str,
        variables: fetch.variable_usages.map(|v| v.into_iter().collect()).unwrap_or_default(),
        path,
        requires: fetch.requires.as_ref().map(selections),
        input_rewrites: rewrites(fetch.input_rewrites),
        output_rewrites: rewrites(fetch.output_rewrites),
    })
}

fn convert_batch(batch: hive::BatchFetchNode) -> Result<BatchFetch, PlanError> {
    let aliases = batch
        .entity_batch
        .aliases
        .into_iter()
        .map(|alias| BatchAlias {
            alias: alias.alias,
            representations: alias.representations_variable_name,
            paths: alias.merge_paths.iter().map(flatten_path).collect(),
            requires: selections(&alias.requires),
            input_rewrites: rewrites(alias.input_rewrites),
            output_rewrites: rewrites(alias.output_rewrites),
        })
        .collect();
    kind(batch.operation_kind.as_ref())?;
    Ok(BatchFetch {
        subgraph: batch.service_name,
        operation: batch.operation.document_str,
        variables: batch.variable_usages.map(|v| v.into_iter().collect()).unwrap_or_default(),
        aliases,
    })
}

fn flatten_path(path: &FlattenNodePath) -> Vec<PathSegment> {
    path.as_slice()
        .iter()
        .map(|segment| match segment {
            FlattenNodePathSegment::Field(key) => PathSegment::Field(key.clone()),
            FlattenNodePathSegment::List => PathSegment::List,
            FlattenNodePathSegment::TypeCondition(types) => PathSegment::TypeCondition(types.iter().cloned().collect()),
        })
        .collect()
}

fn selections(set: &SelectionSet) -> Vec<Selection> {
    set.items
        .iter()
        .filter_map(|item| match item {
            SelectionItem::Field(field) => Some(Selection::Field {
                response_key: field.selection_identifier().to_owned(),
                name: field.name.clone(),
                selections: selections(&field.selections),
            }),
            SelectionItem::InlineFragment(fragment) => Some(Selection::Fragment {
                type_condition: fragment.type_condition.clone(),
                selections: selections(&fragment.selections),
            }),
            // Plans inline their fragments; a spread here would be a planner change the
            // plan fixtures show.
            SelectionItem::FragmentSpread(_) => None,
        })
        .collect()
}

fn rewrites(rewrites: Option<Vec<FetchRewrite>>) -> Vec<Rewrite> {
    let segments = |path: Vec<FetchNodePathSegment>| {
        path.into_iter()
            .map(|segment| match segment {
                FetchNodePathSegment::Key(key) => RewriteSegment::Key(key),
                FetchNodePathSegment::TypenameEquals(types) => RewriteSegment::TypenameIs(types.into_iter().collect()),
            })
            .collect()
    };
    rewrites
        .unwrap_or_default()
        .into_iter()
        .map(|rewrite| match rewrite {
            FetchRewrite::ValueSetter(setter) => {
                Rewrite::SetValue { path: segments(setter.path), value: setter.set_value_to }
            }
            FetchRewrite::KeyRenamer(renamer) => {
                Rewrite::RenameKey { path: segments(renamer.path), to: renamer.rename_key_to }
            }
        })
        .collect()
}
