//! What composition needs to know of one subgraph's SDL beyond what the composition crate
//! keeps: its root types, which types it only extends, its `@external`, `@interfaceObject` and
//! `@key` uses, by the names its `@link` imports the federation directives under.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql_parser::types::{ConstDirective, ServiceDocument, TypeKind, TypeSystemDefinition};
use async_graphql_parser::Positioned;
use async_graphql_value::ConstValue;

/// One subgraph's SDL, read.
#[derive(Debug, Default)]
pub struct SubgraphFacts {
    /// The subgraph's root types: ("Query", its name for it), and so on.
    pub roots: BTreeMap<&'static str, String>,
    /// Every type it defines or extends, by name.
    pub types: BTreeMap<String, TypeFacts>,
}

#[derive(Debug, Default)]
pub struct TypeFacts {
    /// Only extended here (`extend type`, or `@extends`), never defined: its key fields are
    /// resolvable here even when marked `@external`.
    pub extended: bool,
    /// Joined as an extension (`extension: true`): as `extended`, except that a Federation 1
    /// subgraph's `extend type` counts only with `@extends`.
    pub extension: bool,
    pub interface_object: bool,
    /// The key field sets, each with whether it is resolvable.
    pub keys: Vec<(String, bool)>,
    pub interfaces: Vec<String>,
    /// Fields by name: their type as written, whether `@external`.
    pub fields: BTreeMap<String, FieldFacts>,
    defined: bool,
    defined_for_join: bool,
}

#[derive(Debug)]
pub struct FieldFacts {
    pub ty: String,
    pub external: bool,
}

impl TypeFacts {
    /// The fields named at the top of the type's key field sets.
    pub fn key_fields(&self) -> BTreeSet<String> {
        self.keys.iter().flat_map(|(fields, _)| top_level_fields(fields)).collect()
    }
}

/// The federation directives' names in one subgraph: as imported by its `@link`, else
/// `federation__NAME`; a subgraph without such a link (Federation 1) uses the plain names.
struct Names {
    imported: BTreeMap<String, String>,
    prefix: Option<String>,
}

impl Names {
    fn of(document: &ServiceDocument) -> Names {
        let mut names = Names { imported: BTreeMap::new(), prefix: None };
        let links = document
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                TypeSystemDefinition::Schema(schema) => Some(&schema.node.directives),
                _ => None,
            })
            .flatten()
            .filter(|directive| directive.node.name.node == "link");
        for link in links {
            let Some(ConstValue::String(url)) = argument(&link.node, "url") else { continue };
            if !url.contains("specs.apollo.dev/federation/") {
                continue;
            }
            names.prefix = Some(match argument(&link.node, "as") {
                Some(ConstValue::String(name)) => name.trim_start_matches('@').to_owned(),
                _ => "federation".to_owned(),
            });
            let Some(ConstValue::List(imports)) = argument(&link.node, "import") else { continue };
            for import in imports {
                let (name, local) = match import {
                    ConstValue::String(name) => (name.clone(), name.clone()),
                    ConstValue::Object(fields) => {
                        let text = |key: &str| match fields.get(key) {
                            Some(ConstValue::String(text)) => Some(text.clone()),
                            _ => None,
                        };
                        let Some(name) = text("name") else { continue };
                        let local = text("as").unwrap_or_else(|| name.clone());
                        (name, local)
                    }
                    _ => continue,
                };
                names
                    .imported
                    .insert(local.trim_start_matches('@').to_owned(), name.trim_start_matches('@').to_owned());
            }
        }
        names
    }

    /// The federation directive a local directive name stands for.
    fn spec_name<'n>(&'n self, local: &'n str) -> Option<&'n str> {
        match &self.prefix {
            None => Some(local),
            Some(prefix) => self
                .imported
                .get(local)
                .map(String::as_str)
                .or_else(|| local.strip_prefix(prefix.as_str()).and_then(|rest| rest.strip_prefix("__"))),
        }
    }
}

/// Reads what composition's fixes need; the SDL has parsed before.
pub fn read(document: &ServiceDocument) -> SubgraphFacts {
    let names = Names::of(document);
    let is = |directive: &Positioned<ConstDirective>, spec: &str| {
        names.spec_name(directive.node.name.node.as_str()) == Some(spec)
    };
    let mut facts = SubgraphFacts::default();
    for definition in &document.definitions {
        match definition {
            TypeSystemDefinition::Schema(schema) => {
                for (root, name) in [
                    ("Query", &schema.node.query),
                    ("Mutation", &schema.node.mutation),
                    ("Subscription", &schema.node.subscription),
                ] {
                    if let Some(name) = name {
                        facts.roots.insert(root, name.node.to_string());
                    }
                }
            }
            TypeSystemDefinition::Directive(_) => {}
            TypeSystemDefinition::Type(ty) => {
                let ty = &ty.node;
                let entry = facts.types.entry(ty.name.node.to_string()).or_default();
                let marked = ty.directives.iter().any(|d| is(d, "extends"));
                entry.defined |= !(ty.extend || marked);
                entry.extended = !entry.defined;
                let federation_2 = names.prefix.is_some();
                entry.defined_for_join |= !((ty.extend && federation_2) || marked);
                entry.extension = !entry.defined_for_join;
                entry.interface_object |= ty.directives.iter().any(|d| is(d, "interfaceObject"));
                for key in ty.directives.iter().filter(|d| is(d, "key")) {
                    let Some(ConstValue::String(fields)) = argument(&key.node, "fields") else { continue };
                    let resolvable = !matches!(argument(&key.node, "resolvable"), Some(ConstValue::Boolean(false)));
                    entry.keys.push((fields.clone(), resolvable));
                }
                let fields = match &ty.kind {
                    TypeKind::Object(object) => {
                        entry.interfaces.extend(object.implements.iter().map(|name| name.node.to_string()));
                        &object.fields
                    }
                    TypeKind::Interface(interface) => {
                        entry.interfaces.extend(interface.implements.iter().map(|name| name.node.to_string()));
                        &interface.fields
                    }
                    _ => continue,
                };
                for field in fields {
                    let external = field.node.directives.iter().any(|d| is(d, "external"));
                    entry.fields.insert(
                        field.node.name.node.to_string(),
                        FieldFacts { ty: field.node.ty.node.to_string(), external },
                    );
                }
            }
        }
    }
    for root in ["Query", "Mutation", "Subscription"] {
        if !facts.roots.contains_key(root) && facts.types.contains_key(root) {
            facts.roots.insert(root, root.to_owned());
        }
    }
    facts
}

/// The field names at the top of a field set: `id owner { id }` names `id` and `owner`.
pub fn top_level_fields(fields: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut word = String::new();
    let mut in_arguments = 0usize;
    for c in fields.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            if depth == 0 && in_arguments == 0 && word != "on" {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
        }
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '(' => in_arguments += 1,
            ')' => in_arguments = in_arguments.saturating_sub(1),
            _ => {}
        }
    }
    names
}

pub fn argument<'d>(directive: &'d ConstDirective, name: &str) -> Option<&'d ConstValue> {
    directive.arguments.iter().find(|(key, _)| key.node == name).map(|(_, value)| &value.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_fields_of_a_field_set() {
        assert_eq!(top_level_fields("id"), ["id"]);
        assert_eq!(top_level_fields("id compositeId { two three }"), ["id", "compositeId"]);
        assert_eq!(top_level_fields("products{id pid category{id tag}} selected{id}"), ["products", "selected"]);
    }

    #[test]
    fn federation_directives_by_their_imported_names() {
        let sdl = r#"
            extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [{name: "@key", as: "@primaryKey"}])
            type User @primaryKey(fields: "id") @federation__extends { id: ID! @federation__external name: String @external }
            type Query { me: User }
        "#;
        let facts = read(&async_graphql_parser::parse_schema(sdl).expect("parses"));
        let user = &facts.types["User"];
        assert_eq!(user.keys, [("id".to_owned(), true)]);
        assert!(user.extension && user.extended);
        assert!(user.fields["id"].external);
        assert!(!user.fields["name"].external, "`@external` is not imported: it is `@federation__external`");
        assert_eq!(facts.roots["Query"], "Query");
    }

    #[test]
    fn federation_1_uses_plain_names() {
        let sdl =
            r#"extend type User @key(fields: "id") { id: ID! @external }  schema { query: Root } type Root { a: Int }"#;
        let facts = read(&async_graphql_parser::parse_schema(sdl).expect("parses"));
        let user = &facts.types["User"];
        assert!(user.extended && !user.extension, "Federation 1 joins `extend type` as a definition");
        assert!(user.fields["id"].external);
        assert_eq!(facts.roots["Query"], "Root");
    }
}
