//! The composition crate's supergraph brought to the join spec as rover and the Hive CLI write
//! it, which planners (`hive-router-query-planner` among them) read: `@join__type` on the root
//! types and on every type each subgraph defines, `extension: true` on types a subgraph only
//! extends, `@join__field(external: true)` where a subgraph marks a field `@external`,
//! `type:` where subgraphs give a field different types, `usedOverridden` where an overridden
//! field is still needed by its old subgraph, and the spec's own definitions.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql_parser::types::{
    ConstDirective, FieldDefinition, SchemaDefinition, ServiceDocument, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql_parser::{Pos, Positioned};
use async_graphql_value::{ConstValue, Name};

use super::subgraph::{argument, SubgraphFacts, TypeFacts};

/// The join and link specs' definitions, as Federation v2 supergraphs carry them.
const SPEC: &str = r#"
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar join__FieldSet
scalar link__Import
enum link__Purpose {
  "`SECURITY` features provide metadata necessary to securely resolve fields."
  SECURITY
  "`EXECUTION` features provide metadata necessary for operation execution."
  EXECUTION
}
"#;

/// Definitions of the composed directives a supergraph may use, added where it uses them.
const COMPOSED: [(&str, &str, &str); 2] = [
    (
        "inaccessible",
        "https://specs.apollo.dev/inaccessible/v0.2",
        "directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION",
    ),
    (
        "tag",
        "https://specs.apollo.dev/tag/v0.3",
        "directive @tag(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA",
    ),
];

const ROOTS: [&str; 3] = ["Query", "Mutation", "Subscription"];

/// One subgraph as the supergraph names it.
pub struct Graph<'a> {
    /// The subgraph's name, as configured.
    pub name: &'a str,
    /// Its name in the composition crate's output.
    pub composed_name: &'a str,
    pub facts: &'a SubgraphFacts,
}

/// Rewrites the composition crate's supergraph in place.
pub fn complete(document: &mut ServiceDocument, graphs: &[Graph<'_>]) {
    let spec = super::print::parse(SPEC).expect("the join spec's definitions parse");
    let used = used_directives(document);
    // Graph enum values by subgraph, the configured names restored.
    let mut values = BTreeMap::new();
    for definition in &mut document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let TypeKind::Enum(join_graph) = &mut ty.node.kind else { continue };
        if ty.node.name.node != "join__Graph" {
            continue;
        }
        for value in &mut join_graph.values {
            for directive in &mut value.node.directives {
                let Some(ConstValue::String(name)) = argument(&directive.node, "name") else { continue };
                let Some(graph) = graphs.iter().find(|graph| graph.composed_name == name) else { continue };
                set(&mut directive.node, "name", ConstValue::String(graph.name.to_owned()));
                values.insert(graph.name.to_owned(), value.node.value.node.clone());
            }
        }
    }
    let context = Context { graphs, values };
    let mut definitions = Vec::with_capacity(document.definitions.len() + 10);
    let mut types = Vec::new();
    let mut composed = Vec::new();
    for definition in std::mem::take(&mut document.definitions) {
        match definition {
            TypeSystemDefinition::Schema(mut schema) => {
                links(&mut schema.node, &used);
                definitions.push(TypeSystemDefinition::Schema(schema));
            }
            TypeSystemDefinition::Directive(directive) => {
                let name = directive.node.name.node.as_str();
                if !(name.starts_with("join__") || name == "link" || name == "core") {
                    composed.push(TypeSystemDefinition::Directive(directive));
                }
            }
            TypeSystemDefinition::Type(mut ty) => {
                let name = ty.node.name.node.as_str();
                if name == "join__Graph" {
                    types.insert(0, TypeSystemDefinition::Type(ty));
                } else if !(name.starts_with("join__") || name.starts_with("link__") || subgraph_machinery(name)) {
                    if let TypeKind::Object(object) = &mut ty.node.kind {
                        object
                            .fields
                            .retain(|field| !["_service", "_entities"].contains(&field.node.name.node.as_str()));
                    }
                    context.complete_type(&mut ty.node);
                    types.push(TypeSystemDefinition::Type(ty));
                }
            }
        }
    }
    let (spec_directives, spec_types): (Vec<_>, Vec<_>) =
        spec.definitions.into_iter().partition(|definition| matches!(definition, TypeSystemDefinition::Directive(_)));
    definitions.extend(spec_directives);
    for (name, _, definition) in COMPOSED {
        let defined = composed.iter().any(|existing| {
            matches!(existing, TypeSystemDefinition::Directive(directive) if directive.node.name.node == name)
        });
        if used.contains(name) && !defined {
            let parsed = super::print::parse(definition).expect("a composed directive's definition parses");
            definitions.extend(parsed.definitions);
        }
    }
    definitions.extend(composed);
    // join__FieldSet, then join__Graph, then the link spec's types, as rover orders them.
    let mut spec_types = spec_types.into_iter();
    definitions.extend(spec_types.next());
    if !types.is_empty() {
        definitions.push(types.remove(0));
    }
    definitions.extend(spec_types);
    definitions.extend(types);
    document.definitions = definitions;
}

/// Types a subgraph library adds to a subgraph's SDL for the gateway, not part of its API.
fn subgraph_machinery(name: &str) -> bool {
    ["_Any", "_Entity", "_Service", "_FieldSet"].contains(&name) || name.starts_with("federation__")
}

struct Context<'a> {
    graphs: &'a [Graph<'a>],
    /// The join__Graph value of each subgraph, by its configured name.
    values: BTreeMap<String, Name>,
}

impl Context<'_> {
    /// The subgraphs that define a type (for root types: that have that root), with the type
    /// as each knows it.
    fn defining<'t>(&'t self, name: &str) -> Vec<(&'t Graph<'t>, &'t TypeFacts)> {
        self.graphs
            .iter()
            .filter_map(|graph| {
                let local = match ROOTS.contains(&name) {
                    true => graph.facts.roots.get(name)?.as_str(),
                    false => name,
                };
                Some((graph, graph.facts.types.get(local)?))
            })
            .collect()
    }

    fn value(&self, graph: &Graph<'_>) -> Option<ConstValue> {
        self.values.get(graph.name).map(|value| ConstValue::Enum(value.clone()))
    }

    fn graph_of(&self, directive: &ConstDirective) -> Option<&Graph<'_>> {
        let ConstValue::Enum(value) = argument(directive, "graph")? else { return None };
        let name = self.values.iter().find(|(_, v)| *v == value).map(|(name, _)| name)?;
        self.graphs.iter().find(|graph| graph.name == name)
    }

    fn complete_type(&self, ty: &mut TypeDefinition) {
        let name = ty.name.node.to_string();
        let defining = self.defining(&name);
        let root = ROOTS.contains(&name.as_str());
        // Every subgraph has the query root, whether it declares fields on it or not.
        let joined: Vec<(&Graph<'_>, Option<&TypeFacts>)> = if name == "Query" {
            self.graphs
                .iter()
                .map(|graph| (graph, defining.iter().find(|(g, _)| g.name == graph.name).map(|d| d.1)))
                .collect()
        } else {
            defining.iter().map(|(graph, facts)| (*graph, Some(*facts))).collect()
        };
        for (graph, facts) in &joined {
            let Some(value) = self.value(graph) else { continue };
            let mut has = false;
            for directive in ty.directives.iter_mut().filter(|d| d.node.name.node == "join__type") {
                if argument(&directive.node, "graph") != Some(&value) {
                    continue;
                }
                has = true;
                if !root
                    && facts.is_some_and(|facts| facts.extension)
                    && argument(&directive.node, "extension").is_none()
                {
                    set(&mut directive.node, "extension", ConstValue::Boolean(true));
                }
            }
            if !has {
                ty.directives.extend(join_types(value, if root { None } else { *facts }));
            }
        }
        let fields = match &mut ty.kind {
            TypeKind::Object(object) => &mut object.fields,
            TypeKind::Interface(interface) => &mut interface.fields,
            _ => return,
        };
        let type_graphs: Vec<ConstValue> = ty
            .directives
            .iter()
            .filter(|d| d.node.name.node == "join__type")
            .filter_map(|d| argument(&d.node, "graph").cloned())
            .fold(Vec::new(), |mut graphs, graph| {
                if !graphs.contains(&graph) {
                    graphs.push(graph);
                }
                graphs
            });
        for field in fields {
            self.complete_field(&mut field.node, &defining, &type_graphs);
        }
    }

    fn complete_field(
        &self,
        field: &mut FieldDefinition,
        defining: &[(&Graph<'_>, &TypeFacts)],
        type_graphs: &[ConstValue],
    ) {
        let name = field.name.node.as_str();
        let with_field: Vec<_> = defining
            .iter()
            .filter_map(|(graph, ty)| Some((*graph, *ty, ty.fields.get(name)?, self.value(graph)?)))
            .collect();
        // An @external field is not resolved by its subgraph, unless it is a key field of a
        // type the subgraph only extends (Federation 1's way of naming the key).
        let external: Vec<&ConstValue> = with_field
            .iter()
            .filter(|(_, ty, field, _)| field.external && !(ty.extended && ty.key_fields().contains(name)))
            .map(|(.., value)| value)
            .collect();
        let types: BTreeSet<&str> = with_field.iter().map(|(_, _, field, _)| field.ty.as_str()).collect();
        let typed = types.len() > 1;
        let overridden = self.overridden(field, defining);
        // Overrides from a subgraph that does not exist are left out, as rover leaves them.
        for directive in field.directives.iter_mut().filter(|d| d.node.name.node == "join__field") {
            if let Some(ConstValue::String(from)) = argument(&directive.node, "override") {
                if !self.graphs.iter().any(|graph| graph.name == from || graph.composed_name == from) {
                    directive.node.arguments.retain(|(key, _)| key.node != "override");
                } else if let Some(graph) = self.graphs.iter().find(|graph| graph.composed_name == from) {
                    set(&mut directive.node, "override", ConstValue::String(graph.name.to_owned()));
                }
            }
        }
        if external.is_empty() && !typed && overridden.is_empty() {
            return;
        }
        if !field.directives.iter().any(|d| d.node.name.node == "join__field") {
            field.directives.extend(
                type_graphs.iter().map(|graph| positioned(directive("join__field", [("graph", graph.clone())]))),
            );
        }
        for value in external {
            match field.directives.iter_mut().find(|d| is_join_field_of(d, value)) {
                Some(directive) => set(&mut directive.node, "external", ConstValue::Boolean(true)),
                None => field.directives.push(positioned(directive(
                    "join__field",
                    [("graph", value.clone()), ("external", ConstValue::Boolean(true))],
                ))),
            }
        }
        for value in overridden {
            if !field.directives.iter().any(|d| is_join_field_of(d, &value)) {
                field.directives.push(positioned(directive(
                    "join__field",
                    [("graph", value), ("usedOverridden", ConstValue::Boolean(true))],
                )));
            }
        }
        if typed {
            for directive in field.directives.iter_mut().filter(|d| d.node.name.node == "join__field") {
                let Some(graph) = self.graph_of(&directive.node) else { continue };
                let Some((.., facts, _)) = with_field.iter().find(|(g, ..)| g.name == graph.name) else { continue };
                if argument(&directive.node, "type").is_none() {
                    set(&mut directive.node, "type", ConstValue::String(facts.ty.clone()));
                }
            }
        }
    }

    /// The subgraphs a field was taken from with `@override` that still need it themselves: in
    /// a key, or for an interface the type implements there.
    fn overridden(&self, field: &FieldDefinition, defining: &[(&Graph<'_>, &TypeFacts)]) -> Vec<ConstValue> {
        let name = field.name.node.as_str();
        let mut out = Vec::new();
        for directive in field.directives.iter().filter(|d| d.node.name.node == "join__field") {
            let Some(ConstValue::String(from)) = argument(&directive.node, "override") else { continue };
            if argument(&directive.node, "overrideLabel").is_some() {
                continue;
            }
            let Some((graph, ty)) = defining.iter().find(|(g, _)| g.name == from || g.composed_name == from) else {
                continue;
            };
            if !ty.fields.contains_key(name) {
                continue;
            }
            let in_interface = ty.interfaces.iter().any(|interface| {
                graph.facts.types.get(interface).is_some_and(|interface| interface.fields.contains_key(name))
            });
            if ty.key_fields().contains(name) || in_interface {
                out.extend(self.value(graph));
            }
        }
        out
    }
}

/// The `@join__type`s of a subgraph that has a type the composition crate left unjoined.
fn join_types(graph: ConstValue, facts: Option<&TypeFacts>) -> Vec<Positioned<ConstDirective>> {
    let mut flags = Vec::new();
    if let Some(facts) = facts {
        if facts.extension {
            flags.push(("extension", ConstValue::Boolean(true)));
        }
        if facts.interface_object {
            flags.push(("isInterfaceObject", ConstValue::Boolean(true)));
        }
    }
    let keys = facts.map(|facts| facts.keys.as_slice()).unwrap_or_default();
    if keys.is_empty() {
        let arguments = std::iter::once(("graph", graph)).chain(flags);
        return vec![positioned(directive("join__type", arguments))];
    }
    keys.iter()
        .map(|(fields, resolvable)| {
            let mut arguments = vec![("graph", graph.clone()), ("key", ConstValue::String(fields.clone()))];
            arguments.extend(flags.iter().cloned());
            if !resolvable {
                arguments.push(("resolvable", ConstValue::Boolean(false)));
            }
            positioned(directive("join__type", arguments))
        })
        .collect()
}

/// The schema's `@link`s: the composed directives' only where they are used.
fn links(schema: &mut SchemaDefinition, used: &BTreeSet<String>) {
    schema.directives.retain(|directive| {
        let Some(ConstValue::String(url)) = argument(&directive.node, "url") else { return true };
        COMPOSED.iter().all(|(name, spec, _)| !url.starts_with(spec) || used.contains(*name))
    });
    for (name, spec, _) in COMPOSED {
        let linked = schema.directives.iter().any(|directive| {
            matches!(argument(&directive.node, "url"), Some(ConstValue::String(url)) if url.starts_with(spec))
        });
        if used.contains(name) && !linked {
            schema.directives.push(positioned(directive(
                "link",
                [("url", ConstValue::String(spec.to_owned())), ("for", ConstValue::Enum(Name::new("SECURITY")))],
            )));
        }
    }
}

/// Names of the directives the document uses anywhere.
fn used_directives(document: &ServiceDocument) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut add = |directives: &[Positioned<ConstDirective>]| {
        used.extend(directives.iter().map(|directive| directive.node.name.node.to_string()));
    };
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        add(&ty.node.directives);
        match &ty.node.kind {
            TypeKind::Object(object) => object.fields.iter().for_each(|field| {
                add(&field.node.directives);
                field.node.arguments.iter().for_each(|arg| add(&arg.node.directives));
            }),
            TypeKind::Interface(interface) => interface.fields.iter().for_each(|field| {
                add(&field.node.directives);
                field.node.arguments.iter().for_each(|arg| add(&arg.node.directives));
            }),
            TypeKind::Enum(values) => values.values.iter().for_each(|value| add(&value.node.directives)),
            TypeKind::InputObject(input) => input.fields.iter().for_each(|field| add(&field.node.directives)),
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    used
}

fn is_join_field_of(directive: &Positioned<ConstDirective>, graph: &ConstValue) -> bool {
    directive.node.name.node == "join__field" && argument(&directive.node, "graph") == Some(graph)
}

/// The order the join spec lists its arguments in, which rover keeps.
const ARGUMENT_ORDER: [&str; 14] = [
    "graph",
    "name",
    "url",
    "key",
    "requires",
    "provides",
    "type",
    "extension",
    "external",
    "override",
    "overrideLabel",
    "usedOverridden",
    "resolvable",
    "isInterfaceObject",
];

/// Sets an argument, keeping the spec's order of arguments.
fn set(directive: &mut ConstDirective, name: &str, value: ConstValue) {
    match directive.arguments.iter_mut().find(|(key, _)| key.node == name) {
        Some((_, existing)) => existing.node = value,
        None => directive.arguments.push((positioned(Name::new(name)), positioned(value))),
    }
    directive.arguments.sort_by_key(|(key, _)| rank(key.node.as_str()));
}

fn rank(key: &str) -> usize {
    ARGUMENT_ORDER.iter().position(|known| *known == key).unwrap_or(ARGUMENT_ORDER.len())
}

fn directive<'a>(name: &str, arguments: impl IntoIterator<Item = (&'a str, ConstValue)>) -> ConstDirective {
    let mut arguments: Vec<_> = arguments.into_iter().collect();
    arguments.sort_by_key(|(key, _)| rank(key));
    ConstDirective {
        name: positioned(Name::new(name)),
        arguments: arguments.into_iter().map(|(key, value)| (positioned(Name::new(key)), positioned(value))).collect(),
    }
}

fn positioned<T>(node: T) -> Positioned<T> {
    Positioned::new(node, Pos::default())
}
