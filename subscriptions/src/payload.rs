//! The bytes every subscriber of one execution receives for one event.

use std::ops::Deref;
use std::sync::Arc;

use crate::metrics::Delivery;

/// A serialized GraphQL result shared by every subscriber of one execution, with the broker
/// position of the event it came from (its cursor, DESIGN §12) where the event has one. Each
/// transport frames it its own way: a WebSocket `next`, an SSE `event: next` whose `id:` is the
/// cursor, a multipart part. Cloning it clones a pointer. A live event's result carries the
/// clock of its delivery, stopped when the last subscriber is done with it
/// ([`crate::metrics::Delivery`]).
#[derive(Clone, Debug)]
pub struct SharedPayload(Arc<Payload>);

#[derive(Debug)]
struct Payload {
    json: Box<str>,
    cursor: Option<Box<str>>,
    /// The id of the event it came from, which tells a resumed client's replay and its live
    /// results apart.
    event: Option<Box<str>>,
    /// Observed when the last reference goes.
    _delivery: Option<Delivery>,
}

impl SharedPayload {
    pub fn new(json: impl Into<Box<str>>, cursor: Option<&str>) -> Self {
        SharedPayload(Arc::new(Payload {
            json: json.into(),
            cursor: cursor.map(Into::into),
            event: None,
            _delivery: None,
        }))
    }

    /// A result of the event with id `event`.
    pub fn of_event(json: impl Into<Box<str>>, cursor: Option<&str>, event: Option<&str>) -> Self {
        Self::of_timed_event(json, cursor, event, None)
    }

    /// A result of the event with id `event`, timed by `delivery` to its last subscriber (a
    /// live event's; a replayed one has none).
    pub fn of_timed_event(
        json: impl Into<Box<str>>,
        cursor: Option<&str>,
        event: Option<&str>,
        delivery: Option<Delivery>,
    ) -> Self {
        SharedPayload(Arc::new(Payload {
            json: json.into(),
            cursor: cursor.map(Into::into),
            event: event.map(Into::into),
            _delivery: delivery,
        }))
    }

    /// The id of the event it came from.
    pub fn event(&self) -> Option<&str> {
        self.0.event.as_deref()
    }

    /// The same result with `extensions.recovered` added: the first `next` a resumed client
    /// gets says whether it missed nothing. A copy, for that one client.
    pub fn marked_recovered(&self, recovered: bool) -> Self {
        let json = &self.0.json;
        let flag = format!(r#""recovered":{recovered}"#);
        let marked = match json.rfind(r#""extensions":{"#) {
            Some(at) => {
                let after = at + r#""extensions":{"#.len();
                let separator = if json[after..].starts_with('}') { "" } else { "," };
                format!("{}{flag}{separator}{}", &json[..after], &json[after..])
            }
            None => match json.strip_suffix('}') {
                Some(open) => format!(r#"{open},"extensions":{{{flag}}}}}"#),
                None => json.to_string(),
            },
        };
        SharedPayload(Arc::new(Payload {
            json: marked.into(),
            cursor: self.0.cursor.clone(),
            event: self.0.event.clone(),
            _delivery: None,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovered_flag_joins_the_extensions() {
        let with = SharedPayload::new(r#"{"data":{"x":1},"extensions":{"cursor":"7"}}"#, Some("7"));
        assert_eq!(
            with.marked_recovered(true).json(),
            r#"{"data":{"x":1},"extensions":{"recovered":true,"cursor":"7"}}"#
        );
        let without = SharedPayload::from(r#"{"data":{"x":1}}"#);
        assert_eq!(without.marked_recovered(false).json(), r#"{"data":{"x":1},"extensions":{"recovered":false}}"#);
        for json in [with.marked_recovered(false).json(), without.marked_recovered(true).json()] {
            serde_json::from_str::<serde_json::Value>(json).unwrap();
        }
    }
}
