//! The entities a flatten path reaches in the response being built, their representations,
//! and where each answer goes back.
//!
//! The objects are found twice with the same walk: once to read their representations before
//! the request, once to merge the answers after it. Merges between the two only add members,
//! never items, so both walks visit the same objects in the same order.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::errors::PathElement;
use crate::plan::{PathSegment, Selection};
use crate::schema::Schema;

/// Every object `path` reaches in `value`, with its path in the client's response.
pub fn find<'d>(
    schema: &Schema,
    value: &'d Json,
    path: &[PathSegment],
    at: &mut Vec<PathElement>,
    found: &mut Vec<(Vec<PathElement>, &'d Map<String, Json>)>,
) {
    match (value, path.split_first()) {
        (Json::Array(items), _) if !matches!(path.first(), Some(PathSegment::List)) => {
            // A list the path does not step into explicitly is walked item by item.
            for (i, item) in items.iter().enumerate() {
                at.push(PathElement::Index(i));
                find(schema, item, path, at, found);
                at.pop();
            }
        }
        (Json::Object(object), None) => found.push((at.clone(), object)),
        (_, None) => {}
        (Json::Array(items), Some((PathSegment::List, rest))) => {
            for (i, item) in items.iter().enumerate() {
                at.push(PathElement::Index(i));
                find(schema, item, rest, at, found);
                at.pop();
            }
        }
        (Json::Object(object), Some((PathSegment::Field(key), rest))) => {
            if let Some(inner) = object.get(key) {
                at.push(PathElement::Key(key.clone()));
                find(schema, inner, rest, at, found);
                at.pop();
            }
        }
        (Json::Object(object), Some((PathSegment::TypeCondition(types), rest))) if satisfies(schema, object, types) => {
            find(schema, value, rest, at, found);
        }
        _ => {}
    }
}

/// The same walk as [`find`], over mutable objects, in the same order.
pub fn visit_mut(
    schema: &Schema,
    value: &mut Json,
    path: &[PathSegment],
    visit: &mut dyn FnMut(&mut Map<String, Json>),
) {
    let steps_into_list = matches!(path.first(), Some(PathSegment::List));
    match value {
        Json::Array(items) if !steps_into_list => {
            items.iter_mut().for_each(|item| visit_mut(schema, item, path, visit));
        }
        Json::Array(items) => items.iter_mut().for_each(|item| visit_mut(schema, item, &path[1..], visit)),
        Json::Object(object) => match path.split_first() {
            None => visit(object),
            Some((PathSegment::Field(key), rest)) => {
                if let Some(inner) = object.get_mut(key) {
                    visit_mut(schema, inner, rest, visit);
                }
            }
            Some((PathSegment::TypeCondition(types), rest)) => {
                if satisfies(schema, object, types) {
                    visit_mut(schema, value, rest, visit);
                }
            }
            Some((PathSegment::List, _)) => {}
        },
        _ => {}
    }
}

fn satisfies(schema: &Schema, object: &Map<String, Json>, types: &[String]) -> bool {
    // An object without `__typename` is of the field's own type, which the planner matched.
    let Some(name) = object.get("__typename").and_then(Json::as_str) else { return true };
    types.iter().any(|condition| schema.satisfies(name, condition))
}

/// An entity's representation: what `requires` selects of it, `__typename` first. `None`
/// when it holds nothing to resolve it by.
pub fn representation(schema: &Schema, requires: &[Selection], entity: &Map<String, Json>) -> Option<Json> {
    let type_name = entity.get("__typename").and_then(Json::as_str);
    let mut out = Map::new();
    if let Some(name) = type_name {
        out.insert("__typename".to_owned(), Json::String(name.to_owned()));
    }
    project(schema, requires, entity, type_name, &mut out);
    let only_typename = requires.len() == 1
        && matches!(&requires[0], Selection::Field { response_key, .. } if response_key == "__typename");
    if out.len() <= usize::from(type_name.is_some()) && !only_typename {
        return None;
    }
    Some(Json::Object(out))
}

fn project(
    schema: &Schema,
    selections: &[Selection],
    object: &Map<String, Json>,
    type_name: Option<&str>,
    out: &mut Map<String, Json>,
) {
    for selection in selections {
        match selection {
            Selection::Fragment { type_condition, selections } => {
                if type_name.is_none_or(|name| schema.satisfies(name, type_condition)) {
                    project(schema, selections, object, type_name, out);
                }
            }
            Selection::Field { response_key, name, selections } => {
                if response_key == "__typename" {
                    if let Some(type_name) = type_name {
                        out.insert(response_key.clone(), Json::String(type_name.to_owned()));
                    }
                    continue;
                }
                let Some(value) = object.get(name).or_else(|| object.get(response_key)) else { continue };
                out.insert(response_key.clone(), project_value(schema, selections, value));
            }
        }
    }
}

fn project_value(schema: &Schema, selections: &[Selection], value: &Json) -> Json {
    match value {
        Json::Object(object) if !selections.is_empty() => {
            let type_name = object.get("__typename").and_then(Json::as_str);
            let mut out = Map::new();
            if let Some(name) = type_name {
                out.insert("__typename".to_owned(), Json::String(name.to_owned()));
            }
            project(schema, selections, object, type_name, &mut out);
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(|item| project_value(schema, selections, item)).collect()),
        other => other.clone(),
    }
}

/// The representations of a fetch, each sent once however many entities share it.
#[derive(Default)]
pub struct Representations {
    pub list: Vec<Json>,
    index: HashMap<String, usize>,
    /// For each entity found, in walk order: the representation it is answered by.
    pub of_entity: Vec<Option<usize>>,
    /// For each representation: the client path of the first entity it stands for.
    pub paths: Vec<Vec<PathElement>>,
}

impl Representations {
    pub fn add(&mut self, representation: Option<Json>, path: Vec<PathElement>) {
        let Some(representation) = representation else {
            self.of_entity.push(None);
            return;
        };
        let text = representation.to_string();
        let index = match self.index.get(&text) {
            Some(index) => *index,
            None => {
                let index = self.list.len();
                self.index.insert(text, index);
                self.list.push(representation);
                self.paths.push(path);
                index
            }
        };
        self.of_entity.push(Some(index));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        let sdl = "type Query { a: Int } interface Product { id: ID } type Book implements Product { id: ID } type Car { id: ID }";
        Schema::from_document(&graphql_tools::parser::parse_schema(sdl).unwrap().into_static())
    }

    #[test]
    fn paths_reach_entities_through_lists_and_type_conditions() {
        let data = json!({"products": [{"__typename": "Book", "id": "1"}, null, {"__typename": "Car", "id": "2"}, {"__typename": "Book", "id": "1"}]});
        let path = [
            PathSegment::Field("products".into()),
            PathSegment::List,
            PathSegment::TypeCondition(vec!["Product".into()]),
        ];
        let mut found = Vec::new();
        find(&schema(), &data, &path, &mut Vec::new(), &mut found);
        let paths: Vec<_> = found.iter().map(|(path, _)| serde_json::to_value(path).unwrap()).collect();
        assert_eq!(paths, vec![json!(["products", 0]), json!(["products", 3])]);

        let requires = vec![Selection::Fragment {
            type_condition: "Book".into(),
            selections: vec![
                Selection::Field { response_key: "__typename".into(), name: "__typename".into(), selections: vec![] },
                Selection::Field { response_key: "id".into(), name: "id".into(), selections: vec![] },
            ],
        }];
        let mut representations = Representations::default();
        for (path, entity) in found {
            representations.add(representation(&schema(), &requires, entity), path);
        }
        assert_eq!(representations.list, vec![json!({"__typename": "Book", "id": "1"})]);
        assert_eq!(representations.of_entity, vec![Some(0), Some(0)]);
    }
}
