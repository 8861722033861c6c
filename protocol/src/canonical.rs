//! JSON written canonically: every object's keys sorted, so equal values write equal text
//! whatever order their keys came in. Keys that decide sharing (an operation's variables, a
//! client's claims, forwarded credentials) are computed with it, never from a map's order.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as JSON with every object's keys sorted, so equal values write equal text.
pub fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(k.clone()));
                write(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// [`write`] into a new string.
pub fn text(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_matter_at_any_depth() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "\u0041"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": "A", "b": [1, {"x": 1, "y": 2}]}"#).unwrap();
        assert_eq!(text(&a), text(&b));
        assert_eq!(text(&a), r#"{"a":"A","b":[1,{"x":1,"y":2}]}"#);
    }
}
