//! GraphQL errors of a federated response: those the subgraphs sent, with their paths moved
//! from the subgraph's response to the client's, and the gateway's own, with fixed texts.

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::subgraph::SubgraphError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathElement {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Serialize)]
pub struct GraphqlError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathElement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Json>>,
}

impl GraphqlError {
    pub fn new(message: impl Into<String>) -> Self {
        GraphqlError { message: message.into(), path: None, extensions: None }
    }

    pub fn at(message: impl Into<String>, path: Vec<PathElement>) -> Self {
        GraphqlError { message: message.into(), path: Some(path), extensions: None }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.extensions.get_or_insert_with(Map::new).insert("code".into(), Json::String(code.into()));
        self
    }

    /// The error a failed request to `subgraph` gives: a fixed text naming the subgraph, with
    /// `extensions.code` and `extensions.service`; never the URL or a library's text.
    pub fn subgraph(subgraph: &str, error: &SubgraphError) -> Self {
        let (code, reason) = match error {
            SubgraphError::Timeout => ("SUBREQUEST_TIMEOUT", "the request timed out".to_owned()),
            SubgraphError::Unreachable => ("SUBREQUEST_HTTP_ERROR", "the subgraph could not be reached".to_owned()),
            SubgraphError::Status(status) => {
                ("SUBREQUEST_HTTP_ERROR", format!("the subgraph answered with HTTP status {status}"))
            }
            SubgraphError::TooLarge(max) => {
                ("SUBREQUEST_HTTP_ERROR", format!("the subgraph's response was larger than {max} bytes"))
            }
            SubgraphError::NotGraphql => {
                ("SUBREQUEST_HTTP_ERROR", "the subgraph's response was not a GraphQL response".to_owned())
            }
        };
        let mut extensions = Map::new();
        extensions.insert("code".into(), Json::String(code.into()));
        extensions.insert("service".into(), Json::String(subgraph.into()));
        GraphqlError {
            message: format!("HTTP fetch failed from '{subgraph}': {reason}"),
            path: None,
            extensions: Some(extensions),
        }
    }

    /// An error of a subgraph's response, its path rewritten by `rewrite` (given the
    /// subgraph's path, the client's; `None` drops the path).
    pub fn from_subgraph(error: &Json, rewrite: &dyn Fn(&[Json]) -> Option<Vec<PathElement>>) -> Self {
        let message = error.get("message").and_then(Json::as_str).unwrap_or("subgraph error").to_owned();
        let path = error.get("path").and_then(Json::as_array).and_then(|path| rewrite(path));
        let extensions = error.get("extensions").and_then(Json::as_object).cloned();
        GraphqlError { message, path, extensions }
    }
}

/// A subgraph's path as it is, for the errors of root fetches.
pub fn path_as_is(path: &[Json]) -> Option<Vec<PathElement>> {
    path.iter()
        .map(|element| match element {
            Json::String(key) => Some(PathElement::Key(key.clone())),
            Json::Number(index) => index.as_u64().map(|i| PathElement::Index(i as usize)),
            _ => None,
        })
        .collect()
}
