//! The schema the hub serves with a supergraph: the supergraph's API schema and the hub's own
//! (its built-in, typed and upstream fields) as one document, which operations are validated
//! against and introspection answers from.
//!
//! The two share one namespace. A type both declare is a start error naming it, except a
//! scalar both declare (`JSON`); so is a root field both declare. The supergraph's
//! subscription fields are not served yet; the hub's own are.

use std::collections::HashSet;

use graphql_tools::parser::schema::{Definition, Document, ObjectType, SchemaDefinition, TypeDefinition};

pub type SchemaAst = Document<'static, String>;

/// `api` (the planner's API schema, with the introspection types and the built-in directives)
/// merged with `local`, the SDL of the hub's own schema.
pub fn merge(api: &SchemaAst, local: &str) -> Result<SchemaAst, String> {
    let local = graphql_tools::parser::parse_schema(local)
        .map_err(|e| format!("the hub's own schema does not parse: {e}"))?
        .into_static();
    let api_query = api.query_type_name().cloned().unwrap_or_else(|| "Query".into());
    let api_mutation = api.mutation_type_name().cloned();
    let api_subscription = api.subscription_type_name().cloned();
    let local_query = local.query_type_name().cloned().unwrap_or_else(|| "Query".into());
    let local_mutation = local.mutation_type_name().cloned();
    let local_subscription = local.subscription_type_name().cloned();

    let mut merged: Vec<Definition<'static, String>> = Vec::new();
    for definition in &api.definitions {
        match definition {
            Definition::SchemaDefinition(_) => {}
            Definition::TypeDefinition(ty) if Some(type_name(ty)) == api_subscription.as_ref() => {}
            other => merged.push(other.clone()),
        }
    }
    let mut names: HashSet<String> = merged.iter().filter_map(definition_name).collect();
    let mut mutation = api_mutation.clone();
    for definition in local.definitions {
        let Definition::TypeDefinition(ty) = definition else {
            if let Definition::DirectiveDefinition(directive) = &definition {
                if names.insert(format!("@{}", directive.name)) {
                    merged.push(definition);
                }
            }
            continue;
        };
        let name = type_name(&ty).clone();
        let root = if name == local_query {
            Some(api_query.clone())
        } else if Some(&name) == local_mutation.as_ref() {
            api_mutation.clone()
        } else {
            None
        };
        match (ty, root) {
            (TypeDefinition::Object(object), Some(root)) => add_root_fields(&mut merged, &root, object)?,
            (TypeDefinition::Object(object), None) if Some(&name) == local_mutation.as_ref() => {
                // The supergraph has no mutations: the hub's are the mutation root.
                mutation = Some(name.clone());
                names.insert(name);
                merged.push(Definition::TypeDefinition(TypeDefinition::Object(object)));
            }
            (ty, _) => {
                if names.contains(&name) {
                    if matches!(ty, TypeDefinition::Scalar(_)) && is_scalar(&merged, &name) {
                        continue;
                    }
                    return Err(format!(
                        "the type `{name}` is declared by the supergraph and by the hub's own schema; rename it in the subgraph that declares it"
                    ));
                }
                names.insert(name);
                merged.push(Definition::TypeDefinition(ty));
            }
        }
    }
    merged.insert(
        0,
        Definition::SchemaDefinition(SchemaDefinition {
            position: Default::default(),
            directives: Vec::new(),
            query: Some(api_query),
            mutation,
            subscription: local_subscription,
        }),
    );
    Ok(Document { definitions: merged })
}

fn add_root_fields(
    merged: &mut [Definition<'static, String>],
    root: &str,
    local: ObjectType<'static, String>,
) -> Result<(), String> {
    let Some(target) = merged.iter_mut().find_map(|definition| match definition {
        Definition::TypeDefinition(TypeDefinition::Object(object)) if object.name == root => Some(object),
        _ => None,
    }) else {
        return Ok(());
    };
    for field in local.fields {
        if target.fields.iter().any(|existing| existing.name == field.name) {
            return Err(format!(
                "the root field `{}` is served by the supergraph and by the hub's own schema; rename it in the subgraph that declares it",
                field.name
            ));
        }
        target.fields.push(field);
    }
    Ok(())
}

fn is_scalar(merged: &[Definition<'static, String>], name: &str) -> bool {
    merged.iter().any(|d| matches!(d, Definition::TypeDefinition(TypeDefinition::Scalar(s)) if s.name == name))
}

fn definition_name(definition: &Definition<'static, String>) -> Option<String> {
    match definition {
        Definition::TypeDefinition(ty) => Some(type_name(ty).clone()),
        Definition::DirectiveDefinition(directive) => Some(format!("@{}", directive.name)),
        _ => None,
    }
}

pub fn type_name<'a>(ty: &'a TypeDefinition<'static, String>) -> &'a String {
    match ty {
        TypeDefinition::Scalar(t) => &t.name,
        TypeDefinition::Object(t) => &t.name,
        TypeDefinition::Interface(t) => &t.name,
        TypeDefinition::Union(t) => &t.name,
        TypeDefinition::Enum(t) => &t.name,
        TypeDefinition::InputObject(t) => &t.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> SchemaAst {
        let sdl = "directive @skip(if: Boolean!) on FIELD type Query { products: [Product] __schema: __Schema! } type Product { id: ID } scalar JSON type __Schema { description: String }";
        graphql_tools::parser::parse_schema(sdl).unwrap().into_static()
    }

    #[test]
    fn the_hubs_fields_join_the_supergraphs_roots() {
        let local = "scalar JSON type BrokerInfo { name: String! } type Query { brokers: [BrokerInfo!]! } type Mutation { publish(topic: String!): Boolean }";
        let merged = merge(&api(), local).unwrap();
        let text = merged.to_string();
        assert!(text.contains("brokers: [BrokerInfo!]!"), "{text}");
        assert!(text.contains("products: [Product]"), "{text}");
        assert_eq!(merged.mutation_type_name().map(String::as_str), Some("Mutation"));
        assert_eq!(text.matches("scalar JSON").count(), 1, "{text}");
    }

    #[test]
    fn clashes_fail_naming_the_name() {
        let error = merge(&api(), "type Product { name: String } type Query { a: Int }").unwrap_err();
        assert!(error.contains("`Product`"), "{error}");
        let error = merge(&api(), "type Query { products: Int }").unwrap_err();
        assert!(error.contains("`products`"), "{error}");
    }
}
