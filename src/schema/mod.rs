//! Building the schema the hub serves, on one dynamic schema: the built-in schema of DESIGN §4,
//! a typed schema from SDL (§5), and each upstream's namespaced subscription fields (§6).
//!
//! ## Layout
//! - [`builtin`]: `Event`, `events`, `publish`, `brokers`, and the types every part shares.
//! - [`typed`]: a typed schema: its SDL read and checked, its fields bound to sources.
//! - [`upstream`]: an upstream's fields and the types they reach, namespaced.
//! - [`types`]: types of the neutral type model registered under their served names.

pub mod builtin;
pub mod typed;
pub mod types;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::dynamic::{Field, Object, Schema, Subscription, SubscriptionField};
use subhub_subscriptions::Sources;

use crate::authz::Access;
use crate::execute::ExecModel;
use crate::publish::Publisher;
use crate::upstreams::Upstreams;
use typed::TypedSchema;

/// The schema could not be built (a bug or a clash in configured schemas).
#[derive(Debug)]
pub struct SchemaError(pub String);

/// The root types, filled by every part of the schema.
pub struct Roots {
    query: Object,
    mutation: Object,
    subscription: Subscription,
}

impl Roots {
    fn new() -> Self {
        Roots {
            query: Object::new("Query"),
            mutation: Object::new("Mutation"),
            subscription: Subscription::new("Subscription"),
        }
    }

    pub fn add_query(&mut self, field: Field) {
        self.query = std::mem::replace(&mut self.query, Object::new("Query")).field(field);
    }

    pub fn add_mutation(&mut self, field: Field) {
        self.mutation = std::mem::replace(&mut self.mutation, Object::new("Mutation")).field(field);
    }

    pub fn add_subscription(&mut self, field: SubscriptionField) {
        let subscription = std::mem::replace(&mut self.subscription, Subscription::new("Subscription"));
        self.subscription = subscription.field(field);
    }
}

/// What the schema is built from.
pub struct Parts<'a> {
    pub access: Arc<Access>,
    pub sources: Arc<Sources>,
    pub publisher: Arc<Publisher>,
    pub upstreams: &'a Upstreams,
    pub typed: Option<&'a TypedSchema>,
    /// Serve the built-in `events` / `publish` API.
    pub generic_api: bool,
}

/// The schema served, and what the execution of its subscriptions knows of its types.
pub fn build(parts: Parts<'_>) -> Result<(Schema, ExecModel), SchemaError> {
    let mut taken: BTreeMap<String, String> = builtin::ALWAYS_TAKEN
        .iter()
        .chain(&builtin::PROVIDED)
        .chain(if parts.generic_api { &builtin::GENERIC_NAMES[..] } else { &[] })
        .map(|name| (name.to_string(), "the built-in schema".to_owned()))
        .collect();
    let mut roots = Roots::new();
    let mut model = ExecModel::default();
    // A root type without fields is no root type: decide which there are before building.
    let typed = parts.typed.map(|typed| (typed.mutations(), typed.subscriptions())).unwrap_or_default();
    let has_mutations = parts.generic_api || typed.0 > 0;
    let has_subscriptions = parts.generic_api || typed.1 > 0 || !parts.upstreams.entries().is_empty();
    let mut builder =
        Schema::build("Query", has_mutations.then_some("Mutation"), has_subscriptions.then_some("Subscription"));
    builder = builtin::register_shared(builder, &mut roots);
    if parts.generic_api {
        builder = builtin::register_generic(builder, &mut roots);
        model.add_builtin();
    }
    if let Some(typed) = parts.typed {
        builder = typed.register(builder, &mut roots, &mut taken).map_err(SchemaError)?;
        typed.add_to(&mut model);
    }
    for entry in parts.upstreams.entries() {
        let subscription = std::mem::replace(&mut roots.subscription, Subscription::new("Subscription"));
        let (registered, subscription) =
            upstream::register(builder, subscription, entry, &mut taken).map_err(SchemaError)?;
        builder = registered;
        roots.subscription = subscription;
    }
    let Roots { query, mutation, subscription } = roots;
    builder = builder.register(query);
    if has_mutations {
        builder = builder.register(mutation);
    }
    if has_subscriptions {
        builder = builder.register(subscription);
    }
    let schema = builder
        .data(parts.sources)
        .data(parts.publisher)
        .data(parts.access)
        .finish()
        .map_err(|e| SchemaError(e.to_string()))?;
    Ok((schema, model))
}
