//! The client's answer from what the subgraphs returned: the operation's selection compiled
//! once per distinct (operation, `@skip`/`@include` values) into the fields to write in
//! selection order, each object type of an abstract field with its own fields (the spec's
//! CollectFields for that type), then written by [`write`] with the spec's null propagation.
//!
//! The merged subgraph data holds more than the client asked for (keys, `@requires` inputs,
//! `__typename`s the plan added); only what the selection names is written.

pub mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use graphql_tools::parser::query::SelectionSet;

use crate::operation::collect::{Collect, Grouped};
use crate::operation::split::Ast;
use crate::schema::{Schema, TypeDef, TypeRef};

/// How many field plans one operation may compile to: abstract types multiply a selection by
/// their object types, and a hostile operation must not make that unbounded.
const MAX_FIELD_PLANS: usize = 100_000;

#[derive(Debug)]
pub struct Projection {
    pub root: Arc<ObjectPlan>,
}

#[derive(Debug)]
pub struct ObjectPlan {
    pub type_name: String,
    pub fields: Vec<FieldPlan>,
}

#[derive(Debug)]
pub struct FieldPlan {
    pub response_key: String,
    /// `"key":`, escaped once.
    pub key_json: String,
    pub kind: FieldKind,
    pub non_null: bool,
}

#[derive(Debug)]
pub enum FieldKind {
    /// `__typename`: the object's type.
    Typename,
    /// A root field the hub resolves itself: its value is copied from that result.
    Local,
    Value(ValuePlan),
}

#[derive(Debug)]
pub enum ValuePlan {
    /// Scalars are passed through as the subgraph sent them.
    Scalar,
    Enum(Arc<HashSet<String>>),
    Object(Arc<ObjectPlan>),
    /// An interface or union: the plan of the object type the value's `__typename` names,
    /// or, when a subgraph sent none (its schema had one possible type), the plan of the
    /// abstract type itself.
    Abstract {
        by_type: HashMap<String, Arc<ObjectPlan>>,
        untyped: Arc<ObjectPlan>,
    },
    List {
        item: Box<ValuePlan>,
        item_non_null: bool,
    },
}

/// The operation cannot be projected (the validator lets none but the size through).
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("the operation selects more than {MAX_FIELD_PLANS} fields once its fragments are spread over their types")]
    TooLarge,
    #[error("unknown type or field: {0}")]
    Unknown(String),
}

/// Compiles `set`, the root selection of an operation on `root_type`. `local` says which root
/// fields the hub resolves itself; `flag` gives the value of a `@skip`/`@include` variable.
pub fn compile(
    schema: &Schema,
    document: &Ast,
    root_type: &str,
    set: &SelectionSet<'static, String>,
    local: &dyn Fn(&str) -> bool,
    flag: &dyn Fn(&str) -> bool,
) -> Result<Projection, ProjectError> {
    let mut compiler = Compiler { schema, document, flag, local, budget: MAX_FIELD_PLANS, memo: HashMap::new() };
    let root = compiler.object(root_type, &[set], true)?;
    Ok(Projection { root })
}

/// A selection set by its address: compiled plans are shared between identical uses.
type SetKey = Vec<usize>;

struct Compiler<'a> {
    schema: &'a Schema,
    document: &'a Ast,
    flag: &'a dyn Fn(&str) -> bool,
    local: &'a dyn Fn(&str) -> bool,
    budget: usize,
    memo: HashMap<(String, SetKey), Arc<ObjectPlan>>,
}

impl<'a> Compiler<'a> {
    fn object(
        &mut self,
        type_name: &str,
        sets: &[&'a SelectionSet<'static, String>],
        root: bool,
    ) -> Result<Arc<ObjectPlan>, ProjectError> {
        let key = (type_name.to_owned(), sets.iter().map(|s| *s as *const _ as usize).collect::<Vec<_>>());
        if let Some(plan) = self.memo.get(&key) {
            return Ok(plan.clone());
        }
        let mut grouped: Grouped<'a> = Vec::new();
        let applies = |condition: &str| self.schema.satisfies(type_name, condition);
        let collect = Collect { document: self.document, applies: &applies, flag: self.flag };
        for set in sets {
            collect.fields(set, &mut grouped, &mut HashSet::new());
        }
        let mut fields = Vec::with_capacity(grouped.len());
        for (response_key, occurrences) in grouped {
            self.budget = self.budget.checked_sub(1).ok_or(ProjectError::TooLarge)?;
            let name = occurrences[0].name.as_str();
            let key_json = format!("{}:", serde_json::Value::String(response_key.clone()));
            let (kind, non_null) = if name == "__typename" {
                (FieldKind::Typename, true)
            } else if root && (self.local)(name) {
                (FieldKind::Local, false)
            } else {
                let ty = self
                    .schema
                    .field(type_name, name)
                    .ok_or_else(|| ProjectError::Unknown(format!("{type_name}.{name}")))?
                    .clone();
                let subsets: Vec<&'a SelectionSet<'static, String>> =
                    occurrences.iter().map(|field| &field.selection_set).collect();
                let (value, non_null) = self.value(&ty, &subsets)?;
                (FieldKind::Value(value), non_null)
            };
            fields.push(FieldPlan { response_key, key_json, kind, non_null });
        }
        let plan = Arc::new(ObjectPlan { type_name: type_name.to_owned(), fields });
        self.memo.insert(key, plan.clone());
        Ok(plan)
    }

    fn value(
        &mut self,
        ty: &TypeRef,
        sets: &[&'a SelectionSet<'static, String>],
    ) -> Result<(ValuePlan, bool), ProjectError> {
        Ok(match ty {
            TypeRef::NonNull(inner) => (self.value(inner, sets)?.0, true),
            TypeRef::List(inner) => {
                let (item, item_non_null) = self.value(inner, sets)?;
                (ValuePlan::List { item: Box::new(item), item_non_null }, false)
            }
            TypeRef::Named(name) => {
                let plan = match self.schema.get(name) {
                    Some(TypeDef::Object { .. }) => ValuePlan::Object(self.object(name, sets, false)?),
                    Some(TypeDef::Interface { .. } | TypeDef::Union) => {
                        let mut by_type = HashMap::new();
                        for object in self.schema.possible_types(name) {
                            by_type.insert(object.to_owned(), self.object(object, sets, false)?);
                        }
                        let untyped = self.object(name, sets, false)?;
                        ValuePlan::Abstract { by_type, untyped }
                    }
                    Some(TypeDef::Enum { values }) => ValuePlan::Enum(Arc::new(values.clone())),
                    _ => ValuePlan::Scalar,
                };
                (plan, false)
            }
        })
    }
}
