//! From the hub's names to the upstream's and back. A client operation is forwarded with the
//! namespace removed wherever it appears (root fields, type conditions of fragments and inline
//! fragments, variable types), by editing the client's own text at the parser's positions, so
//! aliases, variables, directives and formatting pass unchanged. Results come back with
//! `__typename` values mapped to the hub's names.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql_parser::Pos;
use serde_json::Value;
use subhub_protocol::OperationPayload;

use crate::model::is_builtin_scalar;

/// How one upstream's names appear in the hub's schema.
#[derive(Clone, Debug)]
pub struct Namespace {
    prefix: String,
    /// The upstream's names of the types the hub serves.
    types: HashSet<String>,
    /// The upstream's subscription root type.
    subscription: String,
}

impl Namespace {
    /// `namespace` is the configured prefix (`""` merges names as they are).
    pub fn new(namespace: &str, types: impl IntoIterator<Item = String>, subscription: &str) -> Self {
        let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}_") };
        Namespace { prefix, types: types.into_iter().collect(), subscription: subscription.to_owned() }
    }

    /// The hub's name of an upstream type or subscription field.
    pub fn hub_name(&self, upstream: &str) -> String {
        if is_builtin_scalar(upstream) || upstream.starts_with("__") {
            upstream.to_owned()
        } else {
            format!("{}{upstream}", self.prefix)
        }
    }

    /// The upstream's name of a hub type, if it is one of this upstream's.
    pub fn upstream_type<'a>(&self, hub: &'a str) -> Option<&'a str> {
        let name = hub.strip_prefix(self.prefix.as_str())?;
        self.types.contains(name).then_some(name)
    }

    fn hub_typename(&self, upstream: &str) -> String {
        if upstream == self.subscription {
            "Subscription".to_owned()
        } else {
            self.hub_name(upstream)
        }
    }
}

/// A client operation as it goes upstream.
#[derive(Clone, Debug)]
pub struct ForwardedOperation {
    pub operation: OperationPayload,
    /// Response keys that carry `__typename` (the name, or its aliases).
    typename_keys: HashSet<String>,
}

/// Rewrites `payload` for the upstream. `root_fields` maps the hub's names of this upstream's
/// subscription fields to the upstream's.
pub fn forward(
    namespace: &Namespace,
    root_fields: &HashMap<String, String>,
    payload: &OperationPayload,
) -> Result<ForwardedOperation, String> {
    let document: ExecutableDocument = async_graphql_parser::parse_query(&payload.query).map_err(|e| e.to_string())?;
    let mut rewriter = Rewriter { namespace, root_fields, edits: Vec::new(), typename_keys: HashSet::new() };
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    for operation in operations {
        for variable in &operation.node.variable_definitions {
            rewriter.variable_type(&payload.query, variable.node.var_type.pos);
        }
        let root = operation.node.ty == OperationType::Subscription;
        rewriter.selection_set(&operation.node.selection_set.node, root);
    }
    for fragment in document.fragments.values() {
        let condition = &fragment.node.type_condition.node.on;
        let root = condition.node.as_str() == "Subscription";
        rewriter.type_condition(condition.node.as_str(), condition.pos);
        rewriter.selection_set(&fragment.node.selection_set.node, root);
    }
    let query = apply(&payload.query, rewriter.edits)?;
    Ok(ForwardedOperation {
        operation: OperationPayload { query, ..payload.clone() },
        typename_keys: rewriter.typename_keys,
    })
}

struct Rewriter<'a> {
    namespace: &'a Namespace,
    root_fields: &'a HashMap<String, String>,
    /// (position, hub name, upstream name)
    edits: Vec<(Pos, String, String)>,
    typename_keys: HashSet<String>,
}

impl Rewriter<'_> {
    fn selection_set(&mut self, set: &SelectionSet, root: bool) {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    if name == "__typename" {
                        let key = field.alias.as_ref().map_or(name, |a| a.node.as_str());
                        self.typename_keys.insert(key.to_owned());
                    }
                    match self.root_fields.get(name).filter(|upstream| root && upstream.as_str() != name) {
                        // Without an alias the result would come back under the upstream's
                        // name: alias it to the hub's, as the client asked for it.
                        Some(upstream) if field.alias.is_none() => {
                            self.edits.push((field.name.pos, name.to_owned(), format!("{name}: {upstream}")));
                        }
                        Some(upstream) => self.edits.push((field.name.pos, name.to_owned(), upstream.clone())),
                        None => {}
                    }
                    self.selection_set(&field.selection_set.node, false);
                }
                Selection::InlineFragment(fragment) => {
                    let mut inner_root = root;
                    if let Some(condition) = &fragment.node.type_condition {
                        inner_root = root && condition.node.on.node.as_str() == "Subscription";
                        self.type_condition(condition.node.on.node.as_str(), condition.node.on.pos);
                    }
                    self.selection_set(&fragment.node.selection_set.node, inner_root);
                }
                // Fragment definitions are rewritten once, on their own.
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    fn type_condition(&mut self, hub: &str, pos: Pos) {
        let upstream = if hub == "Subscription" {
            Some(self.namespace.subscription.as_str())
        } else {
            self.namespace.upstream_type(hub)
        };
        if let Some(upstream) = upstream {
            if upstream != hub {
                self.edits.push((pos, hub.to_owned(), upstream.to_owned()));
            }
        }
    }

    /// A variable's type is `Name`, `[Name]`, `Name!`…: the name follows any `[`.
    fn variable_type(&mut self, text: &str, pos: Pos) {
        let Some(start) = offset(text, pos) else { return };
        let name: String = text[start..]
            .chars()
            .skip_while(|c| *c == '[' || c.is_whitespace())
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if let Some(upstream) = self.namespace.upstream_type(&name) {
            let skipped = text[start..].find(&name).unwrap_or(0);
            let column = pos.column + text[start..start + skipped].chars().count();
            self.edits.push((Pos { line: pos.line, column }, name.clone(), upstream.to_owned()));
        }
    }
}

/// The byte offset of a parser position (1-based line and character column).
fn offset(text: &str, pos: Pos) -> Option<usize> {
    let line_start = if pos.line <= 1 { 0 } else { text.match_indices('\n').nth(pos.line - 2).map(|(i, _)| i + 1)? };
    let line = &text[line_start..];
    let within = line.char_indices().nth(pos.column.saturating_sub(1)).map_or(line.len(), |(i, _)| i);
    Some(line_start + within)
}

fn apply(text: &str, edits: Vec<(Pos, String, String)>) -> Result<String, String> {
    let mut located = Vec::with_capacity(edits.len());
    for (pos, from, to) in edits {
        let at = offset(text, pos).ok_or("a position outside the document")?;
        if !text[at..].starts_with(&from) {
            return Err(format!("expected `{from}` at {}:{}", pos.line, pos.column));
        }
        located.push((at, from.len(), to));
    }
    located.sort_by_key(|edit| std::cmp::Reverse(edit.0));
    located.dedup_by_key(|edit| edit.0);
    let mut out = text.to_owned();
    for (at, len, to) in located {
        out.replace_range(at..at + len, &to);
    }
    Ok(out)
}

impl ForwardedOperation {
    /// Maps `__typename` values of an upstream result to the hub's names.
    pub fn map_result(&self, namespace: &Namespace, result: &mut Value) {
        if let Some(data) = result.get_mut("data") {
            self.map(namespace, data);
        }
    }

    fn map(&self, namespace: &Namespace, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    match value {
                        Value::String(name) if self.typename_keys.contains(key) => *name = namespace.hub_typename(name),
                        other => self.map(namespace, other),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.map(namespace, item)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn namespace() -> Namespace {
        Namespace::new("pricing", ["Tick".to_owned(), "Quote".to_owned(), "Filter".to_owned()], "Subscription")
    }

    fn roots() -> HashMap<String, String> {
        HashMap::from([("pricing_ticks".to_owned(), "ticks".to_owned())])
    }

    #[test]
    fn namespaces_are_removed_everywhere_they_appear() {
        let query = "subscription Watch($f: [pricing_Filter!]!, $n: Int) {\n  t: pricing_ticks(filter: $f, n: $n) {\n    ...Fields\n    ... on pricing_Quote { bid k: __typename }\n    __typename\n  }\n}\nfragment Fields on pricing_Tick { symbol price }";
        let payload = OperationPayload { query: query.into(), ..Default::default() };
        let forwarded = forward(&namespace(), &roots(), &payload).unwrap();
        assert_eq!(
            forwarded.operation.query,
            "subscription Watch($f: [Filter!]!, $n: Int) {\n  t: ticks(filter: $f, n: $n) {\n    ...Fields\n    ... on Quote { bid k: __typename }\n    __typename\n  }\n}\nfragment Fields on Tick { symbol price }"
        );
        let mut result = json!({"data": {"t": {"__typename": "Tick", "k": "Quote", "symbol": "Tick"}}});
        forwarded.map_result(&namespace(), &mut result);
        assert_eq!(
            result,
            json!({"data": {"t": {"__typename": "pricing_Tick", "k": "pricing_Quote", "symbol": "Tick"}}})
        );
    }

    #[test]
    fn unaliased_root_fields_keep_the_hub_s_response_key() {
        let payload =
            OperationPayload { query: "subscription { pricing_ticks { price } }".into(), ..Default::default() };
        let forwarded = forward(&namespace(), &roots(), &payload).unwrap();
        assert_eq!(forwarded.operation.query, "subscription { pricing_ticks: ticks { price } }");
    }

    #[test]
    fn merged_names_pass_unchanged() {
        let namespace = Namespace::new("", ["Tick".to_owned()], "Subscription");
        let roots = HashMap::from([("ticks".to_owned(), "ticks".to_owned())]);
        let payload =
            OperationPayload { query: "subscription { ticks { ... on Tick { price } } }".into(), ..Default::default() };
        assert_eq!(forward(&namespace, &roots, &payload).unwrap().operation.query, payload.query);
    }
}
