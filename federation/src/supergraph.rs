//! A Federation v2 supergraph, read once at start: its planner, the API schema clients see
//! (as a type model and as SDL the hub serves), and the supergraph's own types.

use std::path::Path;
use std::time::Duration;

use graphql_tools::parser::schema::{Definition, Document};

use crate::planner::Planner;
use crate::schema::Schema;

/// The supergraph could not be used; the text names the file and the fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SupergraphError(pub String);

pub struct Supergraph {
    pub planner: Planner,
    /// The API schema: what clients may select.
    pub api: Schema,
    /// Every type of the supergraph, `@inaccessible` ones included: what responses may hold.
    pub types: Schema,
}

impl std::fmt::Debug for Supergraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (queries, mutations) = self.root_fields();
        f.debug_struct("Supergraph").field("queries", &queries).field("mutations", &mutations).finish_non_exhaustive()
    }
}

impl Supergraph {
    pub fn load(path: &Path, plan_timeout: Duration) -> Result<Self, SupergraphError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SupergraphError(format!("federation.supergraph: cannot read {}: {e}", path.display())))?;
        Self::from_sdl(&text, plan_timeout).map_err(|e| SupergraphError(format!("{}: {}", path.display(), e.0)))
    }

    pub fn from_sdl(text: &str, plan_timeout: Duration) -> Result<Self, SupergraphError> {
        let document = graphql_tools::parser::parse_schema(text)
            .map_err(|e| SupergraphError(format!("not a GraphQL schema: {e}")))?
            .into_static();
        if !is_federation_v2(&document) {
            return Err(SupergraphError(
                "not a Federation v2 supergraph (no @link to https://specs.apollo.dev/join/v0.2 or later); compose it with rover, the Hive CLI, wgc or `subhub compose`".into(),
            ));
        }
        let planner = Planner::new(&document, plan_timeout).map_err(|e| SupergraphError(e.0))?;
        let api = Schema::from_document(planner.api_schema());
        let types = Schema::from_document(&document);
        Ok(Supergraph { planner, api, types })
    }

    /// A message naming the first of `configured` (the `[subgraphs.NAME]` tables) that is not a
    /// subgraph of this supergraph.
    pub fn unknown_subgraph<'a>(&self, configured: impl IntoIterator<Item = &'a String>) -> Option<String> {
        let urls = self.planner.subgraph_urls();
        let unknown = configured.into_iter().find(|name| !urls.contains_key(*name))?;
        let mut names: Vec<&str> = urls.keys().map(String::as_str).collect();
        names.sort_unstable();
        Some(format!("subgraphs.{unknown} names no subgraph of the supergraph (its subgraphs: {})", names.join(", ")))
    }

    /// The root fields of the supergraph: `(query fields, mutation fields)`.
    pub fn root_fields(&self) -> (Vec<String>, Vec<String>) {
        let fields = |root: Option<&String>| {
            let mut names: Vec<String> = match root.and_then(|root| self.api.get(root)) {
                Some(crate::schema::TypeDef::Object { fields, .. }) => {
                    fields.keys().filter(|name| !name.starts_with("__")).cloned().collect()
                }
                _ => Vec::new(),
            };
            names.sort();
            names
        };
        (fields(Some(&self.api.query)), fields(self.api.mutation.as_ref()))
    }
}

fn is_federation_v2(document: &Document<'static, String>) -> bool {
    document.definitions.iter().any(|definition| match definition {
        Definition::SchemaDefinition(schema) => schema.directives.iter().any(|directive| {
            directive.name == "link"
                && directive.arguments.iter().any(|(name, value)| {
                    name == "url"
                        && matches!(value, graphql_tools::parser::query::Value::String(url)
                            if url.starts_with("https://specs.apollo.dev/join/v") && !url.ends_with("/v0.1"))
                })
        }),
        _ => false,
    })
}
