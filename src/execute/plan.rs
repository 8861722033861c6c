//! A subscription's selection, compiled once per execution into what to write for each event:
//! fields in the order the selection gives them (merged by response key, fragments applied,
//! `@skip` and `@include` decided), each with where its value comes from and what it must be.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value};
use serde_json::Map;
use subhub_upstream_ws::model::TypeExpr;

use super::model::{ExecModel, ExecType, Scalar, Source, SUBSCRIPTION};

/// What to write for every event of one execution.
#[derive(Debug)]
pub struct Plan {
    pub root: FieldPlan,
}

#[derive(Debug)]
pub struct FieldPlan {
    /// The response key, as a JSON string.
    pub key: String,
    /// The response key as it is, for error paths.
    pub response_key: String,
    /// The field's name, for error messages.
    pub name: String,
    pub source: FieldSource,
    pub value: ValuePlan,
    pub non_null: bool,
}

#[derive(Clone, Debug)]
pub enum FieldSource {
    Read(Source),
    /// `__typename`: the object's type.
    TypeName,
}

#[derive(Debug)]
pub enum ValuePlan {
    Scalar(Scalar),
    Enum(Arc<HashSet<String>>),
    Object(ObjectPlan),
    /// An interface or union: the object plan of the type the payload's `__typename` names.
    Abstract {
        name: String,
        by_type: HashMap<String, ObjectPlan>,
    },
    List {
        item: Box<ValuePlan>,
        item_non_null: bool,
    },
}

#[derive(Debug)]
pub struct ObjectPlan {
    pub type_name: String,
    pub fields: Vec<FieldPlan>,
    /// Some field reads the payload: the value must be a JSON object.
    pub reads_payload: bool,
}

/// Why an operation cannot be compiled (the validator lets none of these through).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(String);

/// Compiles the subscription `operation_name` picks in `document` with `variables`.
pub fn compile(
    model: &ExecModel,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: Option<&Map<String, serde_json::Value>>,
) -> Result<Plan, PlanError> {
    let operation = pick(document, operation_name).ok_or_else(|| PlanError("no operation to run".into()))?;
    let compiler = Compiler { model, document, variables: variables_of(&operation.node, variables) };
    let mut root = compiler.object(SUBSCRIPTION, &[&operation.node.selection_set.node])?;
    if root.fields.len() != 1 {
        return Err(PlanError("a subscription selects exactly one root field".into()));
    }
    Ok(Plan { root: root.fields.remove(0) })
}

fn pick<'a>(document: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The request's variables, with the operation's defaults for those it leaves out.
fn variables_of(
    operation: &OperationDefinition,
    given: Option<&Map<String, serde_json::Value>>,
) -> HashMap<String, serde_json::Value> {
    let mut variables: HashMap<String, serde_json::Value> =
        given.map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    for definition in &operation.variable_definitions {
        let name = definition.node.name.node.to_string();
        if let (false, Some(default)) = (variables.contains_key(&name), &definition.node.default_value) {
            if let Ok(value) = default.node.clone().into_json() {
                variables.insert(name, value);
            }
        }
    }
    variables
}

struct Compiler<'a> {
    model: &'a ExecModel,
    document: &'a ExecutableDocument,
    variables: HashMap<String, serde_json::Value>,
}

impl<'a> Compiler<'a> {
    /// The plan of an object of type `type_name` selected by `sets` (several when fields of
    /// one response key are merged).
    fn object(&self, type_name: &str, sets: &[&'a SelectionSet]) -> Result<ObjectPlan, PlanError> {
        let Some(ExecType::Object(fields)) = self.model.get(type_name) else {
            return Err(PlanError(format!("`{type_name}` is not an object type")));
        };
        let mut grouped: Vec<(String, Vec<&'a Field>)> = Vec::new();
        for set in sets {
            // Each set's fragments are spread once (the spec's visited fragments, per set).
            self.collect(type_name, set, &mut grouped, &mut HashSet::new());
        }
        let mut plans = Vec::with_capacity(grouped.len());
        let mut reads_payload = false;
        for (key, selected) in grouped {
            let name = selected[0].name.node.to_string();
            let response_key = key;
            let key = serde_json::Value::String(response_key.clone()).to_string();
            if name == "__typename" {
                let value = ValuePlan::Scalar(Scalar::String);
                let source = FieldSource::TypeName;
                plans.push(FieldPlan { key, response_key, name, source, value, non_null: true });
                continue;
            }
            let spec = fields.get(&name).ok_or_else(|| PlanError(format!("`{type_name}` has no field `{name}`")))?;
            reads_payload |= matches!(spec.source, Source::Payload(_));
            let subsets: Vec<&'a SelectionSet> = selected.iter().map(|field| &field.selection_set.node).collect();
            let (value, non_null) = self.value(&spec.ty, &subsets)?;
            let source = FieldSource::Read(spec.source.clone());
            plans.push(FieldPlan { key, response_key, name, source, value, non_null });
        }
        Ok(ObjectPlan { type_name: type_name.to_owned(), fields: plans, reads_payload })
    }

    fn value(&self, ty: &TypeExpr, sets: &[&'a SelectionSet]) -> Result<(ValuePlan, bool), PlanError> {
        Ok(match ty {
            TypeExpr::NonNull(inner) => (self.value(inner, sets)?.0, true),
            TypeExpr::List(inner) => {
                let (item, item_non_null) = self.value(inner, sets)?;
                (ValuePlan::List { item: Box::new(item), item_non_null }, false)
            }
            TypeExpr::Named(name) => {
                let plan = match self.model.get(name) {
                    Some(ExecType::Scalar(scalar)) => ValuePlan::Scalar(*scalar),
                    Some(ExecType::Enum(values)) => ValuePlan::Enum(values.clone()),
                    Some(ExecType::Object(_)) => ValuePlan::Object(self.object(name, sets)?),
                    Some(ExecType::Abstract(possible)) => {
                        let mut by_type = HashMap::new();
                        for object in possible {
                            by_type.insert(object.clone(), self.object(object, sets)?);
                        }
                        ValuePlan::Abstract { name: name.clone(), by_type }
                    }
                    None => return Err(PlanError(format!("unknown type `{name}`"))),
                };
                (plan, false)
            }
        })
    }

    /// The spec's CollectFields: fields by response key in selection order, fragments that
    /// apply to `object` expanded, `@skip` and `@include` decided.
    fn collect(
        &self,
        object: &str,
        set: &'a SelectionSet,
        grouped: &mut Vec<(String, Vec<&'a Field>)>,
        spread: &mut HashSet<&'a Name>,
    ) {
        for selection in &set.items {
            let directives = match &selection.node {
                Selection::Field(field) => &field.node.directives,
                Selection::FragmentSpread(spread) => &spread.node.directives,
                Selection::InlineFragment(fragment) => &fragment.node.directives,
            };
            if !self.included(directives) {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = field.alias.as_ref().unwrap_or(&field.name).node.to_string();
                    match grouped.iter_mut().find(|(existing, _)| *existing == key) {
                        Some((_, fields)) => fields.push(field),
                        None => grouped.push((key, vec![field])),
                    }
                }
                Selection::FragmentSpread(fragment_spread) => {
                    let name = &fragment_spread.node.fragment_name.node;
                    let Some(fragment) = self.document.fragments.get(name) else { continue };
                    if spread.insert(name) && self.model.applies(&fragment.node.type_condition.node.on.node, object) {
                        self.collect(object, &fragment.node.selection_set.node, grouped, spread);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let applies = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .is_none_or(|condition| self.model.applies(&condition.node.on.node, object));
                    if applies {
                        self.collect(object, &fragment.node.selection_set.node, grouped, spread);
                    }
                }
            }
        }
    }

    /// `@skip(if:)` and `@include(if:)`, with literal or variable conditions.
    fn included(&self, directives: &[Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive.node.get_argument("if").map(|value| {
                let variable = |name: Name| {
                    let flag = self.variables.get(name.as_str()).and_then(serde_json::Value::as_bool);
                    Ok::<_, std::convert::Infallible>(Value::Boolean(flag == Some(true)))
                };
                matches!(value.node.clone().into_const_with(variable), Ok(Value::Boolean(true)))
            });
            match directive.node.name.node.as_str() {
                "skip" => condition != Some(true),
                "include" => condition != Some(false),
                _ => true,
            }
        })
    }
}
