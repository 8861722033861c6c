//! Building the schema the hub serves. Today that is the built-in schema of DESIGN §4; typed
//! SDL schemas and upstream fields will be registered on the same dynamic schema.

mod builtin;

use std::sync::Arc;

use async_graphql::dynamic::Schema;
use subhub_subscriptions::Sources;

use crate::publish::Publisher;

/// The schema could not be built (a bug or a clash in configured schemas).
#[derive(Debug)]
pub struct SchemaError(pub String);

pub fn build(sources: Arc<Sources>, publisher: Arc<Publisher>) -> Result<Schema, SchemaError> {
    let builder = builtin::register(Schema::build("Query", Some("Mutation"), Some("Subscription")));
    builder.data(sources).data(publisher).finish().map_err(|e| SchemaError(e.to_string()))
}
