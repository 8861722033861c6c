//! Running a plan: its fetches in the order and parallelism the plan gives, each entity fetch
//! one request for all the entities its path reaches (their representations sent once each),
//! every answer merged into the response being built, subgraph errors kept with their paths
//! moved to the client's.
//!
//! Concurrency stays on the request's own task: a parallel group's children are futures
//! polled together, and the response being built is locked only between awaits.
//!
//! ## Layout
//! - this file: the plan's nodes, root fetches, and the requests.
//! - [`entities`]: the entities a path reaches, their representations.
//! - [`merge`]: answers merged into the response, the plan's rewrites.
//! - [`errors`]: GraphQL errors and their paths.

pub mod entities;
pub mod errors;
pub mod merge;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::plan::{BatchFetch, Fetch, Node, OperationKind, PathSegment, Rewrite, Selection};
use crate::schema::Schema;
use crate::subgraph::{Outgoing, Subgraph, SubgraphError, Subgraphs};
use entities::Representations;
use errors::{path_as_is, GraphqlError, PathElement};

/// What every fetch of one execution shares.
pub struct Context<'a> {
    /// The supergraph's types (for the type conditions of paths and rewrites).
    pub schema: &'a Schema,
    pub subgraphs: &'a Subgraphs,
    /// The operation's coerced variables.
    pub variables: &'a Map<String, Json>,
    pub outgoing: &'a Outgoing,
    /// Identical in-flight requests may be shared (queries; never mutations).
    pub share: bool,
}

/// The response being built.
#[derive(Debug, Default)]
pub struct State {
    pub data: Map<String, Json>,
    pub errors: Vec<GraphqlError>,
}

/// Runs `root` (a plan's root node, or the nodes left of one) over `data`: a query's empty
/// root object, or an event a subscription received, whose entities the plan completes.
pub async fn run(context: &Context<'_>, root: Option<&Node>, data: Map<String, Json>) -> State {
    let execution = Execution { context, state: Mutex::new(State { data, errors: Vec::new() }) };
    if let Some(node) = root {
        execution.node(node).await;
    }
    execution.state.into_inner().unwrap_or_else(PoisonError::into_inner)
}

struct Execution<'c, 'a> {
    context: &'c Context<'a>,
    state: Mutex<State>,
}

/// A subgraph's GraphQL response.
#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    data: Option<Json>,
    #[serde(default)]
    errors: Option<Vec<Json>>,
}

impl Execution<'_, '_> {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn node(&self, node: &Node) {
        match node {
            Node::Sequence(nodes) => {
                for node in nodes {
                    Box::pin(self.node(node)).await;
                }
            }
            Node::Parallel(nodes) => {
                join_all(nodes.iter().map(|node| Box::pin(self.node(node)))).await;
            }
            Node::Condition { variable, then, otherwise } => {
                let value = self.context.variables.get(variable).and_then(Json::as_bool).unwrap_or(false);
                let branch = if value { then } else { otherwise };
                if let Some(node) = branch {
                    Box::pin(self.node(node)).await;
                }
            }
            Node::Fetch(fetch) => match &fetch.requires {
                Some(requires) => self.entity_fetch(fetch, requires).await,
                None => self.root_fetch(fetch).await,
            },
            Node::BatchFetch(batch) => self.batch_fetch(batch).await,
        }
    }

    /// A fetch of root fields: merged at the root, or (a plan that re-enters a root type
    /// deeper in the response) into every object its path reaches.
    async fn root_fetch(&self, fetch: &Fetch) {
        let Some(subgraph) = self.subgraph(&fetch.subgraph) else { return };
        let body = self.body(&fetch.operation, &fetch.variables, Vec::new());
        let share = self.context.share && fetch.kind == OperationKind::Query;
        let Some(response) = self.send(subgraph, body, share, &[]).await else { return };
        let mut state = self.state();
        let State { data, errors } = &mut *state;
        errors.extend(response.errors.iter().flatten().map(|e| GraphqlError::from_subgraph(e, &path_as_is)));
        let Some(mut fields) = response.data.filter(Json::is_object) else { return };
        for rewrite in &fetch.output_rewrites {
            merge::rewrite(self.context.schema, rewrite, &mut fields);
        }
        let Json::Object(fields) = fields else { return };
        if fetch.path.is_empty() {
            merge::merge_objects(data, fields);
        } else {
            let mut root = Json::Object(std::mem::take(data));
            entities::visit_mut(self.context.schema, &mut root, &fetch.path, &mut |object| {
                merge::merge_objects(object, fields.clone());
            });
            if let Json::Object(root) = root {
                *data = root;
            }
        }
    }

    async fn entity_fetch(&self, fetch: &Fetch, requires: &[Selection]) {
        let Some(subgraph) = self.subgraph(&fetch.subgraph) else { return };
        let mut representations = self.representations(&fetch.path, requires, &fetch.input_rewrites);
        if representations.is_empty() {
            return;
        }
        let reps = Json::Array(std::mem::take(&mut representations.list));
        let body = self.body(&fetch.operation, &fetch.variables, vec![("representations".to_owned(), reps)]);
        let share = self.context.share;
        let first_path = representations.paths.first().cloned().unwrap_or_default();
        let Some(response) = self.send(subgraph, body, share, &first_path).await else { return };
        let mut state = self.state();
        let rewrite_path = |path: &[Json]| entity_error_path(path, "_entities", &representations.paths);
        let errors: Vec<GraphqlError> =
            response.errors.iter().flatten().map(|error| GraphqlError::from_subgraph(error, &rewrite_path)).collect();
        state.errors.extend(errors);
        let answers = match response.data {
            Some(Json::Object(mut data)) => data.shift_remove("_entities"),
            _ => None,
        };
        let Some(Json::Array(answers)) = answers else { return };
        self.merge_answers(
            &mut state,
            std::slice::from_ref(&fetch.path),
            &representations,
            answers,
            &fetch.output_rewrites,
        );
    }

    async fn batch_fetch(&self, batch: &BatchFetch) {
        let Some(subgraph) = self.subgraph(&batch.subgraph) else { return };
        let mut per_alias = Vec::with_capacity(batch.aliases.len());
        let mut extra = Vec::with_capacity(batch.aliases.len());
        for alias in &batch.aliases {
            per_alias.push(self.representations_of_paths(&alias.paths, &alias.requires, &alias.input_rewrites));
        }
        if per_alias.iter().all(Representations::is_empty) {
            return;
        }
        for (alias, representations) in batch.aliases.iter().zip(&mut per_alias) {
            extra.push((alias.representations.clone(), Json::Array(std::mem::take(&mut representations.list))));
        }
        let body = self.body(&batch.operation, &batch.variables, extra);
        let first_path = per_alias.iter().find_map(|r| r.paths.first().cloned()).unwrap_or_default();
        let Some(response) = self.send(subgraph, body, self.context.share, &first_path).await else { return };
        let mut state = self.state();
        for error in response.errors.iter().flatten() {
            let rewrite_path = |path: &[Json]| {
                let alias = path.first().and_then(Json::as_str)?;
                let index = batch.aliases.iter().position(|a| a.alias == alias)?;
                entity_error_path(path, alias, &per_alias[index].paths)
            };
            state.errors.push(GraphqlError::from_subgraph(error, &rewrite_path));
        }
        let Some(Json::Object(mut data)) = response.data else { return };
        for (alias, representations) in batch.aliases.iter().zip(&per_alias) {
            let Some(Json::Array(answers)) = data.shift_remove(&alias.alias) else { continue };
            self.merge_answers(&mut state, &alias.paths, representations, answers, &alias.output_rewrites);
        }
    }

    fn subgraph(&self, name: &str) -> Option<&Arc<Subgraph>> {
        let subgraph = self.context.subgraphs.get(name);
        if subgraph.is_none() {
            // The plan names only the supergraph's subgraphs, each set up at start.
            self.state().errors.push(GraphqlError::new(format!("the subgraph '{name}' is not known")));
        }
        subgraph
    }

    fn representations(&self, path: &[PathSegment], requires: &[Selection], rewrites: &[Rewrite]) -> Representations {
        self.representations_of_paths(std::slice::from_ref(&path.to_vec()), requires, rewrites)
    }

    /// The representations of the entities every path reaches, in path order.
    fn representations_of_paths(
        &self,
        paths: &[Vec<PathSegment>],
        requires: &[Selection],
        rewrites: &[Rewrite],
    ) -> Representations {
        let schema = self.context.schema;
        let mut state = self.state();
        let root = Json::Object(std::mem::take(&mut state.data));
        let mut representations = Representations::default();
        for path in paths {
            let mut found = Vec::new();
            entities::find(schema, &root, path, &mut Vec::new(), &mut found);
            for (at, entity) in found {
                let representation = entities::representation(schema, requires, entity).map(|mut representation| {
                    for rewrite in rewrites {
                        merge::rewrite(schema, rewrite, &mut representation);
                    }
                    representation
                });
                representations.add(representation, at);
            }
        }
        if let Json::Object(root) = root {
            state.data = root;
        }
        representations
    }

    /// Merges the answers into the entities the paths reach, walked as they were read. An
    /// answer shared by several entities is copied to all but the last.
    fn merge_answers(
        &self,
        state: &mut State,
        paths: &[Vec<PathSegment>],
        representations: &Representations,
        answers: Vec<Json>,
        rewrites: &[Rewrite],
    ) {
        let schema = self.context.schema;
        let mut answers: Vec<Option<Json>> = answers
            .into_iter()
            .map(|mut answer| {
                for rewrite in rewrites {
                    merge::rewrite(schema, rewrite, &mut answer);
                }
                Some(answer)
            })
            .collect();
        let mut uses = vec![0usize; answers.len()];
        for index in representations.of_entity.iter().flatten() {
            if let Some(count) = uses.get_mut(*index) {
                *count += 1;
            }
        }
        let mut entity = 0;
        let mut root = Json::Object(std::mem::take(&mut state.data));
        for path in paths {
            entities::visit_mut(schema, &mut root, path, &mut |object| {
                if let Some(Some(index)) = representations.of_entity.get(entity) {
                    let index = *index;
                    if let Some(count) = uses.get_mut(index) {
                        *count -= 1;
                        let answer = if *count == 0 { answers[index].take() } else { answers[index].clone() };
                        if let Some(Json::Object(answer)) = answer {
                            merge::merge_objects(object, answer);
                        }
                    }
                }
                entity += 1;
            });
        }
        if let Json::Object(root) = root {
            state.data = root;
        }
    }

    /// A request body: the operation, the client's variables it uses, and `extra` ones.
    fn body(&self, operation: &str, used: &[String], extra: Vec<(String, Json)>) -> Bytes {
        let mut variables = Map::with_capacity(used.len() + extra.len());
        for name in used {
            if let Some(value) = self.context.variables.get(name) {
                variables.insert(name.clone(), value.clone());
            }
        }
        variables.extend(extra);
        let mut body = Map::with_capacity(2);
        body.insert("query".to_owned(), Json::String(operation.to_owned()));
        if !variables.is_empty() {
            body.insert("variables".to_owned(), Json::Object(variables));
        }
        Bytes::from(Json::Object(body).to_string())
    }

    /// Sends a request; `None` (and an error at `path` in the response) when it failed.
    async fn send(&self, subgraph: &Arc<Subgraph>, body: Bytes, share: bool, path: &[PathElement]) -> Option<Response> {
        let headers = subgraph.headers(self.context.outgoing);
        let result = subgraph.request(body, headers, share).await;
        let parsed =
            result.and_then(|bytes| serde_json::from_slice::<Response>(&bytes).map_err(|_| SubgraphError::NotGraphql));
        match parsed {
            Ok(response) => Some(response),
            Err(error) => {
                let mut error = GraphqlError::subgraph(&subgraph.name, &error);
                if !path.is_empty() {
                    error.path = Some(path.to_vec());
                }
                self.state().errors.push(error);
                None
            }
        }
    }
}

/// The client's path of an error an entity fetch returned at `[field, index, rest…]`.
fn entity_error_path(path: &[Json], field: &str, entity_paths: &[Vec<PathElement>]) -> Option<Vec<PathElement>> {
    let (first, rest) = path.split_first()?;
    if first.as_str() != Some(field) {
        return path_as_is(path);
    }
    let (index, rest) = rest.split_first()?;
    let mut client = entity_paths.get(usize::try_from(index.as_u64()?).ok()?)?.clone();
    client.extend(path_as_is(rest)?);
    Some(client)
}
