//! A federated operation, prepared once per distinct (document, operation name): read,
//! validated against the schema the hub serves, cut into the supergraph's part and the hub's
//! own, and planned. What a request adds (its variables) is applied by the executor.
//!
//! ## Layout
//! - this file: preparing an operation; its projection per `@skip`/`@include` values.
//! - [`split`]: the operation cut at its root, each part a document of its own.
//! - [`collect`]: the fields a selection selects for an object (the spec's CollectFields).
//! - [`variables`]: the request's variables coerced to the operation's definitions.

pub mod collect;
pub mod split;
pub mod variables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use graphql_tools::parser::query::{Definition, OperationDefinition};
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::{validate, ValidationPlan};
use serde_json::{json, Map, Value as Json};

use crate::introspection::Introspection;
use crate::plan::{OperationKind, Plan};
use crate::planner::Planner;
use crate::project::{self, Projection};
use crate::schema::Schema;
use split::Ast;
use variables::Variable;

/// Projections kept per operation, one per combination of its `@skip`/`@include` values.
const MAX_PROJECTIONS: usize = 64;

/// Why an operation is not run. Each holds a serialized GraphQL error list.
#[derive(Clone, Debug)]
pub enum Refusal {
    /// The request's fault: the document does not parse or validate, its variables do not fit.
    Invalid(String),
    /// The gateway could not plan or project it.
    Failed(String),
}

impl Refusal {
    pub fn errors_json(&self) -> &str {
        match self {
            Refusal::Invalid(errors) | Refusal::Failed(errors) => errors,
        }
    }

    fn invalid(messages: impl IntoIterator<Item = String>) -> Self {
        let errors: Vec<Json> = messages.into_iter().map(|message| json!({ "message": message })).collect();
        Refusal::Invalid(Json::Array(errors).to_string())
    }

    fn failed(message: &str, code: &str) -> Self {
        Refusal::Failed(json!([{ "message": message, "extensions": { "code": code } }]).to_string())
    }
}

/// The schema operations are validated against: the one the hub serves ([`crate::served`]).
pub struct Validation {
    schema: graphql_tools::static_graphql::schema::Document,
    rules: ValidationPlan,
}

impl Validation {
    pub fn new(schema: graphql_tools::static_graphql::schema::Document) -> Self {
        Validation { schema, rules: default_rules_validation_plan() }
    }

    fn check(&self, document: &Ast) -> Result<(), Refusal> {
        let errors = validate(&self.schema, document, &self.rules);
        if errors.is_empty() {
            return Ok(());
        }
        Err(Refusal::Invalid(
            serde_json::to_string(&errors).unwrap_or_else(|_| r#"[{"message":"invalid operation"}]"#.into()),
        ))
    }
}

/// An operation ready to run.
pub struct Prepared {
    pub kind: OperationKind,
    document: Ast,
    index: usize,
    pub plan: Plan,
    /// The root fields the hub resolves itself, as a document of their own, when there are any.
    pub local: Option<String>,
    variables: Vec<Variable>,
    /// The variables its `@skip`/`@include` conditions read.
    conditions: Vec<String>,
    /// Its root fields the supergraph serves.
    federated: std::collections::HashSet<String>,
    projections: Mutex<HashMap<u64, Arc<Projection>>>,
}

/// What preparing needs of the gateway.
pub struct Parts<'a> {
    pub planner: &'a Planner,
    /// The supergraph's API schema: which root fields it serves.
    pub api: &'a Schema,
    /// The schema the hub serves (the supergraph's and its own).
    pub served: &'a Schema,
    pub validation: &'a Validation,
}

/// Root fields the gateway answers itself, from the served schema.
pub fn is_introspection(name: &str) -> bool {
    name == "__schema" || name == "__type"
}

/// Prepares the operation `operation_name` picks in `text`.
pub fn prepare(parts: &Parts<'_>, text: &str, operation_name: Option<&str>) -> Result<Prepared, Refusal> {
    let document =
        graphql_tools::parser::parse_query(text).map_err(|error| Refusal::invalid([error.to_string()]))?.into_static();
    parts.validation.check(&document)?;
    let index = split::pick(&document, operation_name).ok_or_else(|| match operation_name {
        Some(name) => Refusal::invalid([format!("Unknown operation named \"{name}\".")]),
        None => Refusal::invalid(["Must provide operation name if query contains multiple operations.".to_owned()]),
    })?;
    let operation = split::operation(&document, index);
    let (kind, root_type, definitions) = match operation {
        OperationDefinition::SelectionSet(_) => (OperationKind::Query, parts.served.query.clone(), &[][..]),
        OperationDefinition::Query(query) => {
            (OperationKind::Query, parts.served.query.clone(), &query.variable_definitions[..])
        }
        OperationDefinition::Mutation(mutation) => {
            let root = parts
                .served
                .mutation
                .clone()
                .ok_or_else(|| Refusal::invalid(["The schema has no mutations.".to_owned()]))?;
            (OperationKind::Mutation, root, &mutation.variable_definitions[..])
        }
        OperationDefinition::Subscription(_) => {
            return Err(Refusal::invalid(["Subscriptions of the supergraph are not served yet.".to_owned()]))
        }
    };
    let federated = |name: &str| !name.starts_with("__") && parts.api.field(&root_type, name).is_some();
    let mut roots = Vec::new();
    split::root_field_names(&document, split::selection_set(operation), &mut roots);
    let hubs = |name: &str| !federated(name) && name != "__typename" && !is_introspection(name);
    let local_roots = roots.iter().any(|name| hubs(name));
    if local_roots && kind == OperationKind::Mutation {
        return Err(Refusal::invalid([
            "A mutation runs either the supergraph's fields or the hub's own (publish); send them as two operations."
                .to_owned(),
        ]));
    }
    let local = if local_roots { split::part(&document, index, &hubs).map(|part| part.to_string()) } else { None };
    let plan = match split::part(&document, index, &|name| federated(name) || name == "__typename") {
        Some(part) => plan(parts.planner, part, operation_name)?,
        None => Plan::default(),
    };
    let mut conditions = Vec::new();
    split::condition_variables(&document, split::selection_set(operation), &mut conditions);
    Ok(Prepared {
        kind,
        variables: definitions.iter().map(Variable::from_ast).collect(),
        document,
        index,
        plan,
        local,
        conditions,
        federated: roots.iter().filter(|name| federated(name)).cloned().collect(),
        projections: Mutex::new(HashMap::new()),
    })
}

fn plan(planner: &Planner, part: Ast, operation_name: Option<&str>) -> Result<Plan, Refusal> {
    // The part holds one operation; the planner finds it by name when it has one.
    let name = match part.definitions.first() {
        Some(Definition::Operation(OperationDefinition::Query(q))) => q.name.clone(),
        Some(Definition::Operation(OperationDefinition::Mutation(m))) => m.name.clone(),
        _ => None,
    };
    let name = name.or_else(|| operation_name.map(str::to_owned));
    planner.plan(&part, name.as_deref()).map_err(|error| {
        tracing::warn!(%error, "an operation could not be planned");
        Refusal::failed("The operation could not be planned.", "QUERY_PLANNING_FAILED")
    })
}

impl Prepared {
    /// The request's variables, coerced.
    pub fn variables(&self, given: Option<&Map<String, Json>>, served: &Schema) -> Result<Map<String, Json>, Refusal> {
        variables::coerce(&self.variables, given, served).map_err(Refusal::invalid)
    }

    /// The projection for these variables' `@skip`/`@include` values, compiled on first use.
    pub fn projection(&self, variables: &Map<String, Json>, served: &Schema) -> Result<Arc<Projection>, Refusal> {
        let flag = |name: &str| variables.get(name).and_then(Json::as_bool).unwrap_or(false);
        let key =
            self.conditions.iter().take(64).enumerate().fold(0u64, |key, (i, name)| key | (u64::from(flag(name)) << i));
        let cacheable = self.conditions.len() <= 64;
        if cacheable {
            if let Some(projection) = self.projections.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
                return Ok(projection.clone());
            }
        }
        let operation = split::operation(&self.document, self.index);
        let root_type = match self.kind {
            OperationKind::Query => served.query.clone(),
            OperationKind::Mutation => served.mutation.clone().unwrap_or_default(),
            OperationKind::Subscription => served.subscription.clone().unwrap_or_default(),
        };
        let local = |name: &str| is_introspection(name) || (!name.starts_with("__") && !self.federated.contains(name));
        let projection =
            project::compile(served, &self.document, &root_type, split::selection_set(operation), &local, &flag)
                .map(Arc::new)
                .map_err(|error| {
                    tracing::warn!(%error, "an operation could not be projected");
                    Refusal::failed("The operation is too large to run.", "OPERATION_TOO_LARGE")
                })?;
        let mut projections = self.projections.lock().unwrap_or_else(PoisonError::into_inner);
        if cacheable && projections.len() < MAX_PROJECTIONS {
            projections.insert(key, projection.clone());
        }
        Ok(projection)
    }

    /// The operation's `__schema` and `__type` fields answered from the served schema, by
    /// response key.
    pub fn introspect(
        &self,
        introspection: &Introspection,
        variables: &Map<String, Json>,
        root_type: &str,
    ) -> Map<String, Json> {
        introspection.root_fields(
            &self.document,
            split::selection_set(split::operation(&self.document, self.index)),
            root_type,
            variables,
        )
    }
}
