//! Registering types of the neutral type model (an upstream's, a typed schema's) on the
//! dynamic schema, under the names the hub serves them by. Their fields are here for validation
//! and introspection: results are forwarded or written by the execution, so the resolvers never
//! run.

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, InputObject, InputValue, Interface, InterfaceField, Object, Scalar, SchemaBuilder,
    TypeRef, Union,
};
use async_graphql::Value;
use subhub_upstream_ws::model::{ArgDef, Kind, TypeDef, TypeExpr};

/// How a type of the model is named in the hub's schema.
pub type Names<'a> = &'a dyn Fn(&str) -> String;

/// Registers one type.
pub fn register(builder: SchemaBuilder, def: &TypeDef, names: Names<'_>) -> SchemaBuilder {
    let name = names(&def.name);
    match def.kind {
        Kind::Object => {
            let mut object = Object::new(&name);
            if let Some(description) = &def.description {
                object = object.description(description);
            }
            for interface in &def.interfaces {
                object = object.implement(names(interface));
            }
            for field in &def.fields {
                let mut f = Field::new(&field.name, type_ref(names, &field.ty), |_| FieldFuture::from_value(None));
                if let Some(description) = &field.description {
                    f = f.description(description);
                }
                for arg in &field.args {
                    f = f.argument(input_value(names, arg));
                }
                object = object.field(f);
            }
            builder.register(object)
        }
        Kind::Interface => {
            let mut interface = Interface::new(&name);
            for parent in &def.interfaces {
                interface = interface.implement(names(parent));
            }
            for field in &def.fields {
                let mut f = InterfaceField::new(&field.name, type_ref(names, &field.ty));
                for arg in &field.args {
                    f = f.argument(input_value(names, arg));
                }
                interface = interface.field(f);
            }
            builder.register(interface)
        }
        Kind::Union => {
            let mut union = Union::new(&name);
            for member in &def.possible_types {
                union = union.possible_type(names(member));
            }
            builder.register(union)
        }
        Kind::Enum => builder.register(Enum::new(&name).items(def.enum_values.iter().map(String::as_str))),
        Kind::InputObject => {
            let mut input = InputObject::new(&name);
            for field in &def.input_fields {
                input = input.field(input_value(names, field));
            }
            builder.register(input)
        }
        Kind::Scalar => builder.register(Scalar::new(&name)),
    }
}

pub fn input_value(names: Names<'_>, arg: &ArgDef) -> InputValue {
    let value = InputValue::new(&arg.name, type_ref(names, &arg.ty));
    match arg.default.as_deref().and_then(literal) {
        Some(default) => value.default_value(default),
        None => value,
    }
}

pub fn type_ref(names: Names<'_>, ty: &TypeExpr) -> TypeRef {
    match ty {
        TypeExpr::Named(name) => TypeRef::Named(names(name).into()),
        TypeExpr::NonNull(inner) => TypeRef::NonNull(Box::new(type_ref(names, inner))),
        TypeExpr::List(inner) => TypeRef::List(Box::new(type_ref(names, inner))),
    }
}

/// A GraphQL literal (a default value) as a value.
fn literal(text: &str) -> Option<Value> {
    let document = async_graphql::parser::parse_query(format!("{{ f(a: {text}) }}")).ok()?;
    let async_graphql::parser::types::DocumentOperations::Single(operation) = document.operations else { return None };
    let selection = operation.node.selection_set.node.items.into_iter().next()?;
    let async_graphql::parser::types::Selection::Field(field) = selection.node else { return None };
    let (_, value) = field.node.arguments.into_iter().next()?;
    value.node.into_const()
}
