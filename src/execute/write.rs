//! One event through a plan: the result written as JSON text straight from the payload's own
//! text, each value checked against its field. A value that does not fit its field becomes
//! `null` with an error naming its path, and a `null` in a non-null field propagates to the
//! nearest nullable parent, as the spec's null propagation says; the subscription goes on.

use std::fmt::Write as _;

use serde_json::value::RawValue;
use subhub_brokers::Event;

use super::model::{Meta, Scalar, Source};
use super::payload::{self, JsonKind, RawObject};
use super::plan::{FieldPlan, FieldSource, ObjectPlan, Plan, ValuePlan};

/// An event's result.
pub struct Output {
    /// `{"data":…}`, with `"errors"` when some value did not fit.
    pub json: String,
    /// Values that did not fit (and nulls in non-null fields).
    pub errors: usize,
}

/// Writes the result of `event` under `plan`.
pub fn write(plan: &Plan, event: &Event) -> Output {
    let mut writer = Writer {
        event,
        out: String::with_capacity(event.payload_json().len() + 64),
        errors: Vec::new(),
        path: Vec::new(),
    };
    writer.out.push_str(r#"{"data":"#);
    let data = writer.out.len();
    writer.out.push('{');
    let root = &plan.root;
    let payload: Option<&RawValue> = serde_json::from_str(event.payload_json()).ok();
    if writer.field(root, payload.map(Value::Raw)).is_err() {
        writer.out.truncate(data);
        writer.out.push_str("null");
    } else {
        writer.out.push('}');
    }
    let errors = writer.errors.len();
    if errors > 0 {
        writer.out.push_str(r#","errors":["#);
        for (n, error) in writer.errors.iter().enumerate() {
            if n > 0 {
                writer.out.push(',');
            }
            writer.out.push_str(error);
        }
        writer.out.push(']');
    }
    writer.out.push('}');
    Output { json: writer.out, errors }
}

/// A null written where a non-null value belongs: the parent must become null too.
struct Bubble;

/// What a value turned out to be once written.
#[derive(PartialEq, Eq)]
enum Written {
    Value,
    /// `null`, as the payload had it (or had nothing).
    Null,
    /// `null` in place of a value that did not fit; its error is recorded.
    Failed,
}

/// A value to write: text from the payload, or metadata made into JSON text.
enum Value<'a> {
    Raw(&'a RawValue),
    Made(String),
}

impl Value<'_> {
    fn text(&self) -> &str {
        match self {
            Value::Raw(raw) => raw.get(),
            Value::Made(text) => text,
        }
    }

    fn kind(&self) -> JsonKind {
        match self {
            Value::Raw(raw) => JsonKind::of(raw),
            Value::Made(text) => serde_json::from_str::<&RawValue>(text).map_or(JsonKind::Null, JsonKind::of),
        }
    }
}

#[derive(Clone)]
enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

struct Writer<'e, 'p> {
    event: &'e Event,
    out: String,
    errors: Vec<String>,
    path: Vec<Segment<'p>>,
}

impl<'e, 'p> Writer<'e, 'p> {
    /// Writes `"key":value`; a bubble from a non-null field reaches the caller.
    fn field<'v>(&mut self, field: &'p FieldPlan, value: Option<Value<'v>>) -> Result<(), Bubble>
    where
        'e: 'v,
    {
        self.out.push_str(&field.key);
        self.out.push(':');
        let start = self.out.len();
        self.path.push(Segment::Key(&field.response_key));
        let written = self.value(&field.value, value);
        let result = match written {
            Ok(Written::Value) => Ok(()),
            Ok(Written::Null) if field.non_null => {
                self.error(&format!("the event has no value for `{}`, which must not be null", field.name));
                Err(Bubble)
            }
            Ok(Written::Failed) if field.non_null => Err(Bubble),
            Ok(_) => Ok(()),
            Err(Bubble) => {
                self.out.truncate(start);
                self.out.push_str("null");
                if field.non_null {
                    Err(Bubble)
                } else {
                    Ok(())
                }
            }
        };
        self.path.pop();
        result
    }

    fn value<'v>(&mut self, plan: &'p ValuePlan, value: Option<Value<'v>>) -> Result<Written, Bubble>
    where
        'e: 'v,
    {
        let Some(value) = value.filter(|value| value.kind() != JsonKind::Null) else {
            self.out.push_str("null");
            return Ok(Written::Null);
        };
        match plan {
            ValuePlan::Scalar(scalar) => Ok(self.scalar(*scalar, &value)),
            ValuePlan::Enum(values) => {
                let Value::Raw(raw) = &value else { return Ok(self.misfit("an enum value", &value)) };
                match payload::string(raw) {
                    Some(text) if values.contains(text.as_ref()) => {
                        self.out.push_str(raw.get());
                        Ok(Written::Value)
                    }
                    _ => Ok(self.misfit("one of the enum's values", &value)),
                }
            }
            ValuePlan::Object(object) => self.object(object, &value),
            ValuePlan::Abstract { name, by_type } => {
                let Value::Raw(raw) = &value else { return Ok(self.misfit("an object", &value)) };
                let type_name = RawObject::parse(raw).and_then(|o| o.get("__typename")).and_then(payload::string);
                match type_name.as_deref().and_then(|type_name| by_type.get(type_name)) {
                    Some(object) => self.object(object, &value),
                    None => Ok(self.misfit(&format!("an object whose `__typename` names a type of `{name}`"), &value)),
                }
            }
            ValuePlan::List { item, item_non_null } => {
                let Some(items) = (match &value {
                    Value::Raw(raw) => payload::list(raw),
                    Value::Made(_) => None,
                }) else {
                    return Ok(self.misfit("a list", &value));
                };
                self.out.push('[');
                for (index, raw) in items.into_iter().enumerate() {
                    if index > 0 {
                        self.out.push(',');
                    }
                    self.path.push(Segment::Index(index));
                    let written = self.value(item, Some(Value::Raw(raw)));
                    let bubble = match written {
                        Ok(Written::Null) if *item_non_null => {
                            self.error("a list item must not be null");
                            true
                        }
                        Ok(Written::Failed) => *item_non_null,
                        Ok(_) => false,
                        Err(Bubble) => true,
                    };
                    self.path.pop();
                    if bubble {
                        return Err(Bubble);
                    }
                }
                self.out.push(']');
                Ok(Written::Value)
            }
        }
    }

    fn object<'v>(&mut self, object: &'p ObjectPlan, value: &Value<'v>) -> Result<Written, Bubble>
    where
        'e: 'v,
    {
        let members = match value {
            Value::Raw(raw) => RawObject::parse(raw),
            Value::Made(_) => None,
        };
        if object.reads_payload && members.is_none() {
            return Ok(self.misfit("an object", value));
        }
        self.out.push('{');
        for (n, field) in object.fields.iter().enumerate() {
            if n > 0 {
                self.out.push(',');
            }
            let value = match &field.source {
                FieldSource::TypeName => {
                    Some(Value::Made(serde_json::Value::String(object.type_name.clone()).to_string()))
                }
                FieldSource::Read(Source::Payload(name)) => members.as_ref().and_then(|m| m.get(name)).map(Value::Raw),
                FieldSource::Read(Source::Meta(meta)) => self.meta(meta),
                // Only a subscription field reads the event itself.
                FieldSource::Read(Source::Root) => None,
            };
            self.field(field, value)?;
        }
        self.out.push('}');
        Ok(Written::Value)
    }

    fn scalar(&mut self, scalar: Scalar, value: &Value<'_>) -> Written {
        let kind = value.kind();
        let fits = match scalar {
            Scalar::Any => true,
            Scalar::String => kind == JsonKind::String,
            Scalar::Boolean => kind == JsonKind::Bool,
            Scalar::Float => kind == JsonKind::Number,
            Scalar::Int => kind == JsonKind::Number && value.text().parse::<i32>().is_ok(),
            Scalar::Id => match kind {
                JsonKind::String => true,
                // An integer ID is served as a string.
                JsonKind::Number if value.text().parse::<i64>().is_ok() => {
                    let _ = write!(self.out, "\"{}\"", value.text());
                    return Written::Value;
                }
                _ => false,
            },
        };
        if !fits {
            return self.misfit(scalar.name(), value);
        }
        self.out.push_str(value.text());
        Written::Value
    }

    fn meta(&self, meta: &Meta) -> Option<Value<'e>> {
        let event = self.event;
        let string = |text: &str| Value::Made(serde_json::Value::String(text.to_owned()).to_string());
        Some(match meta {
            Meta::Topic => string(&event.topic),
            Meta::Broker => string(&event.broker),
            Meta::Key => string(event.key.as_deref()?),
            Meta::Id => string(event.id.as_deref()?),
            Meta::Timestamp => string(&event.timestamp_rfc3339()),
            Meta::Headers => Value::Made(serde_json::Value::Object(event.headers.clone()).to_string()),
            Meta::Header(name) => Value::Made(event.headers.get(name)?.to_string()),
            Meta::Payload => match serde_json::from_str::<&RawValue>(event.payload_json()) {
                Ok(raw) => Value::Raw(raw),
                Err(_) => return None,
            },
        })
    }

    /// A value that does not fit its field: `null` in its place, and an error.
    fn misfit(&mut self, expected: &str, value: &Value<'_>) -> Written {
        self.error(&format!(
            "the event does not fit the schema here: expected {expected}, found {}",
            value.kind().name()
        ));
        self.out.push_str("null");
        Written::Failed
    }

    fn error(&mut self, message: &str) {
        let mut error = String::from(r#"{"message":"#);
        error.push_str(&serde_json::Value::String(message.to_owned()).to_string());
        error.push_str(r#","path":["#);
        for (n, segment) in self.path.iter().enumerate() {
            if n > 0 {
                error.push(',');
            }
            match segment {
                Segment::Key(key) => error.push_str(&serde_json::Value::String((*key).to_owned()).to_string()),
                Segment::Index(index) => {
                    let _ = write!(error, "{index}");
                }
            }
        }
        error.push_str("]}");
        self.errors.push(error);
    }
}
