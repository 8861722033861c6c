//! The built-in schema (DESIGN §4):
//!
//! ```graphql
//! scalar JSON
//! type Event { topic: String!  broker: String!  key: String  id: String  payload: JSON  timestamp: String!  headers: JSON }
//! type PublishResult { ok: Boolean!  id: String }
//! type BrokerInfo { name: String!  kind: String!  connected: Boolean! }
//! type Query { brokers: [BrokerInfo!]! }
//! type Mutation { publish(topic: String!, payload: JSON!, key: String, broker: String): PublishResult! }
//! type Subscription { events(topic: String!, broker: String): Event! }
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, Scalar, SchemaBuilder, SubscriptionField,
    SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Error, Value};
use bytes::Bytes;
use subhub_brokers::PublishAck;
use subhub_subscriptions::Sources;

use super::Roots;
use crate::auth::Identity;
use crate::authz::{Access, Action};
use crate::operation::{Subscribed, SubscribedSlot};
use crate::publish::Publisher;

/// Types the hub always serves: the built-in schema's shared types, which a typed schema uses
/// (and may declare again, ignored) and the `brokers` query's.
pub const PROVIDED: [&str; 2] = ["JSON", "PublishResult"];
/// Names only the built-in `events` / `publish` API takes.
pub const GENERIC_NAMES: [&str; 3] = ["Event", "events", "publish"];
/// Names always taken: the root types and the `brokers` query's.
pub const ALWAYS_TAKEN: [&str; 5] = ["BrokerInfo", "brokers", "Query", "Mutation", "Subscription"];

/// Registers the types every hub serves and adds `brokers` to the query root.
pub fn register_shared(builder: SchemaBuilder, roots: &mut Roots) -> SchemaBuilder {
    roots.add_query(brokers_field());
    builder
        .register(Scalar::new("JSON").description("Any JSON value."))
        .register(publish_result_type())
        .register(broker_info_type())
}

/// Registers the generic API of DESIGN §4: `Event`, `events` and `publish`.
pub fn register_generic(builder: SchemaBuilder, roots: &mut Roots) -> SchemaBuilder {
    roots.add_mutation(publish_field());
    roots.add_subscription(events_field());
    builder.register(event_type())
}

pub fn optional_string(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<String>, Error> {
    match ctx.args.get(name) {
        Some(value) if !value.is_null() => Ok(Some(value.string()?.to_owned())),
        _ => Ok(None),
    }
}

/// A field whose value the execution writes from each event (`crate::execute`): the resolver
/// never runs.
pub fn written(name: &str, ty: TypeRef) -> Field {
    Field::new(name, ty, |_| FieldFuture::from_value(None))
}

fn event_type() -> Object {
    Object::new("Event")
        .description("One event read from a source.")
        .field(written("topic", TypeRef::named_nn(TypeRef::STRING)))
        .field(written("broker", TypeRef::named_nn(TypeRef::STRING)))
        .field(written("key", TypeRef::named(TypeRef::STRING)))
        .field(written("id", TypeRef::named(TypeRef::STRING)))
        .field(written("payload", TypeRef::named("JSON")))
        .field(written("timestamp", TypeRef::named_nn(TypeRef::STRING)))
        .field(written("headers", TypeRef::named("JSON")))
}

fn publish_result_type() -> Object {
    Object::new("PublishResult")
        .field(Field::new("ok", TypeRef::named_nn(TypeRef::BOOLEAN), |_| {
            FieldFuture::from_value(Some(Value::Boolean(true)))
        }))
        .field(Field::new("id", TypeRef::named(TypeRef::STRING), |ctx| {
            let id = ctx.parent_value.try_downcast_ref::<PublishAck>().ok().and_then(|ack| ack.id.clone());
            FieldFuture::from_value(id.map(Value::String))
        }))
}

struct BrokerInfo {
    name: String,
    kind: &'static str,
    connected: bool,
}

fn broker_info_type() -> Object {
    let field = |name: &str, ty: &str, read: fn(&BrokerInfo) -> Value| {
        Field::new(name, TypeRef::named_nn(ty), move |ctx| {
            FieldFuture::from_value(ctx.parent_value.try_downcast_ref::<BrokerInfo>().ok().map(read))
        })
    };
    Object::new("BrokerInfo")
        .field(field("name", TypeRef::STRING, |b| Value::String(b.name.clone())))
        .field(field("kind", TypeRef::STRING, |b| Value::String(b.kind.to_owned())))
        .field(field("connected", TypeRef::BOOLEAN, |b| Value::Boolean(b.connected)))
}

fn brokers_field() -> Field {
    Field::new("brokers", TypeRef::named_nn_list_nn("BrokerInfo"), |ctx| {
        FieldFuture::new(async move {
            let publisher = ctx.data::<Arc<Publisher>>()?;
            let infos = publisher.brokers().iter().map(|broker| {
                FieldValue::owned_any(BrokerInfo {
                    name: broker.name().to_owned(),
                    kind: broker.kind(),
                    connected: broker.stats().connected.load(Relaxed),
                })
            });
            Ok(Some(FieldValue::list(infos)))
        })
    })
}

fn publish_field() -> Field {
    Field::new("publish", TypeRef::named_nn("PublishResult"), |ctx| {
        FieldFuture::new(async move {
            let topic = ctx.args.try_get("topic")?.string()?.to_owned();
            let payload = ctx.args.try_get("payload")?.as_value().clone().into_json()?;
            let key = optional_string(&ctx, "key")?;
            let broker = optional_string(&ctx, "broker")?;
            let body = Bytes::from(serde_json::to_vec(&payload)?);
            let publisher = ctx.data::<Arc<Publisher>>()?;
            let target = publisher.brokers().get(broker.as_deref()).map_err(|e| Error::new(e.to_string()))?;
            ctx.data::<Arc<Access>>()?.resolve(Action::Publish, target.as_ref(), &topic, &claims(&ctx))?;
            let ack =
                publisher.publish(broker.as_deref(), topic, key, body).await.map_err(|e| Error::new(e.to_string()))?;
            Ok(Some(FieldValue::owned_any(ack)))
        })
    })
    .argument(InputValue::new("topic", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("payload", TypeRef::named_nn("JSON")))
    .argument(InputValue::new("key", TypeRef::named(TypeRef::STRING)))
    .argument(InputValue::new("broker", TypeRef::named(TypeRef::STRING)))
}

fn events_field() -> SubscriptionField {
    SubscriptionField::new("events", TypeRef::named_nn("Event"), |ctx| {
        SubscriptionFieldFuture::new(async move {
            let topic = ctx.args.try_get("topic")?.string()?.to_owned();
            let broker = optional_string(&ctx, "broker")?;
            let sources = ctx.data::<Arc<Sources>>()?.clone();
            let target = sources.brokers().get(broker.as_deref()).map_err(|e| Error::new(e.to_string()))?;
            ctx.data::<Arc<Access>>()?.resolve(Action::Subscribe, target.as_ref(), &topic, &claims(&ctx))?;
            let lease = sources.acquire(broker.as_deref(), &topic).await.map_err(|e| Error::new(e.to_string()))?;
            subscribed(&ctx, Subscribed { leases: vec![lease], filters: Vec::new() })
        })
    })
    .argument(InputValue::new("topic", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("broker", TypeRef::named(TypeRef::STRING)))
}

/// The claims of the client's token (none for anonymous clients).
pub fn claims(ctx: &ResolverContext<'_>) -> serde_json::Map<String, serde_json::Value> {
    ctx.data_opt::<Identity>().map(|identity| identity.claims.clone()).unwrap_or_default()
}

/// Hands a subscription's sources to its execution, which writes their events from here on;
/// the stream async-graphql gets never yields.
pub fn subscribed(
    ctx: &ResolverContext<'_>,
    subscribed: Subscribed,
) -> Result<futures_util::stream::Pending<Result<FieldValue<'static>, Error>>, Error> {
    let slot =
        ctx.data::<SubscribedSlot>().map_err(|_| Error::new("subscriptions run over WebSocket, SSE or multipart"))?;
    if !slot.deliver(subscribed) {
        return Err(Error::new("the subscription ended before its sources were open"));
    }
    Ok(futures_util::stream::pending())
}
