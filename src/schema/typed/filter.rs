//! `@filter(field: "total", gte: "{{ args.min }}")`: a condition on a payload field, rendered
//! once per operation and tested once per event per execution; an event that fails it is never
//! written, so it costs the subscribers nothing. Several filters on one field all hold.

use std::cmp::Ordering;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::execute::payload::RawObject;
use crate::template::{RenderError, Template};

/// The comparisons a filter makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Contains,
}

impl Op {
    pub const NAMES: [&'static str; 8] = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains"];

    pub fn named(name: &str) -> Option<Op> {
        Some(match name {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "in" => Op::In,
            "contains" => Op::Contains,
            _ => return None,
        })
    }
}

/// A filter as the schema declares it.
#[derive(Clone, Debug)]
pub struct FilterSpec {
    /// The payload field, as a path (`customer.country` is two steps).
    pub path: Vec<String>,
    pub op: Op,
    pub operand: Operand,
}

/// What a field is compared with: a value of the schema, possibly with templates in its strings.
#[derive(Clone, Debug)]
pub enum Operand {
    Value(Value),
    Template(Template),
    List(Vec<Operand>),
}

impl Operand {
    fn render(&self, args: &Map<String, Value>, claims: &Map<String, Value>) -> Result<Value, RenderError> {
        match self {
            Operand::Value(value) => Ok(value.clone()),
            Operand::Template(template) => template.render_value(args, claims),
            Operand::List(items) => {
                items.iter().map(|item| item.render(args, claims)).collect::<Result<Vec<_>, _>>().map(Value::Array)
            }
        }
    }
}

impl FilterSpec {
    /// The filter of one operation, its templates rendered.
    pub fn render(&self, args: &Map<String, Value>, claims: &Map<String, Value>) -> Result<Filter, RenderError> {
        Ok(Filter { path: self.path.clone(), op: self.op, value: self.operand.render(args, claims)? })
    }
}

/// A filter of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    path: Vec<String>,
    op: Op,
    value: Value,
}

impl Filter {
    /// Whether an event whose payload is `payload` passes. A field the payload lacks is `null`.
    pub fn passes(&self, payload: Option<&RawValue>) -> bool {
        let mut raw = payload;
        for step in &self.path {
            raw = raw.and_then(RawObject::parse).and_then(|object| object.get(step));
        }
        let field: Value = raw.and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null);
        match self.op {
            Op::Eq => same(&field, &self.value),
            Op::Ne => !same(&field, &self.value),
            Op::Gt => compare(&field, &self.value) == Some(Ordering::Greater),
            Op::Gte => matches!(compare(&field, &self.value), Some(Ordering::Greater | Ordering::Equal)),
            Op::Lt => compare(&field, &self.value) == Some(Ordering::Less),
            Op::Lte => matches!(compare(&field, &self.value), Some(Ordering::Less | Ordering::Equal)),
            Op::In => self.value.as_array().is_some_and(|items| items.iter().any(|item| same(&field, item))),
            Op::Contains => match (&field, &self.value) {
                (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
                (Value::Array(items), value) => items.iter().any(|item| same(item, value)),
                _ => false,
            },
        }
    }
}

/// JSON equality, numbers by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Numbers by value, strings by their text; other pairs do not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(path: &str, op: Op, value: Value) -> Filter {
        Filter { path: path.split('.').map(str::to_owned).collect(), op, value }
    }

    fn passes(filter: &Filter, payload: &str) -> bool {
        filter.passes(serde_json::from_str::<&RawValue>(payload).ok())
    }

    #[test]
    fn each_operator() {
        let order = r#"{"total": 120.5, "status": "paid", "tags": ["vip"], "customer": {"country": "FR"}}"#;
        assert!(passes(&filter("total", Op::Gte, json!(100)), order));
        assert!(!passes(&filter("total", Op::Lt, json!(100)), order));
        assert!(passes(&filter("total", Op::Eq, json!(120.5)), order));
        assert!(passes(&filter("status", Op::Ne, json!("open")), order));
        assert!(passes(&filter("status", Op::In, json!(["paid", "shipped"])), order));
        assert!(passes(&filter("status", Op::Contains, json!("ai")), order));
        assert!(passes(&filter("tags", Op::Contains, json!("vip")), order));
        assert!(passes(&filter("customer.country", Op::Eq, json!("FR")), order));
        assert!(passes(&filter("count", Op::Eq, json!(null)), order), "a missing field is null");
        assert!(!passes(&filter("total", Op::Gt, json!("100")), order), "a number and a string do not compare");
        assert!(!passes(&filter("total", Op::Gt, json!(1)), "\"not an object\""));
        assert!(passes(&filter("n", Op::Eq, json!(1)), r#"{"n": 1.0}"#));
    }
}
