//! Merging what a subgraph returned into the response being built, and the plan's rewrites.

use serde_json::{Map, Value as Json};

use crate::plan::{Rewrite, RewriteSegment};
use crate::schema::Schema;

/// Merges `source` into `target`: objects member by member, lists item by item; a null from
/// a subgraph never erases what another subgraph returned for the same object.
pub fn deep_merge(target: &mut Json, source: Json) {
    match (target, source) {
        (Json::Object(target), Json::Object(source)) => merge_objects(target, source),
        (Json::Array(target), Json::Array(source)) if target.len() == source.len() => {
            for (target, source) in target.iter_mut().zip(source) {
                deep_merge(target, source);
            }
        }
        (Json::Object(_), Json::Null) => {}
        (target, source) => *target = source,
    }
}

pub fn merge_objects(target: &mut Map<String, Json>, source: Map<String, Json>) {
    for (key, value) in source {
        match target.get_mut(&key) {
            Some(existing) => deep_merge(existing, value),
            None => {
                target.insert(key, value);
            }
        }
    }
}

/// Whether an object's `__typename` (absent: any) is one of `types`.
fn type_matches(schema: &Schema, object: &Map<String, Json>, types: &[String]) -> bool {
    match object.get("__typename").and_then(Json::as_str) {
        None => true,
        Some(name) => types.iter().any(|condition| schema.satisfies(name, condition)),
    }
}

/// Applies a rewrite to a value (a representation, or an entity a subgraph returned).
pub fn rewrite(schema: &Schema, rewrite: &Rewrite, value: &mut Json) {
    match rewrite {
        Rewrite::SetValue { path, value: to } => set_value(schema, path, to, value),
        Rewrite::RenameKey { path, to } => rename_key(schema, path, to, value),
    }
}

fn set_value(schema: &Schema, path: &[RewriteSegment], to: &str, value: &mut Json) {
    let Some((segment, rest)) = path.split_first() else {
        *value = Json::String(to.to_owned());
        return;
    };
    match value {
        Json::Array(items) => items.iter_mut().for_each(|item| set_value(schema, path, to, item)),
        Json::Object(object) => match segment {
            RewriteSegment::TypenameIs(types) => {
                if type_matches(schema, object, types) {
                    set_value(schema, rest, to, value);
                }
            }
            RewriteSegment::Key(key) => {
                if let Some(inner) = object.get_mut(key) {
                    set_value(schema, rest, to, inner);
                }
            }
        },
        _ => {}
    }
}

fn rename_key(schema: &Schema, path: &[RewriteSegment], to: &str, value: &mut Json) {
    let Some((segment, rest)) = path.split_first() else { return };
    match value {
        Json::Array(items) => items.iter_mut().for_each(|item| rename_key(schema, path, to, item)),
        Json::Object(object) => match segment {
            RewriteSegment::TypenameIs(types) => {
                if type_matches(schema, object, types) {
                    rename_key(schema, rest, to, value);
                }
            }
            RewriteSegment::Key(key) if rest.is_empty() => {
                if key != to {
                    if let Some(moved) = object.shift_remove(key) {
                        object.insert(to.to_owned(), moved);
                    }
                }
            }
            RewriteSegment::Key(key) => {
                if let Some(inner) = object.get_mut(key) {
                    rename_key(schema, rest, to, inner);
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_objects_and_lists_member_by_member() {
        let mut target = json!({"a": {"x": 1}, "l": [{"id": 1}, {"id": 2}], "n": {"k": 1}});
        deep_merge(&mut target, json!({"a": {"y": 2}, "l": [{"v": "a"}, {"v": "b"}], "n": null, "new": true}));
        assert_eq!(
            target,
            json!({"a": {"x": 1, "y": 2}, "l": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "n": {"k": 1}, "new": true})
        );
    }

    #[test]
    fn rewrites_follow_type_conditions() {
        let schema = Schema::default();
        let mut value = json!([{"__typename": "A", "k": 1}, {"__typename": "B", "k": 2}]);
        let set = Rewrite::SetValue {
            path: vec![RewriteSegment::TypenameIs(vec!["A".into()]), RewriteSegment::Key("__typename".into())],
            value: "I".into(),
        };
        rewrite(&schema, &set, &mut value);
        let rename = Rewrite::RenameKey { path: vec![RewriteSegment::Key("k".into())], to: "key".into() };
        rewrite(&schema, &rename, &mut value);
        assert_eq!(value, json!([{"__typename": "I", "key": 1}, {"__typename": "B", "key": 2}]));
    }
}
