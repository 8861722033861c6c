//! GraphQL literals of the syntax tree as JSON.

use graphql_tools::parser::query::Value;
use serde_json::{Map, Number, Value as Json};

/// A literal with no variables in it (a default value); `None` when it names a variable.
pub fn const_to_json(value: &Value<'static, String>) -> Option<Json> {
    to_json(value, &|_| None)
}

/// A literal with its variables taken from `variable`; `None` when one is missing.
pub fn to_json(value: &Value<'static, String>, variable: &dyn Fn(&str) -> Option<Json>) -> Option<Json> {
    Some(match value {
        Value::Variable(name) => variable(name)?,
        Value::Int(number) => Json::Number(Number::from(number.as_i64()?)),
        Value::Float(float) => Json::Number(Number::from_f64(*float)?),
        Value::String(text) => Json::String(text.clone()),
        Value::Boolean(flag) => Json::Bool(*flag),
        Value::Null => Json::Null,
        Value::Enum(name) => Json::String(name.clone()),
        Value::List(items) => Json::Array(items.iter().map(|item| to_json(item, variable)).collect::<Option<_>>()?),
        Value::Object(fields) => {
            let mut map = Map::with_capacity(fields.len());
            for (name, value) in fields {
                map.insert(name.clone(), to_json(value, variable)?);
            }
            Json::Object(map)
        }
    })
}
