//! The request's variables coerced to the operation's definitions (the spec's
//! CoerceVariableValues): defaults filled in, required ones present, every value of its type.
//! Subgraphs receive only coerced values.

use graphql_tools::parser::query::VariableDefinition;
use serde_json::{Map, Value as Json};

use crate::schema::{Schema, TypeDef, TypeRef};
use crate::values::const_to_json;

/// One variable of an operation.
#[derive(Debug)]
pub struct Variable {
    pub name: String,
    pub ty: TypeRef,
    pub default: Option<Json>,
}

impl Variable {
    pub fn from_ast(definition: &VariableDefinition<'static, String>) -> Variable {
        Variable {
            name: definition.name.clone(),
            ty: TypeRef::from_ast(&definition.var_type),
            default: definition.default_value.as_ref().and_then(const_to_json),
        }
    }
}

/// The variables to run with, or the messages of the request errors.
pub fn coerce(
    defined: &[Variable],
    given: Option<&Map<String, Json>>,
    schema: &Schema,
) -> Result<Map<String, Json>, Vec<String>> {
    let mut coerced = Map::with_capacity(defined.len());
    let mut errors = Vec::new();
    for variable in defined {
        let name = &variable.name;
        match (given.and_then(|g| g.get(name)), &variable.default) {
            (None, Some(default)) => {
                coerced.insert(name.clone(), default.clone());
            }
            (None, None) => {
                if matches!(variable.ty, TypeRef::NonNull(_)) {
                    errors.push(format!("Variable \"${name}\" of required type \"{}\" was not provided.", variable.ty));
                }
            }
            (Some(value), _) => match input(schema, &variable.ty, value) {
                Ok(value) => {
                    coerced.insert(name.clone(), value);
                }
                Err(reason) => errors.push(format!("Variable \"${name}\" got invalid value: {reason}")),
            },
        }
    }
    if errors.is_empty() {
        Ok(coerced)
    } else {
        Err(errors)
    }
}

/// A JSON input value of type `ty`, coerced.
fn input(schema: &Schema, ty: &TypeRef, value: &Json) -> Result<Json, String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err(format!("a null where \"{ty}\" is expected"));
            }
            input(schema, inner, value)
        }
        _ if value.is_null() => Ok(Json::Null),
        TypeRef::List(item) => match value {
            Json::Array(items) => {
                items.iter().map(|v| input(schema, item, v)).collect::<Result<_, _>>().map(Json::Array)
            }
            // A single value where a list is expected is a list of one.
            single => Ok(Json::Array(vec![input(schema, item, single)?])),
        },
        TypeRef::Named(name) => named(schema, name, value),
    }
}

fn named(schema: &Schema, name: &str, value: &Json) -> Result<Json, String> {
    let fits = match name {
        "Int" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Float" => value.is_number(),
        "String" => value.is_string(),
        "Boolean" => value.is_boolean(),
        "ID" => value.is_string() || value.is_i64() || value.is_u64(),
        _ => match schema.get(name) {
            Some(TypeDef::Enum { values }) => value.as_str().is_some_and(|v| values.contains(v)),
            Some(TypeDef::InputObject { fields }) => {
                let Json::Object(given) = value else { return Err(format!("\"{name}\" expects an object")) };
                if let Some(unknown) = given.keys().find(|key| !fields.iter().any(|f| &f.name == *key)) {
                    return Err(format!("\"{unknown}\" is not a field of \"{name}\""));
                }
                let mut coerced = Map::with_capacity(fields.len());
                for field in fields {
                    match (given.get(&field.name), &field.default) {
                        (Some(value), _) => {
                            coerced.insert(field.name.clone(), input(schema, &field.ty, value)?);
                        }
                        (None, Some(default)) => {
                            coerced.insert(field.name.clone(), default.clone());
                        }
                        (None, None) if matches!(field.ty, TypeRef::NonNull(_)) => {
                            return Err(format!("the field \"{}\" of \"{name}\" is required", field.name));
                        }
                        (None, None) => {}
                    }
                }
                return Ok(Json::Object(coerced));
            }
            // Custom scalars (and the hub's own input types) are passed on as given.
            _ => true,
        },
    };
    if fits {
        Ok(value.clone())
    } else {
        Err(format!("{value} is not a valid \"{name}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        let sdl = "type Query { a: Int } enum Color { RED GREEN } input Filter { first: Int! offset: Int = 0 }";
        Schema::from_document(&graphql_tools::parser::parse_schema(sdl).unwrap().into_static())
    }

    fn variables(definitions: &str) -> Vec<Variable> {
        let text = format!("query Q{definitions} {{ a }}");
        let document = graphql_tools::parser::parse_query(&text).unwrap().into_static();
        let graphql_tools::parser::query::Definition::Operation(
            graphql_tools::parser::query::OperationDefinition::Query(query),
        ) = &document.definitions[0]
        else {
            panic!("a query")
        };
        query.variable_definitions.iter().map(Variable::from_ast).collect()
    }

    #[test]
    fn defaults_and_required() {
        let defined = variables("($a: Int = 3, $b: String!, $c: Boolean)");
        let errors = coerce(&defined, None, &schema()).unwrap_err();
        assert_eq!(errors, vec!["Variable \"$b\" of required type \"String!\" was not provided."]);
        let given = json!({"b": "x"});
        let coerced = coerce(&defined, given.as_object(), &schema()).unwrap();
        assert_eq!(Json::Object(coerced), json!({"a": 3, "b": "x"}));
    }

    #[test]
    fn values_are_checked_against_their_types() {
        let defined = variables("($n: Int, $c: Color, $f: Filter, $l: [Int!])");
        let ok = json!({"n": 2, "c": "RED", "f": {"first": 1}, "l": 5});
        let coerced = coerce(&defined, ok.as_object(), &schema()).unwrap();
        assert_eq!(Json::Object(coerced), json!({"n": 2, "c": "RED", "f": {"first": 1, "offset": 0}, "l": [5]}));
        for bad in [
            json!({"n": "2"}),
            json!({"n": 3_000_000_000u64}),
            json!({"c": "BLUE"}),
            json!({"f": {"offset": 1}}),
            json!({"f": {"first": 1, "x": 1}}),
            json!({"l": [null]}),
        ] {
            assert!(coerce(&defined, bad.as_object(), &schema()).is_err(), "{bad}");
        }
    }
}
