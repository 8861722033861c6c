//! A query plan in the gateway's own terms: what the executor runs, whatever planner made it.
//! The planner module turns its planner's output into these types once per distinct operation;
//! nothing else in the crate sees the planner's types.
//!
//! The shapes are those of Federation query plans: fetches at the root, entity fetches
//! *flattened* into the entities a path reaches, sequences and parallel groups, and conditions
//! on `@skip`/`@include` variables. [`Display`](std::fmt::Display) prints a plan the same way
//! every time, for the plan fixtures.

use std::fmt::{self, Display, Formatter, Write as _};
use std::sync::Arc;

/// A plan: nothing to fetch (an operation of `__typename` alone), or its root node. A
/// subscription's plan starts with the subscription it opens at a subgraph; `root` then holds
/// what completes each of its events.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub subscription: Option<Arc<Fetch>>,
    pub root: Option<Node>,
}

#[derive(Clone, Debug)]
pub enum Node {
    /// A request to one subgraph; with `path`, for the entities found along it.
    Fetch(Arc<Fetch>),
    /// Entity fetches of several paths to one subgraph, in one request.
    BatchFetch(Arc<BatchFetch>),
    Sequence(Vec<Node>),
    Parallel(Vec<Node>),
    /// Runs `then` when the boolean variable is true, `otherwise` when it is false.
    Condition {
        variable: String,
        then: Option<Box<Node>>,
        otherwise: Option<Box<Node>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

/// One request to a subgraph.
#[derive(Debug)]
pub struct Fetch {
    pub subgraph: String,
    pub kind: OperationKind,
    /// The operation sent, as text.
    pub operation: String,
    /// The client's variables it uses.
    pub variables: Vec<String>,
    /// Where in the response its entities are; empty for a root fetch.
    pub path: Vec<PathSegment>,
    /// For an entity fetch: what of each entity its representation holds.
    pub requires: Option<Vec<Selection>>,
    pub input_rewrites: Vec<Rewrite>,
    pub output_rewrites: Vec<Rewrite>,
}

/// Entity fetches of several kinds sent to one subgraph at once: each alias is an
/// `_entities` field with its own representations variable.
#[derive(Debug)]
pub struct BatchFetch {
    pub subgraph: String,
    pub operation: String,
    pub variables: Vec<String>,
    pub aliases: Vec<BatchAlias>,
}

#[derive(Debug)]
pub struct BatchAlias {
    /// The response key of this alias's `_entities` field.
    pub alias: String,
    /// The variable its representations are sent in.
    pub representations: String,
    /// Every path its entities are found at.
    pub paths: Vec<Vec<PathSegment>>,
    pub requires: Vec<Selection>,
    pub input_rewrites: Vec<Rewrite>,
    pub output_rewrites: Vec<Rewrite>,
}

/// A step along a flatten path through the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    /// The member of this response key.
    Field(String),
    /// Every item of a list.
    List,
    /// Only objects whose `__typename` is one of these.
    TypeCondition(Vec<String>),
}

/// What an entity's representation is made of (a planner's `requires`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    Field { response_key: String, name: String, selections: Vec<Selection> },
    Fragment { type_condition: String, selections: Vec<Selection> },
}

/// A change to a representation before it is sent, or to an entity the subgraph answered
/// before it is merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Sets the string at `path` (how `@interfaceObject` representations name the interface).
    SetValue { path: Vec<RewriteSegment>, value: String },
    /// Moves the member at `path` to the key `to` (aliases of `@requires` fields).
    RenameKey { path: Vec<RewriteSegment>, to: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteSegment {
    Key(String),
    /// Only objects whose `__typename` is one of these.
    TypenameIs(Vec<String>),
}

impl Plan {
    /// Every fetch of the plan, in the order it prints.
    pub fn fetch_count(&self) -> usize {
        fn count(node: &Node) -> usize {
            match node {
                Node::Fetch(_) | Node::BatchFetch(_) => 1,
                Node::Sequence(nodes) | Node::Parallel(nodes) => nodes.iter().map(count).sum(),
                Node::Condition { then, otherwise, .. } => {
                    then.as_deref().map_or(0, count) + otherwise.as_deref().map_or(0, count)
                }
            }
        }
        self.root.as_ref().map_or(0, count)
    }
}

pub fn path_text(path: &[PathSegment]) -> String {
    let mut text = String::new();
    for (i, segment) in path.iter().enumerate() {
        match segment {
            PathSegment::Field(key) => {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(key);
            }
            PathSegment::List => {
                if i > 0 {
                    text.push('.');
                }
                text.push('@');
            }
            PathSegment::TypeCondition(types) => {
                let _ = write!(text, "|[{}]", types.join("|"));
            }
        }
    }
    text
}

fn selections_text(selections: &[Selection], out: &mut String) {
    out.push('{');
    for (i, selection) in selections.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match selection {
            Selection::Field { response_key, name, selections } => {
                if response_key != name {
                    let _ = write!(out, "{response_key}: ");
                }
                out.push_str(name);
                if !selections.is_empty() {
                    out.push(' ');
                    selections_text(selections, out);
                }
            }
            Selection::Fragment { type_condition, selections } => {
                let _ = write!(out, "... on {type_condition} ");
                selections_text(selections, out);
            }
        }
    }
    out.push('}');
}

fn rewrites_text(label: &str, rewrites: &[Rewrite], indent: &str, f: &mut Formatter<'_>) -> fmt::Result {
    for rewrite in rewrites {
        let (path, what) = match rewrite {
            Rewrite::SetValue { path, value } => (path, format!("= {value:?}")),
            Rewrite::RenameKey { path, to } => (path, format!("-> {to}")),
        };
        let path: Vec<String> = path
            .iter()
            .map(|segment| match segment {
                RewriteSegment::Key(key) => key.clone(),
                RewriteSegment::TypenameIs(types) => format!("<{}>", types.join("|")),
            })
            .collect();
        writeln!(f, "{indent}{label} {} {what}", path.join("/"))?;
    }
    Ok(())
}

impl Node {
    fn print(&self, depth: usize, f: &mut Formatter<'_>) -> fmt::Result {
        let indent = "  ".repeat(depth);
        match self {
            Node::Fetch(fetch) => {
                let kind = match fetch.kind {
                    OperationKind::Query => "",
                    OperationKind::Mutation => " mutation",
                    OperationKind::Subscription => " subscription",
                };
                if fetch.path.is_empty() {
                    writeln!(f, "{indent}Fetch({}{kind})", fetch.subgraph)?;
                } else {
                    writeln!(f, "{indent}Fetch({}{kind}) at {}", fetch.subgraph, path_text(&fetch.path))?;
                }
                if let Some(requires) = &fetch.requires {
                    let mut text = String::new();
                    selections_text(requires, &mut text);
                    writeln!(f, "{indent}  requires {text}")?;
                }
                rewrites_text("input", &fetch.input_rewrites, &format!("{indent}  "), f)?;
                rewrites_text("output", &fetch.output_rewrites, &format!("{indent}  "), f)?;
                writeln!(f, "{indent}  {}", fetch.operation)
            }
            Node::BatchFetch(batch) => {
                writeln!(f, "{indent}BatchFetch({})", batch.subgraph)?;
                for alias in &batch.aliases {
                    let paths: Vec<String> = alias.paths.iter().map(|p| path_text(p)).collect();
                    let mut text = String::new();
                    selections_text(&alias.requires, &mut text);
                    writeln!(
                        f,
                        "{indent}  {} ${} at {} requires {text}",
                        alias.alias,
                        alias.representations,
                        paths.join(", ")
                    )?;
                    rewrites_text("input", &alias.input_rewrites, &format!("{indent}    "), f)?;
                    rewrites_text("output", &alias.output_rewrites, &format!("{indent}    "), f)?;
                }
                writeln!(f, "{indent}  {}", batch.operation)
            }
            Node::Sequence(nodes) | Node::Parallel(nodes) => {
                let name = if matches!(self, Node::Sequence(_)) { "Sequence" } else { "Parallel" };
                writeln!(f, "{indent}{name}")?;
                nodes.iter().try_for_each(|node| node.print(depth + 1, f))
            }
            Node::Condition { variable, then, otherwise } => {
                if let Some(then) = then {
                    writeln!(f, "{indent}If ${variable}")?;
                    then.print(depth + 1, f)?;
                }
                if let Some(otherwise) = otherwise {
                    writeln!(f, "{indent}Unless ${variable}")?;
                    otherwise.print(depth + 1, f)?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Plan {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(subscription) = &self.subscription {
            Node::Fetch(subscription.clone()).print(0, f)?;
            if self.root.is_some() {
                writeln!(f, "then for each event")?;
            }
        }
        match &self.root {
            None if self.subscription.is_none() => writeln!(f, "Nothing to fetch"),
            None => Ok(()),
            Some(node) => node.print(0, f),
        }
    }
}
