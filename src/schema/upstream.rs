//! An upstream's subscription fields and the types they reach, registered under the upstream's
//! namespace. They are here for validation and introspection: operations on them are forwarded
//! upstream and their results passed through, so their resolvers never run.

use std::collections::BTreeMap;

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, InputObject, InputValue, Interface, InterfaceField, Object, Scalar, SchemaBuilder,
    Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef, Union,
};
use async_graphql::{Error, Value};
use subhub_upstream_ws::model::{ArgDef, FieldDef, Kind, TypeExpr};
use subhub_upstream_ws::Namespace;

use crate::upstreams::UpstreamEntry;

/// The error an upstream field's resolver returns: reaching it proves the operation valid.
pub const FORWARD: &str = "subhub: forwarded upstream";

/// Registers `entry`'s types; adds its subscription fields to `subscription`. `taken` holds every
/// name registered so far and who took it; a clash fails naming both.
pub fn register(
    mut builder: SchemaBuilder,
    mut subscription: Subscription,
    entry: &UpstreamEntry,
    taken: &mut BTreeMap<String, String>,
) -> Result<(SchemaBuilder, Subscription), String> {
    let namespace = &entry.namespace;
    let owner = format!("upstream `{}`", entry.name);
    let mut claim = |name: String, what: &str| match taken.get(&name) {
        Some(other) => Err(format!("{what} `{name}` of {owner} clashes with {other}; give the upstream a namespace")),
        None => {
            taken.insert(name, format!("{what} of {owner}"));
            Ok(())
        }
    };
    for def in entry.model.reachable() {
        let name = namespace.hub_name(&def.name);
        claim(name.clone(), "type")?;
        builder = match def.kind {
            Kind::Object => {
                let mut object = Object::new(&name);
                for interface in &def.interfaces {
                    object = object.implement(namespace.hub_name(interface));
                }
                for field in &def.fields {
                    object = object.field(with_args(
                        Field::new(&field.name, type_ref(namespace, &field.ty), |_| FieldFuture::from_value(None)),
                        namespace,
                        field,
                    ));
                }
                builder.register(object)
            }
            Kind::Interface => {
                let mut interface = Interface::new(&name);
                for parent in &def.interfaces {
                    interface = interface.implement(namespace.hub_name(parent));
                }
                for field in &def.fields {
                    let mut f = InterfaceField::new(&field.name, type_ref(namespace, &field.ty));
                    for arg in &field.args {
                        f = f.argument(input_value(namespace, arg));
                    }
                    interface = interface.field(f);
                }
                builder.register(interface)
            }
            Kind::Union => {
                let mut union = Union::new(&name);
                for member in &def.possible_types {
                    union = union.possible_type(namespace.hub_name(member));
                }
                builder.register(union)
            }
            Kind::Enum => builder.register(Enum::new(&name).items(def.enum_values.iter().map(String::as_str))),
            Kind::InputObject => {
                let mut input = InputObject::new(&name);
                for field in &def.input_fields {
                    input = input.field(input_value(namespace, field));
                }
                builder.register(input)
            }
            Kind::Scalar => builder.register(Scalar::new(&name)),
        };
    }
    for field in entry.model.subscription_fields() {
        let name = namespace.hub_name(&field.name);
        claim(name.clone(), "subscription field")?;
        let mut forwarded = SubscriptionField::new(&name, type_ref(namespace, &field.ty), |_| {
            SubscriptionFieldFuture::new(async {
                Err::<futures_util::stream::Empty<Result<Value, Error>>, _>(Error::new(FORWARD))
            })
        });
        if let Some(description) = &field.description {
            forwarded = forwarded.description(description);
        }
        for arg in &field.args {
            forwarded = forwarded.argument(input_value(namespace, arg));
        }
        subscription = subscription.field(forwarded);
    }
    Ok((builder, subscription))
}

fn with_args(mut field: Field, namespace: &Namespace, def: &FieldDef) -> Field {
    for arg in &def.args {
        field = field.argument(input_value(namespace, arg));
    }
    field
}

fn input_value(namespace: &Namespace, arg: &ArgDef) -> InputValue {
    let value = InputValue::new(&arg.name, type_ref(namespace, &arg.ty));
    match arg.default.as_deref().and_then(literal) {
        Some(default) => value.default_value(default),
        None => value,
    }
}

fn type_ref(namespace: &Namespace, ty: &TypeExpr) -> TypeRef {
    match ty {
        TypeExpr::Named(name) => TypeRef::Named(namespace.hub_name(name).into()),
        TypeExpr::NonNull(inner) => TypeRef::NonNull(Box::new(type_ref(namespace, inner))),
        TypeExpr::List(inner) => TypeRef::List(Box::new(type_ref(namespace, inner))),
    }
}

/// A GraphQL literal (an introspected default value) as a value.
fn literal(text: &str) -> Option<Value> {
    let document = async_graphql::parser::parse_query(format!("{{ f(a: {text}) }}")).ok()?;
    let async_graphql::parser::types::DocumentOperations::Single(operation) = document.operations else { return None };
    let selection = operation.node.selection_set.node.items.into_iter().next()?;
    let async_graphql::parser::types::Selection::Field(field) = selection.node else { return None };
    let (_, value) = field.node.arguments.into_iter().next()?;
    value.node.into_const()
}
