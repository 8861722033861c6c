//! What the gateway knows of a schema's types: read once from the API schema (for the client's
//! operations: their variables and the shape of their results) and from the supergraph (for
//! the possible types of the entities the plan's paths reach, `@inaccessible` ones included).

use std::collections::{HashMap, HashSet};

use graphql_tools::parser::query::Type as AstType;
use graphql_tools::parser::schema::{Definition, Document, TypeDefinition, TypeExtension};

/// A type reference: `T`, `[T]`, `T!`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    pub fn from_ast(ty: &AstType<'static, String>) -> TypeRef {
        match ty {
            AstType::NamedType(name) => TypeRef::Named(name.clone()),
            AstType::ListType(inner) => TypeRef::List(Box::new(TypeRef::from_ast(inner))),
            AstType::NonNullType(inner) => TypeRef::NonNull(Box::new(TypeRef::from_ast(inner))),
        }
    }

    /// The named type under the wrappers.
    pub fn base(&self) -> &str {
        match self {
            TypeRef::Named(name) => name,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.base(),
        }
    }
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRef::Named(name) => f.write_str(name),
            TypeRef::List(inner) => write!(f, "[{inner}]"),
            TypeRef::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

/// An input value: an argument or an input object's field.
#[derive(Clone, Debug)]
pub struct InputValue {
    pub name: String,
    pub ty: TypeRef,
    /// The default, as JSON.
    pub default: Option<serde_json::Value>,
}

#[derive(Clone, Debug)]
pub enum TypeDef {
    Object { fields: HashMap<String, TypeRef>, interfaces: Vec<String> },
    Interface { fields: HashMap<String, TypeRef> },
    Union,
    Enum { values: HashSet<String> },
    InputObject { fields: Vec<InputValue> },
    Scalar,
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub types: HashMap<String, TypeDef>,
    /// The object types of each interface and union.
    possible: HashMap<String, HashSet<String>>,
    pub query: String,
    pub mutation: Option<String>,
    pub subscription: Option<String>,
}

/// Names of the supergraph's machinery, which no client selects.
fn is_machinery(name: &str) -> bool {
    name.starts_with("join__") || name.starts_with("link__") || name.starts_with("__")
}

impl Schema {
    /// The model of a schema document (a supergraph's machinery left out).
    pub fn from_document(document: &Document<'static, String>) -> Schema {
        let mut schema = Schema {
            query: document.query_type_name().cloned().unwrap_or_else(|| "Query".to_owned()),
            mutation: document.mutation_type_name().cloned(),
            subscription: document.subscription_type_name().cloned(),
            ..Schema::default()
        };
        let mut unions: Vec<(String, Vec<String>)> = Vec::new();
        for definition in &document.definitions {
            match definition {
                Definition::TypeDefinition(ty) => schema.add(ty, &mut unions),
                Definition::TypeExtension(TypeExtension::Object(extension)) => {
                    if let Some(TypeDef::Object { fields, interfaces }) = schema.types.get_mut(&extension.name) {
                        fields.extend(
                            extension.fields.iter().map(|f| (f.name.clone(), TypeRef::from_ast(&f.field_type))),
                        );
                        interfaces.extend(extension.implements_interfaces.iter().cloned());
                    }
                }
                _ => {}
            }
        }
        if schema.mutation.is_none() && schema.types.contains_key("Mutation") {
            schema.mutation = Some("Mutation".to_owned());
        }
        for (name, def) in &schema.types {
            if let TypeDef::Object { interfaces, .. } = def {
                for interface in interfaces {
                    schema.possible.entry(interface.clone()).or_default().insert(name.clone());
                }
            }
        }
        for (union, members) in unions {
            schema.possible.entry(union).or_default().extend(members);
        }
        schema
    }

    fn add(&mut self, ty: &TypeDefinition<'static, String>, unions: &mut Vec<(String, Vec<String>)>) {
        let fields_of = |fields: &[graphql_tools::parser::schema::Field<'static, String>]| {
            fields.iter().map(|f| (f.name.clone(), TypeRef::from_ast(&f.field_type))).collect()
        };
        let (name, def) = match ty {
            TypeDefinition::Object(object) => (
                &object.name,
                TypeDef::Object { fields: fields_of(&object.fields), interfaces: object.implements_interfaces.clone() },
            ),
            TypeDefinition::Interface(interface) => {
                (&interface.name, TypeDef::Interface { fields: fields_of(&interface.fields) })
            }
            TypeDefinition::Union(union) => {
                unions.push((union.name.clone(), union.types.clone()));
                (&union.name, TypeDef::Union)
            }
            TypeDefinition::Enum(enumeration) => (
                &enumeration.name,
                TypeDef::Enum { values: enumeration.values.iter().map(|v| v.name.clone()).collect() },
            ),
            TypeDefinition::InputObject(input) => {
                let fields = input
                    .fields
                    .iter()
                    .map(|f| InputValue {
                        name: f.name.clone(),
                        ty: TypeRef::from_ast(&f.value_type),
                        default: f.default_value.as_ref().and_then(crate::values::const_to_json),
                    })
                    .collect();
                (&input.name, TypeDef::InputObject { fields })
            }
            TypeDefinition::Scalar(scalar) => (&scalar.name, TypeDef::Scalar),
        };
        if !is_machinery(name) {
            self.types.insert(name.clone(), def);
        }
    }

    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// The type of `field` on the object or interface `parent`.
    pub fn field(&self, parent: &str, field: &str) -> Option<&TypeRef> {
        match self.types.get(parent)? {
            TypeDef::Object { fields, .. } | TypeDef::Interface { fields } => fields.get(field),
            _ => None,
        }
    }

    pub fn is_abstract(&self, name: &str) -> bool {
        matches!(self.types.get(name), Some(TypeDef::Interface { .. } | TypeDef::Union))
    }

    /// The object types a value of type `name` can have.
    pub fn possible_types(&self, name: &str) -> Vec<&str> {
        match self.types.get(name) {
            Some(TypeDef::Object { .. }) => vec![name_of(self, name)],
            _ => {
                let mut names: Vec<&str> =
                    self.possible.get(name).map(|set| set.iter().map(String::as_str).collect()).unwrap_or_default();
                names.sort_unstable();
                names
            }
        }
    }

    /// Whether an object of type `object` is a `condition` (the type itself, one of its
    /// interfaces, or a union it belongs to).
    pub fn satisfies(&self, object: &str, condition: &str) -> bool {
        object == condition || self.possible.get(condition).is_some_and(|set| set.contains(object))
    }
}

fn name_of<'a>(schema: &'a Schema, name: &str) -> &'a str {
    schema.types.get_key_value(name).map_or("", |(key, _)| key.as_str())
}
