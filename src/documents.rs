//! GraphQL documents, parsed and measured once per distinct text (DESIGN §2): a bounded cache
//! by text keeps each document's syntax tree and, for each of its operations, its kind, its
//! root field and its cost. A client sending the same 1 MiB document a thousand times costs one
//! parse; a document that does not parse is remembered as such too.
//!
//! The cost of an operation, with its fragments expanded (a fragment spread ten times counts
//! ten times), is what `[limits]` bounds before anything runs:
//! - depth: how deeply fields nest (`{ a { b } }` is 2);
//! - complexity: how many fields it selects;
//! - aliases: how many of those fields are aliased (each alias of a field is another copy of
//!   its result in every event).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError};
use lru::LruCache;
use subhub_subscriptions::Lookups;

/// Fields and fragments nested deeper than this are refused before they are measured: the
/// measuring recursion must never come near the end of a worker thread's stack, whatever
/// `max_query_depth` says.
const MAX_NESTING: usize = 128;

/// What kind of operation a request runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A subscription, with the name of its first root field when it has one.
    Subscription(Option<String>),
    /// Queries and mutations: one result.
    Single(OperationType),
}

/// What an operation costs once its fragments are expanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub depth: usize,
    pub complexity: u64,
    pub aliases: u64,
}

/// One operation of a document.
#[derive(Debug)]
pub struct Operation {
    pub kind: Kind,
    pub cost: Cost,
}

/// A document that parsed, with its operations measured.
#[derive(Debug)]
pub struct Document {
    pub text: Arc<str>,
    pub parsed: ExecutableDocument,
    /// By name; the operation of a document with a single anonymous one is under `None`.
    operations: HashMap<Option<Name>, Result<Operation, String>>,
}

/// The limits an operation's cost is held to.
#[derive(Clone, Copy, Debug)]
pub struct CostLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
}

/// Why a request cannot run. `errors` is a serialized GraphQL error list.
#[derive(Debug)]
pub enum Refused {
    /// The document does not parse or names no operation to run.
    Invalid(String),
    /// The operation is over a limit (counted as `limit`).
    Limit(String),
}

impl Refused {
    pub fn errors_json(&self) -> &str {
        match self {
            Refused::Invalid(errors) | Refused::Limit(errors) => errors,
        }
    }
}

/// The cache of documents.
pub struct Documents {
    cache: Mutex<Cache>,
    max_bytes: usize,
    limits: CostLimits,
    /// `subhub_document_cache_total`.
    lookups: Lookups,
}

struct Cache {
    entries: LruCache<Arc<str>, Parsed>,
    /// Bytes of document text held.
    bytes: usize,
}

/// A cached parse: the document, or the errors that it did not parse with.
type Parsed = Result<Arc<Document>, Arc<str>>;

impl Documents {
    /// Keeps at most `entries` documents and `max_bytes` bytes of their text, counting its
    /// lookups into `lookups`.
    pub fn new(entries: usize, max_bytes: usize, limits: CostLimits, lookups: Lookups) -> Self {
        let capacity = NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN);
        Documents {
            cache: Mutex::new(Cache { entries: LruCache::new(capacity), bytes: 0 }),
            max_bytes,
            limits,
            lookups,
        }
    }

    /// The document of `query` and the operation `operation_name` picks, checked against the
    /// cost limits. An operation that cannot be picked is left to the executor, which says why.
    pub fn prepare(&self, query: &str, operation_name: Option<&str>) -> Result<Prepared, Refused> {
        let document = self.parse(query).map_err(|errors| Refused::Invalid(errors.to_string()))?;
        let kind = match document.operation(operation_name) {
            Some(Ok(operation)) => {
                self.check(&operation.cost)?;
                operation.kind.clone()
            }
            Some(Err(errors)) => return Err(Refused::Invalid(errors.clone())),
            None => Kind::Single(OperationType::Query),
        };
        Ok(Prepared { document, kind })
    }

    fn parse(&self, query: &str) -> Parsed {
        if let Some(parsed) = self.lock().entries.get(query) {
            self.lookups.hits.fetch_add(1, Relaxed);
            return parsed.clone();
        }
        self.lookups.misses.fetch_add(1, Relaxed);
        let text: Arc<str> = query.into();
        let parsed = Document::parse(text.clone()).map(Arc::new).map_err(Arc::from);
        if text.len() <= self.max_bytes {
            let mut cache = self.lock();
            // A push evicts the least recently used entry, or replaces one of the same text
            // (parsed meanwhile by another request): either way its text leaves the cache.
            if let Some((old, _)) = cache.entries.push(text.clone(), parsed.clone()) {
                cache.bytes -= old.len();
            }
            cache.bytes += text.len();
            while cache.bytes > self.max_bytes {
                match cache.entries.pop_lru() {
                    Some((key, _)) => cache.bytes -= key.len(),
                    None => break,
                }
            }
        }
        parsed
    }

    fn check(&self, cost: &Cost) -> Result<(), Refused> {
        let limits = &self.limits;
        let over = if cost.depth > limits.max_depth {
            format!(
                "the operation nests fields {} deep; the limit is {} (limits.max_query_depth)",
                cost.depth, limits.max_depth
            )
        } else if cost.aliases > limits.max_aliases as u64 {
            format!(
                "the operation has {} aliases; the limit is {} (limits.max_aliases)",
                cost.aliases, limits.max_aliases
            )
        } else if cost.complexity > limits.max_complexity as u64 {
            format!(
                "the operation selects {} fields; the limit is {} (limits.max_query_complexity)",
                cost.complexity, limits.max_complexity
            )
        } else {
            return Ok(());
        };
        Err(Refused::Limit(subhub_protocol::server::error_list(&over)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request's document, ready to run.
#[derive(Clone)]
pub struct Prepared {
    pub document: Arc<Document>,
    pub kind: Kind,
}

impl Document {
    fn parse(text: Arc<str>) -> Result<Document, String> {
        let parsed = async_graphql::parser::parse_query(&*text)
            .map_err(|error| crate::results::errors_json(&[ServerError::from(error)]))?;
        let operations = match &parsed.operations {
            DocumentOperations::Single(operation) => {
                HashMap::from([(None, measure(&parsed, &operation.node.ty, &operation.node.selection_set))])
            }
            DocumentOperations::Multiple(operations) => operations
                .iter()
                .map(|(name, operation)| {
                    (Some(name.clone()), measure(&parsed, &operation.node.ty, &operation.node.selection_set))
                })
                .collect(),
        };
        Ok(Document { text, parsed, operations })
    }

    /// The operation a request names, or the only one when it names none.
    fn operation(&self, name: Option<&str>) -> Option<&Result<Operation, String>> {
        match (name, self.operations.len()) {
            (Some(name), _) => self.operations.iter().find(|(key, _)| key.as_deref() == Some(name)).map(|(_, op)| op),
            // A lone named operation is the one to run even when the request names none.
            (None, 1) => self.operations.values().next(),
            (None, _) => None,
        }
    }
}

fn measure(
    document: &ExecutableDocument,
    ty: &OperationType,
    selection_set: &Positioned<SelectionSet>,
) -> Result<Operation, String> {
    let mut measure = Measure { document, fragments: HashMap::new() };
    let cost = measure.set(&selection_set.node, 0).map_err(|message| subhub_protocol::server::error_list(&message))?;
    let kind = match ty {
        OperationType::Subscription => Kind::Subscription(root_field(document, &selection_set.node, 0)),
        other => Kind::Single(*other),
    };
    Ok(Operation { kind, cost })
}

/// Measures selection sets, each fragment once.
struct Measure<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's cost; `None` while it is being measured (a spread of it then is a cycle).
    fragments: HashMap<&'a Name, Option<Cost>>,
}

impl<'a> Measure<'a> {
    /// The cost of a selection set `nesting` levels down (fields and fragments alike).
    fn set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<Cost, String> {
        if nesting > MAX_NESTING {
            return Err(format!("the document nests fields and fragments more than {MAX_NESTING} deep"));
        }
        let mut total = Cost::default();
        for selection in &set.items {
            let cost = match &selection.node {
                Selection::Field(field) => {
                    let below = self.set(&field.node.selection_set.node, nesting + 1)?;
                    Cost {
                        depth: below.depth + 1,
                        complexity: below.complexity.saturating_add(1),
                        aliases: below.aliases.saturating_add(u64::from(field.node.alias.is_some())),
                    }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node, nesting + 1)?,
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node, nesting + 1)?,
            };
            total = Cost {
                depth: total.depth.max(cost.depth),
                complexity: total.complexity.saturating_add(cost.complexity),
                aliases: total.aliases.saturating_add(cost.aliases),
            };
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name, nesting: usize) -> Result<Cost, String> {
        match self.fragments.get(name) {
            Some(Some(cost)) => return Ok(*cost),
            Some(None) => return Err(format!("fragment `{name}` spreads itself")),
            None => {}
        }
        // An unknown fragment is the validator's to report.
        let Some(definition): Option<&'a Positioned<FragmentDefinition>> = self.document.fragments.get(name) else {
            return Ok(Cost::default());
        };
        self.fragments.insert(name, None);
        let cost = self.set(&definition.node.selection_set.node, nesting)?;
        self.fragments.insert(name, Some(cost));
        Ok(cost)
    }
}

/// The first field of a selection set, looking through fragments.
fn root_field(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    set.items.iter().find_map(|selection| match &selection.node {
        Selection::Field(field) if field.node.name.node.as_str() != "__typename" => {
            Some(field.node.name.node.to_string())
        }
        Selection::Field(_) => None,
        Selection::InlineFragment(fragment) => root_field(document, &fragment.node.selection_set.node, depth + 1),
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            .and_then(|fragment| root_field(document, &fragment.node.selection_set.node, depth + 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents() -> Documents {
        let lookups = subhub_subscriptions::Metrics::new().document_cache.clone();
        Documents::new(4, 1024, CostLimits { max_depth: 3, max_complexity: 10, max_aliases: 2 }, lookups)
    }

    fn cost(query: &str) -> Cost {
        match Document::parse(query.into()).unwrap().operation(None).unwrap() {
            Ok(operation) => operation.cost,
            Err(errors) => panic!("{errors}"),
        }
    }

    #[test]
    fn costs_count_fields_depth_and_aliases_with_fragments_expanded() {
        assert_eq!(cost("{ a { b c } }"), Cost { depth: 2, complexity: 3, aliases: 0 });
        assert_eq!(cost("{ x: a y: a { b } }"), Cost { depth: 2, complexity: 3, aliases: 2 });
        let spread = "{ ...F ...F } fragment F on Query { a: b { c } }";
        assert_eq!(cost(spread), Cost { depth: 2, complexity: 4, aliases: 2 });
        // Each level doubles: 2^30 fields from a few hundred bytes, measured without expanding.
        let mut bomb = String::from("{ ...F0 }");
        for level in 0..30 {
            bomb.push_str(&format!(" fragment F{level} on Query {{ ...F{n} ...F{n} }}", n = level + 1));
        }
        bomb.push_str(" fragment F30 on Query { a }");
        assert_eq!(cost(&bomb).complexity, 1 << 30);
    }

    #[test]
    fn cycles_and_deep_nesting_are_refused_not_followed() {
        let cycle = Document::parse("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }".into()).unwrap();
        assert!(cycle.operation(None).unwrap().as_ref().unwrap_err().contains("spreads itself"));
        // The parser refuses fields nested this deep itself; a chain of fragments it takes.
        let mut deep = String::from("{ ...F0 }");
        for n in 0..200 {
            deep.push_str(&format!(" fragment F{n} on Q {{ ...F{} }}", n + 1));
        }
        deep.push_str(" fragment F200 on Q { a }");
        let deep = Document::parse(deep.into()).unwrap();
        assert!(deep.operation(None).unwrap().as_ref().unwrap_err().contains("more than 128 deep"));
    }

    #[test]
    fn limits_name_themselves() {
        let documents = documents();
        let refused = |query: &str| match documents.prepare(query, None) {
            Err(Refused::Limit(errors)) => errors,
            other => panic!("{query}: {other:?}", other = other.map(|p| p.kind)),
        };
        assert!(refused("{ a { b { c { d } } } }").contains("limits.max_query_depth"));
        assert!(refused("{ a b c d e f g h i j k }").contains("limits.max_query_complexity"));
        assert!(refused("{ x: a y: a z: a }").contains("limits.max_aliases"));
        assert!(documents.prepare("{ x: a y: a }", None).is_ok());
    }

    #[test]
    fn each_text_is_parsed_once_and_the_cache_is_bounded() {
        let documents = documents();
        for _ in 0..3 {
            assert!(documents.prepare("subscription { events(topic: \"t\") { id } }", None).is_ok());
            assert!(matches!(documents.prepare("subscription {", None), Err(Refused::Invalid(_))));
        }
        let lookups = &documents.lookups;
        assert_eq!((lookups.misses.load(Relaxed), lookups.hits.load(Relaxed)), (2, 4));
        // Four entries at most, and 1024 bytes of text.
        for n in 0..10 {
            let _ = documents.prepare(&format!("{{ a{n} }}"), None);
        }
        assert_eq!(documents.len(), 4);
        let _ = documents.prepare(&format!("{{ a {} }}", " ".repeat(900)), None);
        let _ = documents.prepare(&format!("{{ b {} }}", " ".repeat(900)), None);
        assert_eq!(documents.len(), 1);
        assert!(documents.lock().bytes <= 1024);
    }

    #[test]
    fn kinds_and_root_fields() {
        let documents = documents();
        let kind = |query: &str, name: Option<&str>| documents.prepare(query, name).map(|p| p.kind).ok();
        assert_eq!(
            kind("subscription { events(topic: \"t\") { id } }", None),
            Some(Kind::Subscription(Some("events".into())))
        );
        assert_eq!(kind("{ brokers { name } }", None), Some(Kind::Single(OperationType::Query)));
        let two = "subscription S { ...F } query Q { a } fragment F on Subscription { __typename events { id } }";
        assert_eq!(kind(two, Some("S")), Some(Kind::Subscription(Some("events".into()))));
        assert_eq!(kind(two, None), Some(Kind::Single(OperationType::Query)), "left to the executor");
    }
}
