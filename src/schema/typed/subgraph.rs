//! The typed schema as a Federation v2 subgraph (`subhub subgraph-sdl`, and the hub's own
//! subgraph in `subhub compose`): its types and root fields as written, `@subscribe` fields as
//! the subgraph's Subscription fields. The hub's directives are left out: they bind fields to
//! brokers inside the hub and mean nothing to a composer, which would otherwise need them
//! declared as composed directives. Keys are `resolvable: false`: the hub answers no
//! `_entities` requests, so a planner never sends it one.

use async_graphql::parser::types::{
    ConstDirective, SchemaDefinition, ServiceDocument, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, Pos, Positioned, Value};

use super::sdl::{FEDERATION_DIRECTIVES, HUB_DIRECTIVES};
use crate::schema::builtin;

/// The Federation version linked when the schema links none.
const FEDERATION: &str = "https://specs.apollo.dev/federation/v2.3";

/// Types of the built-in schema a typed schema may use without declaring them.
const PROVIDED: [(&str, &str); 2] =
    [("JSON", "scalar JSON"), ("PublishResult", "type PublishResult @shareable { ok: Boolean! id: String }")];

/// The subgraph SDL of a typed schema that has loaded (so it parses).
pub fn subgraph_sdl(text: &str) -> Result<String, String> {
    let mut document = async_graphql::parser::parse_schema(text).map_err(|error| error.to_string())?;
    let declared: Vec<String> = document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => Some(ty.node.name.node.to_string()),
            _ => None,
        })
        .collect();
    let mut used_types = Vec::new();
    document.definitions.retain_mut(|definition| match definition {
        // The link spec defines Federation's directives; the hub's stay in the hub.
        TypeSystemDefinition::Directive(_) => false,
        TypeSystemDefinition::Schema(_) => true,
        TypeSystemDefinition::Type(ty) => {
            strip(&mut ty.node, &mut used_types);
            true
        }
    });
    for (name, definition) in PROVIDED {
        debug_assert!(builtin::PROVIDED.contains(&name));
        if used_types.iter().any(|used| used == name) && !declared.iter().any(|declared| declared == name) {
            let parsed = async_graphql::parser::parse_schema(definition).expect("a provided type's SDL parses");
            document.definitions.extend(parsed.definitions);
        }
    }
    link(&mut document);
    Ok(subhub_federation::compose::print::print(&document))
}

/// Leaves out the hub's directives, makes keys unresolvable, and notes the types fields name.
fn strip(ty: &mut TypeDefinition, used_types: &mut Vec<String>) {
    for key in ty.directives.iter_mut().filter(|directive| directive.node.name.node == "key") {
        if !key.node.arguments.iter().any(|(name, _)| name.node == "resolvable") {
            key.node.arguments.push((positioned(Name::new("resolvable")), positioned(Value::Boolean(false))));
        }
    }
    let fields = match &mut ty.kind {
        TypeKind::Object(object) => &mut object.fields,
        TypeKind::Interface(interface) => &mut interface.fields,
        _ => return,
    };
    for field in fields {
        let field = &mut field.node;
        field.directives.retain(|directive| !HUB_DIRECTIVES.contains(&directive.node.name.node.as_str()));
        used_types.push(base(&field.ty.node).to_owned());
        used_types.extend(field.arguments.iter().map(|arg| base(&arg.node.ty.node).to_owned()));
    }
}

/// `extend schema @link(url: …federation/v2.x, import: [every Federation directive used])`,
/// added or completed.
fn link(document: &mut ServiceDocument) {
    let used = used_federation_directives(document);
    let linked = document.definitions.iter_mut().find_map(|definition| match definition {
        TypeSystemDefinition::Schema(schema) => federation_link(&mut schema.node),
        _ => None,
    });
    let link = match linked {
        Some(link) => link,
        None => {
            let schema = SchemaDefinition {
                extend: true,
                directives: vec![positioned(ConstDirective {
                    name: positioned(Name::new("link")),
                    arguments: vec![(positioned(Name::new("url")), positioned(Value::String(FEDERATION.to_owned())))],
                })],
                query: None,
                mutation: None,
                subscription: None,
            };
            document.definitions.insert(0, TypeSystemDefinition::Schema(positioned(schema)));
            let TypeSystemDefinition::Schema(schema) = &mut document.definitions[0] else { unreachable!() };
            &mut schema.node.directives[0].node
        }
    };
    let mut imports = match link.arguments.iter().position(|(name, _)| name.node == "import") {
        Some(index) => match link.arguments.remove(index).1.node {
            Value::List(items) => items,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    for name in used {
        let import = Value::String(format!("@{name}"));
        if !imports.contains(&import) {
            imports.push(import);
        }
    }
    if !imports.is_empty() {
        link.arguments.push((positioned(Name::new("import")), positioned(Value::List(imports))));
    }
}

fn federation_link(schema: &mut SchemaDefinition) -> Option<&mut ConstDirective> {
    schema.directives.iter_mut().map(|directive| &mut directive.node).find(|directive| {
        directive.name.node == "link"
            && directive.arguments.iter().any(|(name, value)| {
                name.node == "url"
                    && matches!(&value.node, Value::String(url) if url.contains("specs.apollo.dev/federation/"))
            })
    })
}

/// Federation directives the document uses, in the order of `FEDERATION_DIRECTIVES`.
fn used_federation_directives(document: &ServiceDocument) -> Vec<&'static str> {
    let mut used = Vec::new();
    let mut note = |directives: &[Positioned<ConstDirective>]| {
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if let Some(known) = FEDERATION_DIRECTIVES.iter().find(|known| **known == name) {
                if !used.contains(known) {
                    used.push(*known);
                }
            }
        }
    };
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        note(&ty.node.directives);
        match &ty.node.kind {
            TypeKind::Object(object) => object.fields.iter().for_each(|field| note(&field.node.directives)),
            TypeKind::Interface(interface) => interface.fields.iter().for_each(|field| note(&field.node.directives)),
            TypeKind::Enum(values) => values.values.iter().for_each(|value| note(&value.node.directives)),
            TypeKind::InputObject(input) => input.fields.iter().for_each(|field| note(&field.node.directives)),
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    used.sort_by_key(|name| FEDERATION_DIRECTIVES.iter().position(|known| known == name));
    used
}

fn base(ty: &async_graphql::parser::types::Type) -> &str {
    match &ty.base {
        async_graphql::parser::types::BaseType::Named(name) => name.as_str(),
        async_graphql::parser::types::BaseType::List(inner) => base(inner),
    }
}

fn positioned<T>(node: T) -> Positioned<T> {
    Positioned::new(node, Pos::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
directive @subscribe(broker: String, topic: String, topics: [String!]) on FIELD_DEFINITION
"A purchase."
type Purchase @key(fields: "id") {
  id: ID!
  placedAt: String @event(meta: "timestamp")
}
type Subscription {
  purchaseCreated: Purchase! @subscribe(broker: "kafka", topic: "purchases") @filter(field: "id", ne: "0")
}
type Mutation {
  createPurchase(id: ID!): PublishResult! @publish(broker: "kafka", topic: "purchases")
}
"#;

    #[test]
    fn the_hubs_directives_leave_and_federation_is_linked() {
        let sdl = subgraph_sdl(SCHEMA).expect("prints");
        assert!(
            sdl.starts_with("extend schema\n  @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\", \"@shareable\"])\n"),
            "{sdl}"
        );
        for hub in ["@subscribe", "@filter", "@publish", "@event", "directive "] {
            assert!(!sdl.contains(hub), "{hub} is left out:\n{sdl}");
        }
        assert!(sdl.contains("type Purchase\n  @key(fields: \"id\", resolvable: false)\n{"), "{sdl}");
        assert!(sdl.contains("  purchaseCreated: Purchase!\n"), "{sdl}");
        assert!(sdl.contains("type PublishResult\n  @shareable\n{\n  ok: Boolean!\n  id: String\n}"), "{sdl}");
        assert!(!sdl.contains("scalar JSON"), "JSON is not used:\n{sdl}");
    }

    #[test]
    fn a_link_of_the_schema_is_kept_and_completed() {
        let schema = format!(
            "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.5\", import: [\"@tag\"])\n{SCHEMA}"
        );
        let sdl = subgraph_sdl(&schema).expect("prints");
        assert!(
            sdl.contains("@link(url: \"https://specs.apollo.dev/federation/v2.5\", import: [\"@tag\", \"@key\", \"@shareable\"])"),
            "{sdl}"
        );
        assert_eq!(sdl.matches("@link").count(), 1, "{sdl}");
    }
}
