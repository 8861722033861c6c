//! `subhub compose`: a Federation v2 supergraph from subgraph SDLs, with the composition crate
//! `graphql-composition`, completed to the join spec as rover and the Hive CLI write it so that
//! the planner reads it (DESIGN §15).
//!
//! ## Layout
//! - this file: subgraphs in, supergraph or errors naming the subgraph out; subgraph names.
//! - [`subgraph`]: what one subgraph's SDL says that the composed output leaves out.
//! - [`supergraph`]: the composed output completed.
//! - [`print`]: SDL printed from a parsed document (also the typed schema's subgraph SDL).
//! - [`fetch`]: a subgraph's SDL read from `{ _service { sdl } }` at its URL.

pub mod fetch;
pub mod print;
mod subgraph;
mod supergraph;

use std::collections::BTreeMap;

pub use subgraph::top_level_fields;

/// One subgraph to compose.
#[derive(Clone, Debug)]
pub struct SubgraphSdl {
    /// Its name in the supergraph (`join__Graph`), as configured.
    pub name: String,
    /// Where the gateway sends its requests.
    pub url: String,
    pub sdl: String,
}

/// A composed supergraph.
#[derive(Debug)]
pub struct Composed {
    pub supergraph: String,
    /// What composition noted without failing, the subgraphs by their configured names.
    pub warnings: Vec<String>,
}

/// Why subgraphs did not compose; each names the subgraph at fault where there is one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComposeError {
    #[error("there is no subgraph to compose: add [subgraphs.NAME] tables with an `sdl` file or a `url`")]
    NoSubgraphs,
    #[error("subgraph name `{0}`: a subgraph's name starts with a letter and has only letters, digits, `-` and `_`")]
    InvalidName(String),
    #[error("subgraphs `{0}` and `{1}` would have the same name in the supergraph ({2}): rename one")]
    SameName(String, String, String),
    #[error("subgraph `{subgraph}`: its SDL does not parse at line {line}, column {column}: {message}")]
    Parse { subgraph: String, line: usize, column: usize, message: String },
    #[error("subgraph `{subgraph}`: {message}")]
    Rejected { subgraph: String, message: String },
    #[error("the subgraphs do not compose:\n{}", .0.iter().map(|error| format!("  - {error}")).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<String>),
}

/// Composes the subgraphs into a supergraph.
pub fn compose(subgraphs: &[SubgraphSdl]) -> Result<Composed, ComposeError> {
    if subgraphs.is_empty() {
        return Err(ComposeError::NoSubgraphs);
    }
    let names = composed_names(subgraphs)?;
    let mut documents = Vec::with_capacity(subgraphs.len());
    for subgraph in subgraphs {
        let document = print::parse(&subgraph.sdl).map_err(|error| {
            let pos = error.positions().next().unwrap_or_default();
            let message = error.to_string().lines().last().unwrap_or("it is not GraphQL SDL").trim().to_owned();
            ComposeError::Parse { subgraph: subgraph.name.clone(), line: pos.line, column: pos.column, message }
        })?;
        documents.push(document);
    }
    let facts: Vec<_> = documents.iter().map(subgraph::read).collect();
    let mut ingested = graphql_composition::Subgraphs::default();
    for (subgraph, composed_name) in subgraphs.iter().zip(&names) {
        ingested
            .ingest_str(&subgraph.sdl, composed_name, Some(&subgraph.url))
            .map_err(|error| ComposeError::Rejected { subgraph: subgraph.name.clone(), message: error.to_string() })?;
    }
    let result = graphql_composition::compose(&mut ingested);
    let restore = |message: &str| restore_names(message, subgraphs, &names);
    let warnings = result.diagnostics().iter_warnings().map(restore).collect();
    let graph = result
        .into_result()
        .map_err(|diagnostics| ComposeError::Conflicts(diagnostics.iter_errors().map(restore).collect()))?;
    let rendered = graphql_composition::render_federated_sdl(&graph)
        .map_err(|_| ComposeError::Conflicts(vec!["the composed supergraph could not be written".to_owned()]))?;
    let mut document = print::parse(&rendered)
        .map_err(|_| ComposeError::Conflicts(vec!["the composed supergraph is not valid SDL".to_owned()]))?;
    let graphs: Vec<_> = subgraphs
        .iter()
        .zip(&names)
        .zip(&facts)
        .map(|((subgraph, composed_name), facts)| supergraph::Graph { name: &subgraph.name, composed_name, facts })
        .collect();
    supergraph::complete(&mut document, &graphs);
    Ok(Composed { supergraph: print::print(&document), warnings })
}

/// The names the composition crate is given: it takes letters, digits and `-`, so `_` (which
/// TOML table names and rover allow) becomes `-`; both give the same `join__Graph` value.
fn composed_names(subgraphs: &[SubgraphSdl]) -> Result<Vec<String>, ComposeError> {
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    let mut names = Vec::with_capacity(subgraphs.len());
    for subgraph in subgraphs {
        let name = subgraph.name.as_str();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ComposeError::InvalidName(name.to_owned()));
        }
        let value = name.to_ascii_uppercase().replace('-', "_");
        if let Some(other) = taken.insert(value.clone(), name) {
            return Err(ComposeError::SameName(other.to_owned(), name.to_owned(), value));
        }
        names.push(name.replace('_', "-"));
    }
    Ok(names)
}

/// A message of the composition crate with the subgraphs' configured names.
fn restore_names(message: &str, subgraphs: &[SubgraphSdl], names: &[String]) -> String {
    let mut message = message.to_owned();
    for (subgraph, composed) in subgraphs.iter().zip(names) {
        if *composed == subgraph.name {
            continue;
        }
        let mut out = String::with_capacity(message.len());
        let mut rest = message.as_str();
        while let Some(at) = rest.find(composed.as_str()) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + composed.len()..].chars().next();
            let part_of_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
            out.push_str(&rest[..at]);
            out.push_str(if part_of_word(before) || part_of_word(after) { composed } else { &subgraph.name });
            rest = &rest[at + composed.len()..];
        }
        out.push_str(rest);
        message = out;
    }
    message
}

#[cfg(test)]
mod tests;
