//! The bytes every subscriber of one execution receives for one event.

use std::ops::Deref;
use std::sync::Arc;

/// A serialized GraphQL result shared by every subscriber of one execution, with the broker
/// position of the event it came from (its cursor, DESIGN §12) where the event has one. Each
/// transport frames it its own way: a WebSocket `next`, an SSE `event: next` whose `id:` is the
/// cursor, a multipart part. Cloning it clones a pointer.
#[derive(Clone, Debug)]
pub struct SharedPayload(Arc<Payload>);

#[derive(Debug)]
struct Payload {
    json: Box<str>,
    cursor: Option<Box<str>>,
}

impl SharedPayload {
    pub fn new(json: impl Into<Box<str>>, cursor: Option<&str>) -> Self {
        SharedPayload(Arc::new(Payload { json: json.into(), cursor: cursor.map(Into::into) }))
    }

    /// The result as JSON text.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// The position of the event in its broker, where it has one.
    pub fn cursor(&self) -> Option<&str> {
        self.0.cursor.as_deref()
    }
}

impl Deref for SharedPayload {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0.json
    }
}

impl From<String> for SharedPayload {
    fn from(json: String) -> Self {
        SharedPayload::new(json, None)
    }
}

impl From<&str> for SharedPayload {
    fn from(json: &str) -> Self {
        SharedPayload::new(json, None)
    }
}
