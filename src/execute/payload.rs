//! Reading an event's JSON without building a tree: an object is a list of its members, each
//! value still the text it was published as, to be checked against the field it answers and
//! copied into the result as it is.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Objects with more members than this are looked up through a sorted index rather than by
/// scanning.
const SCAN_MEMBERS: usize = 16;

/// What a JSON value is, from its first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    pub fn of(raw: &RawValue) -> JsonKind {
        match raw.get().trim_start().as_bytes().first() {
            Some(b'n') | None => JsonKind::Null,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'"') => JsonKind::String,
            Some(b'[') => JsonKind::Array,
            Some(b'{') => JsonKind::Object,
            Some(_) => JsonKind::Number,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "a list",
            JsonKind::Object => "an object",
        }
    }
}

/// A JSON object's members, borrowed from its text.
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// Member indexes sorted by name, for large objects.
    index: Option<Vec<usize>>,
}

impl<'a> RawObject<'a> {
    /// The object `raw` holds, or `None` when it holds something else.
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        if JsonKind::of(raw) != JsonKind::Object {
            return None;
        }
        let Members(members) = serde_json::from_str(raw.get()).ok()?;
        let index = (members.len() > SCAN_MEMBERS).then(|| {
            let mut index: Vec<usize> = (0..members.len()).collect();
            // Stable: for a name given twice the later one is found last, and wins as in serde_json.
            index.sort_by(|a, b| members[*a].0.cmp(&members[*b].0));
            index
        });
        Some(RawObject { members, index })
    }

    /// The value of member `name` (the last one, if the name appears twice).
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        match &self.index {
            None => self.members.iter().rev().find(|(key, _)| key == name).map(|(_, value)| *value),
            Some(index) => {
                let end = index.partition_point(|&i| self.members[i].0.as_ref() <= name);
                let last = *index.get(end.checked_sub(1)?)?;
                (self.members[last].0 == name).then_some(self.members[last].1)
            }
        }
    }
}

/// The items of a JSON list, borrowed; `None` when `raw` holds something else.
pub fn list(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if JsonKind::of(raw) != JsonKind::Array {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The text of a JSON string, unescaped; `None` when `raw` holds something else.
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if JsonKind::of(raw) != JsonKind::String {
        return None;
    }
    let Text(text) = serde_json::from_str(raw.get()).ok()?;
    Some(text)
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Text(key)) = map.next_key()? {
                    members.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A string borrowed from the JSON text where it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn objects_are_read_member_by_member() {
        let object = RawObject::parse(raw(r#"{"z": 1, "a\u0041": [1, 2], "n": null, "z": {"x": "y"}}"#)).unwrap();
        assert_eq!(object.get("z").unwrap().get(), r#"{"x": "y"}"#, "the last of a repeated name");
        assert_eq!(object.get("aA").unwrap().get(), "[1, 2]");
        assert_eq!(JsonKind::of(object.get("n").unwrap()), JsonKind::Null);
        assert!(object.get("missing").is_none());
        assert!(RawObject::parse(raw("[1]")).is_none());
        assert_eq!(list(raw("[1, \"a\"]")).unwrap().len(), 2);
        assert_eq!(string(raw(r#""a\"b""#)).unwrap(), "a\"b");
    }

    #[test]
    fn large_objects_are_indexed() {
        let text = format!("{{{}}}", (0..40).map(|n| format!("\"k{n}\": {n}")).collect::<Vec<_>>().join(","));
        let raw = raw(&text);
        let object = RawObject::parse(raw).unwrap();
        assert!(object.index.is_some());
        for n in 0..40 {
            assert_eq!(object.get(&format!("k{n}")).unwrap().get(), n.to_string());
        }
        assert!(object.get("k40").is_none() && object.get("a").is_none() && object.get("zz").is_none());
    }
}
