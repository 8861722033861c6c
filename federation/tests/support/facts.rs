//! A supergraph as a set of facts (types, fields, arguments, `join__` directives with their
//! subgraphs by name), so two supergraphs composed by different tools compare by meaning, not
//! by layout or order.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql_parser::types::{
    ConstDirective, FieldDefinition, InputValueDefinition, ServiceDocument, TypeKind, TypeSystemDefinition,
};
use async_graphql_parser::Positioned;
use async_graphql_value::ConstValue;

/// The facts of a supergraph, each a line of text.
pub fn facts(sdl: &str) -> Result<BTreeSet<String>, String> {
    let document = async_graphql_parser::parse_schema(sdl).map_err(|error| error.to_string())?;
    let graphs = graphs(&document);
    let mut out = BTreeSet::new();
    for definition in &document.definitions {
        match definition {
            TypeSystemDefinition::Schema(schema) => {
                for (root, name) in [
                    ("query", &schema.node.query),
                    ("mutation", &schema.node.mutation),
                    ("subscription", &schema.node.subscription),
                ] {
                    if let Some(name) = name {
                        out.insert(format!("schema {root}: {}", name.node));
                    }
                }
            }
            TypeSystemDefinition::Directive(directive) => {
                let name = directive.node.name.node.as_str();
                if !machinery(name) {
                    out.insert(format!("directive @{name}"));
                }
            }
            TypeSystemDefinition::Type(ty) => {
                let name = ty.node.name.node.as_str();
                if machinery(name) {
                    continue;
                }
                let type_graphs: BTreeSet<String> = ty
                    .node
                    .directives
                    .iter()
                    .filter(|d| d.node.name.node == "join__type")
                    .filter_map(|d| argument(&d.node, "graph").map(|g| graph_name(&graphs, g)))
                    .collect();
                let (kind, fields, inputs) = match &ty.node.kind {
                    TypeKind::Scalar => ("scalar", None, None),
                    TypeKind::Object(object) => {
                        for interface in &object.implements {
                            out.insert(format!("{name} implements {}", interface.node));
                        }
                        ("type", Some(&object.fields), None)
                    }
                    TypeKind::Interface(interface) => {
                        for parent in &interface.implements {
                            out.insert(format!("{name} implements {}", parent.node));
                        }
                        ("interface", Some(&interface.fields), None)
                    }
                    TypeKind::Union(union) => {
                        for member in &union.members {
                            out.insert(format!("{name} member {}", member.node));
                        }
                        ("union", None, None)
                    }
                    TypeKind::Enum(values) => {
                        for value in &values.node_values() {
                            out.insert(format!("{name}.{} enum value", value.node.value.node));
                            directive_facts(
                                &mut out,
                                &graphs,
                                &format!("{name}.{}", value.node.value.node),
                                &value.node.directives,
                            );
                        }
                        ("enum", None, None)
                    }
                    TypeKind::InputObject(input) => ("input", None, Some(&input.fields)),
                };
                out.insert(format!("{kind} {name}"));
                if let Some(description) = &ty.node.description {
                    out.insert(format!("{name} described {:?}", description.node.trim()));
                }
                directive_facts(&mut out, &graphs, name, &ty.node.directives);
                for field in fields.into_iter().flatten() {
                    field_facts(&mut out, &graphs, name, &type_graphs, &field.node);
                }
                for field in inputs.into_iter().flatten() {
                    input_facts(&mut out, &graphs, name, &type_graphs, &field.node);
                }
            }
        }
    }
    Ok(out)
}

trait Values {
    fn node_values(&self) -> Vec<&Positioned<async_graphql_parser::types::EnumValueDefinition>>;
}

impl Values for async_graphql_parser::types::EnumType {
    fn node_values(&self) -> Vec<&Positioned<async_graphql_parser::types::EnumValueDefinition>> {
        self.values.iter().collect()
    }
}

fn field_facts(
    out: &mut BTreeSet<String>,
    graphs: &BTreeMap<String, String>,
    parent: &str,
    type_graphs: &BTreeSet<String>,
    field: &FieldDefinition,
) {
    let path = format!("{parent}.{}", field.name.node);
    out.insert(format!("{path}: {}", field.ty.node));
    for arg in &field.arguments {
        arg_facts(out, graphs, &path, &arg.node);
    }
    joined_field(out, graphs, &path, type_graphs, &field.directives);
}

fn input_facts(
    out: &mut BTreeSet<String>,
    graphs: &BTreeMap<String, String>,
    parent: &str,
    type_graphs: &BTreeSet<String>,
    field: &InputValueDefinition,
) {
    let path = format!("{parent}.{}", field.name.node);
    out.insert(format!("{path}: {}", field.ty.node));
    if let Some(default) = &field.default_value {
        out.insert(format!("{path} = {}", default.node));
    }
    joined_field(out, graphs, &path, type_graphs, &field.directives);
}

fn arg_facts(out: &mut BTreeSet<String>, graphs: &BTreeMap<String, String>, path: &str, arg: &InputValueDefinition) {
    let path = format!("{path}({})", arg.name.node);
    out.insert(format!("{path}: {}", arg.ty.node));
    if let Some(default) = &arg.default_value {
        out.insert(format!("{path} = {}", default.node));
    }
    directive_facts(out, graphs, &path, &arg.directives);
}

/// `@join__field`s, with a field that has none resolved in every subgraph of its type.
fn joined_field(
    out: &mut BTreeSet<String>,
    graphs: &BTreeMap<String, String>,
    path: &str,
    type_graphs: &BTreeSet<String>,
    directives: &[Positioned<ConstDirective>],
) {
    if !directives.iter().any(|d| d.node.name.node == "join__field") {
        for graph in type_graphs {
            out.insert(format!("{path} @join__field(graph: {graph})"));
        }
    }
    directive_facts(out, graphs, path, directives);
}

fn directive_facts(
    out: &mut BTreeSet<String>,
    graphs: &BTreeMap<String, String>,
    path: &str,
    directives: &[Positioned<ConstDirective>],
) {
    for directive in directives {
        out.insert(format!("{path} {}", directive_text(graphs, &directive.node)));
    }
}

/// A directive with its arguments sorted, defaults left out, graphs by subgraph name and field
/// sets with their whitespace collapsed.
fn directive_text(graphs: &BTreeMap<String, String>, directive: &ConstDirective) -> String {
    let name = directive.name.node.as_str();
    let mut args: Vec<(String, String)> = directive
        .arguments
        .iter()
        .filter(|(key, value)| !is_default(name, key.node.as_str(), &value.node))
        .map(|(key, value)| {
            let text = match (key.node.as_str(), &value.node) {
                ("graph", value) => graph_name(graphs, value),
                (_, ConstValue::String(text)) => format!("{:?}", collapse(text)),
                (_, value) => value.to_string(),
            };
            (key.node.to_string(), text)
        })
        .collect();
    args.sort();
    if args.is_empty() {
        return format!("@{name}");
    }
    let args: Vec<String> = args.into_iter().map(|(key, value)| format!("{key}: {value}")).collect();
    format!("@{name}({})", args.join(", "))
}

fn is_default(directive: &str, argument: &str, value: &ConstValue) -> bool {
    matches!(
        (directive, argument, value),
        ("join__type", "extension" | "isInterfaceObject", ConstValue::Boolean(false))
            | ("join__type", "resolvable", ConstValue::Boolean(true))
            | ("join__field", "external" | "usedOverridden", ConstValue::Boolean(false))
    )
}

/// A field set with its whitespace collapsed: `id  sku {a}` and `id sku { a }` are the same.
fn collapse(text: &str) -> String {
    let spaced = text.replace('{', " { ").replace('}', " } ");
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn argument<'d>(directive: &'d ConstDirective, name: &str) -> Option<&'d ConstValue> {
    directive.arguments.iter().find(|(key, _)| key.node == name).map(|(_, value)| &value.node)
}

/// `join__Graph` values by their subgraph's name.
fn graphs(document: &ServiceDocument) -> BTreeMap<String, String> {
    let mut graphs = BTreeMap::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let TypeKind::Enum(values) = &ty.node.kind else { continue };
        if ty.node.name.node != "join__Graph" {
            continue;
        }
        for value in &values.values {
            let name = value
                .node
                .directives
                .iter()
                .find(|d| d.node.name.node == "join__graph")
                .and_then(|d| argument(&d.node, "name"))
                .map(|name| match name {
                    ConstValue::String(name) => name.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            graphs.insert(value.node.value.node.to_string(), name);
        }
    }
    graphs
}

fn graph_name(graphs: &BTreeMap<String, String>, value: &ConstValue) -> String {
    let ConstValue::Enum(name) = value else { return value.to_string() };
    graphs.get(name.as_str()).cloned().unwrap_or_else(|| format!("?{name}"))
}

/// Names of the supergraph's own machinery, which composers render differently.
fn machinery(name: &str) -> bool {
    name.starts_with("join__") || name.starts_with("link__") || name == "link" || name == "core"
}
