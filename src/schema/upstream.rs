//! An upstream's subscription fields and the types they reach, registered under the upstream's
//! namespace. They are here for validation and introspection: operations on them are forwarded
//! upstream and their results passed through, so their resolvers never run.

use std::collections::BTreeMap;

use async_graphql::dynamic::{SchemaBuilder, Subscription, SubscriptionField, SubscriptionFieldFuture};
use async_graphql::{Error, Value};

use super::types;
use crate::upstreams::UpstreamEntry;

/// The error an upstream field's resolver returns: reaching it proves the operation valid.
pub const FORWARD: &str = "subhub: forwarded upstream";

/// Registers `entry`'s types; adds its subscription fields to `subscription`. `taken` holds every
/// name registered so far and who took it; a clash fails naming both.
pub fn register(
    mut builder: SchemaBuilder,
    mut subscription: Subscription,
    entry: &UpstreamEntry,
    taken: &mut BTreeMap<String, String>,
) -> Result<(SchemaBuilder, Subscription), String> {
    let namespace = &entry.namespace;
    let owner = format!("upstream `{}`", entry.name);
    let mut claim = |name: String, what: &str| match taken.get(&name) {
        Some(other) => Err(format!("{what} `{name}` of {owner} clashes with {other}; give the upstream a namespace")),
        None => {
            taken.insert(name, format!("{what} of {owner}"));
            Ok(())
        }
    };
    let names = |name: &str| namespace.hub_name(name);
    for def in entry.model.reachable() {
        claim(namespace.hub_name(&def.name), "type")?;
        builder = types::register(builder, def, &names);
    }
    for field in entry.model.subscription_fields() {
        let name = namespace.hub_name(&field.name);
        claim(name.clone(), "subscription field")?;
        let mut forwarded = SubscriptionField::new(&name, types::type_ref(&names, &field.ty), |_| {
            SubscriptionFieldFuture::new(async {
                Err::<futures_util::stream::Empty<Result<Value, Error>>, _>(Error::new(FORWARD))
            })
        });
        if let Some(description) = &field.description {
            forwarded = forwarded.description(description);
        }
        for arg in &field.args {
            forwarded = forwarded.argument(types::input_value(&names, arg));
        }
        subscription = subscription.field(forwarded);
    }
    Ok((builder, subscription))
}
