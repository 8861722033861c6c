//! What the executor knows of the schema: for every type an event's result can have, how its
//! fields are read (from the payload by name, or from the event's metadata) and what they must
//! hold. The built-in `Event` and the typed schema's types live side by side.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use subhub_upstream_ws::model::{Kind, TypeExpr, TypeModel};

/// The root type of subscriptions.
pub const SUBSCRIPTION: &str = "Subscription";

/// Where a field's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A subscription field: the event's payload is its value.
    Root,
    /// The member of this name of the object the parent field read.
    Payload(String),
    /// The event's metadata.
    Meta(Meta),
}

/// An event's metadata, as `@event(meta: …)` and the built-in `Event` read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Meta {
    Topic,
    Broker,
    Key,
    Id,
    Timestamp,
    Headers,
    Header(String),
    /// The whole payload (the built-in `Event.payload`).
    Payload,
}

impl Meta {
    /// The metadata `@event(meta: …)` names: `topic`, `key`, `id`, `timestamp`, `broker`,
    /// `headers` or `headers.NAME`.
    pub fn named(name: &str) -> Option<Meta> {
        Some(match name {
            "topic" => Meta::Topic,
            "broker" => Meta::Broker,
            "key" => Meta::Key,
            "id" => Meta::Id,
            "timestamp" => Meta::Timestamp,
            "headers" => Meta::Headers,
            other => Meta::Header(other.strip_prefix("headers.").filter(|name| !name.is_empty())?.to_owned()),
        })
    }
}

/// The scalars results are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Int,
    Float,
    String,
    Boolean,
    Id,
    /// `JSON` and custom scalars: any JSON value, passed through.
    Any,
}

impl Scalar {
    fn named(name: &str) -> Scalar {
        match name {
            "Int" => Scalar::Int,
            "Float" => Scalar::Float,
            "String" => Scalar::String,
            "Boolean" => Scalar::Boolean,
            "ID" => Scalar::Id,
            _ => Scalar::Any,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::Int => "Int",
            Scalar::Float => "Float",
            Scalar::String => "String",
            Scalar::Boolean => "Boolean",
            Scalar::Id => "ID",
            Scalar::Any => "JSON",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FieldSpec {
    pub ty: TypeExpr,
    pub source: Source,
}

#[derive(Clone, Debug)]
pub enum ExecType {
    Object(HashMap<String, FieldSpec>),
    /// An interface or a union: the payload's `__typename` picks one of these object types.
    Abstract(Vec<String>),
    Enum(Arc<HashSet<String>>),
    Scalar(Scalar),
}

#[derive(Clone, Debug, Default)]
pub struct ExecModel {
    types: HashMap<String, ExecType>,
}

impl ExecModel {
    pub fn get(&self, name: &str) -> Option<&ExecType> {
        self.types.get(name).or_else(|| match name {
            "Int" | "Float" | "String" | "Boolean" | "ID" => Some(&BUILTIN_SCALARS[builtin_scalar(name)]),
            _ => None,
        })
    }

    /// Whether a fragment on `condition` applies to an object of type `object`.
    pub fn applies(&self, condition: &str, object: &str) -> bool {
        condition == object
            || matches!(self.types.get(condition), Some(ExecType::Abstract(possible)) if possible.iter().any(|p| p == object))
    }

    /// The built-in `Event` and `events(topic, broker): Event!` (DESIGN §4).
    pub fn add_builtin(&mut self) {
        let meta = |ty: TypeExpr, meta: Meta| FieldSpec { ty, source: Source::Meta(meta) };
        let string = || TypeExpr::Named("String".into());
        let required = |ty: TypeExpr| TypeExpr::NonNull(Box::new(ty));
        let json = || TypeExpr::Named("JSON".into());
        let event = HashMap::from([
            ("topic".to_owned(), meta(required(string()), Meta::Topic)),
            ("broker".to_owned(), meta(required(string()), Meta::Broker)),
            ("key".to_owned(), meta(string(), Meta::Key)),
            ("id".to_owned(), meta(string(), Meta::Id)),
            ("payload".to_owned(), meta(json(), Meta::Payload)),
            ("timestamp".to_owned(), meta(required(string()), Meta::Timestamp)),
            ("headers".to_owned(), meta(json(), Meta::Headers)),
        ]);
        self.types.insert("Event".into(), ExecType::Object(event));
        self.types.insert("JSON".into(), ExecType::Scalar(Scalar::Any));
        self.root_field("events", required(TypeExpr::Named("Event".into())));
    }

    /// The types of a typed schema; `meta` names the fields `@event` reads from metadata, by
    /// type and field.
    pub fn add_typed(&mut self, model: &TypeModel, meta: &HashMap<(String, String), Meta>) {
        for def in model.types.values() {
            if def.name == SUBSCRIPTION || def.name.starts_with("__") {
                continue;
            }
            let ty = match def.kind {
                Kind::Object => {
                    let fields = def
                        .fields
                        .iter()
                        .map(|field| {
                            let source = match meta.get(&(def.name.clone(), field.name.clone())) {
                                Some(meta) => Source::Meta(meta.clone()),
                                None => Source::Payload(field.name.clone()),
                            };
                            (field.name.clone(), FieldSpec { ty: field.ty.clone(), source })
                        })
                        .collect();
                    ExecType::Object(fields)
                }
                Kind::Union => ExecType::Abstract(def.possible_types.clone()),
                Kind::Enum => ExecType::Enum(Arc::new(def.enum_values.iter().cloned().collect())),
                Kind::Scalar => ExecType::Scalar(Scalar::named(&def.name)),
                // Interfaces are abstract (below); inputs are never results.
                Kind::Interface | Kind::InputObject => continue,
            };
            self.types.insert(def.name.clone(), ty);
        }
        // An interface is abstract: its objects are those that implement it.
        for def in model.types.values().filter(|def| def.kind == Kind::Interface) {
            let implementors = model
                .types
                .values()
                .filter(|other| other.kind == Kind::Object && other.interfaces.contains(&def.name))
                .map(|other| other.name.clone())
                .collect();
            self.types.insert(def.name.clone(), ExecType::Abstract(implementors));
        }
        for field in model.subscription_fields() {
            self.root_field(&field.name, field.ty.clone());
        }
    }

    fn root_field(&mut self, name: &str, ty: TypeExpr) {
        let root = self.types.entry(SUBSCRIPTION.into()).or_insert_with(|| ExecType::Object(HashMap::new()));
        if let ExecType::Object(fields) = root {
            fields.insert(name.to_owned(), FieldSpec { ty, source: Source::Root });
        }
    }
}

const BUILTIN_SCALARS: [ExecType; 5] = [
    ExecType::Scalar(Scalar::Int),
    ExecType::Scalar(Scalar::Float),
    ExecType::Scalar(Scalar::String),
    ExecType::Scalar(Scalar::Boolean),
    ExecType::Scalar(Scalar::Id),
];

fn builtin_scalar(name: &str) -> usize {
    match name {
        "Int" => 0,
        "Float" => 1,
        "String" => 2,
        "Boolean" => 3,
        _ => 4,
    }
}
