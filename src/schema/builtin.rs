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
    Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, Scalar, SchemaBuilder, Subscription,
    SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use async_graphql::{Error, Value};
use bytes::Bytes;
use subhub_brokers::{Event, PublishAck};
use subhub_subscriptions::Sources;

use crate::operation::LiveSignal;
use crate::publish::Publisher;

/// The names the built-in schema takes; an upstream merged without a namespace may not reuse them.
pub const TYPE_NAMES: [&str; 7] = ["JSON", "Event", "PublishResult", "BrokerInfo", "Query", "Mutation", "Subscription"];
pub const SUBSCRIPTION_FIELDS: [&str; 1] = ["events"];

/// Registers the built-in types and adds `events` to `subscription`.
pub fn register(builder: SchemaBuilder, subscription: Subscription) -> SchemaBuilder {
    builder
        .register(Scalar::new("JSON").description("Any JSON value."))
        .register(event_type())
        .register(publish_result_type())
        .register(broker_info_type())
        .register(Object::new("Query").field(brokers_field()))
        .register(Object::new("Mutation").field(publish_field()))
        .register(subscription.field(events_field()))
}

fn json(value: &serde_json::Value) -> Value {
    Value::from_json(value.clone()).unwrap_or(Value::Null)
}

fn optional(text: &Option<String>) -> Value {
    text.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn optional_string(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<String>, Error> {
    match ctx.args.get(name) {
        Some(value) if !value.is_null() => Ok(Some(value.string()?.to_owned())),
        _ => Ok(None),
    }
}

/// A field of `Event`, read from the event the subscription yielded.
fn event_field(name: &str, ty: TypeRef, read: fn(&Event) -> Value) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::Value(match ctx.parent_value.try_downcast_ref::<Arc<Event>>() {
            Ok(event) => Some(FieldValue::value(read(event))),
            Err(_) => None,
        })
    })
}

fn event_type() -> Object {
    Object::new("Event")
        .description("One event read from a source.")
        .field(event_field("topic", TypeRef::named_nn(TypeRef::STRING), |e| Value::String(e.topic.to_string())))
        .field(event_field("broker", TypeRef::named_nn(TypeRef::STRING), |e| Value::String(e.broker.to_string())))
        .field(event_field("key", TypeRef::named(TypeRef::STRING), |e| optional(&e.key)))
        .field(event_field("id", TypeRef::named(TypeRef::STRING), |e| optional(&e.id)))
        .field(event_field("payload", TypeRef::named("JSON"), |e| json(&e.payload)))
        .field(event_field("timestamp", TypeRef::named_nn(TypeRef::STRING), |e| Value::String(e.timestamp_rfc3339())))
        .field(event_field("headers", TypeRef::named("JSON"), |e| json(&serde_json::Value::Object(e.headers.clone()))))
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
            let lease = sources.acquire(broker.as_deref(), &topic).await.map_err(|e| Error::new(e.to_string()))?;
            if let Some(live) = ctx.data_opt::<LiveSignal>() {
                live.mark();
            }
            Ok(futures_util::stream::unfold(lease, |mut lease| async move {
                let event = lease.recv().await?;
                Some((Ok::<_, Error>(FieldValue::owned_any(event)), lease))
            }))
        })
    })
    .argument(InputValue::new("topic", TypeRef::named_nn(TypeRef::STRING)))
    .argument(InputValue::new("broker", TypeRef::named(TypeRef::STRING)))
}
