//! Building the schema the hub serves: the built-in schema of DESIGN §4 and each upstream's
//! namespaced subscription fields, on one dynamic schema. Typed SDL schemas will join them.

mod builtin;
pub mod upstream;

use std::sync::Arc;

use std::collections::BTreeMap;

use async_graphql::dynamic::{Schema, Subscription};
use subhub_subscriptions::Sources;

use crate::execute::ExecModel;
use crate::publish::Publisher;
use crate::upstreams::Upstreams;

/// The schema could not be built (a bug or a clash in configured schemas).
#[derive(Debug)]
pub struct SchemaError(pub String);

/// The schema served, and what the execution of its subscriptions knows of its types.
pub fn build(
    sources: Arc<Sources>,
    publisher: Arc<Publisher>,
    upstreams: &Upstreams,
) -> Result<(Schema, ExecModel), SchemaError> {
    let mut taken: BTreeMap<String, String> = builtin::TYPE_NAMES
        .iter()
        .chain(&builtin::SUBSCRIPTION_FIELDS)
        .map(|name| (name.to_string(), "the built-in schema".to_owned()))
        .collect();
    let mut builder = Schema::build("Query", Some("Mutation"), Some("Subscription"));
    let mut subscription = Subscription::new("Subscription");
    for entry in upstreams.entries() {
        (builder, subscription) = upstream::register(builder, subscription, entry, &mut taken).map_err(SchemaError)?;
    }
    let builder = builtin::register(builder, subscription);
    let mut model = ExecModel::default();
    model.add_builtin();
    let schema = builder.data(sources).data(publisher).finish().map_err(|e| SchemaError(e.to_string()))?;
    Ok((schema, model))
}
