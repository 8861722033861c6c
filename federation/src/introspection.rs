//! `__schema` and `__type` answered from the served schema (the supergraph's API schema and the
//! hub's own, [`crate::served`]): what GraphiQL and every client tool see. None of the
//! supergraph's `join__`/`link__` machinery and no `@inaccessible` element is in it.

use std::collections::{HashMap, HashSet};

use graphql_tools::parser::query::{Field as QueryField, SelectionSet};
use graphql_tools::parser::schema::{
    Definition, Directive, DirectiveDefinition, EnumValue, Field, InputValue, Type, TypeDefinition,
};
use serde_json::{Map, Value as Json};

use crate::operation::collect::{Collect, Grouped};
use crate::operation::split::Ast;
use crate::served::{type_name, SchemaAst};
use crate::values::to_json;

const BUILTIN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

pub struct Introspection {
    document: SchemaAst,
    types: HashMap<String, usize>,
    /// Type names in the order `__schema.types` lists them.
    order: Vec<String>,
    possible: HashMap<String, Vec<String>>,
}

/// What an introspection object is about.
#[derive(Clone, Copy)]
enum Node<'a> {
    Schema,
    Type(Ty<'a>),
    Field(&'a Field<'static, String>),
    Input(&'a InputValue<'static, String>),
    EnumValue(&'a EnumValue<'static, String>),
    Directive(&'a DirectiveDefinition<'static, String>),
}

#[derive(Clone, Copy)]
enum Ty<'a> {
    Named(&'a str),
    List(&'a Type<'static, String>),
    NonNull(&'a Type<'static, String>),
}

fn ty<'a>(ty: &'a Type<'static, String>) -> Ty<'a> {
    match ty {
        Type::NamedType(name) => Ty::Named(name),
        Type::ListType(inner) => Ty::List(inner),
        Type::NonNullType(inner) => Ty::NonNull(inner),
    }
}

impl Node<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Schema => "__Schema",
            Node::Type(_) => "__Type",
            Node::Field(_) => "__Field",
            Node::Input(_) => "__InputValue",
            Node::EnumValue(_) => "__EnumValue",
            Node::Directive(_) => "__Directive",
        }
    }
}

/// The selection sets of one response key (several when fields are merged).
type Sets<'a, 'q> = &'a [&'q SelectionSet<'static, String>];

/// The operation's variables and fragments, which introspection selections may use.
struct Query<'q> {
    document: &'q Ast,
    variables: &'q Map<String, Json>,
}

impl Introspection {
    pub fn new(document: SchemaAst) -> Self {
        let mut types = HashMap::new();
        let mut order = Vec::new();
        let mut possible: HashMap<String, Vec<String>> = HashMap::new();
        for (i, definition) in document.definitions.iter().enumerate() {
            let Definition::TypeDefinition(ty) = definition else { continue };
            let name = type_name(ty).clone();
            match ty {
                TypeDefinition::Object(object) => {
                    for interface in &object.implements_interfaces {
                        possible.entry(interface.clone()).or_default().push(name.clone());
                    }
                }
                TypeDefinition::Union(union) => {
                    possible.entry(name.clone()).or_default().extend(union.types.iter().cloned());
                }
                _ => {}
            }
            types.insert(name.clone(), i);
            order.push(name);
        }
        for scalar in BUILTIN_SCALARS {
            if !types.contains_key(scalar) {
                order.push(scalar.to_owned());
            }
        }
        Introspection { document, types, order, possible }
    }

    /// The values of the root fields `__schema` and `__type` of the root selection `set` of an
    /// operation in `document`, by response key.
    pub fn root_fields(
        &self,
        document: &Ast,
        set: &SelectionSet<'static, String>,
        root_type: &str,
        variables: &Map<String, Json>,
    ) -> Map<String, Json> {
        let query = Query { document, variables };
        let mut fields = Vec::new();
        query.collect(root_type, set, &mut fields);
        let mut values = Map::new();
        for (key, occurrences) in fields {
            if matches!(occurrences[0].name.as_str(), "__schema" | "__type") {
                values.insert(key, self.resolve(&query, &occurrences));
            }
        }
        values
    }

    fn resolve<'q>(&self, query: &Query<'q>, occurrences: &[&'q QueryField<'static, String>]) -> Json {
        let field = occurrences[0];
        let sets: Vec<&'q SelectionSet<'static, String>> = occurrences.iter().map(|f| &f.selection_set).collect();
        match field.name.as_str() {
            "__schema" => self.object(query, Node::Schema, &sets),
            "__type" => match query.argument(field, "name").as_ref().and_then(Json::as_str) {
                Some(name) if self.types.contains_key(name) || BUILTIN_SCALARS.contains(&name) => {
                    let name = self.order.iter().find(|n| *n == name).map_or(name, String::as_str);
                    self.object(query, Node::Type(Ty::Named(name)), &sets)
                }
                _ => Json::Null,
            },
            _ => Json::Null,
        }
    }

    fn definition(&self, name: &str) -> Option<&TypeDefinition<'static, String>> {
        match self.document.definitions.get(*self.types.get(name)?)? {
            Definition::TypeDefinition(ty) => Some(ty),
            _ => None,
        }
    }

    fn object<'q>(&self, query: &Query<'q>, node: Node<'_>, sets: &[&'q SelectionSet<'static, String>]) -> Json {
        let mut fields: Vec<(String, Vec<&'q QueryField<'static, String>>)> = Vec::new();
        for set in sets {
            query.collect(node.type_name(), set, &mut fields);
        }
        let mut out = Map::with_capacity(fields.len());
        for (key, occurrences) in fields {
            let subsets: Vec<&'q SelectionSet<'static, String>> =
                occurrences.iter().map(|f| &f.selection_set).collect();
            let value = self.field(query, node, occurrences[0], &subsets);
            out.insert(key, value);
        }
        Json::Object(out)
    }

    fn list<'a, 'q>(&self, query: &Query<'q>, nodes: impl IntoIterator<Item = Node<'a>>, set: Sets<'_, 'q>) -> Json {
        Json::Array(nodes.into_iter().map(|node| self.object(query, node, set)).collect())
    }

    fn field<'q>(
        &self,
        query: &Query<'q>,
        node: Node<'_>,
        field: &QueryField<'static, String>,
        set: Sets<'_, 'q>,
    ) -> Json {
        let name = field.name.as_str();
        if name == "__typename" {
            return Json::String(node.type_name().to_owned());
        }
        let include_deprecated = query.argument(field, "includeDeprecated").and_then(|v| v.as_bool()).unwrap_or(false);
        let keep = |directives: &[Directive<'static, String>]| include_deprecated || deprecation(directives).is_none();
        match node {
            Node::Schema => match name {
                "types" => self.list(query, self.order.iter().map(|n| Node::Type(Ty::Named(n))), set),
                "queryType" => self.root(query, self.document.query_type_name(), set),
                "mutationType" => self.root(query, self.document.mutation_type_name(), set),
                "subscriptionType" => self.root(query, self.document.subscription_type_name(), set),
                "directives" => {
                    let directives = self.document.definitions.iter().filter_map(|d| match d {
                        Definition::DirectiveDefinition(directive) => Some(Node::Directive(directive)),
                        _ => None,
                    });
                    self.list(query, directives, set)
                }
                _ => Json::Null,
            },
            Node::Type(Ty::List(inner) | Ty::NonNull(inner)) => match name {
                "kind" => {
                    Json::String(if matches!(node, Node::Type(Ty::List(_))) { "LIST" } else { "NON_NULL" }.into())
                }
                "ofType" => self.object(query, Node::Type(ty(inner)), set),
                _ => Json::Null,
            },
            Node::Type(Ty::Named(type_name)) => self.named_type(query, type_name, name, set, &keep),
            Node::Field(definition) => match name {
                "name" => Json::String(definition.name.clone()),
                "description" => text(&definition.description),
                "args" => {
                    self.list(query, definition.arguments.iter().filter(|a| keep(&a.directives)).map(Node::Input), set)
                }
                "type" => self.object(query, Node::Type(ty(&definition.field_type)), set),
                "isDeprecated" => Json::Bool(deprecation(&definition.directives).is_some()),
                "deprecationReason" => deprecation(&definition.directives).map_or(Json::Null, Json::String),
                _ => Json::Null,
            },
            Node::Input(input) => match name {
                "name" => Json::String(input.name.clone()),
                "description" => text(&input.description),
                "type" => self.object(query, Node::Type(ty(&input.value_type)), set),
                "defaultValue" => input.default_value.as_ref().map_or(Json::Null, |v| Json::String(v.to_string())),
                "isDeprecated" => Json::Bool(deprecation(&input.directives).is_some()),
                "deprecationReason" => deprecation(&input.directives).map_or(Json::Null, Json::String),
                _ => Json::Null,
            },
            Node::EnumValue(value) => match name {
                "name" => Json::String(value.name.clone()),
                "description" => text(&value.description),
                "isDeprecated" => Json::Bool(deprecation(&value.directives).is_some()),
                "deprecationReason" => deprecation(&value.directives).map_or(Json::Null, Json::String),
                _ => Json::Null,
            },
            Node::Directive(directive) => match name {
                "name" => Json::String(directive.name.clone()),
                "description" => text(&directive.description),
                "locations" => {
                    Json::Array(directive.locations.iter().map(|l| Json::String(l.as_str().into())).collect())
                }
                "args" => {
                    self.list(query, directive.arguments.iter().filter(|a| keep(&a.directives)).map(Node::Input), set)
                }
                "isRepeatable" => Json::Bool(directive.repeatable),
                _ => Json::Null,
            },
        }
    }

    fn root<'q>(&self, query: &Query<'q>, name: Option<&String>, set: Sets<'_, 'q>) -> Json {
        name.map_or(Json::Null, |name| self.object(query, Node::Type(Ty::Named(name)), set))
    }

    fn named_type<'q>(
        &self,
        query: &Query<'q>,
        type_name: &str,
        field: &str,
        set: Sets<'_, 'q>,
        keep: &dyn Fn(&[Directive<'static, String>]) -> bool,
    ) -> Json {
        let definition = self.definition(type_name);
        let named = |names: &[String]| self.list(query, names.iter().map(|n| Node::Type(Ty::Named(n))), set);
        let visible = |fields: &[Field<'static, String>]| {
            let fields = fields.iter().filter(|f| !f.name.starts_with("__") && keep(&f.directives)).map(Node::Field);
            self.list(query, fields, set)
        };
        match (field, definition) {
            ("name", _) => Json::String(type_name.to_owned()),
            ("kind", None) => Json::String("SCALAR".into()),
            ("kind", Some(definition)) => Json::String(
                match definition {
                    TypeDefinition::Scalar(_) => "SCALAR",
                    TypeDefinition::Object(_) => "OBJECT",
                    TypeDefinition::Interface(_) => "INTERFACE",
                    TypeDefinition::Union(_) => "UNION",
                    TypeDefinition::Enum(_) => "ENUM",
                    TypeDefinition::InputObject(_) => "INPUT_OBJECT",
                }
                .into(),
            ),
            ("description", Some(definition)) => text(match definition {
                TypeDefinition::Scalar(t) => &t.description,
                TypeDefinition::Object(t) => &t.description,
                TypeDefinition::Interface(t) => &t.description,
                TypeDefinition::Union(t) => &t.description,
                TypeDefinition::Enum(t) => &t.description,
                TypeDefinition::InputObject(t) => &t.description,
            }),
            ("fields", Some(TypeDefinition::Object(object))) => visible(&object.fields),
            ("fields", Some(TypeDefinition::Interface(interface))) => visible(&interface.fields),
            ("interfaces", Some(TypeDefinition::Object(object))) => named(&object.implements_interfaces),
            ("interfaces", Some(TypeDefinition::Interface(interface))) => named(&interface.implements_interfaces),
            ("possibleTypes", Some(TypeDefinition::Interface(_) | TypeDefinition::Union(_))) => {
                named(self.possible.get(type_name).map_or(&[][..], Vec::as_slice))
            }
            ("enumValues", Some(TypeDefinition::Enum(enumeration))) => {
                self.list(query, enumeration.values.iter().filter(|v| keep(&v.directives)).map(Node::EnumValue), set)
            }
            ("inputFields", Some(TypeDefinition::InputObject(input))) => {
                self.list(query, input.fields.iter().filter(|f| keep(&f.directives)).map(Node::Input), set)
            }
            ("specifiedByURL" | "specifiedByUrl", Some(TypeDefinition::Scalar(scalar))) => scalar
                .directives
                .iter()
                .find(|d| d.name == "specifiedBy")
                .and_then(|d| d.arguments.iter().find(|(n, _)| n == "url"))
                .map_or(Json::Null, |(_, url)| match url {
                    graphql_tools::parser::query::Value::String(url) => Json::String(url.clone()),
                    _ => Json::Null,
                }),
            ("isOneOf", Some(TypeDefinition::InputObject(input))) => {
                Json::Bool(input.directives.iter().any(|d| d.name == "oneOf"))
            }
            _ => Json::Null,
        }
    }
}

impl<'q> Query<'q> {
    fn argument(&self, field: &QueryField<'static, String>, name: &str) -> Option<Json> {
        let (_, value) = field.arguments.iter().find(|(n, _)| n == name)?;
        to_json(value, &|variable| self.variables.get(variable).cloned())
    }

    /// CollectFields for an introspection object of type `type_name`.
    fn collect(&self, type_name: &str, set: &'q SelectionSet<'static, String>, fields: &mut Grouped<'q>) {
        let applies = |condition: &str| condition == type_name;
        let flag = |name: &str| self.variables.get(name).and_then(Json::as_bool).unwrap_or(false);
        Collect { document: self.document, applies: &applies, flag: &flag }.fields(set, fields, &mut HashSet::new());
    }
}

fn text(description: &Option<String>) -> Json {
    description.as_ref().map_or(Json::Null, |d| Json::String(d.clone()))
}

/// The reason of a `@deprecated` directive, when there is one.
fn deprecation(directives: &[Directive<'static, String>]) -> Option<String> {
    let directive = directives.iter().find(|d| d.name == "deprecated")?;
    Some(
        directive
            .arguments
            .iter()
            .find(|(name, _)| name == "reason")
            .and_then(|(_, value)| match value {
                graphql_tools::parser::query::Value::String(reason) => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "No longer supported".to_owned()),
    )
}
