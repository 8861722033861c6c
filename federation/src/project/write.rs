//! Writing the client's `data` from the merged subgraph data through a [`Projection`], straight
//! into the response bytes. A null where the schema allows none makes the nearest nullable
//! parent null (the spec's null propagation): what was written of the parent is cut back and
//! `null` written in its place.

use serde_json::{Map, Value as Json};

use super::{FieldKind, ObjectPlan, Projection, ValuePlan};
use crate::execute::errors::{GraphqlError, PathElement};

/// The value at this position is null, and the position allows none.
struct Null;

pub struct Writer<'a> {
    out: Vec<u8>,
    path: Vec<PathElement>,
    errors: &'a mut Vec<GraphqlError>,
}

/// Writes `data` (the merged root object) through `projection`; the root fields the hub
/// resolved itself are read from `local`. Errors the writing finds (an enum value the schema
/// does not have) are added to `errors`.
pub fn data(
    projection: &Projection,
    data: &Map<String, Json>,
    local: &Map<String, Json>,
    errors: &mut Vec<GraphqlError>,
) -> Vec<u8> {
    let mut writer = Writer { out: Vec::with_capacity(1024), path: Vec::new(), errors };
    let root = &projection.root;
    if writer.object(root, data, &root.type_name, Some(local)).is_err() {
        writer.out.clear();
        writer.out.extend_from_slice(b"null");
    }
    writer.out
}

impl Writer<'_> {
    fn object(
        &mut self,
        plan: &ObjectPlan,
        value: &Map<String, Json>,
        type_name: &str,
        local: Option<&Map<String, Json>>,
    ) -> Result<(), Null> {
        self.out.push(b'{');
        for (i, field) in plan.fields.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(field.key_json.as_bytes());
            match &field.kind {
                FieldKind::Typename => self.json(&Json::String(type_name.to_owned())),
                FieldKind::Local => match local.and_then(|local| local.get(&field.response_key)) {
                    Some(value) => self.json(value),
                    None => self.out.extend_from_slice(b"null"),
                },
                FieldKind::Value(value_plan) => {
                    self.path.push(PathElement::Key(field.response_key.clone()));
                    let start = self.out.len();
                    let written = self.value(value_plan, value.get(&field.response_key));
                    self.path.pop();
                    if written.is_err() {
                        self.out.truncate(start);
                        self.out.extend_from_slice(b"null");
                        if field.non_null {
                            return Err(Null);
                        }
                    }
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Writes a value; `Err` when it is null (nothing written then).
    fn value(&mut self, plan: &ValuePlan, value: Option<&Json>) -> Result<(), Null> {
        let value = match value {
            None | Some(Json::Null) => return Err(Null),
            Some(value) => value,
        };
        match plan {
            ValuePlan::Scalar => self.json(value),
            ValuePlan::Enum(values) => match value.as_str() {
                Some(name) if values.contains(name) => self.json(value),
                _ => {
                    let message = format!("the value {value} is not a value of this field's enum");
                    self.errors.push(GraphqlError::at(message, self.path.clone()));
                    return Err(Null);
                }
            },
            ValuePlan::Object(object) => {
                let Json::Object(map) = value else { return Err(Null) };
                return self.object(object, map, &object.type_name, None);
            }
            ValuePlan::Abstract { by_type, untyped } => {
                let Json::Object(map) = value else { return Err(Null) };
                return match map.get("__typename").and_then(Json::as_str) {
                    Some(type_name) => match by_type.get(type_name) {
                        Some(object) => self.object(object, map, type_name, None),
                        // An `@interfaceObject` subgraph names the interface itself.
                        None if type_name == untyped.type_name => self.object(untyped, map, type_name, None),
                        None => Err(Null),
                    },
                    None => self.object(untyped, map, &untyped.type_name, None),
                };
            }
            ValuePlan::List { item, item_non_null } => {
                let Json::Array(items) = value else { return Err(Null) };
                self.out.push(b'[');
                for (i, element) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(PathElement::Index(i));
                    let start = self.out.len();
                    let written = self.value(item, Some(element));
                    self.path.pop();
                    if written.is_err() {
                        self.out.truncate(start);
                        self.out.extend_from_slice(b"null");
                        if *item_non_null {
                            return Err(Null);
                        }
                    }
                }
                self.out.push(b']');
            }
        }
        Ok(())
    }

    fn json(&mut self, value: &Json) {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, value);
    }
}
