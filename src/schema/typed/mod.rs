//! Typed schemas (DESIGN §5): the types of an SDL file served as written, its Subscription fields
//! bound to topics with `@subscribe` (and narrowed with `@filter`), its Mutation fields to
//! publishes with `@publish`, and fields read from event metadata with `@event`.
//!
//! A subscription field's resolver renders its topics from the operation's arguments and the
//! client's claims, opens their sources and hands them to the execution with the operation's
//! filters (`crate::operation::shared`); the execution writes each event that passes the
//! filters as the field's type says. Clients whose rendered topics, filters and selection are
//! the same share one execution.
//!
//! ## Layout
//! - this file: loading, registering the fields, their resolvers.
//! - [`sdl`]: the SDL read, every problem with its line and column.
//! - [`filter`]: `@filter` conditions, tested once per event per execution.
//! - [`subgraph`]: the schema as a Federation v2 subgraph SDL.

pub mod filter;
pub mod sdl;
pub mod subgraph;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, ResolverContext, SchemaBuilder, SubscriptionField, SubscriptionFieldFuture,
};
use async_graphql::Error;
use bytes::Bytes;
use serde_json::{Map, Value};
use subhub_subscriptions::Sources;
use subhub_upstream_ws::model::FieldDef;

use super::{builtin, types, Roots};
use crate::authz::{Access, Action};
use crate::execute::ExecModel;
use crate::operation::Subscribed;
use crate::publish::Publisher;
use sdl::{Context, Declared, PublishField, SubscribeField};

/// A typed schema read from its SDL file.
#[derive(Debug)]
pub struct TypedSchema {
    pub path: PathBuf,
    /// The SDL as written.
    text: String,
    declared: Declared,
}

impl TypedSchema {
    /// Reads and checks `path`; the error has one line per problem, each with file, line and
    /// column.
    pub fn load(path: &Path, brokers: Vec<&str>, generic_api: bool) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("cannot read schema {}: {error}", path.display()))?;
        // Types of the built-in schema the SDL may not declare.
        let mut taken = vec!["BrokerInfo"];
        if generic_api {
            taken.push("Event");
        }
        let context = Context { brokers, provided: &builtin::PROVIDED, taken: &taken };
        let declared = sdl::read(&text, &context).map_err(|problems| {
            problems
                .iter()
                .map(|problem| format!("{}:{}:{}: {}", path.display(), problem.line, problem.column, problem.message))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        Ok(TypedSchema { path: path.to_owned(), text, declared })
    }

    /// The schema as a Federation v2 subgraph SDL.
    pub fn subgraph_sdl(&self) -> Result<String, String> {
        subgraph::subgraph_sdl(&self.text)
    }

    pub fn mutations(&self) -> usize {
        self.declared.mutations.len()
    }

    pub fn subscriptions(&self) -> usize {
        self.declared.subscriptions.len()
    }

    /// What the execution needs to write this schema's results.
    pub fn add_to(&self, model: &mut ExecModel) {
        model.add_typed(&self.declared.model, &self.declared.meta);
    }

    /// Registers the schema's types and root fields; `taken` names clash with nothing else.
    pub fn register(
        &self,
        mut builder: SchemaBuilder,
        roots: &mut Roots,
        taken: &mut BTreeMap<String, String>,
    ) -> Result<SchemaBuilder, String> {
        let model = &self.declared.model;
        let same = |name: &str| name.to_owned();
        for def in model.types.values() {
            if ["Query", "Mutation", "Subscription"].contains(&def.name.as_str())
                || builtin::PROVIDED.contains(&def.name.as_str())
            {
                continue;
            }
            if let Some(other) = taken.get(&def.name) {
                return Err(format!("type `{}` of the typed schema clashes with {other}", def.name));
            }
            taken.insert(def.name.clone(), "the typed schema".to_owned());
            builder = types::register(builder, def, &same);
        }
        let root = |name: &str| model.types.get(name).map(|def| def.fields.as_slice()).unwrap_or_default();
        for spec in &self.declared.subscriptions {
            let Some(def) = root("Subscription").iter().find(|field| field.name == spec.name) else { continue };
            claim(taken, &spec.name, "subscription field")?;
            roots.add_subscription(subscription_field(def, Arc::new(spec.clone())));
        }
        for spec in &self.declared.mutations {
            let Some(def) = root("Mutation").iter().find(|field| field.name == spec.name) else { continue };
            claim(taken, &spec.name, "mutation field")?;
            roots.add_mutation(publish_field(def, Arc::new(spec.clone())));
        }
        Ok(builder)
    }
}

fn claim(taken: &mut BTreeMap<String, String>, name: &str, what: &str) -> Result<(), String> {
    if let Some(other) = taken.get(name) {
        return Err(format!("{what} `{name}` of the typed schema clashes with {other}"));
    }
    taken.insert(name.to_owned(), "the typed schema".to_owned());
    Ok(())
}

fn subscription_field(def: &FieldDef, spec: Arc<SubscribeField>) -> SubscriptionField {
    let same = |name: &str| name.to_owned();
    let mut field = SubscriptionField::new(&def.name, types::type_ref(&same, &def.ty), move |ctx| {
        let spec = spec.clone();
        SubscriptionFieldFuture::new(async move {
            let (args, claims) = (arguments(&ctx), builtin::claims(&ctx));
            let sources = ctx.data::<Arc<Sources>>()?.clone();
            let access = ctx.data::<Arc<Access>>()?;
            let broker = sources.brokers().get(spec.broker.as_deref()).map_err(|e| Error::new(e.to_string()))?.clone();
            let mut leases = Vec::with_capacity(spec.topics.len());
            for topic in &spec.topics {
                let topic =
                    topic.render(&args, &claims, broker.reserved()).map_err(|error| Error::new(error.to_string()))?;
                access.resolve(Action::Subscribe, broker.as_ref(), &topic, &claims)?;
                let lease = sources
                    .acquire(Some(broker.name()), &topic)
                    .await
                    .map_err(|error| Error::new(error.to_string()))?;
                leases.push(lease);
            }
            let filters = spec
                .filters
                .iter()
                .map(|filter| filter.render(&args, &claims))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| Error::new(error.to_string()))?;
            builtin::subscribed(&ctx, Subscribed { leases, filters })
        })
    });
    if let Some(description) = &def.description {
        field = field.description(description);
    }
    for arg in &def.args {
        field = field.argument(types::input_value(&same, arg));
    }
    field
}

fn publish_field(def: &FieldDef, spec: Arc<PublishField>) -> Field {
    let same = |name: &str| name.to_owned();
    let takes_input = def.args.iter().any(|arg| arg.name == "input");
    let mut field = Field::new(&def.name, types::type_ref(&same, &def.ty), move |ctx| {
        let spec = spec.clone();
        FieldFuture::new(async move {
            let (args, claims) = (arguments(&ctx), builtin::claims(&ctx));
            let publisher = ctx.data::<Arc<Publisher>>()?;
            let broker = publisher.brokers().get(spec.broker.as_deref()).map_err(|e| Error::new(e.to_string()))?;
            let reserved = broker.reserved();
            let topic = spec.topic.render(&args, &claims, reserved).map_err(|error| Error::new(error.to_string()))?;
            ctx.data::<Arc<Access>>()?.resolve(Action::Publish, broker.as_ref(), &topic, &claims)?;
            let key = match &spec.key {
                Some(key) => Some(key.render_key(&args, &claims).map_err(|error| Error::new(error.to_string()))?),
                None => None,
            };
            // The arguments are the event; an argument named `input` is the event itself.
            let body = match (takes_input, args.get("input")) {
                (true, Some(input)) => input.clone(),
                _ => Value::Object(args),
            };
            let body = Bytes::from(serde_json::to_vec(&body)?);
            let ack = publisher
                .publish(Some(broker.name()), topic, key, body)
                .await
                .map_err(|error| Error::new(error.to_string()))?;
            Ok(Some(FieldValue::owned_any(ack)))
        })
    });
    if let Some(description) = &def.description {
        field = field.description(description);
    }
    for arg in &def.args {
        field = field.argument(types::input_value(&same, arg));
    }
    field
}

/// A field's arguments as JSON, as coerced by the validator (defaults included).
fn arguments(ctx: &ResolverContext<'_>) -> Map<String, Value> {
    ctx.args
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.as_value().clone().into_json().ok()?)))
        .collect()
}
