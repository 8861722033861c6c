//! Templates: `orders.{{ args.id }}` in a typed schema's directives, `user.{{ claims.sub }}.**`
//! in `[authz]` rules. They render per operation from the field's arguments and the client's
//! token claims. A rendered value may not carry the broker's wildcard or separator characters,
//! so a client argument can never widen a subscription or reach beside its own topic.

use serde_json::{Map, Value};

/// Characters that separate a topic's segments on some broker (`.` AMQP and NATS, `/` MQTT,
/// `:` Redis by convention): no argument may carry them.
pub const SEPARATORS: &[char] = &['.', '/', ':'];

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Arg(String),
    /// A path into the claims: `claims.org.id` is `["org", "id"]`.
    Claim(Vec<String>),
}

/// Why a template cannot render for an operation. The text is safe to show clients.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the token has no claim `{0}`")]
    MissingClaim(String),
    #[error("{name} is {what}, which cannot be part of a topic")]
    NotText { name: String, what: &'static str },
    #[error("{name} must not contain `{found}`: it would change the topic")]
    Reserved { name: String, found: char },
    #[error("{name} must not be empty")]
    Empty { name: String },
}

impl Template {
    /// Reads `{{ args.NAME }}` and `{{ claims.PATH }}` among plain text; the message says what
    /// is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("`{{{{` without `}}}}` in \"{text}\""))?;
            let expression = after[..end].trim();
            let mut path = expression.split('.');
            let part = match (path.next(), path.clone().next()) {
                (Some("args"), Some(name)) if !name.is_empty() && path.clone().count() == 1 => Part::Arg(name.to_owned()),
                (Some("args"), _) => return Err(format!("`{{{{ {expression} }}}}`: write `{{{{ args.NAME }}}}` with one argument name")),
                (Some("claims"), Some(_)) if path.clone().all(|segment| !segment.is_empty()) => {
                    Part::Claim(path.map(str::to_owned).collect())
                }
                _ => {
                    return Err(format!(
                        "`{{{{ {expression} }}}}` names neither `args` nor `claims`: write `{{{{ args.NAME }}}}` or `{{{{ claims.PATH }}}}`"
                    ))
                }
            };
            parts.push(part);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("`}}}}` without `{{{{` in \"{text}\""));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The argument names it uses.
    pub fn args(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Arg(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether it reads the client's claims.
    pub fn uses_claims(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Claim(_)))
    }

    /// The text with every template replaced; values may not be empty nor carry `reserved`
    /// (the broker's wildcards), and arguments may not carry a [`SEPARATORS`] character either,
    /// on any broker: `orders.{{ args.id }}` with id `by-user.ada` would read another field's
    /// topic. Claims come from a verified token and may (an email as `sub`).
    pub fn render(
        &self,
        args: &Map<String, Value>,
        claims: &Map<String, Value>,
        reserved: &[char],
    ) -> Result<String, RenderError> {
        self.render_with(args, claims, reserved, SEPARATORS)
    }

    /// A message key: any text but control characters; it names no topic.
    pub fn render_key(&self, args: &Map<String, Value>, claims: &Map<String, Value>) -> Result<String, RenderError> {
        self.render_with(args, claims, &[], &[])
    }

    fn render_with(
        &self,
        args: &Map<String, Value>,
        claims: &Map<String, Value>,
        reserved: &[char],
        arg_separators: &[char],
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            let (name, value, separators) = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::Arg(name) => {
                    (format!("argument `{name}`"), args.get(name).unwrap_or(&Value::Null), arg_separators)
                }
                Part::Claim(path) => (format!("claim `{}`", path.join(".")), claim(claims, path)?, &[][..]),
            };
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => return Err(RenderError::NotText { name, what: "null" }),
                Value::Array(_) => return Err(RenderError::NotText { name, what: "a list" }),
                Value::Object(_) => return Err(RenderError::NotText { name, what: "an object" }),
            };
            if text.is_empty() {
                return Err(RenderError::Empty { name });
            }
            if let Some(found) = text.chars().find(|c| reserved.contains(c) || separators.contains(c) || c.is_control())
            {
                return Err(RenderError::Reserved { name, found });
            }
            out.push_str(&text);
        }
        Ok(out)
    }

    /// A value for a filter: a template that is one expression and nothing else renders to the
    /// argument's or claim's own value (a number stays a number); any other renders as text.
    pub fn render_value(&self, args: &Map<String, Value>, claims: &Map<String, Value>) -> Result<Value, RenderError> {
        match self.parts.as_slice() {
            [Part::Arg(name)] => Ok(args.get(name).cloned().unwrap_or(Value::Null)),
            [Part::Claim(path)] => claim(claims, path).cloned(),
            _ => self.render_key(args, claims).map(Value::String),
        }
    }
}

/// The claim at `path` (`["org", "id"]` is `claims.org.id`).
pub fn claim<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Result<&'a Value, RenderError> {
    let mut value = claims.get(path.first().map_or("", String::as_str));
    for segment in path.iter().skip(1) {
        value = value.and_then(|v| v.get(segment));
    }
    value.ok_or_else(|| RenderError::MissingClaim(path.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn templates_render_arguments_and_claims() {
        let template = Template::parse("orders.{{ args.id }}.by.{{claims.org.id}}").unwrap();
        assert_eq!(template.args().collect::<Vec<_>>(), ["id"]);
        assert!(template.uses_claims());
        let rendered = template.render(&map(json!({"id": 42})), &map(json!({"org": {"id": "acme"}})), &['.']);
        assert_eq!(rendered.unwrap(), "orders.42.by.acme");
    }

    #[test]
    fn a_value_cannot_widen_or_leave_its_topic() {
        let template = Template::parse("orders.{{ args.id }}").unwrap();
        let claims = Map::new();
        for (id, error) in [
            (json!("*"), RenderError::Reserved { name: "argument `id`".into(), found: '*' }),
            (json!("1.#"), RenderError::Reserved { name: "argument `id`".into(), found: '.' }),
            (json!(""), RenderError::Empty { name: "argument `id`".into() }),
            (json!(null), RenderError::NotText { name: "argument `id`".into(), what: "null" }),
        ] {
            assert_eq!(template.render(&map(json!({"id": id})), &claims, &['.', '*', '#']), Err(error));
        }
        for id in ["by-user.ada", "a/b", "a:b"] {
            let refused = template.render(&map(json!({"id": id})), &claims, &[]);
            assert!(matches!(refused, Err(RenderError::Reserved { .. })), "{id} on a broker without wildcards");
        }
        let email = Template::parse("user.{{ claims.sub }}").unwrap();
        assert_eq!(
            email.render(&Map::new(), &map(json!({"sub": "ada@example.com"})), &[]).unwrap(),
            "user.ada@example.com"
        );
        let mine = Template::parse("user.{{ claims.sub }}").unwrap();
        assert_eq!(mine.render(&Map::new(), &claims, &[]), Err(RenderError::MissingClaim("sub".into())));
    }

    #[test]
    fn filter_values_keep_their_type() {
        let min = Template::parse("{{ args.min }}").unwrap();
        assert_eq!(min.render_value(&map(json!({"min": 12.5})), &Map::new()).unwrap(), json!(12.5));
        let mixed = Template::parse("v{{ args.min }}").unwrap();
        assert_eq!(mixed.render_value(&map(json!({"min": 1})), &Map::new()).unwrap(), json!("v1"));
    }

    #[test]
    fn malformed_templates_say_what_is_wrong() {
        for (text, says) in [
            ("a.{{ args.id", "without"),
            ("a.{{ argz.id }}", "names neither"),
            ("a.{{ args.a.b }}", "one argument name"),
            ("a.}}", "without"),
            ("a.{{ claims }}", "names neither"),
        ] {
            assert!(Template::parse(text).unwrap_err().contains(says), "{text}");
        }
    }
}
